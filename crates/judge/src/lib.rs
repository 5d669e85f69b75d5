//! Musical statistics of melodies next to a corpus's held-out songs, and how much of each is copied from its training songs.
//!
//! Histograms of pitch classes, intervals and note lengths, the share of notes
//! in the scale and of melodies ending on the tonic, and copying: the longest
//! run shared verbatim with any training song (a suffix automaton) and the share
//! of 16-grams found in training songs (a model that recites the corpus is not
//! composing). Scale and tonic come from each melody's [`Tonality`]: the white
//! keys and C or A for tokens moved to C major / A minor, else the song's own
//! key, or for a melody without one the key that Krumhansl-Kessler key finding
//! ([`find_key`]) gives.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use esac_parse::{Key, Mode, Spelling};
use grid_codec::{Encoding, Token};
use plotters::prelude::*;
use serde::Serialize;

pub mod meter;
pub mod significance;
pub mod style;

/// Length of the n-grams looked up in the training songs.
pub const COPY_NGRAM: usize = 16;
/// Interval histogram bins: -12..=12 semitones, wider leaps counted at the ends.
const MAX_INTERVAL: i32 = 12;
/// Duration histogram bins: 1..=16 sixteenths, longer notes counted in the last.
const MAX_DURATION: usize = 16;
/// The white keys: the scale of C major and of A minor.
const WHITE_KEYS: [bool; 12] = [
    true, false, true, false, true, true, false, true, false, true, false, true,
];
/// C and A: the tonics of songs moved to C major or A minor.
const REFERENCE_TONICS: [u8; 2] = [0, 9];

/// Which notes of a melody are in its scale, and which is its tonic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tonality {
    /// Moved to C major or A minor (the reference encoding): the white keys,
    /// tonic C or A.
    ReferenceKeys,
    /// One key: its mode's scale and its tonic.
    Key(Key),
}

impl Tonality {
    /// The tonality of a song's tokens under `encoding`: the reference keys
    /// when the encoding moved every song there, else `key` (the song's own)
    /// or, when it has none, the key found in its notes.
    pub fn of(encoding: &Encoding, key: Option<Key>, tokens: &[Token]) -> Option<Self> {
        if encoding.in_reference_keys() {
            return Some(Tonality::ReferenceKeys);
        }
        key.or_else(|| find_key(tokens).map(|found| found.key))
            .map(Tonality::Key)
    }

    fn in_scale(self, pitch_class: u8) -> bool {
        match self {
            Tonality::ReferenceKeys => WHITE_KEYS[usize::from(pitch_class)],
            Tonality::Key(key) => {
                let above = (pitch_class + 12 - key.tonic.pitch_class()) % 12;
                key.mode.scale().contains(&above)
            }
        }
    }

    fn is_tonic(self, pitch_class: u8) -> bool {
        match self {
            Tonality::ReferenceKeys => REFERENCE_TONICS.contains(&pitch_class),
            Tonality::Key(key) => key.tonic.pitch_class() == pitch_class,
        }
    }

    /// The key, when there is one.
    pub fn key(self) -> Option<Key> {
        match self {
            Tonality::ReferenceKeys => None,
            Tonality::Key(key) => Some(key),
        }
    }
}

/// Krumhansl and Kessler's probe-tone ratings of the twelve pitch classes
/// above a major tonic (Krumhansl 1990, table 2.1).
const MAJOR_PROFILE: [f64; 12] = [
    6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88,
];
/// The same for a minor tonic.
const MINOR_PROFILE: [f64; 12] = [
    6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17,
];

fn correlation(a: &[f64; 12], b: &[f64; 12]) -> f64 {
    let mean_a = a.iter().sum::<f64>() / 12.0;
    let mean_b = b.iter().sum::<f64>() / 12.0;
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - mean_a) * (y - mean_b);
        aa += (x - mean_a) * (x - mean_a);
        bb += (y - mean_b) * (y - mean_b);
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    ab / (aa * bb).sqrt()
}

/// The pitch classes' total lengths in grid steps (C first).
pub fn pitch_class_durations(tokens: &[Token]) -> [f64; 12] {
    let mut durations = [0.0; 12];
    for note in notes(tokens) {
        durations[usize::from(note.pitch % 12)] += note.length as f64;
    }
    durations
}

/// A key found in the notes, and how well they fit it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoundKey {
    pub key: Key,
    /// Pearson correlation of the pitch-class durations with the key's profile.
    pub correlation: f64,
}

/// The key whose Krumhansl-Kessler profile correlates best with the melody's
/// pitch-class durations (the Krumhansl-Schmuckler algorithm, as music21's
/// `KrumhanslKessler` analysis does it), among the 12 major and 12 minor keys;
/// ties go to the first in the order C, C#, ... B, major before minor. `None`
/// for a melody without notes.
pub fn find_key(tokens: &[Token]) -> Option<FoundKey> {
    let durations = pitch_class_durations(tokens);
    if durations.iter().all(|d| *d == 0.0) {
        return None;
    }
    let mut best: Option<(f64, Key)> = None;
    for tonic in 0..12u8 {
        for (mode, profile) in [(Mode::Major, &MAJOR_PROFILE), (Mode::Minor, &MINOR_PROFILE)] {
            let rotated: [f64; 12] =
                std::array::from_fn(|pc| profile[(pc + 12 - usize::from(tonic)) % 12]);
            let score = correlation(&durations, &rotated);
            if best.is_none_or(|(b, _)| score > b) {
                let key = Key {
                    tonic: key_spelling(tonic, mode),
                    mode,
                };
                best = Some((score, key));
            }
        }
    }
    best.map(|(correlation, key)| FoundKey { key, correlation })
}

