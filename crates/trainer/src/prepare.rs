//! Corpus preparation: parsed songs -> grid tokens, a song-level split, the
//! vocabulary, and a report of everything left out and why.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use esac_parse::{Collection, Key, Melody, Meter};
use grid_codec::{
    BarLayout, ENCODING_FILE, Encoding, FilterReason, SongConditions, Vocabulary, encode_with,
    tokens_to_string,
};
pub use lstm_candle::checkpoint::write_atomic;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Which part of the song-level split a song belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

/// Settings of a preparation run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrepareOptions {
    /// How songs become tokens; written to `encoding.json`.
    pub encoding: Encoding,
    /// Seed of the song shuffle that decides the split.
    pub seed: u64,
    /// Shares of songs for validation and test; the rest is training.
    pub val_share: f64,
    pub test_share: f64,
    /// Look for held-out songs that are variants of training songs, for
    /// `report.json`. Songs prepared only to be read (by `judge`, `eval`, the
    /// server) skip it: in all keys it takes more than half the time.
    pub find_variants: bool,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self {
            encoding: Encoding::default(),
            seed: 42,
            val_share: 0.1,
            test_share: 0.1,
            find_variants: true,
        }
    }
}

/// One line of `songs.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SongRecord {
    pub id: String,
    /// The collection it came from (empty when only one was prepared).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub collection: String,
    pub file: String,
    pub title: String,
    pub split: Split,
    /// Semitones the song was moved by before encoding.
    pub transposed_by: i32,
    /// The song's key after that move (`None` when the source names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    /// The meter the song opens with (`None` when its source names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<Meter>,
    /// Its bars on the grid (`None` in free meter or when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bars: Option<BarLayout>,
    /// Space-separated grid tokens without the terminal `.`.
    pub tokens: String,
}

impl SongRecord {
    /// What conditioning knows of the song.
    pub fn conditions(&self) -> SongConditions {
        SongConditions {
            meter: self.meter,
            key: self.key,
            style: self.collection.clone(),
            layout: self.bars.clone(),
        }
    }

    /// The song as a person finds it: its id, its title, and its collection
    /// or else its file, as in `E0001 ES FREIT EIN WILDER WASSERMANN
    /// (deutschl/erk)`.
    pub fn label(&self) -> String {
        let place = if self.collection.is_empty() {
            Path::new(&self.file).file_name().map_or_else(
                || self.file.clone(),
                |name| name.to_string_lossy().into_owned(),
            )
        } else {
            self.collection.clone()
        };
        let title = if self.title.is_empty() {
            String::new()
        } else {
            format!(" {}", self.title)
        };
        format!("{}{title} ({place})", self.id)
    }
}

/// A song or file that did not make it, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    pub file: String,
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub reason: String,
}

/// A held-out song whose tune a training song mostly holds (see
/// [`crate::variants`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutVariant {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub collection: String,
    pub split: Split,
    /// The training song that holds the most of its stretches.
    pub training_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub training_collection: String,
    /// The share of its 16-token stretches that training song holds.
    pub shared: f64,
}

/// `report.json`: what was read, kept, and left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub files: usize,
    pub songs_read: usize,
    pub rejected: usize,
    pub rejected_reasons: BTreeMap<String, usize>,
    pub rejected_songs: Vec<Exclusion>,
    /// Files that hold no songs in a known format.
    pub skipped_files: Vec<Exclusion>,
    pub filtered: usize,
    pub filtered_reasons: BTreeMap<String, usize>,
    pub filtered_songs: Vec<Exclusion>,
    pub on_grid: usize,
    /// Songs left out because an earlier source holds the same tokens.
    #[serde(default)]
    pub duplicates: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicate_songs: Vec<Exclusion>,
    /// Validation and test songs that are variants of a training song;
    /// `None` where they were not looked for ([`PrepareOptions::find_variants`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_variants: Option<Vec<HeldOutVariant>>,
    /// Counts per collection, when several were prepared together.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub collections: BTreeMap<String, CollectionCounts>,
    pub grace_notes_dropped: usize,
    pub vocabulary_size: usize,
    pub songs_per_split: BTreeMap<Split, usize>,
    /// Tokens the model sees per split, counting each song's terminal `.`.
    pub tokens_per_split: BTreeMap<Split, usize>,
    pub seed: u64,
    pub encoding: Encoding,
}

