//! A melody as a 16-bit WAV (via `hound`). The built-in synthesizer plays clean
//! tones (a few harmonics) with an attack-decay-sustain-release envelope and
//! needs no external files; [`write_wav_soundfont`] plays the melody's MIDI
//! through a General MIDI SoundFont (`rustysynth`). Peaks are normalised below
//! full scale, so nothing clips.

use std::cell::Cell;
use std::io::{Read, Seek, Write};
use std::sync::{Arc, Once};

use esac_parse::{Duration, Melody};
use thiserror::Error;

use crate::midi::{MidiError, MidiOptions, to_midi};
use crate::notation::sounding_notes;

/// Why a SoundFont rendering failed.
#[derive(Debug, Error)]
pub enum SoundFontError {
    #[error("not a usable SF2 SoundFont: {0}")]
    SoundFont(String),
    #[error("the synthesizer could not start: {0}")]
    Synthesizer(String),
    #[error("the SoundFont is damaged: a sample's bounds lie outside its sample data ({0})")]
    DamagedSample(String),
    #[error("the melody's MIDI could not be played: {0}")]
    Midi(String),
    #[error(transparent)]
    Write(#[from] MidiError),
    #[error(transparent)]
    Wav(#[from] hound::Error),
}

/// How the melody is rendered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthOptions {
    pub sample_rate: u32,
    /// Quarter notes per minute when the melody gives none.
    pub default_tempo_qpm: f64,
    /// Peak level as a share of full scale.
    pub peak: f64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self {
            sample_rate: 44_100,
            default_tempo_qpm: 100.0,
            peak: 0.8,
        }
    }
}

const ATTACK_S: f64 = 0.01;
const DECAY_S: f64 = 0.12;
const SUSTAIN: f64 = 0.6;
const RELEASE_S: f64 = 0.08;
/// Relative strengths of the first harmonics: a soft, organ-like tone.
const HARMONICS: [f64; 4] = [1.0, 0.4, 0.2, 0.08];

/// The frequency of a MIDI pitch in equal temperament (A4 = 440 Hz).
pub fn frequency(midi: u8) -> f64 {
    440.0 * 2f64.powf((f64::from(midi) - 69.0) / 12.0)
}

/// Renders the melody to samples in [-1, 1] (tied notes sound as one).
pub fn render(melody: &Melody, options: &SynthOptions) -> Vec<f32> {
    let rate = f64::from(options.sample_rate);
    let tempo = melody
        .tempo_qpm
        .unwrap_or(options.default_tempo_qpm)
        .max(1.0);
    let seconds = |d: Duration| (*d.numer() as f64 / *d.denom() as f64) * 4.0 * 60.0 / tempo;
    let notes: Vec<(u8, f64, f64)> = sounding_notes(melody)
        .iter()
        .map(|n| (n.pitch, seconds(n.onset), seconds(n.length)))
        .collect();
    let total = seconds(melody.total_duration()) + RELEASE_S;
    let mut samples = vec![0f64; (total * rate).ceil() as usize];
    for (pitch, start, length) in notes {
        let f = frequency(pitch);
        let first = (start * rate) as usize;
        let count = ((length + RELEASE_S) * rate) as usize;
        for i in 0..count {
            let t = i as f64 / rate;
            let envelope = if t < ATTACK_S {
                t / ATTACK_S
            } else if t < ATTACK_S + DECAY_S {
                1.0 - (1.0 - SUSTAIN) * (t - ATTACK_S) / DECAY_S
            } else if t < length {
                SUSTAIN
            } else {
                let held = if length < ATTACK_S + DECAY_S {
                    1.0 - (1.0 - SUSTAIN) * ((length - ATTACK_S).max(0.0) / DECAY_S)
                } else {
                    SUSTAIN
                };
                held * (1.0 - (t - length) / RELEASE_S).max(0.0)
            };
            let tone: f64 = HARMONICS
                .iter()
                .enumerate()
                .map(|(h, a)| a * (std::f64::consts::TAU * f * (h + 1) as f64 * t).sin())
                .sum();
            if let Some(sample) = samples.get_mut(first + i) {
                *sample += envelope * tone;
            }
        }
    }
    let loudest = samples.iter().fold(0f64, |m, s| m.max(s.abs()));
    let gain = if loudest > 0.0 {
        options.peak / loudest
    } else {
        0.0
    };
    samples.iter().map(|s| (s * gain) as f32).collect()
}

