//! `cargo xtask judge`: musical statistics of generated melodies next to the
//! held-out test songs, and how much of each melody is copied from the
//! training songs (a model that recites the corpus is not composing).
//!
//! All statistics are taken in the token space, where every song has been moved
//! to C major or A minor: "in the scale" means a white key, and "ends on the
//! tonic" means the last note is a C or an A.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use grid_codec::{Token, parse_tokens};
use plotters::prelude::*;
use serde::Serialize;
use trainer::{PrepareOptions, Split};

use crate::source;

/// Length of the n-grams looked up in the training songs.
pub const COPY_NGRAM: usize = 16;
/// Interval histogram bins: -12..=12 semitones, wider leaps counted at the ends.
const MAX_INTERVAL: i32 = 12;
/// Duration histogram bins: 1..=16 sixteenths, longer notes counted in the last.
const MAX_DURATION: usize = 16;
const SCALE: [bool; 12] = [
    true, false, true, false, true, true, false, true, false, true, false, true,
];
const TONICS: [u8; 2] = [0, 9];

/// Songs of a prepared corpus, as tokens, by split.
pub struct Corpus {
    pub train: Vec<Vec<Token>>,
    pub test: Vec<Vec<Token>>,
}

impl Corpus {
    /// A prepared folder (with `songs.jsonl`) or a collection (folder, file or
    /// zip of `.krn`/`.sm`), which is prepared with the defaults that training
    /// uses, so the split is the one the model was trained on.
    pub fn load(data: &Path) -> Result<Self> {
        let songs_file = data.join("songs.jsonl");
        let records = if songs_file.is_file() {
            trainer::read_songs(&songs_file)
                .with_context(|| format!("cannot read {}", songs_file.display()))?
        } else {
            let collection = source::load(data)?;
            trainer::prepare(&collection, &PrepareOptions::default()).songs
        };
        let mut corpus = Corpus {
            train: Vec::new(),
            test: Vec::new(),
        };
        for record in records {
            let tokens = parse_tokens(&record.tokens)
                .with_context(|| format!("song {} in {}", record.id, data.display()))?;
            match record.split {
                Split::Train => corpus.train.push(tokens),
                Split::Test => corpus.test.push(tokens),
                Split::Val => {}
            }
        }
        if corpus.train.is_empty() || corpus.test.is_empty() {
            bail!(
                "{} has no training or no test songs to judge against",
                data.display()
            );
        }
        Ok(corpus)
    }
}

/// A generated melody, as read back from a `.txt` written by `sample`.
pub struct Sample {
    pub name: String,
    pub tokens: Vec<Token>,
    /// The model ended it with `.` before the length limit.
    pub closed: bool,
}

/// Every `*.txt` in `dir`, in name order.
pub fn read_samples(dir: &Path) -> Result<Vec<Sample>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read the samples folder {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!(
            "no .txt melodies in {} (write some with `cargo xtask sample --out {0}`)",
            dir.display()
        );
    }
    paths
        .iter()
        .map(|path| {
            let text = fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut tokens =
                parse_tokens(&text).with_context(|| format!("in {}", path.display()))?;
            let closed = tokens.last() == Some(&Token::End);
            tokens.retain(|t| *t != Token::End);
            Ok(Sample {
                name: path
                    .file_stem()
                    .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
                tokens,
                closed,
            })
        })
        .collect()
}

/// Finds the longest stretch of a melody that occurs verbatim in any training
/// song: a suffix automaton over all training songs, walked once per melody.
struct SuffixAutomaton {
    next: Vec<Vec<(u32, u32)>>,
    link: Vec<u32>,
    len: Vec<u32>,
}

/// Separates songs in the automaton; no token maps to it, so no match crosses it.
const SONG_BREAK: u32 = u32::MAX;

fn symbol(token: Token) -> u32 {
    match token {
        Token::End => 0,
        Token::Note(n) => u32::from(n) + 1,
        Token::Rest => 200,
        Token::Hold => 201,
    }
}

