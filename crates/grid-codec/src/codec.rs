//! Melody <-> grid tokens, with transposition and filtering.

use esac_parse::{Duration, Event, Key, Melody, Meter, MeterChange, Mode, Pitch, Tie};
use thiserror::Error;

use crate::encoding::Encoding;
use crate::token::Token;

/// Why a song cannot be put on the grid. Each names the event (1-based) at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterReason {
    #[error("event {event}: duration {duration} is not a multiple of {step}")]
    OffGrid {
        event: usize,
        duration: Duration,
        step: Duration,
    },
    #[error("no key is known, so the song cannot be transposed to C major / A minor")]
    NoKey,
    #[error("event {event}: pitch {pitch} moves out of the MIDI range when transposed by {by}")]
    OutOfRange { event: usize, pitch: u8, by: i32 },
    #[error("no sounding event")]
    Empty,
    #[error("no transposition keeps every pitch within MIDI {low}-{high}")]
    OutsideRange { low: u8, high: u8 },
}

impl FilterReason {
    /// The reason without the event it names, for counting like songs together
    /// (an off-grid duration is kept: it tells triplets from other tuplets).
    pub fn kind(&self) -> String {
        match self {
            FilterReason::OffGrid { duration, step, .. } => {
                format!("duration {duration} is not a multiple of {step}")
            }
            FilterReason::NoKey => "no key".into(),
            FilterReason::OutOfRange { .. } => "pitch moves out of the MIDI range".into(),
            FilterReason::Empty => "no sounding event".into(),
            FilterReason::OutsideRange { low, high } => {
                format!("no transposition within MIDI {low}-{high}")
            }
        }
    }
}

/// How songs are transposed before encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Transposition {
    /// Keep the written pitches.
    None,
    /// Move major-like keys to C and minor-like keys to A, as the reference does
    /// (music21's interval from the tonic in octave 4 to C4 or A4).
    #[default]
    ToCMajorAMinor,
    /// Data augmentation: every transposition of the C/A-minor version by -6..=+5
    /// semitones whose pitches all stay within `low..=high`.
    AllKeys { low: u8, high: u8 },
}

/// One encoded version of a song.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Grid tokens without the terminal `.`.
    pub tokens: Vec<Token>,
    /// Semitones the song was moved by.
    pub transposed_by: i32,
    /// Grace notes left out (they take no time on a grid).
    pub dropped_grace_notes: usize,
}

/// Semitones that take a key to C major or A minor the way the reference
/// notebook does: music21's `Interval(tonic, Pitch("C"))` (or `"A"` for minor)
/// with both pitches in octave 4, so majors always move down (F -> C is -5) and
/// minors move by `9 - tonic` (E minor -> A minor is +5).
pub fn reference_transposition(key: Key) -> i32 {
    let tonic = i32::from(key.tonic.pitch_class());
    // The reference compares the written tonic name in octave 4: B# and C-flat
    // are read with their letter's octave, which `pitch_class` folds into 0..12.
    let tonic = match (key.tonic.letter, key.tonic.alter) {
        ('B', a) if a > 0 => tonic + 12,
        ('C', a) if a < 0 => tonic - 12,
        _ => tonic,
    };
    match key.mode {
        Mode::Minor | Mode::Aeolian => 9 - tonic,
        mode if mode.is_minor_like() => 9 - tonic,
        _ => -tonic,
    }
}

/// Moves every note by `by` semitones; the key moves along.
pub fn transpose(melody: &Melody, by: i32) -> Result<Melody, FilterReason> {
    let mut moved = melody.clone();
    for (index, event) in moved.events.iter_mut().enumerate() {
        if let Pitch::Note(pitch) = event.pitch {
            let target = i32::from(pitch) + by;
            event.pitch = Pitch::Note(u8::try_from(target).ok().filter(|p| *p <= 127).ok_or(
                FilterReason::OutOfRange {
                    event: index + 1,
                    pitch,
                    by,
                },
            )?);
        }
    }
    if by != 0 {
        moved.key = moved.key.map(|key| transposed_key(key, by));
        moved.key_signature = moved
            .key
            .and_then(|k| i8::try_from(k.signature_fifths()).ok());
    }
    Ok(moved)
}

/// The key `by` semitones away, spelled with the fewest accidentals.
pub fn transposed_key(key: Key, by: i32) -> Key {
    let pitch_class = (i32::from(key.tonic.pitch_class()) + by).rem_euclid(12) as u8;
    let tonic = esac_parse::Spelling::of_pitch_class(pitch_class)
        .into_iter()
        .min_by_key(|&tonic| {
            Key {
                tonic,
                mode: key.mode,
            }
            .signature_fifths()
            .abs()
        })
        .expect("every pitch class has a spelling");
    Key {
        tonic,
        mode: key.mode,
    }
}