/// The name of a tonic with the fewest accidentals in its key signature.
fn key_spelling(pitch_class: u8, mode: Mode) -> Spelling {
    Spelling::of_pitch_class(pitch_class)
        .into_iter()
        .min_by_key(|&tonic| Key { tonic, mode }.signature_fifths().abs())
        .expect("every pitch class has a name")
}

/// Finds the longest stretch of a melody that occurs verbatim in any training
/// song, and where: a suffix automaton over all training songs (one text, each
/// song followed by a break), walked once per melody.
struct SuffixAutomaton {
    next: Vec<Vec<(u32, u32)>>,
    link: Vec<u32>,
    len: Vec<u32>,
    /// Where in the text the state's strings first end: all of them end
    /// there, so a match in that state ends there too.
    first_end: Vec<u32>,
    /// Where each song starts in the text.
    song_starts: Vec<u32>,
}

/// Separates songs in the automaton; no token maps to it, so no match crosses it.
const SONG_BREAK: u32 = u32::MAX;

fn symbol(token: Token) -> u32 {
    u32::from(token.byte())
}

impl SuffixAutomaton {
    fn new(songs: &[impl AsRef<[Token]>]) -> Self {
        let mut automaton = Self {
            next: vec![Vec::new()],
            link: vec![u32::MAX],
            len: vec![0],
            first_end: vec![0],
            song_starts: Vec::with_capacity(songs.len()),
        };
        let mut last = 0u32;
        let mut position = 0u32;
        for song in songs {
            automaton.song_starts.push(position);
            for c in song
                .as_ref()
                .iter()
                .map(|&token| symbol(token))
                .chain([SONG_BREAK])
            {
                last = automaton.extend(last, c, position);
                position += 1;
            }
        }
        automaton
    }

    fn go(&self, state: u32, c: u32) -> Option<u32> {
        self.next[state as usize]
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| *v)
    }

    fn set(&mut self, state: u32, c: u32, to: u32) {
        let edges = &mut self.next[state as usize];
        match edges.iter_mut().find(|(k, _)| *k == c) {
            Some(edge) => edge.1 = to,
            None => edges.push((c, to)),
        }
    }

    fn add_state(&mut self, len: u32, link: u32, next: Vec<(u32, u32)>, first_end: u32) -> u32 {
        self.next.push(next);
        self.link.push(link);
        self.len.push(len);
        self.first_end.push(first_end);
        (self.len.len() - 1) as u32
    }

    /// Adds `c`, the text's symbol at `position`.
    fn extend(&mut self, last: u32, c: u32, position: u32) -> u32 {
        let current = self.add_state(self.len[last as usize] + 1, 0, Vec::new(), position);
        let mut p = last;
        loop {
            if self.go(p, c).is_some() {
                break;
            }
            self.set(p, c, current);
            if self.link[p as usize] == u32::MAX {
                return current;
            }
            p = self.link[p as usize];
        }
        let q = self.go(p, c).expect("found above");
        if self.len[p as usize] + 1 == self.len[q as usize] {
            self.link[current as usize] = q;
        } else {
            let clone = self.add_state(
                self.len[p as usize] + 1,
                self.link[q as usize],
                self.next[q as usize].clone(),
                self.first_end[q as usize],
            );
            loop {
                if self.go(p, c) != Some(q) {
                    break;
                }
                self.set(p, c, clone);
                if self.link[p as usize] == u32::MAX {
                    break;
                }
                p = self.link[p as usize];
            }
            self.link[q as usize] = clone;
            self.link[current as usize] = clone;
        }
        current
    }

    /// The first of the longest runs of `tokens` that a song holds.
    fn longest_match(&self, tokens: &[Token]) -> Option<SharedRun> {
        let (mut state, mut length) = (0u32, 0u32);
        // The run's length, the state it ended in and where in the melody.
        let mut best = (0u32, 0u32, 0usize);
        for (at, &token) in tokens.iter().enumerate() {
            let c = symbol(token);
            loop {
                if let Some(to) = self.go(state, c) {
                    state = to;
                    length += 1;
                    break;
                }
                if state == 0 {
                    length = 0;
                    break;
                }
                state = self.link[state as usize];
                length = self.len[state as usize];
            }
            if length > best.0 {
                best = (length, state, at);
            }
        }
        let (length, state, melody_end) = best;
        if length == 0 {
            return None;
        }
        let song_end = self.first_end[state as usize];
        let song = self.song_starts.partition_point(|&start| start <= song_end) - 1;
        Some(SharedRun {
            length: length as usize,
            melody_start: melody_end + 1 - length as usize,
            song,
            song_start: (song_end + 1 - length - self.song_starts[song]) as usize,
        })
    }
}

/// The longest run of a melody's tokens that a training song holds verbatim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedRun {
    /// Its length in tokens (grid steps).
    pub length: usize,
    /// Where it starts in the melody (0 for the first token).
    pub melody_start: usize,
    /// Which training song holds it: its place among the indexed songs.
    pub song: usize,
    /// Where it starts in that song.
    pub song_start: usize,
}

/// What the training songs hold, for the copying measures.
pub struct TrainingIndex {
    automaton: SuffixAutomaton,
    ngrams: HashSet<Vec<Token>>,
    /// What a copy's song is called, by its place in the index.
    names: Vec<String>,
}

impl TrainingIndex {
    /// The index of `train`, each song's tokens (owned or borrowed); the songs
    /// are called "training song 1", "training song 2"... until
    /// [`Self::with_names`] names them.
    pub fn new<Tokens: AsRef<[Token]>>(train: &[Tokens]) -> Self {
        Self {
            automaton: SuffixAutomaton::new(train),
            ngrams: train
                .iter()
                .flat_map(|song| song.as_ref().windows(COPY_NGRAM).map(<[Token]>::to_vec))
                .collect(),
            names: (1..=train.len())
                .map(|n| format!("training song {n}"))
                .collect(),
        }
    }