impl SuffixAutomaton {
    fn new(songs: &[Vec<Token>]) -> Self {
        let mut automaton = Self {
            next: vec![Vec::new()],
            link: vec![u32::MAX],
            len: vec![0],
        };
        let mut last = 0u32;
        for song in songs {
            for &token in song {
                last = automaton.extend(last, symbol(token));
            }
            last = automaton.extend(last, SONG_BREAK);
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

    fn add_state(&mut self, len: u32, link: u32, next: Vec<(u32, u32)>) -> u32 {
        self.next.push(next);
        self.link.push(link);
        self.len.push(len);
        (self.len.len() - 1) as u32
    }

    fn extend(&mut self, last: u32, c: u32) -> u32 {
        let current = self.add_state(self.len[last as usize] + 1, 0, Vec::new());
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

    fn longest_match(&self, tokens: &[Token]) -> usize {
        let (mut state, mut length, mut best) = (0u32, 0u32, 0u32);
        for &token in tokens {
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
            best = best.max(length);
        }
        best as usize
    }
}

/// What the training songs hold, for the copying measures.
pub struct TrainingIndex {
    automaton: SuffixAutomaton,
    ngrams: HashSet<Vec<Token>>,
}

impl TrainingIndex {
    pub fn new(train: &[Vec<Token>]) -> Self {
        Self {
            automaton: SuffixAutomaton::new(train),
            ngrams: train
                .iter()
                .flat_map(|song| song.windows(COPY_NGRAM).map(<[Token]>::to_vec))
                .collect(),
        }
    }

    /// The longest run of tokens shared verbatim with a training song.
    pub fn longest_copy(&self, tokens: &[Token]) -> usize {
        self.automaton.longest_match(tokens)
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

/// Per-melody copying measures.
#[derive(Debug, Serialize)]
pub struct MelodyJudgement {
    pub name: String,
    pub tokens: usize,
    pub notes: usize,
    pub closed: bool,
    pub longest_copy: usize,
    pub copied_ngrams: Option<f64>,
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

/// Notes of a melody: (MIDI pitch, length in grid steps).
fn notes(tokens: &[Token]) -> Vec<(u8, usize)> {
    let mut notes: Vec<(u8, usize)> = Vec::new();
    let mut in_note = false;
    for token in tokens {
        match token {
            Token::Note(p) => {
                notes.push((*p, 1));
                in_note = true;
            }
            Token::Hold if in_note => {
                if let Some(last) = notes.last_mut() {
                    last.1 += 1;
                }
            }
            Token::Rest => in_note = false,
            Token::Hold | Token::End => {}
        }
    }
    notes
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

/// Statistics of `melodies` (tokens, closed by the model) and their copying
/// measures against `index`.
pub fn statistics(
    melodies: &[(&str, &[Token], bool)],
    index: &TrainingIndex,
) -> (SetStatistics, Vec<MelodyJudgement>) {
    let mut pitch_classes = [0usize; 12];
    let mut intervals = vec![0usize; (2 * MAX_INTERVAL + 1) as usize];
    let mut durations = vec![0usize; MAX_DURATION];
    let mut tonic_endings = 0;
    let mut judged = Vec::with_capacity(melodies.len());
    for &(name, tokens, closed) in melodies {
        let notes = notes(tokens);
        for &(pitch, length) in &notes {
            pitch_classes[usize::from(pitch % 12)] += 1;
            durations[length.clamp(1, MAX_DURATION) - 1] += 1;
        }
        for pair in notes.windows(2) {
            let step =
                (i32::from(pair[1].0) - i32::from(pair[0].0)).clamp(-MAX_INTERVAL, MAX_INTERVAL);
            intervals[(step + MAX_INTERVAL) as usize] += 1;
        }
        if notes
            .last()
            .is_some_and(|(p, _)| TONICS.contains(&(p % 12)))
        {
            tonic_endings += 1;
        }
        judged.push(MelodyJudgement {
            name: name.to_owned(),
            tokens: tokens.len(),
            notes: notes.len(),
            closed,
            longest_copy: index.longest_copy(tokens),
            copied_ngrams: index.copied_ngrams(tokens),
        });
    }
    let count = melodies.len().max(1) as f64;
    let note_total: usize = pitch_classes.iter().sum();
    let in_scale: usize = pitch_classes
        .iter()
        .zip(SCALE)
        .filter(|(_, s)| *s)
        .map(|(c, _)| c)
        .sum();
    let statistics = SetStatistics {
        melodies: melodies.len(),
        notes: note_total,
        pitch_classes: shares(&pitch_classes),
        intervals: shares(&intervals),
        durations: shares(&durations),
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

/// Everything `judge.json` holds.
#[derive(Debug, Serialize)]
pub struct Judgement {
    pub samples: String,
    pub data: String,
    pub train_songs: usize,
    pub generated: SetStatistics,
    pub test: SetStatistics,
    /// Total variation distance between the generated and test histograms
    /// (0 = identical, 1 = disjoint).
    pub distance: BTreeMap<&'static str, f64>,
    pub melodies: Vec<MelodyJudgement>,
}

fn total_variation(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0
}

/// Judges `samples` against `corpus`.
pub fn judge(
    samples: &[Sample],
    corpus: &Corpus,
) -> (SetStatistics, SetStatistics, Vec<MelodyJudgement>) {
    let index = TrainingIndex::new(&corpus.train);
    let generated: Vec<(&str, &[Token], bool)> = samples
        .iter()
        .map(|s| (s.name.as_str(), s.tokens.as_slice(), s.closed))
        .collect();
    let (generated, melodies) = statistics(&generated, &index);
    let test: Vec<(&str, &[Token], bool)> = corpus
        .test
        .iter()
        .map(|t| ("test", t.as_slice(), true))
        .collect();
    let (test, _) = statistics(&test, &index);
    (generated, test, melodies)
}

/// Judges `samples` against the corpus in `data` and writes `judge.json` and
/// `judge.png` into `out`.
pub fn run(samples: &[Sample], out: &Path, data: &Path) -> Result<Judgement> {
    let corpus = Corpus::load(data)?;
    let (generated, test, melodies) = judge(samples, &corpus);
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
    let judgement = Judgement {
        samples: out.display().to_string(),
        data: data.display().to_string(),
        train_songs: corpus.train.len(),
        generated,
        test,
        distance,
        melodies,
    };
    let json = out.join("judge.json");
    trainer::write_atomic(&json, serde_json::to_string_pretty(&judgement)?.as_bytes())
        .with_context(|| format!("cannot write {}", json.display()))?;
    histograms(&judgement, &out.join("judge.png")).map_err(anyhow::Error::msg)?;
    Ok(judgement)
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
    let mut out = format!("{:<28} {:>14} {:>14}\n", "", "generated", "test songs");
    for (name, generated, test) in rows {
        out += &format!("{name:<28} {generated:>14} {test:>14}\n");
    }
    out += "histogram distance (total variation, 0 = same):";
    for (name, d) in &j.distance {
        out += &format!(" {name} {d:.3}");
    }
    out
}

/// The label of a histogram bin.
type BinName = Box<dyn Fn(usize) -> String>;

/// Pitch-class, interval and duration histograms, generated beside test songs.
fn histograms(j: &Judgement, path: &Path) -> Result<(), String> {
    const PITCH_NAMES: [&str; 12] = [
        "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
    ];
    let labels = trainer::plot::font_available();
    let root = BitMapBackend::new(path, (1500, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
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
            * 1.1;
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
            .map_err(|e| e.to_string())?;
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
        mesh.draw().map_err(|e| e.to_string())?;
        for (values, offset, color, legend) in [
            (generated, -0.4, BLUE.mix(0.8), "generated"),
            (test, 0.0, RED.mix(0.6), "test songs"),
        ] {
            let series = chart
                .draw_series(values.iter().enumerate().map(|(i, v)| {
                    let x = i as f64 + offset;
                    Rectangle::new([(x, 0.0), (x + 0.4, *v)], color.filled())
                }))
                .map_err(|e| e.to_string())?;
            if labels {
                series.label(legend).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
            }
        }
        if labels {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<Token> {
        parse_tokens(text).unwrap()
    }

    /// The longest common run, by brute force.
    fn longest_common(a: &[Token], songs: &[Vec<Token>]) -> usize {
        let mut best = 0;
        for song in songs {
            for i in 0..a.len() {
                for j in 0..song.len() {
                    let mut k = 0;
                    while i + k < a.len() && j + k < song.len() && a[i + k] == song[j + k] {
                        k += 1;
                    }
                    best = best.max(k);
                }
            }
        }
        best
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
        assert_eq!(index.longest_copy(&tokens("67 _ _ _ 67 _ 65")), 4);
    }

    #[test]
    fn statistics_of_a_hand_worked_melody() {
        // C (4 steps), E (2), rest, G (1), A (1), F# (8).
        let melody = tokens("60 _ _ _ 64 _ r _ 67 69 66 _ _ _ _ _ _ _");
        let train = vec![tokens("60 _ _ _ 64 _ r _")];
        let index = TrainingIndex::new(&train);
        let (s, judged) = statistics(&[("m", &melody, true)], &index);
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