/// Writes the melody as a mono WAV file from the built-in synthesizer.
pub fn write_wav<W: Write + Seek>(
    melody: &Melody,
    options: &SynthOptions,
    out: W,
) -> Result<(), hound::Error> {
    write_samples(&render(melody, options), 1, options.sample_rate, out)
}

/// A loaded General MIDI SoundFont (SF2).
#[derive(Clone)]
pub struct SoundFont(Arc<rustysynth::SoundFont>);

impl SoundFont {
    pub fn read<R: Read>(reader: &mut R) -> Result<Self, SoundFontError> {
        survive(|| rustysynth::SoundFont::new(reader))
            .map_err(|panic| {
                SoundFontError::SoundFont(format!(
                    "the file is damaged: its tables point past their ends ({panic})"
                ))
            })?
            .map(|font| Self(Arc::new(font)))
            .map_err(|e| SoundFontError::SoundFont(e.to_string()))
    }
}

thread_local! {
    /// Set while this thread runs rustysynth under [`survive`].
    static SURVIVING: Cell<bool> = const { Cell::new(false) };
}

/// Runs rustysynth on a SoundFont it may not survive. It trusts the indices
/// in a file's tables, so a damaged file makes it index out of bounds (found
/// by mutating TimGM6mb: one damaged file in 73, nearly all on loading, one
/// in 15,000 on playing, where a zone's sample offsets reach past the
/// samples). The panic comes back as its message, to be reported as an
/// error; the panic hook, wrapped once, stays silent for it and prints every
/// other panic as before.
fn survive<T>(run: impl FnOnce() -> T) -> Result<T, String> {
    static QUIET_WHILE_SURVIVING: Once = Once::new();
    QUIET_WHILE_SURVIVING.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !SURVIVING.get() {
                previous(info);
            }
        }));
    });
    SURVIVING.set(true);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
    SURVIVING.set(false);
    outcome.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

/// How long the last note may ring on after the melody ends.
const SOUNDFONT_TAIL_S: f64 = 1.0;

/// Renders the melody's MIDI (piano, program 0) through `font` as interleaved
/// stereo samples, normalised to `options.peak` (SoundFonts differ widely in
/// loudness; TimGM6mb, for one, renders very quietly).
pub fn render_soundfont(
    melody: &Melody,
    font: &SoundFont,
    options: &SynthOptions,
) -> Result<Vec<f32>, SoundFontError> {
    let midi = to_midi(
        melody,
        &MidiOptions {
            default_tempo_qpm: options.default_tempo_qpm,
            ..MidiOptions::default()
        },
    )?;
    let midi = rustysynth::MidiFile::new(&mut midi.as_slice())
        .map_err(|e| SoundFontError::Midi(e.to_string()))?;
    let length = midi.get_length() + SOUNDFONT_TAIL_S;
    let rate = i32::try_from(options.sample_rate)
        .map_err(|_| SoundFontError::Synthesizer(format!("sample rate {}", options.sample_rate)))?;
    let settings = rustysynth::SynthesizerSettings::new(rate);
    let synthesizer = rustysynth::Synthesizer::new(&font.0, &settings)
        .map_err(|e| SoundFontError::Synthesizer(e.to_string()))?;
    let mut sequencer = rustysynth::MidiFileSequencer::new(synthesizer);
    sequencer.play(&Arc::new(midi), false);
    let frames = (length * f64::from(options.sample_rate)).ceil() as usize;
    let (mut left, mut right) = (vec![0f32; frames], vec![0f32; frames]);
    survive(|| sequencer.render(&mut left, &mut right)).map_err(SoundFontError::DamagedSample)?;
    let loudest = left.iter().chain(&right).fold(0f32, |m, s| m.max(s.abs()));
    let gain = if loudest > 0.0 {
        options.peak as f32 / loudest
    } else {
        0.0
    };
    Ok(left
        .iter()
        .zip(&right)
        .flat_map(|(l, r)| [l * gain, r * gain])
        .collect())
}

/// Writes the melody as a stereo WAV file played through a SoundFont.
pub fn write_wav_soundfont<W: Write + Seek>(
    melody: &Melody,
    font: &SoundFont,
    options: &SynthOptions,
    out: W,
) -> Result<(), SoundFontError> {
    let samples = render_soundfont(melody, font, options)?;
    Ok(write_samples(&samples, 2, options.sample_rate, out)?)
}