    /// Names the songs, in the order they were indexed.
    ///
    /// # Panics
    /// When `names` does not name every song once.
    pub fn with_names(self, names: Vec<String>) -> Self {
        assert_eq!(names.len(), self.names.len(), "one name per indexed song");
        Self { names, ..self }
    }

    /// The longest run of tokens shared verbatim with a training song (the
    /// first such run), and where.
    pub fn longest_copy(&self, tokens: &[Token]) -> Option<SharedRun> {
        self.automaton.longest_match(tokens)
    }

    /// The name of the song a [`SharedRun`] is in.
    pub fn song_name(&self, run: &SharedRun) -> &str {
        &self.names[run.song]
    }

    /// Share of the melody's n-grams found in the training songs (None when it
    /// is shorter than one n-gram).
    pub fn copied_ngrams(&self, tokens: &[Token]) -> Option<f64> {
        let windows = tokens.windows(COPY_NGRAM);
        let total = windows.len();
        (total > 0).then(|| {
            let found = windows.filter(|w| self.ngrams.contains(*w)).count();
            found as f64 / total as f64
        })
    }
}

/// Per-melody measures.
#[derive(Debug, Serialize)]
pub struct MelodyJudgement {
    pub name: String,
    pub tokens: usize,
    pub notes: usize,
    pub closed: bool,
    /// The key scale and tonic were judged in (absent for tokens in the
    /// reference keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    pub longest_copy: usize,
    /// The training song that holds the longest copy, when it shares a token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<CopiedFrom>,
    pub copied_ngrams: Option<f64>,
    /// The key Krumhansl-Kessler key finding gives its notes (absent without
    /// notes): the mode comparison counts its mode, as `style_found` is the
    /// style comparison's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_found: Option<Key>,
    /// The collection the style classifier finds it nearest, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style_found: Option<String>,
}

/// Where a melody's longest copy is in a training song.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopiedFrom {
    /// The training song, as the index names it.
    pub song: String,
    /// Where the copy starts in the melody and in the song, in tokens from 0.
    pub melody_start: usize,
    pub song_start: usize,
}

impl CopiedFrom {
    /// The copy, `length` tokens of the melody `melody`, for a person:
    /// counted from 1, as "tokens 17-80 of melody-3 (64 grid steps) are
    /// tokens 33-96 of the training song E0001 ...".
    pub fn describe(&self, melody: &str, length: usize) -> String {
        let span = |start: usize| format!("{}-{}", start + 1, start + length);
        format!(
            "tokens {} of {melody} ({length} grid steps) are tokens {} of the training song {}",
            span(self.melody_start),
            span(self.song_start),
            self.song
        )
    }

    /// The copy `run` of `index`.
    pub fn of(run: &SharedRun, index: &TrainingIndex) -> Self {
        Self {
            song: index.song_name(run).to_owned(),
            melody_start: run.melody_start,
            song_start: run.song_start,
        }
    }
}

/// Statistics of a set of melodies. Histograms are shares that sum to 1.
#[derive(Debug, Serialize)]
pub struct SetStatistics {
    pub melodies: usize,
    pub notes: usize,
    /// C, C#, D, ... B.
    pub pitch_classes: Vec<f64>,
    /// Semitones between consecutive notes, -12 ..= 12 (wider leaps at the ends).
    pub intervals: Vec<f64>,
    /// Note lengths in sixteenths, 1 ..= 16 (longer in the last bin).
    pub durations: Vec<f64>,
    pub in_scale: f64,
    pub mean_tokens: f64,
    pub mean_notes: f64,
    pub ends_on_tonic: f64,
    /// Share ended by the model with `.` (test songs always end).
    pub closed: f64,
    pub mean_longest_copy: f64,
    pub max_longest_copy: usize,
    /// Mean over melodies of their share of 16-grams found in training songs.
    pub mean_copied_ngrams: f64,
}

/// A note of a melody: its MIDI pitch, and its onset and length in grid steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Note {
    pitch: u8,
    onset: usize,
    length: usize,
}

/// The notes of a melody (rests end notes and are not notes).
fn notes(tokens: &[Token]) -> Vec<Note> {
    let mut notes: Vec<Note> = Vec::new();
    let mut in_note = false;
    for (onset, token) in tokens.iter().enumerate() {
        match token {
            Token::Note(pitch) => {
                notes.push(Note {
                    pitch: *pitch,
                    onset,
                    length: 1,
                });
                in_note = true;
            }
            Token::Hold if in_note => {
                if let Some(last) = notes.last_mut() {
                    last.length += 1;
                }
            }
            Token::Rest => in_note = false,
            Token::Hold | Token::End => {}
        }
    }
    notes
}

/// Counts of pitch classes, intervals and note lengths.
struct Histograms {
    pitch_classes: [usize; 12],
    intervals: Vec<usize>,
    durations: Vec<usize>,
}

impl Histograms {
    fn new() -> Self {
        Self {
            pitch_classes: [0; 12],
            intervals: vec![0; (2 * MAX_INTERVAL + 1) as usize],
            durations: vec![0; MAX_DURATION],
        }
    }

    /// Counts one melody's notes.
    fn add(&mut self, notes: &[Note]) {
        for note in notes {
            self.pitch_classes[usize::from(note.pitch % 12)] += 1;
            self.durations[note.length.clamp(1, MAX_DURATION) - 1] += 1;
        }
        for pair in notes.windows(2) {
            let step = (i32::from(pair[1].pitch) - i32::from(pair[0].pitch))
                .clamp(-MAX_INTERVAL, MAX_INTERVAL);
            self.intervals[(step + MAX_INTERVAL) as usize] += 1;
        }
    }
}

