//! From a user's settings to written melodies: what is not asked is drawn, the sampler writes, the score is made.
//!
//! `cargo xtask sample` and the composer page both go through here, so the
//! same settings and seed give the same melody in either: [`Settings`] are
//! checked by one set of rules ([`ComposeError::Setting`] names the setting),
//! [`plan`] turns them into a [`MelodyPlan`] for the sampler (drawing meter,
//! mode, style, bars and upbeat from the training songs where the model is
//! conditioned and they are not given), and [`notate`] makes the score
//! ([`Melody`]) in the asked key and meter, which [`render`] writes out.

use std::fmt;

use esac_parse::{Duration, Key, Melody, Meter, Mode, Spelling};
use grid_codec::conditions::{Asked, ConditionError, Request};
use grid_codec::{DecodeOptions, Encoding, Schedule, Token, decode, transpose};
use melody_formats::audio::{SoundFont, SynthOptions, write_wav, write_wav_soundfont};
use melody_formats::midi::{MidiOptions, to_midi};
use model_folder::ModelFolder;
use sampler::{Contrast, MelodyPlan, SampleError, SamplingConfig};
use serde::Serialize;
use thiserror::Error;

/// The most bars a melody may be asked for.
pub const MAX_BARS: usize = 64;
/// The most grid steps a melody may be asked for with `max_len`.
pub const MAX_LENGTH: usize = 4096;
/// The strongest mode guidance a melody may be asked for: beyond 1 the
/// melodies leave the style of any song.
pub const MAX_MODE_GUIDANCE: f64 = 2.0;
/// Slowest and fastest tempo, in quarter notes per minute.
pub const TEMPO_RANGE: (f64, f64) = (20.0, 400.0);
/// The meter a score is written in when neither the user nor the model says.
pub const DEFAULT_METER: Meter = Meter::Regular { beats: 4, unit: 4 };

/// A setting a user gives; shown as the command line's flag (`--top-k`) and
/// known to the web API by its snake-case name (`top_k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Prime,
    Temperature,
    TopK,
    TopP,
    MaxLen,
    Bars,
    Meter,
    Mode,
    Style,
    Pickup,
    Form,
    FormBars,
    ModeGuidance,
    Key,
    Tempo,
    /// The token grammar, which the command line turns off with `--no-grammar`.
    Grammar,
}

impl Field {
    /// The name in the web API and in URLs.
    pub fn api_name(self) -> &'static str {
        match self {
            Field::Prime => "prime",
            Field::Temperature => "temperature",
            Field::TopK => "top_k",
            Field::TopP => "top_p",
            Field::MaxLen => "max_len",
            Field::Bars => "bars",
            Field::Meter => "meter",
            Field::Mode => "mode",
            Field::Style => "style",
            Field::Pickup => "pickup",
            Field::Form => "form",
            Field::FormBars => "form_bars",
            Field::ModeGuidance => "mode_guidance",
            Field::Key => "key",
            Field::Tempo => "tempo",
            Field::Grammar => "grammar",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Grammar => write!(f, "--no-grammar"),
            field => write!(f, "--{}", field.api_name().replace('_', "-")),
        }
    }
}

