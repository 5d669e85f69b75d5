//! `cargo xtask sample`: new melodies as tokens, MIDI, MusicXML, ABC, WAV and
//! a piano-roll PNG.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use composer::{Artifact, ComposeError, Composed, Composition, Settings, Unnotated};
use esac_parse::{Key, Meter, Mode};
use grid_codec::{parse_tokens, tokens_to_string};
use indicatif::{ProgressBar, ProgressStyle};
use melody_formats::audio::SoundFont;
use model_folder::{ModelFolder, ModelRef};
use rayon::prelude::*;

use crate::judge_cmd::{self, Sample, SampleRecord};
use crate::source;
use crate::train_cmd::{DeviceArg, available_threads};

/// The model shipped with the repository: trained on the whole Essen
/// collection, told the meter, mode, style and bars (see assets/README.md).
pub const PRETRAINED: &str = "assets/essen";

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// A run folder, a model folder (model.safetensors with config.json and
    /// tokenizer.json, or the reference notebook's vocab.json) or hub:OWNER/NAME (@REVISION after it picks a revision).
    #[arg(long, default_value = PRETRAINED)]
    pub model: ModelRef,
    /// Tokens the melody starts with, e.g. "55 _ _ _" (default: start from nothing).
    #[arg(long, default_value = "")]
    pub prime: String,
    /// How many melodies (generated together as one batch).
    #[arg(long, default_value_t = 1)]
    pub num: usize,
    /// Higher is more adventurous, lower more predictable [default: the model's
    /// generation_config.json, else 1.0].
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    /// Sample only among the K most likely tokens [default: the model's, else all].
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample only among the most likely tokens that make up this much
    /// probability [default: the model's, else 1].
    #[arg(long, allow_negative_numbers = true)]
    pub top_p: Option<f64>,
    /// Stop after this many tokens (grid steps) if the model has not ended the
    /// melody [default: the model's max_length, else 500].
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Bars of --meter (primer included, upbeat aside). A model trained with
    /// --condition is told how many bars remain and ends the melody itself;
    /// other models are stopped there instead of at --max-len tokens
    /// [default with --condition: drawn from the training songs].
    #[arg(long, conflicts_with = "max_len")]
    pub bars: Option<usize>,
    /// Seed of the draws: the same seed gives the same melodies (melody N is
    /// drawn with seed + N - 1).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Allow a hold `_` before any note and an empty melody (such a melody
    /// makes no score: its tokens alone are written, with a warning).
    #[arg(long)]
    pub no_grammar: bool,
    /// Meter, e.g. 3/4 or 6/8: asked of a model trained with --condition, else
    /// only how the score is written [default: drawn from the training songs
    /// with --condition, else 4/4].
    #[arg(long)]
    pub meter: Option<Meter>,
    /// Mode asked of a model trained with --condition: major or minor (its
    /// songs in church modes were learned as one of these, by their third)
    /// [default: drawn from the training songs].
    #[arg(long)]
    pub mode: Option<Mode>,
    /// Style asked of a model trained with --condition: a collection it was
    /// trained on, by its whole name (deutschl/kinder) or, where only one ends
    /// so, its last part (kinder, china) [default: drawn from the training songs].
    #[arg(long)]
    pub style: Option<String>,
    /// Grid steps of an upbeat before the first full bar, e.g. 4 for a quarter
    /// upbeat on the 1/16 grid; 0 starts on the downbeat [default: drawn from
    /// the training songs with the meter, mode and style with --condition, else 0].
    #[arg(long, value_name = "STEPS")]
    pub pickup: Option<u32>,
    /// Form asked of a model trained with --form: one letter a phrase of
    /// equal length, a letter that came before saying its phrase again bar
    /// for bar (AABA over 8 bars: bars 3-4 and 7-8 say bars 1-2 again); one
    /// letter a bar works too (ABAC). The last bar is always the melody's
    /// own, so that the model writes the ending (AABA is written A A B A')
    /// [default: the form of a training song of the same meter, upbeat and
    /// length].
    #[arg(long, value_name = "LETTERS")]
    pub form: Option<String>,
    /// With a model trained with --form: how the bars its form says again
    /// are written: copied token for token from the bar they say again, or
    /// drawn as the other bars are (the model, told the form, keeps 70-80%
    /// of it; see the README, "Repetition").
    #[arg(long, value_name = "copied|drawn", default_value = "copied")]
    pub form_bars: composer::FormBars,
    /// Steer a model trained with --condition towards the asked mode: each
    /// note's pitch is drawn from its logits pushed away from the other
    /// mode's by this weight (0: not at all, at most 2); rhythm is untouched
    /// [default: the model's generation_config.json per mode, else 0].
    #[arg(long, value_name = "WEIGHT")]
    pub mode_guidance: Option<f64>,
    /// How each step holds the LSTM weights: f32 as trained, or bf16 (rounded;
    /// faster products on a CPU with Intel AMX or AVX-512 BF16, and slightly
    /// different melodies) [default: the model's generation_config.json, else f32].
    #[arg(long, value_name = "f32|bf16")]
    pub step_weights: Option<lstm_candle::StepWeights>,
    /// Write the score, MIDI and WAV in this key: C, G, Bb, F# (lower case for
    /// minor: a, e, f#), or with a mode: "D dorian". The tokens (printed and in
    /// .txt) stay in the model's key, so that `judge` compares them with the
    /// training songs. [default: the key the model writes in: C major / A minor
    /// for the reference encoding, else the key found in the notes]
    #[arg(long)]
    pub key: Option<Key>,
    /// Quarter notes per minute for MIDI and WAV.
    #[arg(long, default_value_t = 100.0)]
    pub tempo: f64,
    /// Output folder.
    #[arg(long, default_value = "samples")]
    pub out: PathBuf,
    /// Render the WAV through this General MIDI SoundFont (.sf2) instead of the
    /// built-in synthesizer, e.g. /usr/share/sounds/sf2/TimGM6mb.sf2.
    #[arg(long, value_name = "FILE.sf2")]
    pub soundfont: Option<PathBuf>,
    /// Judge the melodies against the corpus afterwards (see `cargo xtask judge`).
    #[arg(long)]
    pub judge: bool,
    /// Corpus for --judge: a prepared folder or a collection [default: the
    /// model's own data when it is a run folder, else the cached erk collection].
    #[arg(long, value_name = "DIR|ZIP", requires = "judge")]
    pub data: Option<PathBuf>,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
}

