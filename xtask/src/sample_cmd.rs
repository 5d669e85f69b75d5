//! `cargo xtask sample`: new melodies as tokens, MIDI, MusicXML, WAV and a
//! piano-roll PNG.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use esac_parse::{Duration, Key, Meter, Mode, Spelling};
use grid_codec::conditions::{Asked, Request};
use grid_codec::{
    DecodeOptions, Encoding, Token, decode, parse_tokens, tokens_to_string, transpose,
};
use melody_formats::audio::{SoundFont, SynthOptions, write_wav, write_wav_soundfont};
use melody_formats::midi::{MidiOptions, to_midi};
use model_folder::{ModelFolder, ModelRef};
use sampler::{SamplingConfig, SideValues};

use crate::judge_cmd::{self, Sample, SampleRecord};
use crate::source;
use crate::train_cmd::DeviceArg;

/// The model shipped with the repository: trained on the whole Essen
/// collection, told the meter, mode, style and bars (see assets/README.md).
pub const PRETRAINED: &str = "assets/essen";

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// A run folder, a model folder (model.safetensors with config.json and
    /// tokenizer.json, or the reference notebook's vocab.json) or hub:OWNER/NAME[@REVISION].
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
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Allow a hold `_` before any note and an empty melody.
    #[arg(long)]
    pub no_grammar: bool,
    /// Meter, e.g. 3/4 or 6/8: asked of a model trained with --condition, else
    /// only how the score is written [default: drawn from the training songs
    /// with --condition, else 4/4].
    #[arg(long)]
    pub meter: Option<Meter>,
    /// Mode asked of a model trained with --condition: major or minor
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

/// Tokens to generate so that primer and melody fill `bars` bars of `meter`
/// on a grid of `step`.
fn generated_tokens_for_bars(
    bars: usize,
    meter: Meter,
    step: Duration,
    primer: usize,
) -> Result<usize> {
    if bars == 0 {
        bail!("--bars must be at least 1");
    }
    let bar = meter
        .bar_length()
        .context("--bars needs a regular --meter such as 3/4")?;
    let steps = bar / step;
    if !steps.is_integer() {
        bail!("a bar of {meter} is not a whole number of {step} grid steps");
    }
    let total = bars * steps.to_integer() as usize;
    if total <= primer {
        bail!(
            "--bars {bars} of {meter} ({total} grid steps) leaves no room after a primer of {primer} tokens"
        );
    }
    Ok(total - primer)
}

/// The sampling settings: the model's defaults with the flags given on top.
fn sampling_config(
    args: &SampleArgs,
    folder: &ModelFolder,
    primer: usize,
) -> Result<SamplingConfig> {
    let mut config = SamplingConfig::from_generation(&folder.generation, args.seed);
    if let Some(temperature) = args.temperature {
        config.temperature = temperature;
    }
    if args.top_k.is_some() {
        config.top_k = args.top_k;
    }
    if args.top_p.is_some() {
        config.top_p = args.top_p;
    }
    if let Some(max_len) = args.max_len {
        config.max_len = max_len;
    }
    if let (Some(bars), None) = (args.bars, &folder.conditioning) {
        let meter = args.meter.unwrap_or(DEFAULT_METER);
        config.max_len = generated_tokens_for_bars(bars, meter, folder.encoding.step, primer)?;
    }
    if args.no_grammar {
        config.grammar = false;
    }
    config.validate()?;
    Ok(config)
}

/// The meter a score is written in when neither the user nor the model says.
const DEFAULT_METER: Meter = Meter::Regular { beats: 4, unit: 4 };

