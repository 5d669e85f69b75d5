//! ABC notation (2.1), what folk musicians exchange: header (X, T, M, L, Q,
//! K with its mode), bars and pickups, ties, rests, accidentals that last to
//! the bar line, notes beamed by beat, and broken rhythm (`>`) where exact.

use std::collections::HashMap;
use std::fmt::Write;

use esac_parse::{Duration, Key, Melody, Mode, Pitch, Spelling};

use crate::notation::{self, NotationError, Piece, score_meter, spell};

/// The unit note length (`L:`): every length on the 1/16 grid is a whole
/// number or half of it.
const UNIT: Duration = Duration::new_raw(1, 8);

/// ABC's name for a mode after the tonic (`K:Am`, `K:D dor`).
fn mode_suffix(mode: Mode) -> &'static str {
    match mode {
        Mode::Major => "",
        Mode::Minor => "m",
        Mode::Ionian => " ion",
        Mode::Dorian => " dor",
        Mode::Phrygian => " phr",
        Mode::Lydian => " lyd",
        Mode::Mixolydian => " mix",
        Mode::Aeolian => " aeo",
        Mode::Locrian => " loc",
    }
}

/// The major key with `fifths` sharps (positive) or flats (negative).
fn major_key_of(fifths: i32) -> Key {
    let circle = [
        "Cb", "Gb", "Db", "Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#",
    ];
    let name = circle[(fifths.clamp(-7, 7) + 7) as usize];
    name.parse().expect("the circle of fifths names keys")
}

/// The written key: the melody's own, else the major key of its signature.
fn written_key(melody: &Melody) -> Key {
    melody
        .key
        .unwrap_or_else(|| major_key_of(i32::from(melody.key_signature.unwrap_or(0))))
}

/// The alteration the key signature gives each letter.
fn signature_alters(fifths: i32) -> HashMap<char, i8> {
    let sharps = ['F', 'C', 'G', 'D', 'A', 'E', 'B'];
    let mut alters: HashMap<char, i8> = "CDEFGAB".chars().map(|l| (l, 0)).collect();
    let count = fifths.unsigned_abs().min(7) as usize;
    if fifths >= 0 {
        for letter in &sharps[..count] {
            alters.insert(*letter, 1);
        }
    } else {
        for letter in sharps.iter().rev().take(count) {
            alters.insert(*letter, -1);
        }
    }
    alters
}

/// A length in units of `L:`: `2`, `` (one unit), `/` (a half), `3/2`.
fn length_text(length: Duration) -> String {
    let units = length / UNIT;
    match (*units.numer(), *units.denom()) {
        (1, 1) => String::new(),
        (n, 1) => n.to_string(),
        (1, 2) => "/".into(),
        (n, d) => format!("{n}/{d}"),
    }
}

/// The letters of a pitch: `C` = C4 (middle C), `c` = C5, `c'` = C6, `C,` = C3.
fn pitch_letters(letter: char, octave: i32) -> String {
    if octave >= 5 {
        let mut text = letter.to_ascii_lowercase().to_string();
        text.push_str(&"'".repeat((octave - 5) as usize));
        text
    } else {
        let mut text = letter.to_string();
        text.push_str(&",".repeat((4 - octave) as usize));
        text
    }
}

/// ABC's accidental for an alteration: `^`, `^^`, `_`, `__`, `=`.
fn accidental(alter: i8) -> String {
    match alter {
        0 => "=".into(),
        a if a > 0 => "^".repeat(a as usize),
        a => "_".repeat(a.unsigned_abs() as usize),
    }
}

/// Which accidentals are in force in the bar being written.
///
/// Readers disagree on how far an accidental reaches: ABC 2.1's default
/// (`%%propagate-accidentals pitch`, abc2midi) applies it to the letter in
/// every octave, abcm2ps and abc2svg to the same octave only. A note gets a
/// sign unless both readings already give its alteration, so every reader
/// hears the same pitches.
struct BarAccidentals<'a> {
    signature: &'a HashMap<char, i8>,
    by_octave: HashMap<(char, i32), i8>,
    by_letter: HashMap<char, i8>,
}

impl<'a> BarAccidentals<'a> {
    fn new(signature: &'a HashMap<char, i8>) -> Self {
        Self {
            signature,
            by_octave: HashMap::new(),
            by_letter: HashMap::new(),
        }
    }