/// The result of preparation.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub songs: Vec<SongRecord>,
    pub vocabulary: Vocabulary,
    pub report: Report,
    pub encoding: Encoding,
}

fn count_kinds(kinds: impl Iterator<Item = String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for kind in kinds {
        *counts.entry(kind).or_insert(0) += 1;
    }
    counts
}

fn display_path(path: &Path) -> String {
    path.display().to_string()
}

/// Why a collection could not be prepared.
#[derive(Debug, Error)]
pub enum PrepareError {
    #[error(
        "no song could be read from {files} music files ({rejected} rejected, {skipped} other files skipped){}",
        list_examples(.examples)
    )]
    NoSongs {
        files: usize,
        rejected: usize,
        skipped: usize,
        /// A few of the files left out, with the reason.
        examples: Vec<String>,
    },
    #[error("no song could be encoded: {filtered} were filtered{}", list_examples(.examples))]
    NoEncodedSongs {
        filtered: usize,
        examples: Vec<String>,
    },
}

fn list_examples(examples: &[String]) -> String {
    if examples.is_empty() {
        String::new()
    } else {
        format!(", for example:\n  {}", examples.join("\n  "))
    }
}

/// How many left-out files an error lists.
const EXAMPLES: usize = 5;

/// A collection of parsed songs under its name (`erk`, or `deutschl/erk` in an
/// Essen tree), as one source of a preparation.
pub struct Source<'a> {
    pub name: String,
    pub songs: &'a Collection,
}

/// What one collection gave.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectionCounts {
    pub songs_read: usize,
    pub rejected: usize,
    pub filtered: usize,
    /// Left out because an earlier source already has a song with the same tokens.
    pub duplicates: usize,
    /// Songs kept, per split.
    pub songs_per_split: BTreeMap<Split, usize>,
}

/// A song encoded from one source, before duplicates are dropped.
struct Candidate<'a> {
    source: usize,
    song: &'a Melody,
    versions: Vec<grid_codec::Encoded>,
    split: Split,
}

impl Candidate<'_> {
    /// What makes two songs one: the same tokens (for augmented encodings,
    /// the same set of versions, named by its first in token order).
    fn identity(&self) -> String {
        self.versions
            .iter()
            .map(|v| tokens_to_string(&v.tokens))
            .min()
            .expect("an encoded song has a version")
    }
}

/// Encodes one collection, splits it by song, and builds the vocabulary; see
/// [`prepare_sources`].
pub fn prepare(
    collection: &Collection,
    options: &PrepareOptions,
) -> Result<Prepared, PrepareError> {
    let source = Source {
        name: String::new(),
        songs: collection,
    };
    prepare_sources(std::slice::from_ref(&source), options)
}

/// Encodes named collections (as [`crate::source::read_sources`] gives them)
/// into one corpus, in their order; see [`prepare_sources`].
pub fn prepare_named(
    named: &[(String, Collection)],
    options: &PrepareOptions,
) -> Result<Prepared, PrepareError> {
    let sources: Vec<Source> = named
        .iter()
        .map(|(name, songs)| Source {
            name: name.clone(),
            songs,
        })
        .collect();
    prepare_sources(&sources, options)
}