fn shares(counts: &[usize]) -> Vec<f64> {
    let total: usize = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        })
        .collect()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if count == 0 { 0.0 } else { sum / count as f64 }
}

/// A melody to judge: generated, or a held-out song.
#[derive(Debug, Clone)]
pub struct Song {
    pub name: String,
    pub tokens: Vec<Token>,
    /// Ended with `.` (by the model, for a generated melody).
    pub closed: bool,
    /// Where its scale and tonic are; `None` when it has no notes to find a key in.
    pub tonality: Option<Tonality>,
    /// Its time signature (or free meter), when known, its bars regular or not.
    pub meter: Option<esac_parse::Meter>,
    /// Its meter and upbeat, when known and regular.
    pub metric: Option<meter::Metric>,
    /// Whether it is in a minor mode (asked of the model, or recorded), when known.
    pub minor: Option<bool>,
    /// Its style (collection), asked of the model or recorded, when known.
    pub style: Option<String>,
}

/// Statistics of `melodies` and their copying measures against `index`.
pub fn statistics(
    melodies: &[Song],
    index: &TrainingIndex,
) -> (SetStatistics, Vec<MelodyJudgement>) {
    let mut histograms = Histograms::new();
    let mut in_scale = 0usize;
    let mut tonic_endings = 0;
    let mut judged = Vec::with_capacity(melodies.len());
    for melody in melodies {
        let notes = notes(&melody.tokens);
        histograms.add(&notes);
        in_scale += notes
            .iter()
            .filter(|n| melody.tonality.is_some_and(|t| t.in_scale(n.pitch % 12)))
            .count();
        if let (Some(last), Some(tonality)) = (notes.last(), melody.tonality)
            && tonality.is_tonic(last.pitch % 12)
        {
            tonic_endings += 1;
        }
        let copy = index.longest_copy(&melody.tokens);
        judged.push(MelodyJudgement {
            name: melody.name.clone(),
            tokens: melody.tokens.len(),
            notes: notes.len(),
            closed: melody.closed,
            key: melody.tonality.and_then(Tonality::key),
            longest_copy: copy.map_or(0, |run| run.length),
            copied_from: copy.map(|run| CopiedFrom::of(&run, index)),
            copied_ngrams: index.copied_ngrams(&melody.tokens),
            key_found: find_key(&melody.tokens).map(|found| found.key),
            style_found: None,
        });
    }
    let count = melodies.len().max(1) as f64;
    let note_total: usize = histograms.pitch_classes.iter().sum();
    let statistics = SetStatistics {
        melodies: melodies.len(),
        notes: note_total,
        pitch_classes: shares(&histograms.pitch_classes),
        intervals: shares(&histograms.intervals),
        durations: shares(&histograms.durations),
        in_scale: if note_total == 0 {
            0.0
        } else {
            in_scale as f64 / note_total as f64
        },
        mean_tokens: mean(judged.iter().map(|j| j.tokens as f64)),
        mean_notes: mean(judged.iter().map(|j| j.notes as f64)),
        ends_on_tonic: f64::from(tonic_endings) / count,
        closed: judged.iter().filter(|j| j.closed).count() as f64 / count,
        mean_longest_copy: mean(judged.iter().map(|j| j.longest_copy as f64)),
        max_longest_copy: judged.iter().map(|j| j.longest_copy).max().unwrap_or(0),
        mean_copied_ngrams: mean(judged.iter().filter_map(|j| j.copied_ngrams)),
    };
    (statistics, judged)
}

/// What stands in the judgement's `generated` set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Judged {
    /// A model's melodies.
    #[default]
    Generated,
    /// Real songs the model never learned from, judged as its melodies would
    /// be: what a model that wrote songs like the collection's would score.
    ValidationSongs,
}

impl Judged {
    /// How the tables and pictures name the set.
    pub fn label(self) -> &'static str {
        match self {
            Judged::Generated => "generated",
            Judged::ValidationSongs => "validation songs",
        }
    }
}

/// Everything `judge.json` holds.
#[derive(Debug, Serialize)]
pub struct Judgement {
    /// What the `generated` set holds.
    pub judged: Judged,
    pub samples: String,
    pub data: String,
    pub train_songs: usize,
    pub generated: SetStatistics,
    pub test: SetStatistics,
    /// Total variation distance between the generated and test histograms
    /// (0 = identical, 1 = disjoint).
    pub distance: BTreeMap<&'static str, f64>,
    /// Meter measures per meter both sets have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub meters: Vec<meter::MeterComparison>,
    /// How often the key finder finds the mode asked (or recorded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub modes: Vec<meter::ModeComparison>,
    /// How often the style classifier finds the style asked (or recorded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub styles: Vec<style::StyleComparison>,
    /// Styles asked of the generated melodies that the classifier has no
    /// centroid for (too few training songs, or no classifier at all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unclassified_styles: Vec<String>,
    pub melodies: Vec<MelodyJudgement>,
}

/// How often melodies of one kind (asked of the model, or recorded for a
/// held-out song) are found to be of it, by the key finder or the style
/// classifier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Found {
    pub generated: usize,
    /// Share of those generated melodies found to be of the kind.
    pub generated_found: f64,
    pub test: usize,
    pub test_found: f64,
    /// Whether the two shares differ by more than chance: Fisher's exact
    /// two-sided test of the found and not found in each set.
    pub p_value: f64,
}