    /// The accidental to write before a note, if the signature and the
    /// accidentals already written in the bar do not give its alteration.
    fn mark(&mut self, spelling: Spelling, octave: i32) -> String {
        let signature = self.signature[&spelling.letter];
        let in_octave = self.by_octave.get(&(spelling.letter, octave));
        let in_any_octave = self.by_letter.get(&spelling.letter);
        if in_octave.copied().unwrap_or(signature) == spelling.alter
            && in_any_octave.copied().unwrap_or(signature) == spelling.alter
        {
            return String::new();
        }
        self.by_octave
            .insert((spelling.letter, octave), spelling.alter);
        self.by_letter.insert(spelling.letter, spelling.alter);
        accidental(spelling.alter)
    }
}

/// The beat a meter is beamed by: a dotted quarter in compound meters (6/8,
/// 9/8, 12/8), else the meter's unit.
fn beat_length(beats: u32, unit: u32) -> Duration {
    if unit == 8 && beats.is_multiple_of(3) && beats > 3 {
        Duration::new(3, 8)
    } else {
        Duration::new(1, u64::from(unit))
    }
}

/// True where two pieces make an exact broken rhythm: a dotted value then
/// half its base (`A>B` is `A3/2 B/2`), the first not tied on.
fn broken_pair(first: &Piece, second: &Piece) -> bool {
    first.value.dots == 1
        && second.value.dots == 0
        && second.value.base * Duration::from_integer(2) == first.value.base
        && !first.tie_start
}

/// Text for an information field: on one line, with `%` (which would start a
/// comment) escaped as ABC 2.1 allows.
fn field_text(text: &str) -> String {
    text.replace('\n', " ").replace('%', "\\%")
}

/// Writes a melody as an ABC tune with reference number 1.
pub fn to_abc(melody: &Melody) -> Result<String, NotationError> {
    let bars = notation::bars(melody)?;
    let (beats, unit) = score_meter(melody);
    let bar_length = Duration::new(u64::from(beats), u64::from(unit));
    let beat = beat_length(beats, unit);
    let key = written_key(melody);
    let fifths = key.signature_fifths();
    let signature = signature_alters(fifths);
    let title = if melody.title.is_empty() {
        &melody.id
    } else {
        &melody.title
    };
    let mut abc = String::new();
    let _ = writeln!(abc, "X:1");
    let _ = writeln!(abc, "T:{}", field_text(title));
    for remark in &melody.remarks {
        let _ = writeln!(abc, "N:{}", field_text(remark));
    }
    let _ = writeln!(abc, "M:{beats}/{unit}");
    let _ = writeln!(abc, "L:1/8");
    if let Some(tempo) = melody.tempo_qpm {
        let _ = writeln!(abc, "Q:1/4={}", tempo.round());
    }
    let _ = writeln!(abc, "K:{}{}", key.tonic, mode_suffix(key.mode));
    let mut body = String::new();
    for (index, bar) in bars.iter().enumerate() {
        let filled: Duration = bar.pieces.iter().map(|p| p.value.duration()).sum();
        // A pickup bar ends at the bar line, so its first note is that far in.
        let mut onset = if bar.number == 0 {
            bar_length - filled
        } else {
            Duration::from_integer(0)
        };
        let mut accidentals = BarAccidentals::new(&signature);
        let mut pieces = bar.pieces.iter().peekable();
        let mut first = true;
        while let Some(piece) = pieces.next() {
            if !first && (onset / beat).is_integer() {
                body.push(' ');
            }
            first = false;
            let broken = pieces.peek().is_some_and(|next| broken_pair(piece, next));
            let written_length = if broken {
                piece.value.base
            } else {
                piece.value.duration()
            };
            write_piece(&mut body, piece, written_length, fifths, &mut accidentals);
            onset += piece.value.duration();
            if broken {
                let next = pieces.next().expect("peeked");
                body.push('>');
                write_piece(&mut body, next, piece.value.base, fifths, &mut accidentals);
                onset += next.value.duration();
            }
        }
        body.push_str(if index + 1 == bars.len() {
            " |]"
        } else {
            " | "
        });
        // Four bars a line, as tunes are usually printed.
        if (index + 1) % 4 == 0 && index + 1 < bars.len() {
            body.push('\n');
        }
    }
    abc.push_str(body.trim_start());
    abc.push('\n');
    Ok(abc)
}

