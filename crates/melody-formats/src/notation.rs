//! What the writers share: pitch spelling, note values, cutting a melody into
//! bars of notatable, tied pieces, and the notes as they sound (ties joined)
//! for MIDI, audio and the piano roll.

use esac_parse::{Duration, Melody, Meter, Pitch, Spelling, Tie};
use thiserror::Error;

/// Why a melody cannot be written as a score.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NotationError {
    #[error("event {event}: duration {duration} is not a sum of plain or dotted note values")]
    NotDyadic { event: usize, duration: Duration },
}

/// A note as it sounds: tied notes of one pitch joined into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoundingNote {
    /// MIDI key number.
    pub pitch: u8,
    pub onset: Duration,
    pub length: Duration,
}

/// The notes of a melody as they sound (grace notes, which take no time, left
/// out): a note tied on from the one just before, at the same pitch, lengthens it.
pub fn sounding_notes(melody: &Melody) -> Vec<SoundingNote> {
    let mut notes: Vec<SoundingNote> = Vec::new();
    let mut onset = Duration::from_integer(0);
    for event in melody.events.iter().filter(|e| !e.grace) {
        if let Pitch::Note(pitch) = event.pitch {
            match notes.last_mut() {
                Some(last)
                    if event.tie.continues_previous()
                        && last.pitch == pitch
                        && last.onset + last.length == onset =>
                {
                    last.length += event.duration;
                }
                _ => notes.push(SoundingNote {
                    pitch,
                    onset,
                    length: event.duration,
                }),
            }
        }
        onset += event.duration;
    }
    notes
}

/// Spells a MIDI pitch for a key signature: sharps in sharp keys and C, flats in
/// flat keys. Returns the spelling and the octave (MIDI 60 = C4).
pub fn spell(midi: u8, fifths: i32) -> (Spelling, i32) {
    let pitch_class = midi % 12;
    let wanted = if fifths < 0 { -1 } else { 1 };
    let spelling = Spelling::of_pitch_class(pitch_class)
        .into_iter()
        .filter(|s| s.alter == 0 || s.alter == wanted)
        .min_by_key(|s| s.alter.abs())
        .expect("a natural or the wanted alteration exists");
    // B# and C-flat would cross the octave; neither is chosen above.
    (spelling, i32::from(midi) / 12 - 1)
}

/// A notatable value: a power of two of a whole note, with dots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoteValue {
    /// `1/4` for a quarter; `2` for a breve.
    pub base: Duration,
    pub dots: u8,
}

impl NoteValue {
    pub fn duration(self) -> Duration {
        match self.dots {
            0 => self.base,
            _ => self.base * Duration::new(3, 2),
        }
    }
}

/// Splits a length into plain or single-dotted values, longest first.
fn note_values(mut rest: Duration) -> Option<Vec<NoteValue>> {
    if !rest.denom().is_power_of_two() {
        return None;
    }
    let mut values = Vec::new();
    while rest > Duration::from_integer(0) {
        let mut base = Duration::from_integer(2);
        while base > rest {
            base /= 2;
        }
        let dotted = base * Duration::new(3, 2);
        let value = if dotted <= rest {
            NoteValue { base, dots: 1 }
        } else {
            NoteValue { base, dots: 0 }
        };
        rest -= value.duration();
        values.push(value);
    }
    Some(values)
}

/// One written note or rest inside a bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub pitch: Pitch,
    pub value: NoteValue,
    /// Tied to the next piece.
    pub tie_start: bool,
    /// Tied from the previous piece.
    pub tie_stop: bool,
}

/// A bar of pieces; number 0 is a pickup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub number: u32,
    pub pieces: Vec<Piece>,
}

/// The meter a score uses: the song's first, or 4/4 for free or unknown meter.
pub fn score_meter(melody: &Melody) -> (u32, u32) {
    match melody.initial_meter() {
        Some(Meter::Regular { beats, unit }) => (beats, unit),
        _ => (4, 4),
    }
}

