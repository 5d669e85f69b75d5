//! `cargo xtask sample`: new melodies as tokens, MIDI, MusicXML, WAV and a
//! piano-roll PNG.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use esac_parse::{Key, Meter, Mode, Spelling};
use grid_codec::audio::{SoundFont, SynthOptions, write_wav, write_wav_soundfont};
use grid_codec::midi::{MidiOptions, to_midi};
use grid_codec::{DecodeOptions, Token, decode, parse_tokens, tokens_to_string, transpose};
use sampler::SamplingConfig;

use crate::train_cmd::DeviceArg;
use crate::{judge, source};

/// The model shipped with the repository (trained by `cargo xtask train` on erk).
pub const PRETRAINED: &str = "assets/erk";

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// A run folder, a model folder (model.safetensors with config.json and
    /// tokenizer.json, or the reference notebook's vocab.json) or hub:OWNER/NAME[@REVISION];
    /// default: the pretrained model in assets/erk.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Tokens the melody starts with, e.g. "55 _ _ _" (default: start from nothing).
    #[arg(long, default_value = "")]
    pub prime: String,
    /// How many melodies (generated together as one batch).
    #[arg(long, default_value_t = 1)]
    pub num: usize,
    /// Higher is more adventurous, lower more predictable.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Sample only among the K most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample only among the most likely tokens that make up this much probability.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Stop after this many tokens (sixteenths) if the model has not ended the melody.
    #[arg(long, default_value_t = 500)]
    pub max_len: usize,
    /// Stop after N bars of --meter (primer included) instead of --max-len tokens.
    #[arg(long, conflicts_with = "max_len")]
    pub bars: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Allow a hold `_` before any note and an empty melody.
    #[arg(long)]
    pub no_grammar: bool,
    /// Meter for the score, e.g. 3/4.
    #[arg(long, default_value = "4/4")]
    pub meter: String,
    /// Move the melody from C major / A minor to this key: C, G, Bb, F#, ... (lower case for minor: a, e, d ...).
    #[arg(long)]
    pub key: Option<String>,
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
    /// Corpus for --judge: a prepared folder or a collection (default: the cached erk collection).
    #[arg(long, value_name = "DIR|ZIP", requires = "judge")]
    pub data: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
}

/// A key name: letter, `#` or `b`; lower case = minor.
fn parse_key(text: &str) -> Result<Key> {
    let mut chars = text.chars();
    let first = chars.next().context("--key is empty")?;
    let letter = first.to_ascii_uppercase();
    if !('A'..='G').contains(&letter) {
        bail!("--key {text:?}: start with a letter A-G (lower case for minor), e.g. G, Bb, f#");
    }
    let mut alter = 0i8;
    for c in chars {
        alter += match c {
            '#' => 1,
            'b' => -1,
            _ => bail!("--key {text:?}: only # or b may follow the letter"),
        };
    }
    let mode = if first.is_ascii_lowercase() {
        Mode::Minor
    } else {
        Mode::Major
    };
    Ok(Key {
        tonic: Spelling { letter, alter },
        mode,
    })
}

/// Tokens to generate so that primer and melody fill `bars` bars of `meter`
/// on the sixteenth-note grid.
fn generated_tokens_for_bars(bars: usize, meter: Meter, primer: usize) -> Result<usize> {
    let bar = meter
        .bar_length()
        .context("--bars needs a regular --meter")?;
    let steps = bar / grid_codec::default_step();
    if !steps.is_integer() {
        bail!("a bar of {meter} is not a whole number of sixteenths");
    }
    let total = bars * steps.to_integer() as usize;
    if total <= primer {
        bail!(
            "--bars {bars} of {meter} ({total} sixteenths) leaves no room after a primer of {primer} tokens"
        );
    }
    Ok(total - primer)
}