impl Found {
    /// Counts, in each set, the melodies `of_kind` and the share of them that
    /// `found` finds; `None` when no generated melody is of the kind.
    fn count(
        generated: &[Song],
        test: &[Song],
        of_kind: impl Fn(&Song) -> bool,
        found: impl Fn(&Song) -> bool,
    ) -> Option<Found> {
        let (generated, generated_hits) = found_count(generated, &of_kind, &found);
        let (test, test_hits) = found_count(test, &of_kind, &found);
        (generated > 0).then(|| Found {
            generated,
            generated_found: share(generated_hits, generated),
            test,
            test_found: share(test_hits, test),
            p_value: significance::fisher_exact_p_value(generated_hits, generated, test_hits, test),
        })
    }

    /// The table's line for it: "asked {asked}: the {finder} finds ... generated in {kind}, ...".
    fn line(&self, judged: Judged, asked: &str, finder: &str, kind: &str) -> String {
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        format!(
            "\nasked {asked}: the {finder} finds {} of {} {} in {kind}, {} of {} test songs (p = {})",
            pct(self.generated_found),
            self.generated,
            judged.label(),
            pct(self.test_found),
            self.test,
            p_value_text(self.p_value)
        )
    }
}

/// A p-value to two places, or in scientific notation below 0.01.
fn p_value_text(p: f64) -> String {
    if p >= 0.01 {
        format!("{p:.2}")
    } else {
        format!("{p:.1e}")
    }
}

/// `hits` of `of` as a share (0 of none).
fn share(hits: usize, of: usize) -> f64 {
    hits as f64 / of.max(1) as f64
}

/// How many of `melodies` are `of_kind`, and how many of those `found` finds.
fn found_count(
    melodies: &[Song],
    of_kind: impl Fn(&Song) -> bool,
    found: impl Fn(&Song) -> bool,
) -> (usize, usize) {
    let of: Vec<&Song> = melodies.iter().filter(|song| of_kind(song)).collect();
    let hits = of.iter().filter(|song| found(song)).count();
    (of.len(), hits)
}

/// Notes of this many grid steps or more count as long in the metric profile:
/// a quarter note on the 1/16 grid.
pub const LONG_NOTE_STEPS: usize = 4;

/// Total variation distance between two histograms of shares.
pub fn total_variation(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0
}

/// Judges `samples` against the held-out songs `test`, with copying measured
/// against `train` (whose meters and modes are measured too) and styles told
/// apart by `classifier` (when the corpus has several). `samples_name` and
/// `data_name` say where they came from.
pub fn judge(
    samples: &[Song],
    test: &[Song],
    train: &[Song],
    classifier: Option<&style::StyleClassifier>,
    samples_name: &str,
    data_name: &str,
) -> Judgement {
    let train_tokens: Vec<&[Token]> = train.iter().map(|song| song.tokens.as_slice()).collect();
    let index = TrainingIndex::new(&train_tokens)
        .with_names(train.iter().map(|song| song.name.clone()).collect());
    let held_out = test;
    let (generated, mut melodies) = statistics(samples, &index);
    if let Some(classifier) = classifier {
        for (judged, song) in melodies.iter_mut().zip(samples) {
            judged.style_found = Some(classifier.classify(&song.tokens, song.meter).to_owned());
        }
    }
    let (test, _) = statistics(held_out, &index);
    let distance = BTreeMap::from([
        (
            "pitch_classes",
            total_variation(&generated.pitch_classes, &test.pitch_classes),
        ),
        (
            "intervals",
            total_variation(&generated.intervals, &test.intervals),
        ),
        (
            "durations",
            total_variation(&generated.durations, &test.durations),
        ),
    ]);
    let asked_styles: BTreeSet<&str> = samples.iter().filter_map(|s| s.style.as_deref()).collect();
    let unclassified_styles = asked_styles
        .into_iter()
        .filter(|asked| classifier.is_none_or(|c| !c.styles().any(|known| known == *asked)))
        .map(str::to_owned)
        .collect();
    Judgement {
        judged: Judged::Generated,
        meters: meter::compare_meters(samples, held_out, train, LONG_NOTE_STEPS),
        modes: meter::compare_modes(samples, held_out, train),
        styles: classifier.map_or_else(Vec::new, |c| style::compare_styles(c, samples, held_out)),
        unclassified_styles,
        samples: samples_name.to_owned(),
        data: data_name.to_owned(),
        train_songs: train.len(),
        generated,
        test,
        distance,
        melodies,
    }
}