#[derive(Debug, Error)]
pub enum ComposeError {
    /// A setting out of its range, or one the model cannot take.
    #[error("{field}: {message}")]
    Setting { field: Field, message: String },
    #[error(transparent)]
    Sample(#[from] SampleError),
    /// Without the grammar, the model may start with a hold or end at once.
    #[error(
        "{name}: the model's tokens make no melody ({source}); without the grammar (--no-grammar, the API's grammar=false) a melody may start with a hold or end at once: keep the grammar, or try another seed"
    )]
    NoMelody {
        name: String,
        source: grid_codec::DecodeError,
    },
    /// The asked key takes a note out of MIDI's range.
    #[error(transparent)]
    Transpose(#[from] grid_codec::FilterReason),
    #[error(transparent)]
    Notation(#[from] melody_formats::NotationError),
    #[error(transparent)]
    Midi(#[from] melody_formats::midi::MidiError),
    #[error("cannot write the WAV: {0}")]
    Wav(String),
}

impl ComposeError {
    fn setting(field: Field, message: impl Into<String>) -> Self {
        ComposeError::Setting {
            field,
            message: message.into(),
        }
    }

    /// The setting at fault, where one is.
    pub fn field(&self) -> Option<Field> {
        match self {
            ComposeError::Setting { field, .. } => Some(*field),
            ComposeError::NoMelody { .. } => Some(Field::Grammar),
            ComposeError::Sample(SampleError::Temperature(_)) => Some(Field::Temperature),
            ComposeError::Sample(SampleError::TopP(_)) => Some(Field::TopP),
            ComposeError::Sample(SampleError::TopK) => Some(Field::TopK),
            ComposeError::Sample(
                SampleError::PrimerStartsWithHold | SampleError::Vocabulary(_),
            ) => Some(Field::Prime),
            _ => None,
        }
    }
}

/// Everything a user can ask of one melody; `None` takes the model's default
/// (its `generation_config.json`) or, for a conditioned model, a value drawn
/// from its training songs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Tokens the melody starts with (may be empty).
    pub prime: Vec<Token>,
    pub temperature: Option<f64>,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    /// Grid steps to generate at most after the primer.
    pub max_len: Option<usize>,
    /// Bars of the meter, primer included, upbeat aside.
    pub bars: Option<usize>,
    pub seed: u64,
    /// Keep the token grammar (no hold before a note, no empty melody).
    pub grammar: bool,
    pub meter: Option<Meter>,
    pub mode: Option<Mode>,
    pub style: Option<String>,
    /// Grid steps of an upbeat before the first full bar.
    pub pickup: Option<u32>,
    /// Which phrases say an earlier one again (`AABA`), for a model trained
    /// with a form.
    pub form: Option<String>,
    /// How the bars a form says again are written, for a model trained
    /// with a form.
    pub form_bars: FormBars,
    /// How strongly to steer the melody towards its mode, 0 for not at all
    /// (see `sampler::Contrast`); `None` takes the model's weight for the mode.
    pub mode_guidance: Option<f64>,
    /// The key the score, MIDI and WAV are written in.
    pub key: Option<Key>,
    /// Quarter notes per minute.
    pub tempo: f64,
}

/// How the bars a melody's form says again are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FormBars {
    /// Token for token from the bar they say again: the form is kept.
    #[default]
    Copied,
    /// Drawn as every other bar, the model told the form: it keeps most of it.
    Drawn,
}

impl std::str::FromStr for FormBars {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "copied" => Ok(FormBars::Copied),
            "drawn" => Ok(FormBars::Drawn),
            other => Err(format!("{other:?}: expected copied or drawn")),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            prime: Vec::new(),
            temperature: None,
            top_k: None,
            top_p: None,
            max_len: None,
            bars: None,
            seed: 0,
            grammar: true,
            meter: None,
            mode: None,
            style: None,
            pickup: None,
            form: None,
            form_bars: FormBars::default(),
            mode_guidance: None,
            key: None,
            tempo: 100.0,
        }
    }
}

impl Settings {
    /// The primer the melody continues: `prime` without any `.`.
    pub fn primer(&self) -> Vec<Token> {
        self.prime
            .iter()
            .copied()
            .filter(|t| *t != Token::End)
            .collect()
    }

