//! Training data: songs as ids per split, windows for training, and whole songs
//! for evaluation.

use std::fs;
use std::path::{Path, PathBuf};

use grid_codec::{Conditioning, Encoding, EncodingError, SongConditions, VocabError, Vocabulary};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::prepare::{
    Prepared, SONGS_FILE, SongRecord, Split, TOKENIZER_FILE, read_songs, songs_jsonl,
};

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
    /// `tokenizer.json` unreadable; the error names the file.
    #[error(transparent)]
    Tokenizer(VocabError),
    /// `encoding.json` unreadable; the error names the file.
    #[error(transparent)]
    Encoding(#[from] EncodingError),
}

/// One song as the model reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Song {
    /// Token ids without the terminal.
    pub ids: Vec<u32>,
    /// When the model reads side inputs: each input's values at every step and
    /// at the end (`ids.len() + 1` each, the first going with the `.` that
    /// starts the song); else empty.
    pub side: Vec<Vec<u32>>,
    /// What is known of the song for conditioning.
    pub conditions: SongConditions,
    /// Which song this is a version of, the songs numbered as read (an
    /// augmented encoding gives each song a version per key, one after
    /// another); `None` for songs made in memory.
    pub tune: Option<usize>,
}

impl Song {
    /// A song without side inputs or conditions.
    pub fn plain(ids: Vec<u32>) -> Self {
        Self {
            ids,
            side: Vec::new(),
            conditions: SongConditions::default(),
            tune: None,
        }
    }
}

/// Songs as token ids (without the terminal), per split, with their vocabulary.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub vocabulary: Vocabulary,
    /// How the songs were encoded (the reference's when the folder predates
    /// `encoding.json`).
    pub encoding: Encoding,
    pub train: Vec<Song>,
    pub val: Vec<Song>,
    pub test: Vec<Song>,
    /// The side input values, once [`Dataset::condition`] has given them.
    pub conditioning: Option<Conditioning>,
    /// SHA-256 of `songs.jsonl` and `tokenizer.json`: which data a model saw.
    pub fingerprint: String,
}

/// The id of the terminal `.`, which starts and ends every song.
pub const TERMINAL: u32 = 0;