/// 16-bit PCM of interleaved samples in [-1, 1].
fn write_samples<W: Write + Seek>(
    samples: &[f32],
    channels: u16,
    sample_rate: u32,
    out: W,
) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::new(out, spec)?;
    for &sample in samples {
        writer.write_sample((f64::from(sample) * f64::from(i16::MAX)).round() as i16)?;
    }
    writer.finalize()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use grid_codec::{DecodeOptions, decode, parse_tokens};

    /// Power of one frequency in the samples (Goertzel).
    fn power(samples: &[f32], rate: f64, f: f64) -> f64 {
        let w = std::f64::consts::TAU * f / rate;
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in samples {
            let s = f64::from(x) + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
    }

    #[test]
    fn wav_reads_back_with_the_right_pitch_length_and_no_clipping() {
        let melody = decode(
            &parse_tokens("69 _ _ _ r _ _ _ 69 _ _ _ _ _ _ _").unwrap(),
            &DecodeOptions::default(),
        )
        .unwrap();
        let options = SynthOptions::default();
        let mut bytes = std::io::Cursor::new(Vec::new());
        write_wav(&melody, &options, &mut bytes).unwrap();
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes.into_inner())).unwrap();
        assert_eq!(reader.spec().sample_rate, 44_100);
        assert_eq!(reader.spec().channels, 1);
        let samples: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
        // 16 sixteenths at 100 quarter notes a minute = 2.4 s, plus the release.
        let expected = ((2.4 + RELEASE_S) * 44_100.0) as usize;
        assert!(samples.len().abs_diff(expected) <= 1, "{}", samples.len());
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak < i16::MAX as u16 && peak > 20_000, "peak {peak}");
        let floats: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
        let note = &floats[..26_000];
        assert!(power(note, 44_100.0, 440.0) > 100.0 * power(note, 44_100.0, 466.16));
        // The rest (0.6 s .. 1.2 s, after the release) is silent.
        let rest = &floats[35_000..50_000];
        assert!(rest.iter().all(|s| s.abs() < 1e-3));
    }

    // WAV through a real General MIDI SoundFont (Debian's `timgm6mb-soundfont`,
    // which `.ci/run` installs; ESAC_MELODY_SOUNDFONT names another SF2).
    fn soundfont_path() -> Option<PathBuf> {
        let path = std::env::var_os("ESAC_MELODY_SOUNDFONT").map_or_else(
            || PathBuf::from("/usr/share/sounds/sf2/TimGM6mb.sf2"),
            PathBuf::from,
        );
        if path.is_file() {
            return Some(path);
        }
        // CI installs the SoundFont, so there a missing file is a failure; a
        // developer without it only loses this one check.
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing: install timgm6mb-soundfont",
            path.display()
        );
        eprintln!("skipped: no SoundFont at {}", path.display());
        None
    }

    #[test]
    fn soundfont_wav_is_stereo_in_tune_normalised_and_the_right_length() {
        let Some(path) = soundfont_path() else { return };
        let font = SoundFont::read(&mut std::fs::File::open(&path).unwrap()).unwrap();
        let melody = decode(
            &parse_tokens("69 _ _ _ _ _ _ _ _ _ _ _ _ _ _ _").unwrap(),
            &DecodeOptions::default(),
        )
        .unwrap();
        let options = SynthOptions::default();
        let mut bytes = std::io::Cursor::new(Vec::new());
        write_wav_soundfont(&melody, &font, &options, &mut bytes).unwrap();
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes.into_inner())).unwrap();
        assert_eq!(reader.spec().channels, 2);
        assert_eq!(reader.spec().sample_rate, 44_100);
        let samples: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
        // A whole note at 100 quarter notes a minute = 2.4 s, plus a 1 s tail.
        let frames = samples.len() / 2;
        assert!(frames.abs_diff((3.4 * 44_100.0) as usize) <= 1, "{frames}");
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak > 25_000 && peak < i16::MAX as u16, "peak {peak}");
        let left: Vec<f32> = samples
            .iter()
            .step_by(2)
            .map(|&s| f32::from(s) / 32768.0)
            .collect();
        let sounding = &left[..88_200];
        // A4 = 440 Hz, far stronger than the semitone above or below.
        let a = power(sounding, 44_100.0, 440.0);
        assert!(
            a > 20.0 * power(sounding, 44_100.0, 466.16),
            "A4 not dominant"
        );
        assert!(
            a > 20.0 * power(sounding, 44_100.0, 415.30),
            "A4 not dominant"
        );
    }

    /// Where the `pdta` list (the preset, instrument, zone and sample
    /// tables) starts in an SF2 file.
    fn tables_start(sf2: &[u8]) -> usize {
        let mut at = 12;
        while sf2[at + 8..at + 12] != *b"pdta" {
            let size = u32::from_le_bytes(sf2[at + 4..at + 8].try_into().unwrap()) as usize;
            at += 8 + size + size % 2;
        }
        at
    }

    /// A C major arpeggio, to play through a SoundFont.
    fn arpeggio() -> Melody {
        decode(
            &parse_tokens("60 _ _ _ 64 _ 67 _ 72 _ _ _").unwrap(),
            &DecodeOptions::default(),
        )
        .unwrap()
    }

    /// Damaged copies of TimGM6mb, each from a mutation that made rustysynth
    /// index out of bounds: in a preset's zone range, an instrument's, a
    /// zone's generators (loading), and a zone's sample offsets (playing).
    #[test]
    fn a_damaged_soundfont_is_an_error_not_a_panic() {
        let Some(path) = soundfont_path() else { return };
        let original = std::fs::read(&path).unwrap();
        if original.len() != 5_969_788 {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is not Debian's TimGM6mb",
                path.display()
            );
            eprintln!(
                "skipped: {} is not the TimGM6mb these offsets were found in",
                path.display()
            );
            return;
        }
        let tables = tables_start(&original);
        let damaged = |edits: &[(usize, &[u8])]| {
            let mut bytes = original.clone();
            for (offset, new) in edits {
                bytes[tables + offset..][..new.len()].copy_from_slice(new);
            }
            bytes
        };
        let unreadable: [&[(usize, &[u8])]; 3] = [
            &[(2172, &[63, 64])],
            &[(7262, &[255, 255])],
            &[(8319, &[125])],
        ];
        for edits in unreadable {
            let error = SoundFont::read(&mut damaged(edits).as_slice())
                .err()
                .expect("a damaged SoundFont");
            assert!(
                error
                    .to_string()
                    .starts_with("not a usable SF2 SoundFont: the file is damaged"),
                "{edits:?}: {error}"
            );
        }
        let unplayable = damaged(&[
            (396, &[155]),
            (117_175, &[190]),
            (132_939, &[6]),
            (173_562, &[6]),
            (178_850, &[1]),
        ]);
        let font = SoundFont::read(&mut unplayable.as_slice()).unwrap();
        let mut bytes = std::io::Cursor::new(Vec::new());
        let error = write_wav_soundfont(&arpeggio(), &font, &SynthOptions::default(), &mut bytes)
            .expect_err("a sample out of bounds");
        assert!(
            error.to_string().starts_with(
                "the SoundFont is damaged: a sample's bounds lie outside its sample data"
            ),
            "{error}"
        );
    }

    /// Any bytes of the tables changed: reading and playing end in a sound or
    /// an error, never a panic (100 cases, about 2 s).
    #[test]
    fn a_soundfont_with_random_damage_never_panics() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let Some(path) = soundfont_path() else { return };
        let original = std::fs::read(&path).unwrap();
        let tables = tables_start(&original);
        let melody = arpeggio();
        let edits = proptest::collection::vec((tables..original.len(), any::<u8>()), 1..=8);
        let mut runner = TestRunner::new(Config {
            cases: 100,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&edits, |edits| {
                let mut bytes = original.clone();
                for (at, byte) in edits {
                    bytes[at] = byte;
                }
                if let Ok(font) = SoundFont::read(&mut bytes.as_slice()) {
                    let mut wav = std::io::Cursor::new(Vec::new());
                    let _ = write_wav_soundfont(&melody, &font, &SynthOptions::default(), &mut wav);
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_soundfont_is_refused() {
        let error = SoundFont::read(&mut &b"RIFF\x04\x00\x00\x00WAVE"[..])
            .err()
            .expect("not a SoundFont");
        assert!(
            error.to_string().contains("not a usable SF2 SoundFont"),
            "{error}"
        );
    }
}