    /// The checks that need no model.
    pub fn validate(&self) -> Result<(), ComposeError> {
        let (slowest, fastest) = TEMPO_RANGE;
        if !(self.tempo >= slowest && self.tempo <= fastest) {
            return Err(ComposeError::setting(
                Field::Tempo,
                format!(
                    "{} is out of range: quarter notes per minute from {slowest} to {fastest}",
                    self.tempo
                ),
            ));
        }
        if let Some(weight) = self.mode_guidance
            && !(0.0..=MAX_MODE_GUIDANCE).contains(&weight)
        {
            return Err(ComposeError::setting(
                Field::ModeGuidance,
                format!("{weight} is out of range: from 0 (no guidance) to {MAX_MODE_GUIDANCE}"),
            ));
        }
        if let Some(bars) = self.bars
            && !(1..=MAX_BARS).contains(&bars)
        {
            return Err(ComposeError::setting(
                Field::Bars,
                format!("{bars} is out of range: from 1 to {MAX_BARS}"),
            ));
        }
        if let Some(length) = self.max_len
            && !(1..=MAX_LENGTH).contains(&length)
        {
            return Err(ComposeError::setting(
                Field::MaxLen,
                format!("{length} is out of range: from 1 to {MAX_LENGTH} grid steps"),
            ));
        }
        if self.bars.is_some() && self.max_len.is_some() {
            return Err(ComposeError::setting(
                Field::MaxLen,
                "cannot be given with --bars: give one length",
            ));
        }
        if self.meter == Some(Meter::Free) {
            return Err(ComposeError::setting(
                Field::Meter,
                "free: the score needs bars; write a time signature such as 3/4 or 6/8",
            ));
        }
        if self.prime.first() == Some(&Token::Hold) {
            return Err(SampleError::PrimerStartsWithHold.into());
        }
        Ok(())
    }
}

/// Grid steps of one bar of `meter` on a grid of `step`.
fn bar_steps(meter: Meter, step: Duration) -> Result<usize, ComposeError> {
    let bar = meter.bar_length().ok_or_else(|| {
        ComposeError::setting(Field::Meter, "--bars needs a regular meter such as 3/4")
    })?;
    let steps = bar / step;
    if !steps.is_integer() {
        return Err(ComposeError::setting(
            Field::Meter,
            format!("a bar of {meter} is not a whole number of {step} grid steps"),
        ));
    }
    Ok(steps.to_integer() as usize)
}

/// Tokens to generate so that primer and melody fill `bars` bars of `meter`
/// on a grid of `step`.
fn generated_tokens_for_bars(
    bars: usize,
    meter: Meter,
    step: Duration,
    primer: usize,
) -> Result<usize, ComposeError> {
    let total = bars * bar_steps(meter, step)?;
    if total <= primer {
        return Err(ComposeError::setting(
            Field::Bars,
            format!(
                "{bars} of {meter} ({total} grid steps) leaves no room after a primer of {primer} tokens"
            ),
        ));
    }
    Ok(total - primer)
}

/// One melody, ready for the sampler: how to pick its tokens, its side values,
/// and (for a conditioned model) what it was asked to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub sampling: MelodyPlan,
    pub asking: Option<Asking>,
}

/// Below this many training songs of the asked meter, mode and style, a
/// melody says how few the model learned from.
pub const FEW_SONGS_ALIKE: usize = 10;

/// What a conditioned model's melody was asked to be, and how the model
/// stands to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Asking {
    pub asked: Asked,
    /// The weight guiding it towards its asked mode (0: none).
    pub mode_guidance: f64,
    /// Training songs of its meter, mode and style (`None`: the model did
    /// not keep them).
    pub songs_alike: Option<usize>,
}

impl Asking {
    /// In words: "8 bars of 6/8 after an upbeat of 2 steps, minor, style
    /// deutschl/kinder".
    pub fn description(&self) -> String {
        let asked = &self.asked;
        let upbeat = if asked.pickup > 0 {
            format!(" after an upbeat of {} steps", asked.pickup)
        } else {
            String::new()
        };
        let guided = if self.mode_guidance > 0.0 {
            format!(" (guided, weight {})", self.mode_guidance)
        } else {
            String::new()
        };
        let form = asked
            .form
            .as_ref()
            .map_or_else(String::new, |form| format!(", form {form}"));
        format!(
            "{} bars of {}{upbeat}, {}{guided}, style {}{form}",
            asked.bars,
            asked.meter,
            self.mode_name(),
            asked.style
        )
    }