/// What each melody is asked to be (the flags, the rest drawn per melody),
/// and the side values that tell the model; `None` for a model without
/// conditions, which refuses the flags only such a model reads.
fn ask(
    args: &SampleArgs,
    folder: &ModelFolder,
    primer: usize,
    config: &mut SamplingConfig,
) -> Result<Option<(Vec<Asked>, SideValues)>> {
    let Some(conditioning) = &folder.conditioning else {
        if args.mode.is_some() || args.style.is_some() {
            bail!(
                "{} was not trained with --condition, so it cannot be asked for a mode or style (train with --condition)",
                args.model
            );
        }
        return Ok(None);
    };
    let request = Request {
        meter: args.meter,
        mode: args.mode,
        style: args.style.clone(),
        bars: args.bars.map(|b| b as u32),
        pickup: args.pickup,
    };
    let step = folder.encoding.step;
    let mut asked = Vec::with_capacity(args.num);
    let mut side = SideValues::default();
    let mut longest = 0;
    for index in 0..args.num {
        let melody = conditioning.draw(&request, args.seed.wrapping_add(index as u64))?;
        // The primer must leave room in the bars asked for.
        generated_tokens_for_bars(
            melody.bars as usize,
            melody.meter,
            step,
            primer.saturating_sub(melody.pickup as usize),
        )?;
        let bar = melody
            .meter
            .bar_length()
            .context("--meter needs a time signature")?;
        let bar_steps = (bar / step).to_integer() as usize;
        // Room for two bars more than asked, so that the model ends by itself.
        let steps = (melody.bars as usize + 2) * bar_steps + melody.pickup as usize;
        let values = conditioning
            .schedule(&melody, step, steps)
            .with_context(|| {
                format!(
                    "a bar of {} is not a whole number of {step} grid steps",
                    melody.meter
                )
            })?;
        longest = longest.max(steps);
        side.rows.push(values);
        asked.push(melody);
    }
    if args.max_len.is_none() {
        config.max_len = longest.saturating_sub(primer);
    }
    Ok(Some((asked, side)))
}

pub fn sample(args: &SampleArgs) -> Result<()> {
    if args.meter == Some(Meter::Free) {
        bail!("--meter free: the score needs bars; write a time signature such as 3/4 or 6/8");
    }
    let folder = ModelFolder::open(&args.model, &args.device.device()?)?;
    if !folder.encoding_stated {
        tracing::info!(
            "{} does not record its encoding; reading its tokens as the reference's ({})",
            args.model,
            folder.encoding
        );
    }
    let primer = parse_tokens(&args.prime).context("--prime")?;
    let mut config = sampling_config(args, &folder, primer.len())?;
    let asked = ask(args, &folder, primer.len(), &mut config)?;
    let soundfont = args
        .soundfont
        .as_deref()
        .map(|path| {
            let mut file = fs::File::open(path)
                .with_context(|| format!("--soundfont: cannot open {}", path.display()))?;
            SoundFont::read(&mut std::io::BufReader::new(&mut file))
                .with_context(|| format!("--soundfont {}", path.display()))
        })
        .transpose()?;
    let melodies = sampler::generate(
        &folder.model,
        &folder.vocabulary,
        &primer,
        args.num,
        &config,
        asked
            .as_ref()
            .map(|(_, side)| side.clone())
            .unwrap_or_default(),
    )?;
    let asked: Vec<Option<Asked>> = match asked {
        Some((asked, _)) => asked.into_iter().map(Some).collect(),
        None => vec![None; args.num],
    };
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let record = SampleRecord {
        model: args.model.to_string(),
        encoding: folder.encoding,
        data: folder.data_dir(),
        asked: asked
            .iter()
            .enumerate()
            .filter_map(|(i, a)| Some((format!("melody-{}", i + 1), a.clone()?)))
            .collect(),
    };
    trainer::write_atomic(
        &args.out.join(judge_cmd::SAMPLE_RECORD),
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )
    .with_context(|| format!("cannot write into {}", args.out.display()))?;
    let mut written = Vec::with_capacity(melodies.len());
    for (index, ((generated, closed), asked)) in melodies.into_iter().zip(asked).enumerate() {
        let mut tokens = primer.clone();
        tokens.extend(generated);
        let name = format!("melody-{}", index + 1);
        let style = Style {
            encoding: folder.encoding,
            meter: asked
                .as_ref()
                .map_or(args.meter.unwrap_or(DEFAULT_METER), |a| a.meter),
            pickup: asked
                .as_ref()
                .map_or(args.pickup.unwrap_or(0), |a| a.pickup),
            key: args.key.or_else(|| {
                // A minor melody of the reference encoding is written in A minor.
                asked.as_ref().filter(|a| a.minor).map(|_| Key {
                    tonic: Spelling {
                        letter: 'A',
                        alter: 0,
                    },
                    mode: Mode::Minor,
                })
            }),
            tempo: args.tempo,
            soundfont: soundfont.as_ref(),
        };
        if let Some(asked) = &asked {
            println!(
                "{name} asked for: {} bars of {}{}, {}, style {}",
                asked.bars,
                asked.meter,
                if asked.pickup > 0 {
                    format!(" after an upbeat of {} steps", asked.pickup)
                } else {
                    String::new()
                },
                if asked.minor { "minor" } else { "major" },
                asked.style
            );
        }
        let key = write_outputs(&args.out, &name, &tokens, closed, &style)?;
        let ending = if closed {
            "ended by the model"
        } else {
            "stopped at the length limit"
        };
        println!(
            "{name} ({} tokens, {ending}; written in {key}):\n  {}",
            tokens.len(),
            tokens_to_string(&tokens)
        );
        for ext in ["txt", "mid", "musicxml", "wav", "png"] {
            println!("  {}", args.out.join(format!("{name}.{ext}")).display());
        }
        written.push(Sample {
            name,
            tokens,
            closed,
        });
    }
    if args.judge {
        let data = match (&args.data, &record.data) {
            (Some(data), _) => data.clone(),
            (None, Some(own)) => own.clone(),
            (None, None) => source::data_or_cached_erk(Vec::new(), "--data")?.remove(0),
        };
        let judgement =
            judge_cmd::run(&written, &folder.encoding, &record.asked, &args.out, &data)?;
        judge_cmd::print(&judgement, &args.out);
    }
    Ok(())
}