impl Dataset {
    /// Reads a folder written by `prepare` (`songs.jsonl`, `tokenizer.json`,
    /// `encoding.json`), its songs as ids of its own vocabulary; every split
    /// must hold songs.
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let vocabulary = Vocabulary::load(&tokenizer_path).map_err(DataError::Tokenizer)?;
        Self::load_in(dir, vocabulary)?.with_every_split()
    }

    /// Reads a folder written by `prepare`, its songs as ids of `vocabulary`
    /// (a model's), whatever vocabulary the folder was written with: a token
    /// `vocabulary` lacks is an error naming the song. A split may be empty.
    pub fn load_in(dir: &Path, vocabulary: Vocabulary) -> Result<Self, DataError> {
        let songs_path = dir.join(SONGS_FILE);
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let file_error = |path: &Path, message: String| DataError::File {
            path: path.to_owned(),
            message,
        };
        let songs = read_songs(&songs_path).map_err(|e| file_error(&songs_path, e.to_string()))?;
        let encoding = Encoding::load(dir)?.unwrap_or_default();
        let mut hasher = Sha256::new();
        for path in [&songs_path, &tokenizer_path] {
            hasher.update(fs::read(path).map_err(|e| file_error(path, e.to_string()))?);
        }
        Self::from_records(songs, vocabulary, encoding, hex(&hasher.finalize()))
    }

    /// Songs prepared in memory (as `prepare` returns them), as ids of
    /// `vocabulary`; their fingerprint is that of the files `write_prepared`
    /// would write with this vocabulary. A split may be empty.
    pub fn from_prepared(prepared: Prepared, vocabulary: Vocabulary) -> Result<Self, DataError> {
        let mut hasher = Sha256::new();
        hasher.update(songs_jsonl(&prepared.songs).map_err(|e| DataError::File {
            path: PathBuf::from(SONGS_FILE),
            message: e.to_string(),
        })?);
        hasher.update(vocabulary.to_json());
        Self::from_records(
            prepared.songs,
            vocabulary,
            prepared.encoding,
            hex(&hasher.finalize()),
        )
    }

    fn from_records(
        songs: Vec<SongRecord>,
        vocabulary: Vocabulary,
        encoding: Encoding,
        fingerprint: String,
    ) -> Result<Self, DataError> {
        let mut dataset = Self {
            vocabulary,
            encoding,
            train: Vec::new(),
            val: Vec::new(),
            test: Vec::new(),
            conditioning: None,
            fingerprint,
        };
        // Versions of one song come one after another, under its id.
        let mut tunes = 0;
        let mut previous: Option<(String, String, Split)> = None;
        for song in songs {
            let tune = (song.id.clone(), song.collection.clone(), song.split);
            if previous.as_ref() != Some(&tune) {
                tunes += 1;
                previous = Some(tune);
            }
            let ids = dataset
                .vocabulary
                .encode(&song.tokens)
                .map_err(|e| DataError::Song {
                    id: song.id.clone(),
                    file: song.file.clone(),
                    message: e.to_string(),
                })?;
            let split = song.split;
            let ids = Song {
                ids,
                side: Vec::new(),
                conditions: song.conditions(),
                tune: Some(tunes),
            };
            match split {
                Split::Train => dataset.train.push(ids),
                Split::Val => dataset.val.push(ids),
                Split::Test => dataset.test.push(ids),
            }
        }
        Ok(dataset)
    }

    /// Itself, or an error naming a split without songs.
    fn with_every_split(self) -> Result<Self, DataError> {
        for (split, name) in [
            (&self.train, "train"),
            (&self.val, "val"),
            (&self.test, "test"),
        ] {
            if split.is_empty() {
                return Err(DataError::EmptySplit(name));
            }
        }
        Ok(self)
    }

    /// Every song, of every split.
    pub fn songs_mut(&mut self) -> impl Iterator<Item = &mut Song> {
        self.train
            .iter_mut()
            .chain(&mut self.val)
            .chain(&mut self.test)
    }

    /// Gives every song the values of the side inputs of `conditioning`
    /// (usually read from the training songs with [`Conditioning::from_songs`]).
    pub fn condition(&mut self, conditioning: Conditioning) {
        for song in self.songs_mut() {
            song.side = conditioning.values(&song.conditions, &song.ids);
        }
        self.conditioning = Some(conditioning);
    }

    /// Reads a `share` of the training songs (chosen with `seed`, the same
    /// songs every epoch) with their mode and style withheld: unknown mode
    /// and style "other", bars and meter kept (the condition dropout of
    /// classifier-free guidance). The model then also learns melodies of no
    /// given mode or style, and leans less on them. Returns how many songs it
    /// withheld them from.
    pub fn withhold_conditions(&mut self, share: f64, seed: u64) -> usize {
        let Some(conditioning) = &self.conditioning else {
            return 0;
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut withheld = 0;
        for song in &mut self.train {
            if rng.random::<f64>() < share {
                let conditions = SongConditions {
                    key: None,
                    style: String::new(),
                    ..song.conditions.clone()
                };
                song.side = conditioning.values(&conditions, &song.ids);
                withheld += 1;
            }
        }
        withheld
    }

    /// The test songs of each collection, when there are several.
    pub fn test_by_collection(&self) -> std::collections::BTreeMap<&str, Vec<Song>> {
        let mut by = std::collections::BTreeMap::<&str, Vec<Song>>::new();
        for song in &self.test {
            by.entry(song.conditions.style.as_str())
                .or_default()
                .push(song.clone());
        }
        if by.len() < 2 {
            by.clear();
        }
        by
    }

    /// Tokens the model predicts in the training split (each song's terminal included).
    pub fn train_tokens(&self) -> usize {
        self.train.iter().map(|s| s.ids.len() + 1).sum()
    }

    /// The sizes of its splits.
    pub fn split_sizes(&self) -> SplitSizes {
        SplitSizes {
            train_songs: self.train.len(),
            val_songs: self.val.len(),
            test_songs: self.test.len(),
            train_tokens: self.train_tokens(),
        }
    }
}

/// How many songs each split holds, and the training tokens (each song's
/// terminal included). The same songs prepared again from another copy give
/// the same sizes (though not the same fingerprint: the file paths differ),
/// where other songs or another split all but never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitSizes {
    pub train_songs: usize,
    pub val_songs: usize,
    pub test_songs: usize,
    pub train_tokens: usize,
}

