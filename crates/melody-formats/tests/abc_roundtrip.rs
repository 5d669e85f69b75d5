//! ABC written by `to_abc` reads back, through a small reader of the subset
//! it writes, as the same notes and lengths, in every meter and key, however
//! far the reader takes an accidental to reach.

use esac_parse::{Duration, Event, Key, Melody, Meter, MeterChange, Pitch};
use melody_formats::abc::to_abc;
use proptest::prelude::*;

/// What the reader gets back: the meter, and the notes and rests with ties
/// joined (and rests split by bar lines joined too).
#[derive(Debug, PartialEq)]
struct Read {
    meter: (u32, u32),
    events: Vec<(Pitch, Duration)>,
    bars: usize,
}

fn key_fifths(field: &str) -> i32 {
    let field = field.trim();
    let (tonic, mode) = match field.find(' ') {
        Some(space) => (&field[..space], field[space + 1..].trim()),
        None => match field.strip_suffix('m') {
            Some(tonic) => (tonic, "m"),
            None => (field, ""),
        },
    };
    let mode = match mode {
        "" => "major",
        "m" => "minor",
        "ion" => "ionian",
        "dor" => "dorian",
        "phr" => "phrygian",
        "lyd" => "lydian",
        "mix" => "mixolydian",
        "aeo" => "aeolian",
        "loc" => "locrian",
        other => panic!("mode {other}"),
    };
    let key: Key = format!("{tonic} {mode}").parse().unwrap();
    key.signature_fifths()
}

fn signature(fifths: i32) -> [i8; 7] {
    // Alterations of C D E F G A B.
    let mut alters = [0i8; 7];
    let sharps = [3, 0, 4, 1, 5, 2, 6];
    for i in 0..fifths.unsigned_abs() as usize {
        if fifths > 0 {
            alters[sharps[i]] = 1;
        } else {
            alters[sharps[6 - i]] = -1;
        }
    }
    alters
}

/// How far an accidental reaches to the bar's end: readers differ (ABC 2.1's
/// default and abc2midi take every octave, abcm2ps and abc2svg one).
#[derive(Clone, Copy, Debug)]
enum Reach {
    SameOctave,
    EveryOctave,
}

fn read_abc(text: &str, reach: Reach) -> Read {
    let mut meter = (4, 4);
    let mut unit = Duration::new(1, 8);
    let mut fifths = 0;
    let mut body = String::new();
    for line in text.lines() {
        match line.split_once(':') {
            Some((field, value))
                if field.len() == 1 && field.chars().all(|c| c.is_ascii_uppercase()) =>
            {
                match field {
                    "M" => {
                        let (b, u) = value.split_once('/').unwrap();
                        meter = (b.parse().unwrap(), u.parse().unwrap());
                    }
                    "L" => {
                        let (n, d) = value.split_once('/').unwrap();
                        unit = Duration::new(n.parse().unwrap(), d.parse().unwrap());
                    }
                    "K" => fifths = key_fifths(value),
                    _ => {}
                }
            }
            _ => {
                body.push_str(line);
                body.push(' ');
            }
        }
    }
    let key = signature(fifths);
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let mut events: Vec<(Pitch, Duration)> = Vec::new();
    let mut tied = false;
    // `A>B`: A gains half its written length, and B (still to come) loses half.
    let mut broken_pending = false;
    let mut last_written = Duration::from_integer(0);
    let mut bar_accidentals = std::collections::HashMap::new();
    let mut bars = 1;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' => i += 1,
            '|' => {
                bar_accidentals.clear();
                i += 1;
                if chars.get(i) == Some(&']') {
                    i += 1;
                } else {
                    bars += 1;
                }
            }
            '>' => {
                // The previous note was written with its base; it is dotted,
                // and the next is halved.
                events.last_mut().unwrap().1 += last_written / 2;
                broken_pending = true;
                i += 1;
            }
            _ => {
                let mut explicit = None;
                let mut alter = 0i8;
                while matches!(chars[i], '^' | '_' | '=') {
                    alter += match chars[i] {
                        '^' => 1,
                        '_' => -1,
                        _ => 0,
                    };
                    explicit = Some(());
                    i += 1;
                }
                let letter = chars[i];
                i += 1;
                let mut octave = if letter.is_ascii_lowercase() { 5 } else { 4 };
                while let Some(&mark) = chars.get(i).filter(|c| matches!(c, '\'' | ',')) {
                    octave += if mark == '\'' { 1 } else { -1 };
                    i += 1;
                }
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_digit() || *c == '/')
                {
                    i += 1;
                }
                let length_text: String = chars[start..i].iter().collect();
                let multiple = match length_text.as_str() {
                    "" => Duration::from_integer(1),
                    "/" => Duration::new(1, 2),
                    t => match t.split_once('/') {
                        Some((n, d)) => Duration::new(n.parse().unwrap(), d.parse().unwrap()),
                        None => Duration::from_integer(t.parse().unwrap()),
                    },
                };
                let mut length = unit * multiple;
                last_written = length;
                if broken_pending {
                    length /= 2;
                    broken_pending = false;
                }
                let pitch = if letter == 'z' {
                    Pitch::Rest
                } else {
                    let upper = letter.to_ascii_uppercase();
                    let index = "CDEFGAB".find(upper).unwrap();
                    let reached = match reach {
                        Reach::SameOctave => (upper, octave),
                        Reach::EveryOctave => (upper, 0),
                    };
                    let alter = match explicit {
                        Some(()) => {
                            bar_accidentals.insert(reached, alter);
                            alter
                        }
                        None => *bar_accidentals.get(&reached).unwrap_or(&key[index]),
                    };
                    let natural = [0, 2, 4, 5, 7, 9, 11][index];
                    Pitch::Note(((octave + 1) * 12 + natural + i32::from(alter)) as u8)
                };
                let continues = tied
                    || (pitch == Pitch::Rest && events.last().is_some_and(|e| e.0 == Pitch::Rest));
                if continues {
                    let last = events.last_mut().unwrap();
                    assert_eq!(last.0, pitch, "a tie joins the same pitch");
                    last.1 += length;
                } else {
                    events.push((pitch, length));
                }
                tied = chars.get(i) == Some(&'-');
                if tied {
                    i += 1;
                }
            }
        }
    }
    Read {
        meter,
        events,
        bars,
    }
}