/// How every melody of a run is written out.
struct Style<'a> {
    encoding: Encoding,
    meter: Meter,
    /// Grid steps of the upbeat.
    pickup: u32,
    key: Option<Key>,
    tempo: f64,
    soundfont: Option<&'a SoundFont>,
}

/// The key the tokens are in: C major or A minor (as `wanted` asks) for the
/// reference encoding, else the key found in the notes.
fn tokens_key(tokens: &[Token], encoding: &Encoding, wanted: Option<Key>) -> Key {
    let reference = |minor: bool| Key {
        tonic: Spelling {
            letter: if minor { 'A' } else { 'C' },
            alter: 0,
        },
        mode: if minor { Mode::Minor } else { Mode::Major },
    };
    if encoding.in_reference_keys() {
        return reference(wanted.is_some_and(|k| k.mode.is_minor_like()));
    }
    judge::find_key(tokens).map_or_else(|| reference(false), |found| found.key)
}

/// Tokens, MIDI, MusicXML, WAV and piano roll for one melody; returns the key
/// it was written in. The `.txt` ends with `.` when the model ended the
/// melody, so `judge` can tell.
fn write_outputs(
    dir: &Path,
    name: &str,
    tokens: &[Token],
    closed: bool,
    style: &Style,
) -> Result<Key> {
    let path = |ext: &str| dir.join(format!("{name}.{ext}"));
    let end = if closed { " ." } else { "" };
    fs::write(path("txt"), format!("{}{end}\n", tokens_to_string(tokens)))?;
    let source_key = tokens_key(tokens, &style.encoding, style.key);
    let mut melody = decode(
        tokens,
        &DecodeOptions {
            step: style.encoding.step,
            meter: Some(style.meter),
            pickup: style.encoding.step * Duration::from_integer(u64::from(style.pickup)),
            key: Some(Key {
                mode: style.key.map_or(source_key.mode, |k| k.mode),
                ..source_key
            }),
            id: name.to_owned(),
            title: name.to_owned(),
        },
    )?;
    let key = match style.key {
        Some(key) => {
            // The nearest way to the key: at most a tritone up or down.
            let by = (i32::from(key.tonic.pitch_class())
                - i32::from(source_key.tonic.pitch_class())
                + 6)
            .rem_euclid(12)
                - 6;
            melody = transpose(&melody, by)?;
            melody.key = Some(key);
            melody.key_signature = i8::try_from(key.signature_fifths()).ok();
            key
        }
        None => source_key,
    };
    melody.tempo_qpm = Some(style.tempo);
    fs::write(path("mid"), to_midi(&melody, &MidiOptions::default())?)?;
    fs::write(
        path("musicxml"),
        melody_formats::musicxml::to_musicxml(&melody)?,
    )?;
    let wav = std::io::BufWriter::new(fs::File::create(path("wav"))?);
    match style.soundfont {
        Some(font) => write_wav_soundfont(&melody, font, &SynthOptions::default(), wav)?,
        None => write_wav(&melody, &SynthOptions::default(), wav)?,
    }
    melody_formats::piano_roll::piano_roll(&melody, name, &path("png"))
        .map_err(anyhow::Error::msg)?;
    Ok(key)
}
