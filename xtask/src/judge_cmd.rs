//! `cargo xtask judge` and `sample --judge`: reads the melodies `sample` wrote
//! and the corpus they are compared with, and hands both to the `judge` library.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use grid_codec::conditions::Asked;
use grid_codec::{Encoding, Token, parse_tokens};
use judge::meter::Metric;
use judge::style::{Labelled, StyleClassifier};
use judge::{Judged, Judgement, Song, Tonality};
use serde::{Deserialize, Serialize};
use trainer::{Split, SplitSizes};

use crate::source;

/// What `sample` records beside its melodies, so that `judge` reads them as
/// they were made.
pub const SAMPLE_RECORD: &str = "sample.json";

/// What `judge` writes beside the melodies: the figures and their histograms.
pub const JUDGEMENT_FILES: [&str; 2] = ["judge.json", "judge.png"];

/// `sample.json`: the model, its encoding, and the data it was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub model: String,
    pub encoding: Encoding,
    /// The prepared data beside the model, when it is a run folder.
    pub data: Option<PathBuf>,
    /// The songs the model was trained on, as its config says `train` was
    /// given them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_on: Option<String>,
    /// The sizes of the splits the model was trained on, as its config says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_split: Option<SplitSizes>,
    /// What each melody was asked to be, when the model reads conditions.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub asked: BTreeMap<String, Asked>,
    /// The weight that guided each melody towards its mode, where one did.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub mode_guidance: BTreeMap<String, f64>,
    /// How the steps held the LSTM weights (f32 in records written before
    /// there was a choice).
    #[serde(default)]
    pub step_weights: lstm_candle::StepWeights,
}

impl SampleRecord {
    /// The record in `dir`, if `sample` wrote one there.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(SAMPLE_RECORD);
        if !path.is_file() {
            return Ok(None);
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a sample record", path.display()))
    }
}

/// The songs melodies are judged against.
#[derive(Debug, Clone)]
pub struct JudgeData {
    pub path: PathBuf,
    /// The split they must give, when they were found as the songs the
    /// model was trained on.
    pub trained_split: Option<SplitSizes>,
}

