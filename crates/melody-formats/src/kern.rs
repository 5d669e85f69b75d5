//! Humdrum `**kern` writer: the way back to the form the collection comes in.

use std::fmt::Write;

use esac_parse::{Duration, Melody, Pitch, Spelling};

use crate::notation::{self, NotationError, score_meter, spell};

/// Kern's letters for a pitch: `c` = C4, `cc` = C5, `C` = C3, `CC` = C2.
fn kern_pitch(spelling: Spelling, octave: i32) -> String {
    let letter = spelling.letter;
    let mut text = if octave >= 4 {
        letter
            .to_ascii_lowercase()
            .to_string()
            .repeat((octave - 3) as usize)
    } else {
        letter.to_string().repeat((4 - octave) as usize)
    };
    let mark = if spelling.alter > 0 { "#" } else { "-" };
    text.push_str(&mark.repeat(spelling.alter.unsigned_abs() as usize));
    text
}

/// Kern's reciprocal for a plain note value: 4 = quarter, 0 = breve.
fn reciprocal(base: Duration) -> String {
    if base == Duration::from_integer(2) {
        "0".into()
    } else {
        base.recip().to_integer().to_string()
    }
}

/// The `*k[...]` list for a signature in fifths.
fn key_signature(fifths: i32) -> String {
    let sharps = ["f#", "c#", "g#", "d#", "a#", "e#", "b#"];
    let flats = ["b-", "e-", "a-", "d-", "g-", "c-", "f-"];
    let count = fifths.unsigned_abs().min(7) as usize;
    let list = if fifths >= 0 {
        &sharps[..count]
    } else {
        &flats[..count]
    };
    format!("*k[{}]", list.concat())
}

/// Writes a melody as a one-spine `**kern` file.
pub fn to_kern(melody: &Melody) -> Result<String, NotationError> {
    let bars = notation::bars(melody)?;
    let (beats, unit) = score_meter(melody);
    let fifths = i32::from(melody.key_signature.unwrap_or(0));
    let mut out = String::new();
    if !melody.title.is_empty() {
        let _ = writeln!(out, "!!!OTL: {}", melody.title);
    }
    let _ = writeln!(out, "!!!SCT: {}", melody.id);
    for remark in &melody.remarks {
        let _ = writeln!(out, "!! {}", remark.replace('\n', " "));
    }
    out.push_str("**kern\n");
    let _ = writeln!(out, "*M{beats}/{unit}");
    let _ = writeln!(out, "{}", key_signature(fifths));
    if let Some(key) = melody.key {
        let tonic = kern_pitch(key.tonic, 4);
        let tonic = if key.mode.is_minor_like() {
            tonic
        } else {
            tonic.to_ascii_uppercase()
        };
        let _ = writeln!(out, "*{tonic}:");
    }
    for bar in &bars {
        if bar.number > 0 {
            let _ = writeln!(out, "={}", bar.number);
        }
        for piece in &bar.pieces {
            let mut token = String::new();
            if piece.tie_start && !piece.tie_stop {
                token.push('[');
            }
            token.push_str(&reciprocal(piece.value.base));
            token.push_str(&".".repeat(usize::from(piece.value.dots)));
            match piece.pitch {
                Pitch::Note(midi) => {
                    let (spelling, octave) = spell(midi, fifths);
                    token.push_str(&kern_pitch(spelling, octave));
                }
                Pitch::Rest => token.push('r'),
            }
            match (piece.tie_start, piece.tie_stop) {
                (true, true) => token.push('_'),
                (false, true) => token.push(']'),
                _ => {}
            }
            let _ = writeln!(out, "{token}");
        }
    }
    out.push_str("==\n*-\n");
    Ok(out)
}