/// Encodes a song on the default grid (1/16) with no transposition.
pub fn encode(melody: &Melody) -> Result<Encoded, FilterReason> {
    encode_on_grid(melody, crate::default_step(), 0)
}

/// Encodes a song with the given step and transposition. Augmentation can yield
/// several versions; the other modes yield one.
pub fn encode_with(melody: &Melody, options: &Encoding) -> Result<Vec<Encoded>, FilterReason> {
    let to_reference = || {
        melody
            .key
            .map(reference_transposition)
            .ok_or(FilterReason::NoKey)
    };
    match options.transposition {
        Transposition::None => Ok(vec![encode_on_grid(melody, options.step, 0)?]),
        Transposition::ToCMajorAMinor => {
            let by = to_reference()?;
            let moved = transpose(melody, by)?;
            Ok(vec![encode_on_grid(&moved, options.step, by)?])
        }
        Transposition::AllKeys { low, high } => {
            let base = to_reference()?;
            // Check the grid once; transposition does not change timing.
            encode_on_grid(melody, options.step, 0)?;
            let mut versions = Vec::new();
            for shift in -6..=5 {
                let by = base + shift;
                let Ok(moved) = transpose(melody, by) else {
                    continue;
                };
                let in_range = moved
                    .events
                    .iter()
                    .filter_map(|e| e.pitch.midi())
                    .all(|p| (low..=high).contains(&p));
                if in_range {
                    versions.push(encode_on_grid(&moved, options.step, by)?);
                }
            }
            if versions.is_empty() {
                return Err(FilterReason::OutsideRange { low, high });
            }
            Ok(versions)
        }
    }
}

fn encode_on_grid(
    melody: &Melody,
    step: Duration,
    transposed_by: i32,
) -> Result<Encoded, FilterReason> {
    let mut tokens = Vec::new();
    let mut dropped_grace_notes = 0;
    let mut previous: Option<Pitch> = None;
    for (index, event) in melody.events.iter().enumerate() {
        if event.grace {
            dropped_grace_notes += 1;
            continue;
        }
        let steps = event.duration / step;
        if !steps.is_integer() || steps.to_integer() == 0 {
            return Err(FilterReason::OffGrid {
                event: index + 1,
                duration: event.duration,
                step,
            });
        }
        let continues = event.tie.continues_previous() && previous == Some(event.pitch);
        if !continues {
            tokens.push(match event.pitch {
                Pitch::Note(n) => Token::Note(n),
                Pitch::Rest => Token::Rest,
            });
        }
        let holds = steps.to_integer() - u64::from(!continues);
        tokens.extend(std::iter::repeat_n(Token::Hold, holds as usize));
        previous = Some(event.pitch);
    }
    if !tokens.iter().any(|t| matches!(t, Token::Note(_))) {
        return Err(FilterReason::Empty);
    }
    Ok(Encoded {
        tokens,
        transposed_by,
        dropped_grace_notes,
    })
}

/// Why tokens do not make a melody.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("token {position}: `_` holds a note, but no note or rest has started yet")]
    HoldWithoutOnset { position: usize },
    #[error("the tokens hold no note or rest")]
    Empty,
}

/// What decoding needs beyond the tokens: the grid and how to lay out bars.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    pub step: Duration,
    /// Meter for bar numbers (none: everything in bar 1).
    pub meter: Option<Meter>,
    /// Length of an incomplete first bar.
    pub pickup: Duration,
    pub key: Option<Key>,
    pub id: String,
    pub title: String,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            step: crate::default_step(),
            meter: None,
            pickup: Duration::from_integer(0),
            key: None,
            id: "generated".into(),
            title: String::new(),
        }
    }
}

/// Turns tokens back into a melody; a terminal `.` ends it. Consecutive holds
/// lengthen the last note or rest; bar numbers follow the meter and pickup,
/// and a note or rest that sounds across a bar line is split there into tied
/// events, as the sources write it (so that the first bar holds exactly the
/// pickup, and encoding gives the same tokens back).
pub fn decode(tokens: &[Token], options: &DecodeOptions) -> Result<Melody, DecodeError> {
    let mut melody = Melody::new(&options.id, "", 0);
    melody.title.clone_from(&options.title);
    melody.key = options.key;
    melody.key_signature = options
        .key
        .and_then(|k| i8::try_from(k.signature_fifths()).ok());
    if let Some(meter) = options.meter {
        melody.meters.push(MeterChange { at_event: 0, meter });
    }
    for (index, token) in tokens.iter().enumerate() {
        match token {
            Token::End => break,
            Token::Hold => match melody.events.last_mut() {
                Some(event) => event.duration += options.step,
                None => {
                    return Err(DecodeError::HoldWithoutOnset {
                        position: index + 1,
                    });
                }
            },
            Token::Note(n) => melody
                .events
                .push(Event::new(Pitch::Note(*n), options.step)),
            Token::Rest => melody.events.push(Event::new(Pitch::Rest, options.step)),
        }
    }
    if melody.events.is_empty() {
        return Err(DecodeError::Empty);
    }
    melody.events = into_bars(melody.events, options.meter, options.pickup);
    Ok(melody)
}