/// The songs to judge melodies against: `given` (`--data`), else the prepared
/// data beside the run that wrote them, else the songs their model was
/// trained on ([`source::songs_trained_on`]), else the cached erk collection.
pub fn data_to_judge_against(
    given: Option<PathBuf>,
    record: Option<&SampleRecord>,
) -> Result<JudgeData> {
    let path = |path| JudgeData {
        path,
        trained_split: None,
    };
    if let Some(given) = given {
        return Ok(path(given));
    }
    if let Some(own) = record.and_then(|r| r.data.as_ref()).filter(|d| d.is_dir()) {
        return Ok(path(own.clone()));
    }
    match record.and_then(|r| Some((r.trained_on.as_deref()?, r.trained_split))) {
        Some((trained_on, trained_split)) => Ok(JudgeData {
            path: source::songs_trained_on(trained_on, source::Fetch::IfMissing)?,
            trained_split,
        }),
        None => Ok(path(
            source::data_or_cached_erk(Vec::new(), "--data")?.remove(0),
        )),
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

/// The songs melodies are judged against.
pub struct Corpus {
    pub encoding: Encoding,
    pub train: Vec<Song>,
    /// Songs held out to choose a model by, which `judge --validation-songs`
    /// judges in the place of generated melodies.
    pub validation: Vec<Song>,
    pub test: Vec<Song>,
    /// Tells the collections apart, when the training songs come from several.
    pub classifier: Option<StyleClassifier>,
    /// The sizes of its splits, as a model trained on it records them.
    pub split: SplitSizes,
}

impl Corpus {
    /// A prepared folder (with `songs.jsonl`) or songs (a folder, file or zip
    /// of `.krn`/`.sm`, or an Essen tree), prepared as `train` prepares them
    /// with `encoding`, so the split is the one a model of that encoding was
    /// trained on.
    pub fn load(data: &Path, encoding: Encoding) -> Result<Self> {
        let (records, encoding) = if trainer::is_prepared_folder(data) {
            let songs = data.join(trainer::prepare::SONGS_FILE);
            let records = trainer::read_songs(&songs)
                .with_context(|| format!("cannot read {}", songs.display()))?;
            (records, Encoding::load(data)?.unwrap_or_default())
        } else {
            let prepared = crate::source::prepare_to_read(&[data.to_owned()], encoding)?;
            (prepared.songs, prepared.encoding)
        };
        let mut corpus = Corpus {
            encoding,
            train: Vec::new(),
            validation: Vec::new(),
            test: Vec::new(),
            classifier: None,
            split: SplitSizes::of_songs(&records),
        };
        for record in records {
            let tokens = parse_tokens(&record.tokens)
                .with_context(|| format!("song {} in {}", record.id, data.display()))?;
            let song = Song {
                tonality: Tonality::of(&encoding, record.key, &tokens),
                meter: record.meter,
                metric: record_metric(&record, &encoding),
                minor: record.key.map(|k| k.mode.is_minor_like()),
                style: Some(record.collection.clone()).filter(|c| !c.is_empty()),
                name: record.label(),
                tokens,
                closed: true,
            };
            match record.split {
                Split::Train => corpus.train.push(song),
                Split::Val => corpus.validation.push(song),
                Split::Test => corpus.test.push(song),
            }
        }
        corpus.classifier = StyleClassifier::fit_corpus(corpus.train.iter().filter_map(|song| {
            Some(Labelled {
                style: song.style.as_deref()?,
                tokens: &song.tokens,
                meter: song.meter,
            })
        }));
        if corpus.train.is_empty() || corpus.test.is_empty() {
            bail!(
                "{} has no training or no test songs to judge against",
                data.display()
            );
        }
        Ok(corpus)
    }
}

/// A held-out song's meter and upbeat, when its bars are regular.
fn record_metric(record: &trainer::SongRecord, encoding: &Encoding) -> Option<Metric> {
    let layout = record.bars.as_ref()?;
    Metric::on_grid(
        record.meter?,
        encoding.step,
        layout.regular_pickup()? as usize,
    )
    .filter(|metric| metric.bar_steps == layout.bar_steps as usize)
}

/// Judges `samples` (tokens in `encoding`, each asked to be as `asked` says
/// when the model read conditions) against the corpus in `data` and writes
/// `judge.json` and `judge.png` into `out`.
pub fn run(
    samples: &[Sample],
    encoding: &Encoding,
    asked: &BTreeMap<String, Asked>,
    out: &Path,
    data: &JudgeData,
) -> Result<Judgement> {
    let corpus = Corpus::load(&data.path, *encoding)?;
    source::check_split(
        data.trained_split,
        corpus.split,
        &data.path.display().to_string(),
    )?;
    let data = data.path.as_path();
    if corpus.encoding != *encoding {
        eprintln!(
            "warning: the melodies were encoded as {encoding} but {} as {}; their histograms are not directly comparable",
            data.display(),
            corpus.encoding
        );
    }
    let songs: Vec<Song> = samples
        .iter()
        .map(|s| {
            let asked = asked.get(&s.name);
            Song {
                name: s.name.clone(),
                tokens: s.tokens.clone(),
                closed: s.closed,
                tonality: Tonality::of(encoding, None, &s.tokens),
                meter: asked.map(|a| a.meter),
                metric: asked
                    .and_then(|a| Metric::on_grid(a.meter, encoding.step, a.pickup as usize)),
                minor: asked.map(|a| a.minor),
                style: asked.map(|a| a.style.clone()),
            }
        })
        .collect();
    judge_and_write(&songs, Judged::Generated, &corpus, out, data)
}

/// Judges the corpus's validation songs, which no model trained on it has
/// learned from, as if a model had written them, against its test songs: what
/// a model that wrote songs just like the collection's own would score.
pub fn run_validation_songs(out: &Path, data: &Path) -> Result<Judgement> {
    let corpus = Corpus::load(data, Encoding::default())?;
    if corpus.validation.is_empty() {
        bail!("{} has no validation songs", data.display());
    }
    fs::create_dir_all(out)
        .with_context(|| format!("--out: cannot create the folder {}", out.display()))?;
    judge_and_write(
        &corpus.validation,
        Judged::ValidationSongs,
        &corpus,
        out,
        data,
    )
}

/// Judges `songs` against `corpus` and writes `judge.json` and `judge.png`
/// into `out`.
fn judge_and_write(
    songs: &[Song],
    judged: Judged,
    corpus: &Corpus,
    out: &Path,
    data: &Path,
) -> Result<Judgement> {
    let mut judgement = judge::judge(
        songs,
        &corpus.test,
        &corpus.train,
        corpus.classifier.as_ref(),
        &out.display().to_string(),
        &data.display().to_string(),
    );
    judgement.judged = judged;
    let [json, png] = JUDGEMENT_FILES.map(|name| out.join(name));
    trainer::write_atomic(&json, serde_json::to_string_pretty(&judgement)?.as_bytes())
        .with_context(|| format!("cannot write {}", json.display()))?;
    judge::histograms(&judgement, &png)?;
    Ok(judgement)
}

/// Prints the table and where the files went.
pub fn print(judgement: &Judgement, out: &Path) {
    println!("{}", judge::table(judgement));
    for name in JUDGEMENT_FILES {
        println!("  {}", out.join(name).display());
    }
}