/// Cuts a melody's sounding events into bars (grace notes are left out), tying
/// notes across bar lines and splitting lengths into notatable values.
pub fn bars(melody: &Melody) -> Result<Vec<Bar>, NotationError> {
    let (beats, unit) = score_meter(melody);
    let bar_length = Duration::new(u64::from(beats), u64::from(unit));
    let pickup = melody.pickup() % bar_length;
    let mut bars = vec![Bar {
        number: if pickup > Duration::from_integer(0) {
            0
        } else {
            1
        },
        pieces: Vec::new(),
    }];
    let mut bar_end = if pickup > Duration::from_integer(0) {
        pickup
    } else {
        bar_length
    };
    let mut onset = Duration::from_integer(0);
    for (index, event) in melody.events.iter().enumerate().filter(|(_, e)| !e.grace) {
        let end = onset + event.duration;
        let mut segments = Vec::new();
        while onset < end {
            if onset >= bar_end {
                let number = bars.last().expect("non-empty").number + 1;
                bars.push(Bar {
                    number,
                    pieces: Vec::new(),
                });
                bar_end += bar_length;
            }
            let segment_end = end.min(bar_end);
            let values = note_values(segment_end - onset).ok_or(NotationError::NotDyadic {
                event: index + 1,
                duration: event.duration,
            })?;
            segments.push((bars.len() - 1, values));
            onset = segment_end;
        }
        let count: usize = segments.iter().map(|(_, v)| v.len()).sum();
        let mut position = 0;
        for (bar, values) in segments {
            for value in values {
                let first = position == 0;
                let last = position + 1 == count;
                let is_note = event.pitch != Pitch::Rest;
                bars[bar].pieces.push(Piece {
                    pitch: event.pitch,
                    value,
                    tie_start: is_note && (!last || matches!(event.tie, Tie::Start | Tie::Middle)),
                    tie_stop: is_note && (!first || event.tie.continues_previous()),
                });
                position += 1;
            }
        }
    }
    Ok(bars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use esac_parse::Event;

    #[test]
    fn tied_notes_sound_as_one() {
        let mut m = Melody::new("t", "t", 1);
        let sixteenths = |n| Duration::new(n, 16);
        for (pitch, length, tie) in [
            (Pitch::Note(60), 2, Tie::Start),
            (Pitch::Note(60), 3, Tie::Middle),
            (Pitch::Note(60), 1, Tie::End),
            // Marked as tied but to another pitch, or after a rest: new notes.
            (Pitch::Note(62), 2, Tie::End),
            (Pitch::Rest, 2, Tie::None),
            (Pitch::Note(62), 4, Tie::End),
        ] {
            let mut event = Event::new(pitch, sixteenths(length));
            event.tie = tie;
            m.events.push(event);
        }
        let mut grace = Event::new(Pitch::Note(64), sixteenths(1));
        grace.grace = true;
        m.events.insert(3, grace);
        let note = |pitch, onset, length| SoundingNote {
            pitch,
            onset: sixteenths(onset),
            length: sixteenths(length),
        };
        assert_eq!(
            sounding_notes(&m),
            [note(60, 0, 6), note(62, 6, 2), note(62, 10, 4)]
        );
    }

    #[test]
    fn spelling_follows_the_key_signature() {
        let name = |midi, fifths| {
            let (s, octave) = spell(midi, fifths);
            format!("{s}{octave}")
        };
        assert_eq!(name(60, 0), "C4");
        assert_eq!(name(61, 0), "C#4");
        assert_eq!(name(61, -2), "Db4");
        assert_eq!(name(70, -1), "Bb4");
        assert_eq!(name(71, -1), "B4");
        assert_eq!(name(45, 3), "A2");
    }

    #[test]
    fn values_split_longest_first() {
        let v = |n, d| note_values(Duration::new(n, d)).unwrap();
        assert_eq!(
            v(3, 8),
            [NoteValue {
                base: Duration::new(1, 4),
                dots: 1
            }]
        );
        assert_eq!(
            v(5, 16),
            [
                NoteValue {
                    base: Duration::new(1, 4),
                    dots: 0
                },
                NoteValue {
                    base: Duration::new(1, 16),
                    dots: 0
                }
            ]
        );
        assert_eq!(v(4, 1).len(), 2);
        assert!(note_values(Duration::new(1, 12)).is_none());
    }

    #[test]
    fn notes_are_tied_across_bar_lines() {
        let mut m = Melody::new("t", "t", 1);
        m.meters.push(esac_parse::MeterChange {
            at_event: 0,
            meter: Meter::Regular { beats: 2, unit: 4 },
        });
        let mut pickup = Event::new(Pitch::Note(60), Duration::new(1, 8));
        pickup.measure = 0;
        m.events.push(pickup);
        m.events
            .push(Event::new(Pitch::Note(62), Duration::new(5, 8)));
        let bars = bars(&m).unwrap();
        assert_eq!(bars.len(), 3);
        assert_eq!(bars[0].number, 0);
        assert_eq!(bars[1].pieces.len(), 1);
        assert!(bars[1].pieces[0].tie_start && !bars[1].pieces[0].tie_stop);
        assert_eq!(bars[2].pieces[0].value.duration(), Duration::new(1, 8));
        assert!(bars[2].pieces[0].tie_stop && !bars[2].pieces[0].tie_start);
    }
}