/// The short table `judge` prints.
pub fn table(j: &Judgement) -> String {
    let (g, t) = (&j.generated, &j.test);
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let rows = [
        (
            "melodies".to_owned(),
            g.melodies.to_string(),
            t.melodies.to_string(),
        ),
        (
            "mean length (tokens)".into(),
            format!("{:.1}", g.mean_tokens),
            format!("{:.1}", t.mean_tokens),
        ),
        (
            "mean notes".into(),
            format!("{:.1}", g.mean_notes),
            format!("{:.1}", t.mean_notes),
        ),
        (
            "notes in the scale".into(),
            pct(g.in_scale),
            pct(t.in_scale),
        ),
        (
            "ends on the tonic".into(),
            pct(g.ends_on_tonic),
            pct(t.ends_on_tonic),
        ),
        ("ended by `.`".into(), pct(g.closed), pct(t.closed)),
        (
            "longest copy, mean (max)".into(),
            format!("{:.1} ({})", g.mean_longest_copy, g.max_longest_copy),
            format!("{:.1} ({})", t.mean_longest_copy, t.max_longest_copy),
        ),
        (
            format!("{COPY_NGRAM}-grams found in training"),
            pct(g.mean_copied_ngrams),
            pct(t.mean_copied_ngrams),
        ),
    ];
    let judged = j.judged.label();
    let width = judged.len().max(14);
    let mut out = format!("{:<28} {judged:>width$} {:>14}\n", "", "test songs");
    for (name, generated, test) in rows {
        out += &format!("{name:<28} {generated:>width$} {test:>14}\n");
    }
    out += "histogram distance (total variation, 0 = same):";
    for (name, d) in &j.distance {
        out += &format!(" {name} {d:.3}");
    }
    // The first of the longest, so that the line names the table's maximum.
    let longest = j
        .melodies
        .iter()
        .rev()
        .filter_map(|m| Some((m, m.copied_from.as_ref()?)))
        .max_by_key(|(m, _)| m.longest_copy);
    if let Some((melody, from)) = longest {
        out += &format!(
            "\nlongest copy: {}",
            from.describe(&melody.name, melody.longest_copy)
        );
    }
    for m in &j.meters {
        let (g, t) = (&m.generated, &m.test);
        out += &format!(
            "\nin {}: {} {judged}, {} test songs; ties across bar lines per 100 notes {:.2} / {:.2} ({} / {} ties in {} / {} melodies, p = {}{}); full bars in the written score {} / {} (of {} / {}{}); ending at a bar line {} / {}; ending on the tonic {} / {}{}; bars repeating an earlier bar {} / {} (of {} / {}{}); metric profile distance {:.3} (notes a quarter or longer {:.3})",
            m.meter,
            g.melodies,
            t.melodies,
            g.ties_per_100_notes,
            t.ties_per_100_notes,
            g.ties,
            t.ties,
            g.melodies_with_ties,
            t.melodies_with_ties,
            p_value_text(m.ties_p_value),
            m.train.as_ref().map_or_else(String::new, |r| format!(
                "; training songs {:.2}, {} ties in {} of {}",
                r.ties_per_100_notes, r.ties, r.melodies_with_ties, r.melodies
            )),
            pct(g.full_bars),
            pct(t.full_bars),
            g.inner_bars,
            t.inner_bars,
            if g.unwritten_scores + t.unwritten_scores > 0 {
                format!(
                    "; {} / {} scores could not be written",
                    g.unwritten_scores, t.unwritten_scores
                )
            } else {
                String::new()
            },
            pct(g.ending_at_bar_end),
            pct(t.ending_at_bar_end),
            pct(g.ends_on_tonic),
            pct(t.ends_on_tonic),
            m.train.as_ref().map_or_else(String::new, |r| format!(
                " (training songs {})",
                pct(r.ends_on_tonic)
            )),
            pct(g.repeated_bars),
            pct(t.repeated_bars),
            g.whole_bars,
            t.whole_bars,
            m.train.as_ref().map_or_else(String::new, |r| format!(
                "; training songs {}",
                pct(r.repeated_bars)
            )),
            m.profile_distance,
            m.long_note_profile_distance
        );
    }
    for m in &j.styles {
        out += &m.found.line(
            j.judged,
            &format!("style {}", m.style),
            "style classifier",
            "it",
        );
    }
    if !j.unclassified_styles.is_empty() {
        let noun = if j.unclassified_styles.len() == 1 {
            "style"
        } else {
            "styles"
        };
        out += &format!(
            "\nasked {noun} {}: not classified (the style classifier keeps only the collections with enough training songs, in a corpus of several)",
            j.unclassified_styles.join(", ")
        );
    }
    for m in &j.modes {
        out += &m.found.line(j.judged, m.mode, "key finder", m.mode);
        out += &format!(", {} of {} training songs", pct(m.train_found), m.train);
    }
    out
}

/// The label of a histogram bin.
type BinName = Box<dyn Fn(usize) -> String>;

