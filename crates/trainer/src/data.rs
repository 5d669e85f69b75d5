//! Training data: songs as ids per split, windows for training, and whole songs
//! for evaluation.

use std::fs;
use std::path::{Path, PathBuf};

use grid_codec::{Encoding, Vocabulary};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::prepare::{SONGS_FILE, Split, TOKENIZER_FILE, read_songs};

#[derive(Debug, Error)]
pub enum DataError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("song {id} ({file}): {message}")]
    Song {
        id: String,
        file: String,
        message: String,
    },
    #[error("the {0} split has no songs")]
    EmptySplit(&'static str),
}

/// Songs as token ids (without the terminal), per split, with their vocabulary.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub vocabulary: Vocabulary,
    /// How the songs were encoded (the reference's when the folder predates
    /// `encoding.json`).
    pub encoding: Encoding,
    pub train: Vec<Vec<u32>>,
    pub val: Vec<Vec<u32>>,
    pub test: Vec<Vec<u32>>,
    /// The collection of each test song (empty names when only one was prepared).
    pub test_collections: Vec<String>,
    /// SHA-256 of `songs.jsonl` and `tokenizer.json`: which data a model saw.
    pub fingerprint: String,
}

/// The id of the terminal `.`, which starts and ends every song.
pub const TERMINAL: u32 = 0;

impl Dataset {
    /// Reads a folder written by `prepare` (`songs.jsonl`, `tokenizer.json`,
    /// `encoding.json`).
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let songs_path = dir.join(SONGS_FILE);
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let file_error = |path: &Path, message: String| DataError::File {
            path: path.to_owned(),
            message,
        };
        let vocabulary = Vocabulary::load(&tokenizer_path)
            .map_err(|e| file_error(&tokenizer_path, e.to_string()))?;
        let songs = read_songs(&songs_path).map_err(|e| file_error(&songs_path, e.to_string()))?;
        let encoding = Encoding::load(dir)
            .map_err(|e| file_error(dir, e.to_string()))?
            .unwrap_or_default();
        let mut hasher = Sha256::new();
        for path in [&songs_path, &tokenizer_path] {
            hasher.update(fs::read(path).map_err(|e| file_error(path, e.to_string()))?);
        }
        let fingerprint = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut dataset = Self {
            vocabulary,
            encoding,
            train: Vec::new(),
            val: Vec::new(),
            test: Vec::new(),
            test_collections: Vec::new(),
            fingerprint,
        };
        for song in songs {
            let ids = dataset
                .vocabulary
                .encode(&song.tokens)
                .map_err(|e| DataError::Song {
                    id: song.id.clone(),
                    file: song.file.clone(),
                    message: e.to_string(),
                })?;
            match song.split {
                Split::Train => dataset.train.push(ids),
                Split::Val => dataset.val.push(ids),
                Split::Test => {
                    dataset.test.push(ids);
                    dataset.test_collections.push(song.collection.clone());
                }
            }
        }
        for (split, name) in [
            (&dataset.train, "train"),
            (&dataset.val, "val"),
            (&dataset.test, "test"),
        ] {
            if split.is_empty() {
                return Err(DataError::EmptySplit(name));
            }
        }
        Ok(dataset)
    }

    /// The test songs of each collection, when there are several.
    pub fn test_by_collection(&self) -> std::collections::BTreeMap<&str, Vec<Vec<u32>>> {
        let mut by = std::collections::BTreeMap::<&str, Vec<Vec<u32>>>::new();
        for (song, name) in self.test.iter().zip(&self.test_collections) {
            by.entry(name.as_str()).or_default().push(song.clone());
        }
        if by.len() < 2 {
            by.clear();
        }
        by
    }

    /// Tokens the model predicts in the training split (each song's terminal included).
    pub fn train_tokens(&self) -> usize {
        self.train.iter().map(|s| s.len() + 1).sum()
    }
}