    /// Where the model learned from fewer than [`FEW_SONGS_ALIKE`] songs of
    /// the asked meter, mode and style, how many: the melody is then more
    /// the model's guess than the collection's way.
    pub fn caution(&self) -> Option<String> {
        let alike = self.songs_alike.filter(|n| *n < FEW_SONGS_ALIKE)?;
        let kind = format!(
            "{}, in {} and of style {}",
            self.mode_name(),
            self.asked.meter,
            self.asked.style
        );
        Some(match alike {
            0 => format!("no training song is {kind}: the model has not heard such a song"),
            1 => format!("only 1 training song is {kind}"),
            n => format!("only {n} training songs are {kind}"),
        })
    }

    /// "minor" or "major".
    pub fn mode_name(&self) -> &'static str {
        if self.asked.minor { "minor" } else { "major" }
    }
}

/// Plans melody `index` of a request: its seed is `settings.seed + index`,
/// and so are the draws of whatever the settings leave open.
pub fn plan(folder: &ModelFolder, settings: &Settings, index: usize) -> Result<Plan, ComposeError> {
    settings.validate()?;
    let seed = settings.seed.wrapping_add(index as u64);
    let mut config = SamplingConfig::from_generation(&folder.generation, seed);
    if let Some(temperature) = settings.temperature {
        config.temperature = temperature;
    }
    if settings.top_k.is_some() {
        config.top_k = settings.top_k;
    }
    if settings.top_p.is_some() {
        config.top_p = settings.top_p;
    }
    if let Some(max_len) = settings.max_len {
        config.max_len = max_len;
    }
    config.grammar = settings.grammar;
    config.validate()?;
    let primer = settings.primer().len();
    let step = folder.encoding.step;
    let Some(conditioning) = &folder.conditioning else {
        for (given, field) in [
            (settings.mode.is_some(), Field::Mode),
            (settings.style.is_some(), Field::Style),
            (settings.form.is_some(), Field::Form),
            (settings.mode_guidance.is_some(), Field::ModeGuidance),
        ] {
            if given {
                return Err(ComposeError::setting(
                    field,
                    "the model was not trained with --condition, so it cannot be asked for a mode, style or form, nor guided towards a mode (train with --condition)",
                ));
            }
        }
        if let Some(bars) = settings.bars {
            let meter = settings.meter.unwrap_or(DEFAULT_METER);
            config.max_len = generated_tokens_for_bars(bars, meter, step, primer)?;
        }
        return Ok(Plan {
            sampling: MelodyPlan {
                config,
                side: Schedule::default(),
                contrast: None,
                copies: Vec::new(),
            },
            asking: None,
        });
    };
    let request = Request {
        meter: settings.meter,
        mode: settings.mode,
        style: settings.style.clone(),
        bars: settings.bars.map(|b| b as u32),
        pickup: settings.pickup,
        form: settings.form.clone(),
    };
    let asked = conditioning.draw(&request, seed).map_err(|error| {
        let field = match error {
            ConditionError::UnknownStyle { .. } | ConditionError::AmbiguousStyle { .. } => {
                Field::Style
            }
            ConditionError::UnknownMeter { .. } => Field::Meter,
            ConditionError::UnknownMode { .. } => Field::Mode,
            ConditionError::Form { .. } | ConditionError::NoForm => Field::Form,
        };
        ComposeError::setting(field, error.to_string())
    })?;
    let bar = bar_steps(asked.meter, step)?;
    if asked.pickup as usize >= bar {
        return Err(ComposeError::setting(
            Field::Pickup,
            format!(
                "{} is out of range: an upbeat in {} is shorter than a bar, from 0 to {} grid steps",
                asked.pickup,
                asked.meter,
                bar - 1
            ),
        ));
    }
    // The primer must leave room in the bars asked for.
    generated_tokens_for_bars(
        asked.bars as usize,
        asked.meter,
        step,
        primer.saturating_sub(asked.pickup as usize),
    )?;
    // Room for two bars more than asked, so that the model ends by itself.
    let steps = (asked.bars as usize + 2) * bar + asked.pickup as usize;
    let side = conditioning.schedule(&asked, step, steps).ok_or_else(|| {
        ComposeError::setting(
            Field::Meter,
            format!(
                "a bar of {} is not a whole number of {step} grid steps",
                asked.meter
            ),
        )
    })?;
    if settings.max_len.is_none() {
        config.max_len = steps.saturating_sub(primer);
    }
    // Steered towards the asked mode by contrast with the other one.
    let mode_guidance = settings
        .mode_guidance
        .unwrap_or_else(|| folder.generation.mode_guidance.weight(asked.minor));
    let contrast = if mode_guidance > 0.0 {
        let other_mode = Asked {
            minor: !asked.minor,
            ..asked.clone()
        };
        conditioning
            .schedule(&other_mode, step, steps)
            .map(|side| Contrast {
                side,
                weight: mode_guidance,
            })
    } else {
        None
    };
    let copies = match settings.form_bars {
        FormBars::Copied => conditioning
            .form_copies(&asked, step, steps)
            .unwrap_or_default(),
        FormBars::Drawn => Vec::new(),
    };
    let songs_alike = conditioning.songs_alike(&asked);
    Ok(Plan {
        sampling: MelodyPlan {
            config,
            side,
            contrast,
            copies,
        },
        asking: Some(Asking {
            asked,
            mode_guidance,
            songs_alike,
        }),
    })
}