fn melody(meter: (u32, u32), key: &str, pickup_steps: u64, events: &[(Option<u8>, u64)]) -> Melody {
    let mut m = Melody::new("roundtrip", "t", 1);
    m.key = Some(key.parse().unwrap());
    m.meters.push(MeterChange {
        at_event: 0,
        meter: Meter::Regular {
            beats: meter.0,
            unit: meter.1,
        },
    });
    let mut onset = 0;
    for &(pitch, steps) in events {
        let pitch = pitch.map_or(Pitch::Rest, Pitch::Note);
        let mut event = Event::new(pitch, Duration::new(steps, 16));
        event.measure = u32::from(onset >= pickup_steps);
        onset += steps;
        m.events.push(event);
    }
    m
}

fn expected(m: &Melody) -> Vec<(Pitch, Duration)> {
    let mut out: Vec<(Pitch, Duration)> = Vec::new();
    for e in &m.events {
        match out.last_mut() {
            Some(last) if last.0 == Pitch::Rest && e.pitch == Pitch::Rest => last.1 += e.duration,
            _ => out.push((e.pitch, e.duration)),
        }
    }
    out
}

#[test]
fn the_reader_reads_a_hand_written_tune() {
    let read = read_abc(
        "X:1\nT:t\nM:3/4\nL:1/8\nK:F\nC2 | F>G A/B/ c2- | c2 ^F=F B,2 |]\n",
        Reach::SameOctave,
    );
    let n = |p, d| (Pitch::Note(p), Duration::new(1, d));
    assert_eq!(read.meter, (3, 4));
    assert_eq!(
        read.events,
        vec![
            n(60, 4),
            (Pitch::Note(65), Duration::new(3, 16)),
            n(67, 16),
            n(69, 16),
            n(70, 16),
            n(72, 2),
            n(66, 8),
            n(65, 8),
            n(58, 4),
        ]
    );
    assert_eq!(read.bars, 3);
    // An F sharp reaches the F an octave up in one reading, not the other.
    let tune = "X:1\nT:t\nM:2/4\nL:1/8\nK:C\n^F,2 F2 |]\n";
    let pitches = |reach| -> Vec<Pitch> {
        let read = read_abc(tune, reach);
        read.events.iter().map(|e| e.0).collect()
    };
    assert_eq!(
        pitches(Reach::SameOctave),
        [Pitch::Note(54), Pitch::Note(65)]
    );
    assert_eq!(
        pitches(Reach::EveryOctave),
        [Pitch::Note(54), Pitch::Note(66)]
    );
}

const METERS: [(u32, u32); 6] = [(2, 4), (3, 4), (4, 4), (6, 8), (3, 8), (5, 4)];
const KEYS: [&str; 8] = ["C", "G", "F", "a", "e", "D dorian", "Bb major", "F# minor"];

proptest! {
    #[test]
    fn abc_reads_back_as_the_same_melody(
        meter in 0..METERS.len(),
        key in 0..KEYS.len(),
        pickup in 0u64..8,
        events in proptest::collection::vec((proptest::option::weighted(0.85, 48u8..86), 1u64..20), 1..40),
    ) {
        let meter = METERS[meter];
        let m = melody(meter, KEYS[key], pickup, &events);
        let abc = to_abc(&m).unwrap();
        for reach in [Reach::SameOctave, Reach::EveryOctave] {
            let read = read_abc(&abc, reach);
            prop_assert_eq!(read.meter, meter);
            prop_assert_eq!(&read.events, &expected(&m), "{:?}\n{}", reach, abc);
        }
    }
}