impl SplitSizes {
    /// The sizes of prepared songs' splits, as a model trained on them records them.
    pub fn of_songs(songs: &[SongRecord]) -> Self {
        let in_split = |split| songs.iter().filter(move |song| song.split == split);
        Self {
            train_songs: in_split(Split::Train).count(),
            val_songs: in_split(Split::Val).count(),
            test_songs: in_split(Split::Test).count(),
            train_tokens: in_split(Split::Train)
                .map(|song| song.tokens.split_whitespace().count() + 1)
                .sum(),
        }
    }
}

impl std::fmt::Display for SplitSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} training songs ({} tokens), {} validation and {} test songs",
            self.train_songs, self.train_tokens, self.val_songs, self.test_songs
        )
    }
}

/// Lower-case hex of a digest.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ids with the side input values that go with them (`side[k][t]` with
/// `ids[t]`): a stream of songs, or a window cut from one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Track {
    pub ids: Vec<u32>,
    pub side: Vec<Vec<u32>>,
}

impl Track {
    /// `.` and the song's ids, each with the values of the step it predicts.
    fn push_song(&mut self, song: &Song) {
        self.ids.push(TERMINAL);
        self.ids.extend_from_slice(&song.ids);
        self.side.resize(song.side.len(), Vec::new());
        for (values, song_values) in self.side.iter_mut().zip(&song.side) {
            values.extend_from_slice(&song_values[..=song.ids.len()]);
        }
    }

    /// The closing `.` of a stream (it predicts nothing, so its side values do
    /// not matter).
    fn close(&mut self) {
        self.ids.push(TERMINAL);
        for values in &mut self.side {
            values.push(0);
        }
    }

    /// A stream of songs in the given order, each after a `.`.
    fn of_songs(songs: &[Song], order: &[usize]) -> Self {
        let mut track = Track::default();
        for &index in order {
            track.push_song(&songs[index]);
        }
        track.close();
        track
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// `length` positions from `start`.
    pub fn window(&self, start: usize, length: usize) -> Track {
        Track {
            ids: self.ids[start..start + length].to_vec(),
            side: self
                .side
                .iter()
                .map(|v| v[start..start + length].to_vec())
                .collect(),
        }
    }
}

/// One epoch of training windows: the training songs in a seeded order, each
/// preceded by `.` (so songs start as generation starts), cut at a seeded offset
/// into windows of `length + 1` ids (inputs and next-token targets) that start
/// every `stride` ids, shuffled. Stride `length` covers each target once when
/// every position is trained; stride 1 gives the reference's one window per
/// target for the last-position objective.
pub fn epoch_windows(
    songs: &[Song],
    length: usize,
    stride: usize,
    seed: u64,
    epoch: u64,
) -> Vec<Track> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..songs.len()).collect();
    order.shuffle(&mut rng);
    let stream = Track::of_songs(songs, &order);
    let offset = if stream.len() > length + 1 {
        rand::Rng::random_range(&mut rng, 0..length)
    } else {
        0
    };
    let starts = (offset..(stream.len() + 1).saturating_sub(length + 1)).step_by(stride.max(1));
    let mut windows: Vec<Track> = starts
        .map(|start| stream.window(start, length + 1))
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

/// Rows of equal length: input ids, the side input values that go with them
/// (`side[k][row][t]`), next-token targets, and a weight per position (1 =
/// scored, 0 = padding or not trained).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainBatch {
    pub inputs: Vec<Vec<u32>>,
    pub side: Vec<Vec<Vec<u32>>>,
    pub targets: Vec<Vec<u32>>,
    pub weights: Vec<Vec<f32>>,
}

impl TrainBatch {
    /// Windows of `seq_len + 1` ids; every position scored, or only the last.
    pub fn from_windows(windows: &[Track], seq_len: usize, last_only: bool) -> Self {
        let weight = |t: usize| {
            if !last_only || t + 1 == seq_len {
                1.0
            } else {
                0.0
            }
        };
        let inputs = windows.first().map_or(0, |w| w.side.len());
        Self {
            inputs: windows.iter().map(|w| w.ids[..seq_len].to_vec()).collect(),
            side: (0..inputs)
                .map(|k| {
                    windows
                        .iter()
                        .map(|w| w.side[k][..seq_len].to_vec())
                        .collect()
                })
                .collect(),
            targets: windows
                .iter()
                .map(|w| w.ids[1..=seq_len].to_vec())
                .collect(),
            weights: windows
                .iter()
                .map(|_| (0..seq_len).map(weight).collect())
                .collect(),
        }
    }

