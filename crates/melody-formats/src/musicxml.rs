//! MusicXML (partwise, version 4.0) for one melody: bars from the meter, notes
//! tied across bar lines, key and time signature; opens in MuseScore.

use std::fmt::Write;

use esac_parse::{Duration, Melody, Pitch};

use crate::notation::{self, NotationError, score_meter, spell};

/// Escapes text for XML content and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// MusicXML's name for a plain note value.
fn type_name(base: Duration) -> &'static str {
    let names = [
        (Duration::from_integer(2), "breve"),
        (Duration::from_integer(1), "whole"),
        (Duration::new(1, 2), "half"),
        (Duration::new(1, 4), "quarter"),
        (Duration::new(1, 8), "eighth"),
        (Duration::new(1, 16), "16th"),
        (Duration::new(1, 32), "32nd"),
        (Duration::new(1, 64), "64th"),
        (Duration::new(1, 128), "128th"),
    ];
    names
        .iter()
        .find(|(value, _)| *value == base)
        .map_or("256th", |(_, name)| name)
}

/// Writes a melody as a MusicXML document.
pub fn to_musicxml(melody: &Melody) -> Result<String, NotationError> {
    let bars = notation::bars(melody)?;
    let (beats, unit) = score_meter(melody);
    let fifths = i32::from(melody.key_signature.unwrap_or(0));
    // Divisions per quarter: enough for the shortest piece.
    let divisions = bars
        .iter()
        .flat_map(|b| &b.pieces)
        .map(|p| {
            (p.value.duration() * Duration::from_integer(4))
                .denom()
                .to_owned()
        })
        .max()
        .unwrap_or(1);
    let title = if melody.title.is_empty() {
        &melody.id
    } else {
        &melody.title
    };
    let mut xml = String::new();
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str("<!DOCTYPE score-partwise PUBLIC \"-//Recordare//DTD MusicXML 4.0 Partwise//EN\" \"http://www.musicxml.org/dtds/partwise.dtd\">\n");
    xml.push_str("<score-partwise version=\"4.0\">\n");
    let _ = writeln!(
        xml,
        "  <work><work-title>{}</work-title></work>",
        escape(title)
    );
    let remarks: String = melody
        .remarks
        .iter()
        .map(|r| {
            format!(
                "<miscellaneous-field name=\"remark\">{}</miscellaneous-field>",
                escape(r)
            )
        })
        .collect();
    let _ = writeln!(
        xml,
        "  <identification><encoding><software>esac-melody</software></encoding><source>{}</source>{}</identification>",
        escape(&melody.id),
        if remarks.is_empty() {
            remarks
        } else {
            format!("<miscellaneous>{remarks}</miscellaneous>")
        }
    );
    xml.push_str("  <part-list><score-part id=\"P1\"><part-name>Melody</part-name></score-part></part-list>\n");
    xml.push_str("  <part id=\"P1\">\n");
    for (index, bar) in bars.iter().enumerate() {
        let implicit = if bar.number == 0 {
            " implicit=\"yes\""
        } else {
            ""
        };
        let _ = writeln!(xml, "    <measure number=\"{}\"{implicit}>", bar.number);
        if index == 0 {
            let mode = match melody.key {
                Some(k) if k.mode.is_minor_like() => "minor",
                _ => "major",
            };
            let _ = writeln!(
                xml,
                "      <attributes><divisions>{divisions}</divisions><key><fifths>{fifths}</fifths><mode>{mode}</mode></key><time><beats>{beats}</beats><beat-type>{unit}</beat-type></time><clef><sign>G</sign><line>2</line></clef></attributes>"
            );
        }
        for piece in &bar.pieces {
            let length = piece.value.duration() * Duration::from_integer(4 * divisions);
            xml.push_str("      <note>");
            match piece.pitch {
                Pitch::Note(midi) => {
                    let (spelling, octave) = spell(midi, fifths);
                    let alter = if spelling.alter != 0 {
                        format!("<alter>{}</alter>", spelling.alter)
                    } else {
                        String::new()
                    };
                    let _ = write!(
                        xml,
                        "<pitch><step>{}</step>{alter}<octave>{octave}</octave></pitch>",
                        spelling.letter
                    );
                }
                Pitch::Rest => xml.push_str("<rest/>"),
            }
            let _ = write!(xml, "<duration>{}</duration>", length.to_integer());
            if piece.tie_stop {
                xml.push_str("<tie type=\"stop\"/>");
            }
            if piece.tie_start {
                xml.push_str("<tie type=\"start\"/>");
            }
            let _ = write!(xml, "<type>{}</type>", type_name(piece.value.base));
            for _ in 0..piece.value.dots {
                xml.push_str("<dot/>");
            }
            if piece.tie_start || piece.tie_stop {
                xml.push_str("<notations>");
                if piece.tie_stop {
                    xml.push_str("<tied type=\"stop\"/>");
                }
                if piece.tie_start {
                    xml.push_str("<tied type=\"start\"/>");
                }
                xml.push_str("</notations>");
            }
            xml.push_str("</note>\n");
        }
        if index + 1 == bars.len() {
            xml.push_str(
                "      <barline location=\"right\"><bar-style>light-heavy</bar-style></barline>\n",
            );
        }
        xml.push_str("    </measure>\n");
    }
    xml.push_str("  </part>\n</score-partwise>\n");
    Ok(xml)
}