impl SampleArgs {
    /// The settings of melody 1 (melody `i` is drawn with seed + i - 1).
    fn settings(&self) -> Result<Settings> {
        Ok(Settings {
            prime: parse_tokens(&self.prime).context("--prime")?,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            max_len: self.max_len,
            bars: self.bars,
            seed: self.seed,
            grammar: !self.no_grammar,
            meter: self.meter,
            mode: self.mode,
            style: self.style.clone(),
            pickup: self.pickup,
            form: self.form.clone(),
            form_bars: self.form_bars,
            mode_guidance: self.mode_guidance,
            key: self.key,
            tempo: self.tempo,
        })
    }
}

pub fn sample(args: &SampleArgs) -> Result<()> {
    let settings = args.settings()?;
    settings.validate()?;
    let mut folder = ModelFolder::open(&args.model, &args.device.device()?)?;
    if let Some(weights) = args.step_weights {
        folder.model.set_step_weights(weights);
    }
    if !folder.encoding_stated {
        tracing::info!(
            "{} does not record its encoding; reading its tokens as the reference's ({})",
            args.model,
            folder.encoding
        );
    }
    let soundfont = args.soundfont.as_deref().map(read_soundfont).transpose()?;
    if args.num == 0 {
        bail!("--num must be at least 1");
    }
    // Before composing, so that a bad --out does not cost the melodies.
    fs::create_dir_all(&args.out)
        .with_context(|| format!("--out: cannot create the folder {}", args.out.display()))?;
    let melodies = composer::compose(&folder, &settings, args.num)?;
    remove_earlier_run(&args.out, &melodies)?;
    let generated: Vec<&composer::Generated> = melodies.iter().map(composer::generated).collect();
    let record = SampleRecord {
        model: args.model.to_string(),
        encoding: folder.encoding,
        data: folder.data_dir(),
        trained_on: folder.trained_on().map(str::to_owned),
        trained_split: source::trained_split(&folder),
        asked: generated
            .iter()
            .filter_map(|m| Some((m.name.clone(), m.asking.as_ref()?.asked.clone())))
            .collect(),
        mode_guidance: generated
            .iter()
            .filter_map(|m| Some((m.name.clone(), m.asking.as_ref()?.mode_guidance)))
            .filter(|(_, weight)| *weight > 0.0)
            .collect(),
        step_weights: folder.model.step_weights(),
    };
    trainer::write_atomic(
        &args.out.join(judge_cmd::SAMPLE_RECORD),
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )
    .with_context(|| format!("cannot write into {}", args.out.display()))?;
    // Rendering the sound and the picture takes most of the time: the
    // melodies are written on every core (rayon's global pool keeps one
    // thread for Candle, see main.rs), then listed in order.
    let writing = ProgressBar::new(melodies.len() as u64).with_style(
        ProgressStyle::with_template("writing {pos}/{len} melodies [{bar:30}] ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    rayon::ThreadPoolBuilder::new()
        .num_threads(available_threads())
        .build()
        .context("cannot start the threads that write the melodies")?
        .install(|| {
            melodies.par_iter().try_for_each(|melody| {
                match melody {
                    Ok(composed) => write_outputs(&args.out, composed, soundfont.as_ref())?,
                    Err(unnotated) => write_tokens_only(&args.out, unnotated)?,
                }
                writing.inc(1);
                anyhow::Ok(())
            })
        })
        .inspect_err(|_| writing.abandon())?;
    writing.finish_and_clear();
    for composition in &melodies {
        let melody = composer::generated(composition);
        let name = &melody.name;
        if let Some(asking) = &melody.asking {
            println!("{name} asked for: {}", asking.description());
            if let Some(caution) = asking.caution() {
                println!("{name}: {caution}");
            }
        }
        let ending = if melody.closed {
            "ended by the model"
        } else {
            "stopped at the length limit"
        };
        let written_in = match composition {
            Ok(composed) => format!("written in {}", composed.key),
            Err(_) => "no score".to_owned(),
        };
        println!(
            "{name} ({} tokens, {ending}; {written_in}):\n  {}",
            melody.tokens.len(),
            tokens_to_string(&melody.tokens)
        );
        let outputs: &[&str] = if composition.is_ok() {
            &OUTPUTS
        } else {
            &OUTPUTS[..1]
        };
        for ext in outputs {
            println!("  {}", melody_file(&args.out, name, ext).display());
        }
    }
    let unnotated: Vec<&Unnotated> = melodies
        .iter()
        .filter_map(|m| m.as_ref().err().map(Box::as_ref))
        .collect();
    for melody in &unnotated {
        let why = match &melody.error {
            ComposeError::NoMelody { .. } => melody.error.to_string(),
            error => format!("{}: {error}", melody.generated.name),
        };
        let tokens = melody_file(&args.out, &melody.generated.name, OUTPUTS[0]);
        eprintln!(
            "warning: {why}; only its tokens were written, to {}",
            tokens.display()
        );
    }
    if unnotated.len() == melodies.len() {
        let none = match melodies.len() {
            1 => "the melody makes no score".to_owned(),
            count => format!("none of the {count} melodies makes a score"),
        };
        bail!(
            "{none} (see the warnings above); the tokens are in {}",
            args.out.display()
        );
    }
    let written: Vec<Sample> = generated
        .iter()
        .map(|m| Sample {
            name: m.name.clone(),
            tokens: m.tokens.clone(),
            closed: m.closed,
        })
        .collect();
    if args.judge {
        let data = judge_cmd::data_to_judge_against(args.data.clone(), Some(&record))?;
        println!("judged against the test songs of {}", data.path.display());
        let judgement =
            judge_cmd::run(&written, &folder.encoding, &record.asked, &args.out, &data)?;
        judge_cmd::print(&judgement, &args.out);
    }
    Ok(())
}

/// A `--soundfont` file, read with errors that name it.
pub fn read_soundfont(path: &Path) -> Result<SoundFont> {
    let mut file = fs::File::open(path)
        .with_context(|| format!("--soundfont: cannot open {}", path.display()))?;
    SoundFont::read(&mut std::io::BufReader::new(&mut file))
        .with_context(|| format!("--soundfont {}", path.display()))
}

/// Removes what an earlier `sample` into `dir` left that this run does not
/// replace: its melodies past those written now, the files other than the
/// tokens of a melody that now makes no score, and its judgement. Otherwise
/// `judge` on the folder would judge two runs' melodies as one, against this
/// run's `sample.json`, and an earlier score would be taken for the melody.
fn remove_earlier_run(dir: &Path, melodies: &[Composition]) -> Result<()> {
    let unscored: BTreeSet<usize> = (1..=melodies.len())
        .filter(|index| melodies[index - 1].is_err())
        .collect();
    // The melody's index, and whether it is past those written now.
    let earlier_melody = |name: &str| {
        let (stem, ext) = name.rsplit_once('.')?;
        let index: usize = stem.strip_prefix("melody-")?.parse().ok()?;
        let past = index > melodies.len();
        let replaced_by_tokens_only = unscored.contains(&index) && ext != OUTPUTS[0];
        ((past || replaced_by_tokens_only) && OUTPUTS.contains(&ext)).then_some((index, past))
    };
    let mut past_melodies = BTreeSet::new();
    let mut unscored_melodies = BTreeSet::new();
    let mut judgement_files = BTreeSet::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let earlier = earlier_melody(&name);
        let judgement = judge_cmd::JUDGEMENT_FILES.contains(&name.as_ref());
        if earlier.is_none() && !judgement {
            continue;
        }
        fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        match earlier {
            Some((index, true)) => past_melodies.insert(index),
            Some((index, false)) => unscored_melodies.insert(index),
            None => judgement_files.insert(name.into_owned()),
        };
    }
    let mut removed: Vec<String> = unscored_melodies
        .iter()
        .map(|index| format!("melody-{index} (all but its tokens)"))
        .collect();
    match (past_melodies.first(), past_melodies.last()) {
        (Some(first), Some(last)) if first == last => removed.push(format!("melody-{first}")),
        (Some(first), Some(last)) => removed.push(format!("melody-{first} to melody-{last}")),
        _ => {}
    }
    removed.extend(judgement_files);
    if let Some((last, others)) = removed.split_last() {
        let listed = match others {
            [] => last.clone(),
            _ => format!("{} and {last}", others.join(", ")),
        };
        eprintln!(
            "removed {listed} from {}, left by an earlier run",
            dir.display()
        );
    }
    Ok(())
}

/// The tokens of a melody that makes no score, and none of the other files.
fn write_tokens_only(dir: &Path, unnotated: &Unnotated) -> Result<()> {
    let generated = &unnotated.generated;
    let tokens = melody_file(dir, &generated.name, OUTPUTS[0]);
    fs::write(
        &tokens,
        composer::token_text(&generated.tokens, generated.closed),
    )
    .with_context(|| format!("cannot write {}", tokens.display()))
}

/// The files written for each melody, by extension, the tokens first.
const OUTPUTS: [&str; 6] = ["txt", "mid", "musicxml", "abc", "wav", "png"];

/// A melody's file with that extension (`melody-2.mid`), as `sample` writes
/// them and `remove_earlier_run` finds them.
fn melody_file(dir: &Path, name: &str, ext: &str) -> PathBuf {
    dir.join(format!("{name}.{ext}"))
}

/// Tokens, MIDI, MusicXML, ABC, WAV and piano roll for one melody. The `.txt`
/// ends with `.` when the model ended the melody, so `judge` can tell.
fn write_outputs(dir: &Path, composed: &Composed, soundfont: Option<&SoundFont>) -> Result<()> {
    let path = |ext: &str| melody_file(dir, &composed.generated.name, ext);
    for artifact in [
        Artifact::Tokens,
        Artifact::Midi,
        Artifact::MusicXml,
        Artifact::Abc,
        Artifact::Wav,
    ] {
        let file = path(artifact.extension());
        fs::write(&file, composer::render(composed, artifact, soundfont)?)
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    melody_formats::piano_roll::piano_roll(
        &composed.melody,
        &composed.generated.name,
        &path("png"),
    )?;
    Ok(())
}