pub fn sample(args: &SampleArgs) -> Result<()> {
    let model_dir = crate::hub::model_dir(
        &args
            .model
            .clone()
            .unwrap_or_else(|| PathBuf::from(PRETRAINED)),
    )?;
    if !model_dir.join("model.safetensors").is_file() {
        bail!(
            "no model at {} (expected model.safetensors, config.json and tokenizer.json); train one with `cargo xtask train` or pass --model",
            model_dir.display()
        );
    }
    let model = lstm_candle::load_checkpoint(&model_dir, &args.device.device()?)?;
    let vocabulary = crate::export::load_vocabulary(&model_dir)?;
    let primer = parse_tokens(&args.prime).context("--prime")?;
    let meter = Meter::parse(&args.meter)
        .filter(|m| *m != Meter::Free)
        .with_context(|| {
            format!(
                "--meter {:?}: write a time signature such as 3/4",
                args.meter
            )
        })?;
    let key = args.key.as_deref().map(parse_key).transpose()?;
    let config = SamplingConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        max_len: match args.bars {
            Some(bars) => generated_tokens_for_bars(bars, meter, primer.len())?,
            None => args.max_len,
        },
        seed: args.seed,
        grammar: !args.no_grammar,
    };
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
    let melodies = sampler::generate(&model, &vocabulary, &primer, args.num, &config)?;
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let style = Style {
        meter,
        key,
        tempo: args.tempo,
        soundfont: soundfont.as_ref(),
    };
    let mut written = Vec::with_capacity(melodies.len());
    for (index, (generated, closed)) in melodies.into_iter().enumerate() {
        let mut tokens = primer.clone();
        tokens.extend(generated);
        let name = format!("melody-{}", index + 1);
        write_outputs(&args.out, &name, &tokens, closed, &style)?;
        let ending = if closed {
            "ended by the model"
        } else {
            "stopped at --max-len"
        };
        println!(
            "{name} ({} tokens, {ending}):\n  {}",
            tokens.len(),
            tokens_to_string(&tokens)
        );
        for ext in ["txt", "mid", "musicxml", "wav", "png"] {
            println!("  {}", args.out.join(format!("{name}.{ext}")).display());
        }
        written.push(judge::Sample {
            name,
            tokens,
            closed,
        });
    }
    if args.judge {
        let data = source::data_or_cached_erk(args.data.clone())?;
        let judgement = judge::run(&written, &args.out, &data)?;
        println!("{}", judge::table(&judgement));
        println!(
            "  {}\n  {}",
            args.out.join("judge.json").display(),
            args.out.join("judge.png").display()
        );
    }
    Ok(())
}

/// How every melody of a run is written out.
struct Style<'a> {
    meter: Meter,
    key: Option<Key>,
    tempo: f64,
    soundfont: Option<&'a SoundFont>,
}

/// Tokens, MIDI, MusicXML, WAV and piano roll for one melody. The `.txt` ends
/// with `.` when the model ended the melody, so `judge` can tell.
fn write_outputs(
    dir: &Path,
    name: &str,
    tokens: &[Token],
    closed: bool,
    style: &Style,
) -> Result<()> {
    let Style {
        meter,
        key,
        tempo,
        soundfont,
    } = *style;
    let path = |ext: &str| dir.join(format!("{name}.{ext}"));
    let end = if closed { " ." } else { "" };
    fs::write(path("txt"), format!("{}{end}\n", tokens_to_string(tokens)))?;
    let reference_key = Key {
        tonic: Spelling {
            letter: if key.is_some_and(|k| k.mode.is_minor_like()) {
                'A'
            } else {
                'C'
            },
            alter: 0,
        },
        mode: key.map_or(Mode::Major, |k| k.mode),
    };
    let mut melody = decode(
        tokens,
        &DecodeOptions {
            meter: Some(meter),
            key: Some(reference_key),
            id: name.to_owned(),
            title: name.to_owned(),
            ..Default::default()
        },
    )?;
    if let Some(key) = key {
        // The nearest way from C / A to the key: at most a tritone up or down.
        let by =
            (i32::from(key.tonic.pitch_class()) - i32::from(reference_key.tonic.pitch_class()) + 6)
                .rem_euclid(12)
                - 6;
        melody = transpose(&melody, by)?;
        melody.key = Some(key);
        melody.key_signature = i8::try_from(key.signature_fifths()).ok();
    }
    melody.tempo_qpm = Some(tempo);
    fs::write(path("mid"), to_midi(&melody, &MidiOptions::default())?)?;
    fs::write(
        path("musicxml"),
        grid_codec::musicxml::to_musicxml(&melody)?,
    )?;
    let wav = std::io::BufWriter::new(fs::File::create(path("wav"))?);
    match soundfont {
        Some(font) => write_wav_soundfont(&melody, font, &SynthOptions::default(), wav)?,
        None => write_wav(&melody, &SynthOptions::default(), wav)?,
    }
    crate::piano_roll::piano_roll(&melody, name, &path("png")).map_err(anyhow::Error::msg)?;
    Ok(())
}