/// Encodes several collections into one corpus. Each source is split by song
/// with its own seeded shuffle, so a song's split never depends on what else
/// is prepared with it (a single collection splits exactly as it always has).
/// A song whose tokens an earlier source already holds is left out and counted
/// as a duplicate of that collection: each song is kept once, in its first
/// source's split, so no training or validation song equals a test song. Fails
/// when nothing could be read or encoded, naming files left out.
pub fn prepare_sources(
    sources: &[Source<'_>],
    options: &PrepareOptions,
) -> Result<Prepared, PrepareError> {
    let all_rejected: Vec<&esac_parse::Rejection> =
        sources.iter().flat_map(|s| &s.songs.rejected).collect();
    let rejected_songs: Vec<Exclusion> = all_rejected
        .iter()
        .map(|r| Exclusion {
            file: display_path(&r.location.file),
            line: r.location.line,
            id: None,
            reason: format!("{}:{}: {}", r.location.line, r.location.column, r.reason()),
        })
        .collect();
    let skipped_files: Vec<Exclusion> = sources
        .iter()
        .flat_map(|s| &s.songs.skipped)
        .map(|(file, reason)| Exclusion {
            file: display_path(file),
            line: 0,
            id: None,
            reason: reason.clone(),
        })
        .collect();
    let music_files = sources.iter().map(|s| s.songs.music_files).sum();
    if sources.iter().all(|s| s.songs.songs.is_empty()) {
        return Err(PrepareError::NoSongs {
            files: music_files,
            rejected: rejected_songs.len(),
            skipped: skipped_files.len(),
            examples: rejected_songs
                .iter()
                .chain(&skipped_files)
                .take(EXAMPLES)
                .map(|e| format!("{}: {}", e.file, e.reason))
                .collect(),
        });
    }
    let mut counts: BTreeMap<String, CollectionCounts> = BTreeMap::new();
    let mut filtered: Vec<(Exclusion, FilterReason)> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut grace_notes_dropped = 0;
    for (index, source) in sources.iter().enumerate() {
        let count = counts.entry(source.name.clone()).or_default();
        count.songs_read += source.songs.songs.len();
        count.rejected += source.songs.rejected.len();
        let first = candidates.len();
        for song in &source.songs.songs {
            match encode_with(song, &options.encoding) {
                Ok(versions) => {
                    grace_notes_dropped += versions[0].dropped_grace_notes;
                    candidates.push(Candidate {
                        source: index,
                        song,
                        versions,
                        split: Split::Train,
                    });
                }
                Err(reason) => {
                    count.filtered += 1;
                    filtered.push((
                        Exclusion {
                            file: display_path(&song.file),
                            line: song.line,
                            id: Some(song.id.clone()),
                            reason: reason.to_string(),
                        },
                        reason,
                    ));
                }
            }
        }
        let splits = assign_splits(candidates.len() - first, options);
        for (candidate, split) in candidates[first..].iter_mut().zip(splits) {
            candidate.split = split;
        }
    }
    if candidates.is_empty() {
        return Err(PrepareError::NoEncodedSongs {
            filtered: filtered.len(),
            examples: filtered
                .iter()
                .take(EXAMPLES)
                .map(|(e, _)| {
                    format!(
                        "{}:{} ({}): {}",
                        e.file,
                        e.line,
                        e.id.as_deref().unwrap_or(""),
                        e.reason
                    )
                })
                .collect(),
        });
    }
    let on_grid = candidates.len();
    // The first holder of each song, as (source, id).
    let mut holders: std::collections::HashMap<String, (usize, String)> =
        std::collections::HashMap::new();
    let mut duplicate_songs = Vec::new();
    let mut kept: Vec<Candidate> = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        match holders.entry(candidate.identity()) {
            std::collections::hash_map::Entry::Occupied(holder) => {
                let (source, id) = holder.get();
                counts
                    .get_mut(&sources[candidate.source].name)
                    .expect("counted above")
                    .duplicates += 1;
                duplicate_songs.push(Exclusion {
                    file: display_path(&candidate.song.file),
                    line: candidate.song.line,
                    id: Some(candidate.song.id.clone()),
                    reason: format!(
                        "the same tokens as {id} in {}",
                        collection_label(&sources[*source].name)
                    ),
                });
            }
            std::collections::hash_map::Entry::Vacant(free) => {
                free.insert((candidate.source, candidate.song.id.clone()));
                kept.push(candidate);
            }
        }
    }
    let mut songs = Vec::new();
    for candidate in &kept {
        let name = &sources[candidate.source].name;
        *counts
            .get_mut(name)
            .expect("counted above")
            .songs_per_split
            .entry(candidate.split)
            .or_insert(0) += 1;
        for version in &candidate.versions {
            songs.push(SongRecord {
                id: candidate.song.id.clone(),
                collection: name.clone(),
                file: display_path(&candidate.song.file),
                title: candidate.song.title.clone(),
                split: candidate.split,
                transposed_by: version.transposed_by,
                key: candidate
                    .song
                    .key
                    .map(|key| grid_codec::transposed_key(key, version.transposed_by)),
                meter: candidate.song.initial_meter(),
                bars: BarLayout::of(candidate.song, options.encoding.step),
                tokens: tokens_to_string(&version.tokens),
            });
        }
    }
    let held_out_variants = options
        .find_variants
        .then(|| held_out_variants(&kept, sources));
    let vocabulary = Vocabulary::build(
        kept.iter()
            .flat_map(|c| c.versions.iter().map(|v| v.tokens.as_slice())),
    );
    let mut songs_per_split = BTreeMap::new();
    let mut tokens_per_split = BTreeMap::new();
    for split in [Split::Train, Split::Val, Split::Test] {
        songs_per_split.insert(split, 0);
        tokens_per_split.insert(split, 0);
    }
    for song in &songs {
        *songs_per_split.entry(song.split).or_insert(0) += 1;
        *tokens_per_split.entry(song.split).or_insert(0) += song.tokens.split(' ').count() + 1;
    }
    let report = Report {
        files: music_files,
        songs_read: sources.iter().map(|s| s.songs.songs.len()).sum(),
        rejected: rejected_songs.len(),
        rejected_reasons: count_kinds(all_rejected.iter().map(|r| r.kind.label().to_owned())),
        rejected_songs,
        skipped_files,
        filtered: filtered.len(),
        filtered_reasons: count_kinds(filtered.iter().map(|(_, reason)| reason.kind())),
        filtered_songs: filtered
            .into_iter()
            .map(|(exclusion, _)| exclusion)
            .collect(),
        on_grid,
        duplicates: duplicate_songs.len(),
        duplicate_songs,
        held_out_variants,
        collections: if sources.len() > 1 {
            counts
        } else {
            BTreeMap::new()
        },
        grace_notes_dropped,
        vocabulary_size: vocabulary.len(),
        songs_per_split,
        tokens_per_split,
        seed: options.seed,
        encoding: options.encoding,
    };
    Ok(Prepared {
        songs,
        vocabulary,
        report,
        encoding: options.encoding,
    })
}

