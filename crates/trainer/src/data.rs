//! Training data: songs as ids per split, windows for training, and whole songs
//! for evaluation.

use std::fs;
use std::path::{Path, PathBuf};

use grid_codec::Vocabulary;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::prepare::{Split, read_songs};

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
    pub train: Vec<Vec<u32>>,
    pub val: Vec<Vec<u32>>,
    pub test: Vec<Vec<u32>>,
    /// SHA-256 of `songs.jsonl` and `tokenizer.json`: which data a model saw.
    pub fingerprint: String,
}

/// The id of the terminal `.`, which starts and ends every song.
pub const TERMINAL: u32 = 0;

impl Dataset {
    /// Reads a folder written by `prepare` (`songs.jsonl`, `tokenizer.json`).
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let songs_path = dir.join("songs.jsonl");
        let tokenizer_path = dir.join("tokenizer.json");
        let file_error = |path: &Path, message: String| DataError::File {
            path: path.to_owned(),
            message,
        };
        let vocabulary = Vocabulary::load(&tokenizer_path)
            .map_err(|e| file_error(&tokenizer_path, e.to_string()))?;
        let songs = read_songs(&songs_path).map_err(|e| file_error(&songs_path, e.to_string()))?;
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
            train: Vec::new(),
            val: Vec::new(),
            test: Vec::new(),
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
                Split::Test => dataset.test.push(ids),
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
    fn songs_are_read_from_their_start() {
        assert_eq!(song_pairs(&[5, 6]), (vec![0, 5, 6], vec![5, 6, 0]));
    }
}