/// One epoch of training windows: the training songs in a seeded order, each
/// preceded by `.` (so songs start as generation starts), cut at a seeded offset
/// into windows of `length + 1` ids (inputs and next-token targets) that start
/// every `stride` ids, shuffled. Stride `length` covers each target once when
/// every position is trained; stride 1 gives the reference's one window per
/// target for the last-position objective.
pub fn epoch_windows(
    songs: &[Vec<u32>],
    length: usize,
    stride: usize,
    seed: u64,
    epoch: u64,
) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..songs.len()).collect();
    order.shuffle(&mut rng);
    let mut stream = Vec::with_capacity(songs.iter().map(|s| s.len() + 1).sum::<usize>() + 1);
    for index in order {
        stream.push(TERMINAL);
        stream.extend_from_slice(&songs[index]);
    }
    stream.push(TERMINAL);
    let offset = if stream.len() > length + 1 {
        rand::Rng::random_range(&mut rng, 0..length)
    } else {
        0
    };
    let mut windows: Vec<Vec<u32>> = stream[offset..]
        .windows(length + 1)
        .step_by(stride.max(1))
        .map(<[u32]>::to_vec)
        .collect();
    windows.shuffle(&mut rng);
    windows
}

/// How training examples are cut from the songs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Windows {
    /// Whole songs, each read from its start with a zero state, in batches of
    /// similar length: exactly how evaluation and generation use the model.
    Songs,
    /// Fixed-length windows cut from the stream of songs (the reference's way).
    Stream,
    /// The stream of songs split into one lane per batch row; consecutive
    /// windows of a lane carry the LSTM state (truncated backpropagation through
    /// time), so every position is trained with all that came before it.
    Lanes,
}

/// Rows of equal length: input ids, next-token targets, and a weight per
/// position (1 = scored, 0 = padding or not trained).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainBatch {
    pub inputs: Vec<Vec<u32>>,
    pub targets: Vec<Vec<u32>>,
    pub weights: Vec<Vec<f32>>,
}

impl TrainBatch {
    /// Windows of `seq_len + 1` ids; every position scored, or only the last.
    pub fn from_windows(windows: &[Vec<u32>], seq_len: usize, last_only: bool) -> Self {
        let weight = |t: usize| {
            if !last_only || t + 1 == seq_len {
                1.0
            } else {
                0.0
            }
        };
        Self {
            inputs: windows.iter().map(|w| w[..seq_len].to_vec()).collect(),
            targets: windows.iter().map(|w| w[1..=seq_len].to_vec()).collect(),
            weights: windows
                .iter()
                .map(|_| (0..seq_len).map(weight).collect())
                .collect(),
        }
    }

    /// Whole songs (`.` first, `.` last), padded to the longest and masked.
    pub fn from_songs<'a>(songs: impl IntoIterator<Item = &'a [u32]>) -> Self {
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = songs.into_iter().map(song_pairs).collect();
        let length = pairs.iter().map(|(i, _)| i.len()).max().unwrap_or(0);
        let pad = |mut v: Vec<u32>| {
            v.resize(length, TERMINAL);
            v
        };
        Self {
            weights: pairs
                .iter()
                .map(|(i, _)| {
                    (0..length)
                        .map(|t| if t < i.len() { 1.0 } else { 0.0 })
                        .collect()
                })
                .collect(),
            inputs: pairs.iter().map(|(i, _)| pad(i.clone())).collect(),
            targets: pairs.into_iter().map(|(_, t)| pad(t)).collect(),
        }
    }

    pub fn rows(&self) -> usize {
        self.inputs.len()
    }

    /// Positions that count in the loss.
    pub fn scored(&self) -> f64 {
        self.weights.iter().flatten().map(|w| f64::from(*w)).sum()
    }

    /// Positions the model runs over (padding included).
    pub fn positions(&self) -> usize {
        self.inputs.iter().map(Vec::len).sum()
    }
}

/// One epoch as `lanes` continuous streams of songs (seeded order, each song
/// after a `.`), all of the same length.
pub fn epoch_lanes(songs: &[Vec<u32>], lanes: usize, seed: u64, epoch: u64) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..songs.len()).collect();
    order.shuffle(&mut rng);
    let mut stream = Vec::new();
    for index in order {
        stream.push(TERMINAL);
        stream.extend_from_slice(&songs[index]);
    }
    stream.push(TERMINAL);
    let length = stream.len() / lanes.max(1);
    stream
        .chunks_exact(length.max(1))
        .take(lanes)
        .map(<[u32]>::to_vec)
        .collect()
}