/// The held-out songs among `kept` that are variants of a training song:
/// every version of each compared with every version of the training songs
/// ([`crate::variants::song_variants_of`]), as `eval` compares them.
fn held_out_variants(kept: &[Candidate], sources: &[Source]) -> Vec<HeldOutVariant> {
    // Every version of `songs`, as bytes, each with the index of its song.
    let versions = |songs: &[&Candidate]| -> (Vec<Vec<u8>>, Vec<usize>) {
        songs
            .iter()
            .enumerate()
            .flat_map(|(song, c)| {
                c.versions
                    .iter()
                    .map(move |v| (v.tokens.iter().map(|t| t.byte()).collect(), song))
            })
            .unzip()
    };
    let (train, held_out): (Vec<&Candidate>, Vec<&Candidate>) =
        kept.iter().partition(|c| c.split == Split::Train);
    let (training_versions, training_song) = versions(&train);
    let (held_out_versions, held_out_song) = versions(&held_out);
    let best = crate::variants::song_variants_of(
        &training_versions,
        &held_out_versions,
        &held_out_song,
        held_out.len(),
    );
    held_out
        .iter()
        .zip(best)
        .filter_map(|(song, best)| {
            let (version, shared) = best?;
            let of = training_song[version];
            Some(HeldOutVariant {
                id: song.song.id.clone(),
                collection: sources[song.source].name.clone(),
                split: song.split,
                training_id: train[of].song.id.clone(),
                training_collection: sources[train[of].source].name.clone(),
                shared,
            })
        })
        .collect()
}