/// Plans and generates `count` melodies in one batch (melody `i` with seed
/// `settings.seed + i`), and notates each. A melody whose score cannot be
/// made (its tokens make no melody, or the asked key takes it out of MIDI's
/// range) comes back as [`Unnotated`], so that one such melody does not cost
/// the others.
pub fn compose(
    folder: &ModelFolder,
    settings: &Settings,
    count: usize,
) -> Result<Vec<Composition>, ComposeError> {
    let plans = (0..count)
        .map(|index| plan(folder, settings, index))
        .collect::<Result<Vec<_>, _>>()?;
    let sampling: Vec<MelodyPlan> = plans.iter().map(|p| p.sampling.clone()).collect();
    let melodies = sampler::generate_each(
        &folder.model,
        &folder.vocabulary,
        &settings.prime,
        &sampling,
    )?;
    Ok(melodies
        .into_iter()
        .zip(plans)
        .enumerate()
        .map(|(index, ((generated, closed), plan))| {
            let mut tokens = settings.primer();
            tokens.extend(generated);
            let generated = Generated {
                name: format!("melody-{}", index + 1),
                tokens,
                closed,
                asking: plan.asking,
            };
            notate(&folder.encoding, settings, generated)
        })
        .collect())
}

/// What every generated melody has, whether or not it makes a score: its
/// tokens (primer included, in the model's key), how it ended and what it
/// was asked to be.
#[derive(Debug, Clone)]
pub struct Generated {
    pub name: String,
    pub tokens: Vec<Token>,
    /// Ended by the model (`.`), not stopped at the length limit.
    pub closed: bool,
    pub asking: Option<Asking>,
}

/// A generated melody that makes no score, and why.
#[derive(Debug)]
pub struct Unnotated {
    pub generated: Generated,
    pub error: ComposeError,
}

/// What [`compose`] gives for one melody: its score, or why it has none.
/// Either way [`generated`] gives what the model wrote.
pub type Composition = Result<Composed, Box<Unnotated>>;

/// What the model wrote for a melody, whether or not it makes a score.
pub fn generated(composition: &Composition) -> &Generated {
    match composition {
        Ok(composed) => &composed.generated,
        Err(unnotated) => &unnotated.generated,
    }
}

/// Tokens as `sample` writes them and `judge` reads them: one line, ending
/// with `.` when the model ended the melody.
pub fn token_text(tokens: &[Token], closed: bool) -> String {
    let mut text = grid_codec::tokens_to_string(tokens);
    if closed {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push('.');
    }
    text.push('\n');
    text
}