/// Pitch-class, interval and duration histograms, generated beside test songs, as a PNG.
pub fn histograms(j: &Judgement, path: &Path) -> Result<(), melody_formats::PictureError> {
    let failed = melody_formats::drawing_failed(path);
    const PITCH_NAMES: [&str; 12] = [
        "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
    ];
    let labels = melody_formats::font_available();
    let root = BitMapBackend::new(path, (1500, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(&failed)?;
    let panels = root.split_evenly((1, 3));
    let sets: [(&str, &[f64], &[f64], BinName); 3] = [
        (
            "pitch class",
            &j.generated.pitch_classes,
            &j.test.pitch_classes,
            Box::new(|i| PITCH_NAMES[i % 12].to_owned()),
        ),
        (
            "interval (semitones)",
            &j.generated.intervals,
            &j.test.intervals,
            Box::new(|i| (i as i32 - MAX_INTERVAL).to_string()),
        ),
        (
            "note length (sixteenths)",
            &j.generated.durations,
            &j.test.durations,
            Box::new(|i| (i + 1).to_string()),
        ),
    ];
    for (panel, (title, generated, test, name)) in panels.iter().zip(sets) {
        let bins = generated.len();
        let top = generated
            .iter()
            .chain(test)
            .fold(0f64, |m, v| m.max(*v))
            .max(0.01)
            // Headroom above the tallest bar for the legend, which would
            // otherwise hide the bars under it.
            * 1.35;
        let mut builder = ChartBuilder::on(panel);
        builder.margin(12);
        if labels {
            builder
                .caption(title, ("sans-serif", 20))
                .x_label_area_size(30)
                .y_label_area_size(45);
        }
        let mut chart = builder
            .build_cartesian_2d(-0.5f64..bins as f64 - 0.5, 0f64..top)
            .map_err(&failed)?;
        let x_label = |x: &f64| name(x.round().max(0.0) as usize);
        let y_label = |y: &f64| format!("{:.0}%", y * 100.0);
        let mut mesh = chart.configure_mesh();
        mesh.disable_x_mesh();
        if labels {
            // One tick per bin, so that each label sits under its bars.
            mesh.x_labels(bins + 1)
                .x_label_formatter(&x_label)
                .y_label_formatter(&y_label);
        } else {
            mesh.disable_x_axis().disable_y_axis();
        }
        mesh.draw().map_err(&failed)?;
        for (values, offset, color, legend) in [
            (generated, -0.4, BLUE.mix(0.8), j.judged.label()),
            (test, 0.0, RED.mix(0.6), "test songs"),
        ] {
            let series = chart
                .draw_series(values.iter().enumerate().map(|(i, v)| {
                    let x = i as f64 + offset;
                    Rectangle::new([(x, 0.0), (x + 0.4, *v)], color.filled())
                }))
                .map_err(&failed)?;
            if labels {
                series.label(legend).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
            }
        }
        if labels {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(&failed)?;
        }
    }
    root.present().map_err(&failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_codec::parse_tokens;

    fn tokens(text: &str) -> Vec<Token> {
        parse_tokens(text).unwrap()
    }

    /// The longest common run, by brute force: the first such run of the
    /// melody, found in the first song and place that hold it.
    fn longest_common(a: &[Token], songs: &[Vec<Token>]) -> Option<SharedRun> {
        let run_at = |i: usize, song: &[Token], j: usize| {
            (0..)
                .take_while(|&k| i + k < a.len() && j + k < song.len() && a[i + k] == song[j + k])
                .count()
        };
        let length = (0..a.len())
            .flat_map(|i| {
                songs
                    .iter()
                    .flat_map(move |s| (0..s.len()).map(move |j| (i, s, j)))
            })
            .map(|(i, s, j)| run_at(i, s, j))
            .max()
            .filter(|&length| length > 0)?;
        (0..a.len()).find_map(|melody_start| {
            songs.iter().enumerate().find_map(|(song, s)| {
                (0..s.len())
                    .find(|&j| run_at(melody_start, s, j) >= length)
                    .map(|song_start| SharedRun {
                        length,
                        melody_start,
                        song,
                        song_start,
                    })
            })
        })
    }

    #[test]
    fn longest_copy_matches_brute_force_and_never_crosses_songs() {
        let train = vec![
            tokens("60 _ 62 _ 64 _ 65 _ 67 _ _ _"),
            tokens("67 _ 65 _ 64 _ 62 _ 60 _ _ _ r _"),
            tokens("72 _ _ _ 71 _ 69 _"),
        ];
        let index = TrainingIndex::new(&train);
        for melody in [
            "60 _ 62 _ 64 _ 65 _ 67 _ _ _",
            "64 _ 65 _ 67 _ _ _ 67 _ 65 _",
            "67 _ _ _ 72 _ _ _",
            "55 57 59",
            "r _ 72 _ _ _ 71 _ 69 _ 67",
        ] {
            let melody = tokens(melody);
            assert_eq!(
                index.longest_copy(&melody),
                longest_common(&melody, &train),
                "{melody:?}"
            );
        }
        // The end of the first song followed by the start of the second is not
        // one run: 67 _ _ _ | 67 _ 65.
        let run = index.longest_copy(&tokens("67 _ _ _ 67 _ 65")).unwrap();
        assert_eq!(
            run,
            SharedRun {
                length: 4,
                melody_start: 0,
                song: 0,
                song_start: 8
            }
        );
        assert_eq!(index.song_name(&run), "training song 1");
        // Worked by hand: "64 _ 62 _ 60" is in the second song from its fifth token.
        let named = TrainingIndex::new(&train).with_names(vec!["a".into(), "b".into(), "c".into()]);
        let run = named.longest_copy(&tokens("r 64 _ 62 _ 60 55")).unwrap();
        assert_eq!((run.length, run.melody_start, run.song_start), (5, 1, 4));
        assert_eq!(named.song_name(&run), "b");
        assert_eq!(index.longest_copy(&tokens("55 57 59")), None);
    }

    proptest::proptest! {
        /// Over a small alphabet, so that runs repeat within and across songs.
        #[test]
        fn longest_copy_is_where_brute_force_finds_it(
            songs in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..24), 1..6),
            melody in proptest::collection::vec(0u8..4, 0..24),
        ) {
            let token = |&i: &u8| [Token::Note(60), Token::Note(62), Token::Hold, Token::Rest][usize::from(i)];
            let songs: Vec<Vec<Token>> = songs.iter().map(|s| s.iter().map(token).collect()).collect();
            let melody: Vec<Token> = melody.iter().map(token).collect();
            proptest::prop_assert_eq!(
                TrainingIndex::new(&songs).longest_copy(&melody),
                longest_common(&melody, &songs)
            );
        }
    }

    /// Notes as (MIDI pitch, quarter notes) on the sixteenth grid.
    fn melody(notes: &[(u8, usize)]) -> Vec<Token> {
        let mut tokens = Vec::new();
        for &(pitch, quarters) in notes {
            tokens.push(Token::Note(pitch));
            tokens.extend(std::iter::repeat_n(Token::Hold, 4 * quarters - 1));
        }
        tokens
    }

    #[test]
    fn key_finding_agrees_with_music21() {
        // Keys and correlations from music21 9's
        // `analysis.discrete.KrumhanslKessler` on the same notes.
        type Case<'a> = (&'a str, &'a [(u8, usize)], &'a str, f64);
        let cases: [Case; 5] = [
            (
                "C major scale",
                &[
                    (60, 1),
                    (62, 1),
                    (64, 1),
                    (65, 1),
                    (67, 1),
                    (69, 1),
                    (71, 1),
                    (72, 2),
                ],
                "C major",
                0.906066,
            ),
            (
                "A harmonic minor scale",
                &[
                    (69, 1),
                    (71, 1),
                    (72, 1),
                    (74, 1),
                    (76, 1),
                    (77, 1),
                    (80, 1),
                    (81, 2),
                ],
                "A minor",
                0.864757,
            ),
            ("one long G", &[(67, 4)], "G major", 0.684473),
            (
                "a tune in G",
                &[
                    (67, 1),
                    (71, 1),
                    (74, 2),
                    (72, 1),
                    (71, 1),
                    (69, 2),
                    (66, 1),
                    (67, 3),
                ],
                "G major",
                0.8985,
            ),
            (
                "a dorian tune on D",
                &[
                    (62, 2),
                    (65, 1),
                    (67, 1),
                    (69, 2),
                    (71, 1),
                    (72, 1),
                    (74, 2),
                    (69, 1),
                    (65, 1),
                    (62, 4),
                ],
                "D minor",
                0.843981,
            ),
        ];
        for (name, notes, key, correlation) in cases {
            let found = find_key(&melody(notes)).unwrap();
            assert_eq!(found.key.to_string(), key, "{name}");
            assert!(
                (found.correlation - correlation).abs() < 5e-7,
                "{name}: {}",
                found.correlation
            );
        }
        assert_eq!(find_key(&tokens("r _ _")), None);
    }

    #[test]
    fn a_single_pitch_class_correlates_as_worked_by_hand() {
        // Durations x all on the tonic: sum((x - 1/12)(p - mean p)) = p0 - mean p
        // and sum((x - 1/12)^2) = 11/12, so r = (p0 - mean p) / sqrt(11/12 * S)
        // with p the major profile: mean 3.4825, S = sum((p - mean p)^2) =
        // 19.146225, r = 2.8675 / sqrt(17.550706) = 0.684474 (music21: 0.684473).
        let expected = (6.35 - 3.4825) / (19.146_225_f64 * 11.0 / 12.0).sqrt();
        let found = find_key(&tokens("67 _ _ _")).unwrap();
        assert!(
            (found.correlation - expected).abs() < 1e-6,
            "{found:?} {expected}"
        );
    }

    #[test]
    fn scale_and_tonic_follow_the_key_outside_the_reference_encoding() {
        let index = TrainingIndex::new(&[tokens("60 _")]);
        // In G major: F# is in the scale, F is not; G is the tonic.
        let song = |text: &str, tonality| Song {
            name: "s".into(),
            tokens: tokens(text),
            closed: true,
            tonality: Some(tonality),
            meter: None,
            metric: None,
            minor: None,
            style: None,
        };
        let g_major = Tonality::Key("G".parse().unwrap());
        let (s, judged) = statistics(&[song("66 _ 65 _ 67 _", g_major)], &index);
        assert!((s.in_scale - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.ends_on_tonic, 1.0);
        assert_eq!(
            judged[0].key.map(|k| k.to_string()).as_deref(),
            Some("G major")
        );
        // The same notes read as C major / A minor: F is white, F# is not, G is no tonic.
        let (s, judged) = statistics(&[song("66 _ 65 _ 67 _", Tonality::ReferenceKeys)], &index);
        assert!((s.in_scale - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.ends_on_tonic, 0.0);
        assert_eq!(judged[0].key, None);
        // Either way the key finder's key is given: the C major triad, C
        // held longest, correlates best with C major's profile.
        let (_, judged) = statistics(
            &[song("60 _ 64 _ 67 _ 72 _ _ _", Tonality::ReferenceKeys)],
            &index,
        );
        assert_eq!(judged[0].key, None);
        assert_eq!(
            judged[0].key_found.map(|k| k.to_string()).as_deref(),
            Some("C major")
        );
    }

    #[test]
    fn statistics_of_a_hand_worked_melody() {
        // C (4 steps), E (2), rest, G (1), A (1), F# (8).
        let melody = tokens("60 _ _ _ 64 _ r _ 67 69 66 _ _ _ _ _ _ _");
        let train = vec![tokens("60 _ _ _ 64 _ r _")];
        let index = TrainingIndex::new(&train);
        let song = Song {
            name: "m".into(),
            tokens: melody,
            closed: true,
            tonality: Some(Tonality::ReferenceKeys),
            meter: None,
            metric: None,
            minor: None,
            style: None,
        };
        let (s, judged) = statistics(&[song], &index);
        assert_eq!(s.notes, 5);
        let mut pcs = vec![0.0; 12];
        for pc in [0, 4, 7, 9, 6] {
            pcs[pc] = 0.2;
        }
        assert_eq!(s.pitch_classes, pcs);
        // Intervals +4, +3, +2, -3 (the rest does not break the line).
        let mut intervals = vec![0.0; 25];
        for step in [4, 3, 2, -3] {
            intervals[(step + 12) as usize] = 0.25;
        }
        assert_eq!(s.intervals, intervals);
        let mut durations = vec![0.0; 16];
        durations[3] = 0.2; // 4
        durations[1] = 0.2; // 2
        durations[0] = 0.4; // 1, 1
        durations[7] = 0.2; // 8
        assert_eq!(s.durations, durations);
        assert!((s.in_scale - 0.8).abs() < 1e-12);
        assert_eq!(s.ends_on_tonic, 0.0);
        assert_eq!(judged[0].longest_copy, 8);
        // 3 windows of 16 in 18 tokens; none is in an 8-token training song.
        assert_eq!(judged[0].copied_ngrams, Some(0.0));
        assert_eq!(s.closed, 1.0);
    }
}