    /// Whole songs (`.` first, `.` last), padded to the longest and masked.
    pub fn from_songs<'a>(songs: impl IntoIterator<Item = &'a Song>) -> Self {
        let songs: Vec<&Song> = songs.into_iter().collect();
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = songs.iter().map(|s| song_pairs(&s.ids)).collect();
        let length = pairs.iter().map(|(i, _)| i.len()).max().unwrap_or(0);
        let pad = |mut v: Vec<u32>| {
            v.resize(length, TERMINAL);
            v
        };
        let inputs = songs.first().map_or(0, |s| s.side.len());
        Self {
            side: (0..inputs)
                .map(|k| songs.iter().map(|s| pad(s.side[k].clone())).collect())
                .collect(),
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
pub fn epoch_lanes(songs: &[Song], lanes: usize, seed: u64, epoch: u64) -> Vec<Track> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..songs.len()).collect();
    order.shuffle(&mut rng);
    let stream = Track::of_songs(songs, &order);
    let length = (stream.len() / lanes.max(1)).max(1);
    (0..lanes.min(stream.len() / length))
        .map(|lane| stream.window(lane * length, length))
        .collect()
}

/// One epoch of whole-song batches (indices into `songs`): a seeded shuffle,
/// then groups of similar length so that little is padding, in seeded order.
pub fn epoch_song_batches(
    songs: &[Song],
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
        group.sort_by_key(|&i| songs[i].ids.len());
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
    fn withheld_conditions_hide_mode_and_style_only() {
        let song = |style: &str, minor: bool| Song {
            ids: vec![1, 2, 3, 4],
            side: Vec::new(),
            tune: None,
            conditions: SongConditions {
                meter: Some("3/4".parse().unwrap()),
                key: Some(if minor { "a" } else { "C" }.parse().unwrap()),
                style: style.to_owned(),
                layout: Some(grid_codec::BarLayout::regular(12, 0, 1)),
            },
        };
        let train: Vec<Song> = (0..200)
            .map(|i| song(["a", "b"][i % 2], i % 3 == 0))
            .collect();
        let mut dataset = Dataset {
            vocabulary: Vocabulary::build([[].as_slice()]),
            encoding: Encoding::default(),
            train: train.clone(),
            val: vec![song("a", false)],
            test: vec![song("b", true)],
            conditioning: None,
            fingerprint: String::new(),
        };
        assert_eq!(
            dataset.withhold_conditions(0.5, 1),
            0,
            "nothing to withhold"
        );
        dataset.condition(Conditioning::from_songs(
            train.iter().map(|s| &s.conditions),
        ));
        let given = dataset.clone();
        let withheld = dataset.withhold_conditions(0.25, 7);
        assert!((30..=70).contains(&withheld), "{withheld} of 200");
        let mut again = given.clone();
        assert_eq!(again.withhold_conditions(0.25, 7), withheld);
        assert_eq!(
            again.train, dataset.train,
            "the same songs for the same seed"
        );
        let (mode, style) = (2, 3);
        let mut changed = 0;
        for (now, before) in dataset.train.iter().zip(&given.train) {
            if now.side == before.side {
                continue;
            }
            changed += 1;
            // Unknown mode (0) and style "other" (0); position, meter and
            // bars left as given.
            assert!(now.side[mode].iter().all(|&v| v == 0));
            assert!(now.side[style].iter().all(|&v| v == 0));
            for input in [0, 1, 4] {
                assert_eq!(now.side[input], before.side[input]);
            }
            assert_eq!(now.conditions, before.conditions, "the song's record stays");
        }
        assert_eq!(changed, withheld);
        assert_eq!((&dataset.val, &dataset.test), (&given.val, &given.test));
    }

    #[test]
    fn windows_cover_the_stream_and_are_seeded() {
        let songs: Vec<Song> = (1..=20).map(|i| Song::plain(vec![i; 7])).collect();
        let a = epoch_windows(&songs, 8, 8, 1, 0);
        assert_eq!(a, epoch_windows(&songs, 8, 8, 1, 0));
        assert_ne!(a, epoch_windows(&songs, 8, 8, 1, 1));
        assert!(a.iter().all(|w| w.ids.len() == 9 && w.side.is_empty()));
        // 20 songs of 7 plus 21 terminals = 161 ids: about 160 / 8 windows.
        assert!((18..=20).contains(&a.len()), "{}", a.len());
        // Stride 1: one window per position after the offset.
        let every = epoch_windows(&songs, 8, 1, 1, 0);
        assert!((145..=153).contains(&every.len()), "{}", every.len());
    }

    #[test]
    fn batches_weigh_what_is_trained() {
        let windows: Vec<Track> = [vec![1, 2, 3, 4], vec![5, 6, 7, 8]]
            .into_iter()
            .map(|ids| Track { ids, side: vec![] })
            .collect();
        let all = TrainBatch::from_windows(&windows, 3, false);
        assert_eq!(all.inputs, [[1, 2, 3], [5, 6, 7]]);
        assert_eq!(all.targets, [[2, 3, 4], [6, 7, 8]]);
        assert_eq!(all.scored(), 6.0);
        let last = TrainBatch::from_windows(&windows, 3, true);
        assert_eq!(last.weights, [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]);
        let two = [Song::plain(vec![5, 6]), Song::plain(vec![7])];
        let songs = TrainBatch::from_songs(&two);
        assert_eq!(songs.inputs, [[0, 5, 6], [0, 7, 0]]);
        assert_eq!(songs.targets, [[5, 6, 0], [7, 0, 0]]);
        assert_eq!(songs.weights, [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]);
        assert_eq!((songs.scored(), songs.positions()), (5.0, 6));
    }

    #[test]
    fn song_batches_cover_every_song_once() {
        let songs: Vec<Song> = (0..50).map(|i| Song::plain(vec![1; i % 13 + 1])).collect();
        let batches = epoch_song_batches(&songs, 8, 3, 0);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert_eq!(batches, epoch_song_batches(&songs, 8, 3, 0));
        assert_ne!(batches, epoch_song_batches(&songs, 8, 3, 1));
    }

    #[test]
    fn lanes_are_equal_and_seeded() {
        let songs: Vec<Song> = (1..=30).map(|i| Song::plain(vec![i; 5])).collect();
        let lanes = epoch_lanes(&songs, 4, 2, 0);
        assert_eq!(lanes.len(), 4);
        assert!(lanes.iter().all(|l| l.ids.len() == 181 / 4));
        assert_eq!(lanes[0].ids[0], TERMINAL);
        assert_eq!(lanes, epoch_lanes(&songs, 4, 2, 0));
        assert_ne!(lanes, epoch_lanes(&songs, 4, 2, 1));
    }

    #[test]
    fn side_values_travel_with_their_steps() {
        // Song i: ids [i, i], one side input with values [10i, 10i+1, 10i+2]
        // for its `.`, its two steps and its end.
        let songs: Vec<Song> = (1..=6u32)
            .map(|i| Song {
                side: vec![vec![10 * i, 10 * i + 1, 10 * i + 2]],
                ..Song::plain(vec![i, i])
            })
            .collect();
        let check = |track: &Track| {
            for (t, &id) in track.ids.iter().enumerate() {
                let value = track.side[0][t];
                if id != TERMINAL {
                    // A song's id at its first or second step predicts the next.
                    assert!(value == 10 * id + 1 || value == 10 * id + 2, "{track:?}");
                } else if t + 1 < track.ids.len() && track.ids[t + 1] != TERMINAL {
                    assert_eq!(value, 10 * track.ids[t + 1], "{track:?}");
                }
            }
        };
        for lane in epoch_lanes(&songs, 2, 1, 0) {
            assert_eq!(lane.side[0].len(), lane.ids.len());
            check(&lane);
        }
        for window in epoch_windows(&songs, 4, 4, 1, 0) {
            check(&window);
        }
        let batch = TrainBatch::from_songs(&songs[..2]);
        assert_eq!(batch.side, [[[10, 11, 12], [20, 21, 22]]]);
    }

    #[test]
    fn songs_are_read_from_their_start() {
        assert_eq!(song_pairs(&[5, 6]), (vec![0, 5, 6], vec![5, 6, 0]));
    }
}
