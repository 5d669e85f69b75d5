//! WAV through a real General MIDI SoundFont (Debian's `timgm6mb-soundfont`,
//! which `.ci/run` installs; set ESAC_MELODY_SOUNDFONT to use another SF2).

use std::path::PathBuf;

use grid_codec::audio::{SoundFont, SynthOptions, write_wav_soundfont};
use grid_codec::{DecodeOptions, decode, parse_tokens};

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