/// A generated melody with its score.
#[derive(Debug, Clone)]
pub struct Composed {
    pub generated: Generated,
    /// In the key it is written in, with meter, upbeat and tempo.
    pub melody: Melody,
    pub key: Key,
    pub meter: Meter,
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

/// Makes the score of generated tokens: in the asked meter and upbeat (or
/// the settings' or 4/4), in the settings' key (a minor melody of the
/// reference encoding in A minor), at the settings' tempo. Tokens that make
/// no melody, or an asked key that takes it out of MIDI's range, give it
/// back as [`Unnotated`].
pub fn notate(encoding: &Encoding, settings: &Settings, generated: Generated) -> Composition {
    match score(encoding, settings, &generated) {
        Ok((melody, key, meter)) => Ok(Composed {
            generated,
            melody,
            key,
            meter,
        }),
        Err(error) => Err(Box::new(Unnotated { generated, error })),
    }
}

/// The score of [`notate`]: the melody, its key and its meter.
fn score(
    encoding: &Encoding,
    settings: &Settings,
    generated: &Generated,
) -> Result<(Melody, Key, Meter), ComposeError> {
    let Generated {
        name,
        tokens,
        asking,
        ..
    } = generated;
    let asked = asking.as_ref().map(|asking| &asking.asked);
    let meter = asked.map_or(settings.meter.unwrap_or(DEFAULT_METER), |a| a.meter);
    let pickup = asked.map_or(settings.pickup.unwrap_or(0), |a| a.pickup);
    let wanted = settings.key.or_else(|| {
        asked.filter(|a| a.minor).map(|_| Key {
            tonic: Spelling {
                letter: 'A',
                alter: 0,
            },
            mode: Mode::Minor,
        })
    });
    let source_key = tokens_key(tokens, encoding, wanted);
    let mut melody = decode(
        tokens,
        &DecodeOptions {
            step: encoding.step,
            meter: Some(meter),
            pickup: encoding.step * Duration::from_integer(u64::from(pickup)),
            key: Some(Key {
                mode: wanted.map_or(source_key.mode, |k| k.mode),
                ..source_key
            }),
            id: name.clone(),
            title: name.clone(),
        },
    )
    .map_err(|source| ComposeError::NoMelody {
        name: name.clone(),
        source,
    })?;
    let key = match wanted {
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
    melody.tempo_qpm = Some(settings.tempo);
    if let Some(asking) = asking {
        let caution = asking
            .caution()
            .map_or_else(String::new, |caution| format!("; {caution}"));
        melody.remarks = vec![format!(
            "esac-melody, asked for {}{caution}",
            asking.description()
        )];
    }
    Ok((melody, key, meter))
}

/// A written form of a melody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Artifact {
    /// The tokens, ending with ` .` where the model ended the melody.
    Tokens,
    Midi,
    MusicXml,
    Abc,
    Kern,
    Wav,
}

impl Artifact {
    pub const ALL: [Artifact; 6] = [
        Artifact::Tokens,
        Artifact::Midi,
        Artifact::MusicXml,
        Artifact::Abc,
        Artifact::Kern,
        Artifact::Wav,
    ];

    /// The file name extension, which also names it in URLs.
    pub fn extension(self) -> &'static str {
        match self {
            Artifact::Tokens => "txt",
            Artifact::Midi => "mid",
            Artifact::MusicXml => "musicxml",
            Artifact::Abc => "abc",
            Artifact::Kern => "krn",
            Artifact::Wav => "wav",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Artifact::Tokens | Artifact::Kern => "text/plain; charset=utf-8",
            Artifact::Midi => "audio/midi",
            Artifact::MusicXml => "application/vnd.recordare.musicxml+xml",
            Artifact::Abc => "text/vnd.abc; charset=utf-8",
            Artifact::Wav => "audio/wav",
        }
    }