/// A collection's name for messages.
fn collection_label(name: &str) -> String {
    if name.is_empty() {
        "this collection".into()
    } else {
        name.to_owned()
    }
}

/// Seeded song-level split: shuffle the song order, then cut test, val, train.
fn assign_splits(count: usize, options: &PrepareOptions) -> Vec<Split> {
    let mut order: Vec<usize> = (0..count).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(options.seed));
    let test = (count as f64 * options.test_share).round() as usize;
    let val = (count as f64 * options.val_share).round() as usize;
    let mut splits = vec![Split::Train; count];
    for (rank, &song) in order.iter().enumerate() {
        if rank < test {
            splits[song] = Split::Test;
        } else if rank < test + val {
            splits[song] = Split::Val;
        }
    }
    splits
}

/// The files a preparation writes.
pub struct PreparedFiles {
    pub songs: PathBuf,
    pub tokenizer: PathBuf,
    pub encoding: PathBuf,
    pub report: PathBuf,
}

/// The files that make a folder prepared data: what `train --data` takes as is.
pub fn is_prepared_folder(dir: &Path) -> bool {
    dir.join(SONGS_FILE).is_file() && dir.join(TOKENIZER_FILE).is_file()
}

pub const SONGS_FILE: &str = "songs.jsonl";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const REPORT_FILE: &str = "report.json";

/// Writes `songs.jsonl`, `tokenizer.json`, `encoding.json` and `report.json` into `out`.
pub fn write_prepared(prepared: &Prepared, out: &Path) -> io::Result<PreparedFiles> {
    fs::create_dir_all(out)?;
    let files = PreparedFiles {
        songs: out.join(SONGS_FILE),
        tokenizer: out.join(TOKENIZER_FILE),
        encoding: out.join(ENCODING_FILE),
        report: out.join(REPORT_FILE),
    };
    write_atomic(&files.songs, songs_jsonl(&prepared.songs)?.as_bytes())?;
    write_atomic(&files.tokenizer, prepared.vocabulary.to_json().as_bytes())?;
    write_atomic(&files.encoding, prepared.encoding.to_json().as_bytes())?;
    let report = serde_json::to_string_pretty(&prepared.report).map_err(io::Error::other)?;
    write_atomic(&files.report, report.as_bytes())?;
    Ok(files)
}

/// The text of `songs.jsonl`: one song a line.
pub fn songs_jsonl(songs: &[SongRecord]) -> io::Result<String> {
    let mut lines = String::new();
    for song in songs {
        lines.push_str(&serde_json::to_string(song).map_err(io::Error::other)?);
        lines.push('\n');
    }
    Ok(lines)
}