/// One note or rest written with `length`, its accidental and its tie.
fn write_piece(
    out: &mut String,
    piece: &Piece,
    length: Duration,
    fifths: i32,
    accidentals: &mut BarAccidentals,
) {
    match piece.pitch {
        Pitch::Note(midi) => {
            let (spelling, octave) = spell(midi, fifths);
            out.push_str(&accidentals.mark(spelling, octave));
            out.push_str(&pitch_letters(spelling.letter, octave));
        }
        Pitch::Rest => out.push('z'),
    }
    out.push_str(&length_text(length));
    if piece.tie_start {
        out.push('-');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use esac_parse::{Event, Meter, MeterChange};

    fn melody(meter: (u32, u32), key: &str, events: &[(Pitch, (u64, u64), u32)]) -> Melody {
        let mut m = Melody::new("t1", "t", 1);
        m.title = "Test".into();
        m.key = Some(key.parse().unwrap());
        m.meters.push(MeterChange {
            at_event: 0,
            meter: Meter::Regular {
                beats: meter.0,
                unit: meter.1,
            },
        });
        for &(pitch, (n, d), measure) in events {
            let mut event = Event::new(pitch, Duration::new(n, d));
            event.measure = measure;
            m.events.push(event);
        }
        m
    }

    #[test]
    fn a_hand_written_tune() {
        // G major 3/4: a quarter D upbeat, then a dotted eighth and sixteenth
        // (broken rhythm), a tie over the bar line, F natural against the
        // signature's F sharp (the second F in the bar needs no sign), a rest.
        let n = Pitch::Note;
        let m = melody(
            (3, 4),
            "G",
            &[
                (n(62), (1, 4), 0),
                (n(67), (3, 16), 1),
                (n(69), (1, 16), 1),
                (n(71), (1, 4), 1),
                (n(72), (1, 2), 1),
                (n(65), (1, 8), 2),
                (n(65), (1, 8), 2),
                (n(66), (1, 4), 2),
                (Pitch::Rest, (1, 4), 3),
                (n(55), (1, 4), 3),
            ],
        );
        let abc = to_abc(&m).unwrap();
        assert_eq!(
            abc,
            "X:1\nT:Test\nM:3/4\nL:1/8\nK:G\nD2 | G>A B2 c2- | c2 =FF ^F2 | z2 G,2 |]\n"
        );
    }

    #[test]
    fn accidentals_read_the_same_whether_they_reach_one_octave_or_all() {
        // C major 4/4, the bar abc2midi once read a semitone high: F sharp
        // below middle C, then the F above it, natural. Read octave by
        // octave the second F needs no sign, read letter by letter (ABC 2.1's
        // default) it does, so it gets one. The next F sharp, in the first
        // F's octave, is sharp by the octave reading but natural by the
        // letter one, so it is marked again; the last F then follows both.
        let n = Pitch::Note;
        let m = melody(
            (4, 4),
            "C",
            &[
                (n(54), (1, 4), 1),
                (n(65), (1, 4), 1),
                (n(54), (1, 4), 1),
                (n(54), (1, 4), 1),
            ],
        );
        let abc = to_abc(&m).unwrap();
        assert!(abc.ends_with("\n^F,2 =F2 ^F,2 F,2 |]\n"), "{abc}");
    }

    #[test]
    fn modes_and_signatures_are_named() {
        let m = melody((6, 8), "D dorian", &[(Pitch::Note(62), (3, 4), 1)]);
        let abc = to_abc(&m).unwrap();
        assert!(abc.contains("K:D dor\n"), "{abc}");
        assert!(abc.contains("M:6/8\n"), "{abc}");
        assert!(abc.ends_with("D6 |]\n"), "{abc}");
        let m = melody(
            (2, 4),
            "e",
            &[(Pitch::Note(76), (1, 16), 1), (Pitch::Note(78), (1, 16), 1)],
        );
        let abc = to_abc(&m).unwrap();
        assert!(abc.contains("K:Em\n"), "{abc}");
        assert!(abc.ends_with("e/f/ |]\n"), "{abc}");
        assert_eq!(major_key_of(-3).to_string(), "Eb major");
        assert_eq!(signature_alters(-2)[&'E'], -1);
        assert_eq!(signature_alters(-2)[&'A'], 0);
        assert_eq!(signature_alters(3)[&'G'], 1);
    }
}