    pub fn from_extension(extension: &str) -> Option<Artifact> {
        Artifact::ALL
            .into_iter()
            .find(|a| a.extension() == extension)
    }
}

/// Writes one artifact of a melody; the WAV through `soundfont` when given,
/// else the built-in synthesizer.
pub fn render(
    composed: &Composed,
    artifact: Artifact,
    soundfont: Option<&SoundFont>,
) -> Result<Vec<u8>, ComposeError> {
    let melody = &composed.melody;
    Ok(match artifact {
        Artifact::Tokens => {
            token_text(&composed.generated.tokens, composed.generated.closed).into_bytes()
        }
        Artifact::Midi => to_midi(melody, &MidiOptions::default())?,
        Artifact::MusicXml => melody_formats::musicxml::to_musicxml(melody)?.into_bytes(),
        Artifact::Abc => melody_formats::abc::to_abc(melody)?.into_bytes(),
        Artifact::Kern => melody_formats::kern::to_kern(melody)?.into_bytes(),
        Artifact::Wav => {
            let mut wav = std::io::Cursor::new(Vec::new());
            let options = SynthOptions::default();
            match soundfont {
                Some(font) => write_wav_soundfont(melody, font, &options, &mut wav)
                    .map_err(|e| ComposeError::Wav(e.to_string()))?,
                None => write_wav(melody, &options, &mut wav)
                    .map_err(|e| ComposeError::Wav(e.to_string()))?,
            }
            wav.into_inner()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(songs_alike: Option<usize>) -> Asking {
        Asking {
            asked: Asked {
                meter: "6/8".parse().unwrap(),
                minor: true,
                style: "deutschl/kinder".into(),
                bars: 8,
                pickup: 2,
                form: None,
            },
            mode_guidance: 0.0,
            songs_alike,
        }
    }

    #[test]
    fn tokens_that_make_no_melody_name_the_melody_and_the_grammar() {
        // What the model may write without the grammar: a hold first, or an
        // end at once. Before, the server answered these with a 500.
        let notated = |tokens: &str| {
            let tokens = grid_codec::parse_tokens(tokens).unwrap();
            let generated = Generated {
                name: "melody-4".to_owned(),
                tokens: tokens.clone(),
                closed: true,
                asking: None,
            };
            let unnotated = notate(&Encoding::default(), &Settings::default(), generated)
                .expect_err("no score");
            // What the model wrote comes back with the reason.
            assert_eq!(unnotated.generated.tokens, tokens);
            unnotated.error
        };
        let error = notated("_ 60 _");
        assert_eq!(error.field(), Some(Field::Grammar));
        assert_eq!(Field::Grammar.to_string(), "--no-grammar");
        assert!(
            error.to_string().starts_with(
                "melody-4: the model's tokens make no melody (token 1: `_` holds a note, but no note or rest has started yet); without the grammar (--no-grammar, the API's grammar=false)"
            ),
            "{error}"
        );
        assert!(
            notated("")
                .to_string()
                .contains("make no melody (the tokens hold no note or rest)")
        );
    }

    #[test]
    fn a_melody_says_when_few_training_songs_are_of_its_kind() {
        assert_eq!(
            asking(Some(0)).caution().unwrap(),
            "no training song is minor, in 6/8 and of style deutschl/kinder: the model has not heard such a song"
        );
        assert_eq!(
            asking(Some(1)).caution().unwrap(),
            "only 1 training song is minor, in 6/8 and of style deutschl/kinder"
        );
        assert_eq!(
            asking(Some(FEW_SONGS_ALIKE - 1)).caution().unwrap(),
            "only 9 training songs are minor, in 6/8 and of style deutschl/kinder"
        );
        assert_eq!(asking(Some(FEW_SONGS_ALIKE)).caution(), None);
        assert_eq!(asking(None).caution(), None);
        assert_eq!(
            asking(None).description(),
            "8 bars of 6/8 after an upbeat of 2 steps, minor, style deutschl/kinder"
        );
    }
}