/// Reads `songs.jsonl`; errors name the line and column, the caller the file.
pub fn read_songs(path: &Path) -> io::Result<Vec<SongRecord>> {
    let text = fs::read_to_string(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                // serde places the error within the line; the file's line is ours.
                let message = e.to_string();
                let message = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(what, _)| what);
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("line {}, column {}: {message}", i + 1, e.column()),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use esac_parse::{Duration, Event, Key, Mode, Pitch, Spelling};

    fn song(id: &str, sixteenths: &[u64]) -> Melody {
        let mut m = Melody::new(id, format!("{id}.krn"), 1);
        m.key = Some(Key {
            tonic: Spelling {
                letter: 'G',
                alter: 0,
            },
            mode: Mode::Major,
        });
        for &s in sixteenths {
            m.events
                .push(Event::new(Pitch::Note(67), Duration::new(s, 48)));
        }
        m
    }

    #[test]
    fn a_song_is_labelled_by_id_title_and_collection_or_file() {
        // The first line of erk's songs.jsonl, tokens cut short.
        let line = r#"{"id":"E0001","file":"../shared/data/essen/deutschl/erk/deut0567.krn","title":"ES FREIT EIN WILDER WASSERMANN","split":"train","transposed_by":-5,"tokens":"55 _"}"#;
        let mut song: SongRecord = serde_json::from_str(line).unwrap();
        assert_eq!(
            song.label(),
            "E0001 ES FREIT EIN WILDER WASSERMANN (deut0567.krn)"
        );
        song.collection = "deutschl/erk".into();
        song.title.clear();
        assert_eq!(song.label(), "E0001 (deutschl/erk)");
    }

    #[test]
    fn split_is_by_song_seeded_and_reported() {
        let mut collection = Collection {
            music_files: 21,
            ..Default::default()
        };
        // Twenty different songs: the first note rises from song to song.
        for i in 0..20u8 {
            let mut distinct = song(&format!("S{i}"), &[3, 6]);
            distinct.events[0].pitch = Pitch::Note(60 + i);
            collection.songs.push(distinct);
        }
        // 1/48 steps: not on a 1/16 grid.
        collection.songs.push(song("OFF", &[1]));
        let prepared = prepare(&collection, &PrepareOptions::default()).unwrap();
        let report = &prepared.report;
        assert_eq!(report.songs_read, 21);
        assert_eq!(report.on_grid, 20);
        assert_eq!(report.filtered, 1);
        assert_eq!(
            report.filtered_reasons.keys().collect::<Vec<_>>(),
            ["duration 1/48 is not a multiple of 1/16"]
        );
        assert_eq!(report.songs_per_split[&Split::Train], 16);
        assert_eq!(report.songs_per_split[&Split::Val], 2);
        assert_eq!(report.songs_per_split[&Split::Test], 2);
        // Moved from G to C: "53 60 _" plus the terminal, 4 tokens a song.
        assert_eq!(prepared.songs[0].tokens, "53 60 _");
        assert_eq!(report.tokens_per_split[&Split::Train], 16 * 4);
        // `.`, the 20 first notes (53..=72, 60 among them), `_` and `r`.
        assert_eq!(prepared.vocabulary.len(), 23);
        let again = prepare(&collection, &PrepareOptions::default()).unwrap();
        assert_eq!(again.songs, prepared.songs);
        let other = prepare(
            &collection,
            &PrepareOptions {
                seed: 7,
                ..Default::default()
            },
        )
        .unwrap();
        assert_ne!(other.songs, prepared.songs);
    }

    /// A collection of songs named `id`, each G-major notes of the given
    /// lengths in 48ths (3 = a sixteenth).
    fn collection(songs: &[(&str, &[u64])]) -> Collection {
        let mut collection = Collection::default();
        for (id, lengths) in songs {
            collection.songs.push(song(id, lengths));
        }
        collection
    }

    #[test]
    fn several_collections_keep_each_song_once_in_its_first_sources_split() {
        // Worked by hand: A holds three songs; B repeats A's [3, 6] under
        // another id and holds one of its own, plus one off the grid; C
        // repeats B's own song and A's [6, 3], and holds [3, 3, 3] twice.
        let a = collection(&[("A1", &[3, 6]), ("A2", &[6, 3]), ("A3", &[12])]);
        let b = collection(&[("B1", &[3, 6]), ("B2", &[3, 12]), ("B3", &[1])]);
        let c = collection(&[
            ("C1", &[3, 12]),
            ("C2", &[6, 3]),
            ("C3", &[3, 3, 3]),
            ("C4", &[3, 3, 3]),
        ]);
        let sources = [
            Source {
                name: "a".into(),
                songs: &a,
            },
            Source {
                name: "b".into(),
                songs: &b,
            },
            Source {
                name: "c".into(),
                songs: &c,
            },
        ];
        let prepared = prepare_sources(&sources, &PrepareOptions::default()).unwrap();
        let report = &prepared.report;
        let kept: Vec<(&str, &str)> = prepared
            .songs
            .iter()
            .map(|s| (s.collection.as_str(), s.id.as_str()))
            .collect();
        assert_eq!(
            kept,
            [
                ("a", "A1"),
                ("a", "A2"),
                ("a", "A3"),
                ("b", "B2"),
                ("c", "C3")
            ]
        );
        assert_eq!(report.duplicates, 4);
        let dup = |name: &str| report.collections[name].duplicates;
        assert_eq!((dup("a"), dup("b"), dup("c")), (0, 1, 3));
        assert_eq!(report.collections["b"].filtered, 1);
        assert_eq!(report.collections["c"].songs_read, 4);
        assert_eq!(
            report
                .duplicate_songs
                .iter()
                .map(|e| e.reason.as_str())
                .collect::<Vec<_>>(),
            [
                "the same tokens as A1 in a",
                "the same tokens as B2 in b",
                "the same tokens as A2 in a",
                "the same tokens as C3 in c",
            ]
        );
        // Each source is split on its own: a's songs split as a alone does.
        let alone = prepare(&a, &PrepareOptions::default()).unwrap();
        let splits = |songs: &[SongRecord], collection: &str| -> Vec<(String, Split)> {
            songs
                .iter()
                .filter(|s| s.collection == collection)
                .map(|s| (s.id.clone(), s.split))
                .collect()
        };
        assert_eq!(splits(&prepared.songs, "a"), splits(&alone.songs, ""));
    }

    #[test]
    fn files_are_written_and_read_back() {
        let dir = std::env::temp_dir().join(format!("prepare-test-{}", std::process::id()));
        let mut collection = Collection::default();
        collection.songs.push(song("A", &[3]));
        let prepared = prepare(&collection, &PrepareOptions::default()).unwrap();
        let files = write_prepared(&prepared, &dir).unwrap();
        assert_eq!(read_songs(&files.songs).unwrap(), prepared.songs);
        let vocab = Vocabulary::load(&files.tokenizer).unwrap();
        assert_eq!(vocab.tokens(), prepared.vocabulary.tokens());
        let report: Report =
            serde_json::from_str(&fs::read_to_string(&files.report).unwrap()).unwrap();
        assert_eq!(report, prepared.report);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn damaged_files_are_named_once_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut collection = Collection::default();
        collection.songs.push(song("A", &[3]));
        let prepared = prepare(&collection, &PrepareOptions::default()).unwrap();
        let files = write_prepared(&prepared, dir.path()).unwrap();
        // A second line cut short after its eighth character.
        let mut text = fs::read_to_string(&files.songs).unwrap();
        text.push_str("{\"id\":\"B");
        fs::write(&files.songs, text).unwrap();
        let column = 8;
        assert_eq!(
            read_songs(&files.songs).unwrap_err().to_string(),
            format!("line 2, column {column}: EOF while parsing a string")
        );
        let error = crate::Dataset::load(dir.path()).err().unwrap().to_string();
        assert_eq!(
            error,
            format!(
                "{}: line 2, column {column}: EOF while parsing a string",
                files.songs.display()
            )
        );
        fs::write(&files.tokenizer, "{}").unwrap();
        let error = crate::Dataset::load(dir.path()).err().unwrap().to_string();
        assert_eq!(
            error.matches(&*files.tokenizer.to_string_lossy()).count(),
            1,
            "{error}"
        );
    }
}