/// Each event with its bar number, 0 inside the pickup, then one per bar;
/// an event crossing a bar line becomes tied events, one per bar it sounds in.
/// Rests are tied too, which no writer shows, so that encoding joins them back.
fn into_bars(events: Vec<Event>, meter: Option<Meter>, pickup: Duration) -> Vec<Event> {
    let zero = Duration::from_integer(0);
    let Some(bar) = meter.and_then(Meter::bar_length) else {
        return events;
    };
    let mut split = Vec::with_capacity(events.len());
    let mut onset = zero;
    let mut bar_end = if pickup > zero { pickup } else { bar };
    let mut measure = u32::from(pickup == zero);
    for event in events {
        let end = onset + event.duration;
        let ties_onward = matches!(event.tie, Tie::Start | Tie::Middle);
        let mut piece = Event { measure, ..event };
        while end > bar_end {
            piece.duration = bar_end - onset;
            piece.tie = piece.tie.with_next();
            split.push(piece);
            // The rest continues this piece and ties on as the event did.
            piece.tie = if ties_onward { Tie::Middle } else { Tie::End };
            onset = bar_end;
            bar_end += bar;
            measure += 1;
            piece.measure = measure;
        }
        piece.duration = end - onset;
        split.push(piece);
        onset = end;
        if onset == bar_end {
            bar_end += bar;
            measure += 1;
        }
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::parse_tokens;
    use esac_parse::Spelling;

    fn key(letter: char, alter: i8, mode: Mode) -> Key {
        Key {
            tonic: Spelling { letter, alter },
            mode,
        }
    }

    #[test]
    fn reference_transposition_matches_music21_octave_4_intervals() {
        assert_eq!(reference_transposition(key('C', 0, Mode::Major)), 0);
        assert_eq!(reference_transposition(key('F', 0, Mode::Major)), -5);
        assert_eq!(reference_transposition(key('G', 0, Mode::Major)), -7);
        assert_eq!(reference_transposition(key('B', -1, Mode::Major)), -10);
        assert_eq!(reference_transposition(key('A', 0, Mode::Minor)), 0);
        assert_eq!(reference_transposition(key('E', 0, Mode::Minor)), 5);
        assert_eq!(reference_transposition(key('G', 0, Mode::Minor)), 2);
        assert_eq!(reference_transposition(key('B', 0, Mode::Minor)), -2);
        assert_eq!(reference_transposition(key('D', 0, Mode::Dorian)), 7);
    }

    fn melody(events: &[(Option<u8>, u64, Tie)]) -> Melody {
        let mut m = Melody::new("t", "t", 1);
        m.key = Some(key('F', 0, Mode::Major));
        for &(pitch, sixteenths, tie) in events {
            let pitch = pitch.map_or(Pitch::Rest, Pitch::Note);
            let mut e = Event::new(pitch, Duration::new(sixteenths, 16));
            e.tie = tie;
            m.events.push(e);
        }
        m
    }

    #[test]
    fn ties_merge_and_rests_hold() {
        let m = melody(&[
            (Some(60), 2, Tie::None),
            (Some(65), 4, Tie::Start),
            (Some(65), 2, Tie::End),
            (None, 3, Tie::None),
            (None, 1, Tie::None),
        ]);
        let e = encode(&m).unwrap();
        assert_eq!(e.tokens, parse_tokens("60 _ 65 _ _ _ _ _ r _ _ r").unwrap());
        let moved = encode_with(&m, &Encoding::default()).unwrap();
        assert_eq!(
            moved[0].tokens,
            parse_tokens("55 _ 60 _ _ _ _ _ r _ _ r").unwrap()
        );
        assert_eq!(moved[0].transposed_by, -5);
    }

    #[test]
    fn off_grid_songs_are_refused_with_the_event() {
        let mut m = melody(&[(Some(60), 4, Tie::None)]);
        m.events
            .push(Event::new(Pitch::Note(62), Duration::new(1, 24)));
        let err = encode(&m).unwrap_err();
        assert_eq!(
            err.to_string(),
            "event 2: duration 1/24 is not a multiple of 1/16"
        );
        let mut m = melody(&[(Some(60), 4, Tie::None)]);
        m.events
            .push(Event::new(Pitch::Note(62), Duration::new(1, 32)));
        assert!(matches!(
            encode(&m),
            Err(FilterReason::OffGrid { event: 2, .. })
        ));
    }

    #[test]
    fn grace_notes_are_dropped_and_counted() {
        let mut m = melody(&[(Some(60), 4, Tie::None)]);
        let mut grace = Event::new(Pitch::Note(62), Duration::new(1, 8));
        grace.grace = true;
        m.events.insert(0, grace);
        let e = encode(&m).unwrap();
        assert_eq!(e.dropped_grace_notes, 1);
        assert_eq!(e.tokens, parse_tokens("60 _ _ _").unwrap());
    }

    #[test]
    fn augmentation_keeps_every_key_in_range() {
        let m = melody(&[(Some(65), 4, Tie::None), (Some(72), 4, Tie::None)]);
        let options = Encoding {
            transposition: Transposition::AllKeys { low: 55, high: 70 },
            ..Default::default()
        };
        let versions = encode_with(&m, &options).unwrap();
        // C-major version is 60/67; shifts -5..=3 keep both within 55..=70.
        let shifts: Vec<i32> = versions.iter().map(|v| v.transposed_by + 5).collect();
        assert_eq!(shifts, (-5..=3).collect::<Vec<_>>());
    }

    #[test]
    fn decode_numbers_bars_from_meter_and_pickup() {
        let tokens = parse_tokens("60 _ 65 _ _ _ _ _ 67 _ _ _ _ _ _ _ r _ .").unwrap();
        let options = DecodeOptions {
            meter: Some(Meter::Regular { beats: 2, unit: 4 }),
            pickup: Duration::new(1, 8),
            ..Default::default()
        };
        let m = decode(&tokens, &options).unwrap();
        let got: Vec<_> = m
            .events
            .iter()
            .map(|e| (e.pitch.midi(), e.duration, e.measure, e.tie))
            .collect();
        // The 67 sounds across the bar line at 5/8: two tied events.
        assert_eq!(
            got,
            [
                (Some(60), Duration::new(1, 8), 0, Tie::None),
                (Some(65), Duration::new(3, 8), 1, Tie::None),
                (Some(67), Duration::new(1, 8), 1, Tie::Start),
                (Some(67), Duration::new(3, 8), 2, Tie::End),
                (None, Duration::new(1, 8), 2, Tie::None),
            ]
        );
    }

    /// An upbeat of two steps whose first note lasts five: the first bar
    /// holds the two steps, not the note (the score's bar lines were three
    /// steps late); a rest and a note across one and two bar lines are tied
    /// pieces too, and all of them encode to the same tokens.
    #[test]
    fn decode_splits_what_crosses_a_bar_line_and_encodes_back() {
        let text = format!(
            "55 _ _ _ _ 59 _ _ _ _ 60 r _ _ _ _ _ _ _ 62{} 60 _",
            " _".repeat(19)
        );
        let tokens = parse_tokens(&text).unwrap();
        let options = DecodeOptions {
            meter: Some(Meter::Regular { beats: 2, unit: 4 }),
            pickup: Duration::new(1, 8),
            ..Default::default()
        };
        let m = decode(&tokens, &options).unwrap();
        assert_eq!(m.pickup(), Duration::new(1, 8));
        let sixteenths = |d: Duration| d * 16;
        let got: Vec<_> = m
            .events
            .iter()
            .map(|e| {
                (
                    e.pitch.midi(),
                    sixteenths(e.duration).to_integer(),
                    e.measure,
                    e.tie,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some(55), 2, 0, Tie::Start),
                (Some(55), 3, 1, Tie::End),
                (Some(59), 5, 1, Tie::None),
                (Some(60), 1, 2, Tie::None),
                (None, 7, 2, Tie::Start),
                (None, 1, 3, Tie::End),
                (Some(62), 7, 3, Tie::Start),
                (Some(62), 8, 4, Tie::Middle),
                (Some(62), 5, 5, Tie::End),
                (Some(60), 2, 5, Tie::None),
            ]
        );
        assert_eq!(encode(&m).unwrap().tokens, tokens);
    }

    #[test]
    fn decode_errors() {
        let tokens = parse_tokens("_ 60").unwrap();
        assert_eq!(
            decode(&tokens, &DecodeOptions::default()).unwrap_err(),
            DecodeError::HoldWithoutOnset { position: 1 }
        );
        assert_eq!(
            decode(&parse_tokens(". 60").unwrap(), &DecodeOptions::default()).unwrap_err(),
            DecodeError::Empty
        );
    }
}