/// One epoch of whole-song batches (indices into `songs`): a seeded shuffle,
/// then groups of similar length so that little is padding, in seeded order.
pub fn epoch_song_batches(
    songs: &[Vec<u32>],
    batch_size: usize,
    seed: u64,
    epoch: u64,
) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..songs.len()).collect();
    order.shuffle(&mut rng);
    let mut batches = Vec::new();
    for group in order.chunks(batch_size.max(1) * 8) {
        let mut group = group.to_vec();
        group.sort_by_key(|&i| songs[i].len());
        batches.extend(group.chunks(batch_size.max(1)).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

/// Whole songs for evaluation: inputs `. s1 .. sn`, targets `s1 .. sn .`.
pub fn song_pairs(song: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut input = Vec::with_capacity(song.len() + 1);
    input.push(TERMINAL);
    input.extend_from_slice(song);
    let mut target = song.to_vec();
    target.push(TERMINAL);
    (input, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_stream_and_are_seeded() {
        let songs: Vec<Vec<u32>> = (1..=20).map(|i| vec![i; 7]).collect();
        let a = epoch_windows(&songs, 8, 8, 1, 0);
        assert_eq!(a, epoch_windows(&songs, 8, 8, 1, 0));
        assert_ne!(a, epoch_windows(&songs, 8, 8, 1, 1));
        assert!(a.iter().all(|w| w.len() == 9));
        // 20 songs of 7 plus 21 terminals = 161 ids: about 160 / 8 windows.
        assert!((18..=20).contains(&a.len()), "{}", a.len());
        // Stride 1: one window per position after the offset.
        let every = epoch_windows(&songs, 8, 1, 1, 0);
        assert!((145..=153).contains(&every.len()), "{}", every.len());
    }

    #[test]
    fn batches_weigh_what_is_trained() {
        let windows = vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]];
        let all = TrainBatch::from_windows(&windows, 3, false);
        assert_eq!(all.inputs, [[1, 2, 3], [5, 6, 7]]);
        assert_eq!(all.targets, [[2, 3, 4], [6, 7, 8]]);
        assert_eq!(all.scored(), 6.0);
        let last = TrainBatch::from_windows(&windows, 3, true);
        assert_eq!(last.weights, [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]);
        let songs = TrainBatch::from_songs([[5u32, 6].as_slice(), [7].as_slice()]);
        assert_eq!(songs.inputs, [[0, 5, 6], [0, 7, 0]]);
        assert_eq!(songs.targets, [[5, 6, 0], [7, 0, 0]]);
        assert_eq!(songs.weights, [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]);
        assert_eq!((songs.scored(), songs.positions()), (5.0, 6));
    }

    #[test]
    fn song_batches_cover_every_song_once() {
        let songs: Vec<Vec<u32>> = (0..50).map(|i| vec![1; i % 13 + 1]).collect();
        let batches = epoch_song_batches(&songs, 8, 3, 0);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert_eq!(batches, epoch_song_batches(&songs, 8, 3, 0));
        assert_ne!(batches, epoch_song_batches(&songs, 8, 3, 1));
    }

    #[test]
    fn lanes_are_equal_and_seeded() {
        let songs: Vec<Vec<u32>> = (1..=30).map(|i| vec![i; 5]).collect();
        let lanes = epoch_lanes(&songs, 4, 2, 0);
        assert_eq!(lanes.len(), 4);
        assert!(lanes.iter().all(|l| l.len() == 181 / 4));
        assert_eq!(lanes[0][0], TERMINAL);
        assert_eq!(lanes, epoch_lanes(&songs, 4, 2, 0));
        assert_ne!(lanes, epoch_lanes(&songs, 4, 2, 1));
    }

    #[test]
    fn songs_are_read_from_their_start() {
        assert_eq!(song_pairs(&[5, 6]), (vec![0, 5, 6], vec![5, 6, 0]));
    }
}
