//! Standard MIDI files (via `midly`): write a melody, read notes back.

use esac_parse::{Duration, Melody};
use midly::num::{u4, u7, u15, u24, u28};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
use thiserror::Error;

use crate::notation::sounding_notes;

#[derive(Debug, Error)]
pub enum MidiError {
    #[error("not a readable MIDI file: {0}")]
    Read(#[from] midly::Error),
    #[error("cannot write MIDI: {0}")]
    Write(#[from] std::io::Error),
    #[error("MIDI files with SMPTE timing are not supported")]
    SmpteTiming,
}

/// How a melody sounds when written to MIDI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MidiOptions {
    /// Quarter notes per minute when the melody gives none.
    pub default_tempo_qpm: f64,
    pub ticks_per_quarter: u16,
    pub velocity: u8,
    /// General MIDI program (0 = acoustic grand piano).
    pub program: u8,
}

impl Default for MidiOptions {
    fn default() -> Self {
        Self {
            default_tempo_qpm: 100.0,
            ticks_per_quarter: 480,
            velocity: 90,
            program: 0,
        }
    }
}

/// A sounding note read from a MIDI file, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MidiNote {
    pub pitch: u8,
    pub start: u64,
    pub length: u64,
}

/// Writes a one-track (format 0) MIDI file: tempo, time and key signature, then
/// the notes (tied notes sound as one; rests are silence; grace notes are left out).
pub fn to_midi(melody: &Melody, options: &MidiOptions) -> Result<Vec<u8>, MidiError> {
    let tpq = u64::from(options.ticks_per_quarter);
    let ticks =
        |at: Duration| -> u64 { (at * Duration::from_integer(4 * tpq)).round().to_integer() };
    let tempo = melody
        .tempo_qpm
        .unwrap_or(options.default_tempo_qpm)
        .max(1.0);
    let mut timed: Vec<(u64, TrackEventKind<'_>)> = Vec::new();
    if !melody.title.is_empty() {
        timed.push((
            0,
            TrackEventKind::Meta(MetaMessage::TrackName(melody.title.as_bytes())),
        ));
    }
    for remark in &melody.remarks {
        timed.push((
            0,
            TrackEventKind::Meta(MetaMessage::Text(remark.as_bytes())),
        ));
    }
    timed.push((
        0,
        TrackEventKind::Meta(MetaMessage::Tempo(u24::new((60_000_000.0 / tempo) as u32))),
    ));
    if let Some((beats, unit)) = melody.initial_meter().and_then(|m| match m {
        esac_parse::Meter::Regular { beats, unit } => Some((beats, unit)),
        esac_parse::Meter::Free => None,
    }) && unit.is_power_of_two()
    {
        timed.push((
            0,
            TrackEventKind::Meta(MetaMessage::TimeSignature(
                beats.min(255) as u8,
                unit.trailing_zeros() as u8,
                24,
                8,
            )),
        ));
    }
    if let Some(fifths) = melody.key_signature {
        let minor = melody.key.is_some_and(|k| k.mode.is_minor_like());
        timed.push((
            0,
            TrackEventKind::Meta(MetaMessage::KeySignature(fifths, minor)),
        ));
    }
    let channel = u4::new(0);
    timed.push((
        0,
        TrackEventKind::Midi {
            channel,
            message: MidiMessage::ProgramChange {
                program: u7::new(options.program.min(127)),
            },
        },
    ));
    let velocity = u7::new(options.velocity.clamp(1, 127));
    for note in sounding_notes(melody) {
        let key = u7::new(note.pitch);
        let (start, end) = (note.onset, note.onset + note.length);
        timed.push((
            ticks(start),
            TrackEventKind::Midi {
                channel,
                message: MidiMessage::NoteOn { key, vel: velocity },
            },
        ));
        timed.push((
            ticks(end),
            TrackEventKind::Midi {
                channel,
                message: MidiMessage::NoteOff {
                    key,
                    vel: u7::new(0),
                },
            },
        ));
    }
    // At one tick: set-up first, then note-offs, then note-ons, so that repeated
    // pitches end before they start again.
    timed.sort_by_key(|(tick, kind)| (*tick, order_at_same_tick(kind)));
    let end = ticks(melody.total_duration());
    let mut track = Vec::with_capacity(timed.len() + 1);
    let mut last = 0;
    for (tick, kind) in timed {
        track.push(TrackEvent {
            delta: u28::new((tick - last) as u32),
            kind,
        });
        last = tick;
    }
    track.push(TrackEvent {
        delta: u28::new(end.saturating_sub(last) as u32),
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });
    let smf = Smf {
        header: Header::new(
            Format::SingleTrack,
            Timing::Metrical(u15::new(options.ticks_per_quarter)),
        ),
        tracks: vec![track],
    };
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes)?;
    Ok(bytes)
}

fn order_at_same_tick(kind: &TrackEventKind<'_>) -> u8 {
    match kind {
        TrackEventKind::Midi {
            message: MidiMessage::NoteOff { .. },
            ..
        } => 1,
        TrackEventKind::Midi {
            message: MidiMessage::NoteOn { .. },
            ..
        } => 2,
        _ => 0,
    }
}

/// Reads the notes of every track back, sorted by start; also returns ticks per quarter.
pub fn read_notes(bytes: &[u8]) -> Result<(u16, Vec<MidiNote>), MidiError> {
    let smf = Smf::parse(bytes)?;
    let Timing::Metrical(tpq) = smf.header.timing else {
        return Err(MidiError::SmpteTiming);
    };
    let mut notes = Vec::new();
    for track in &smf.tracks {
        let mut now = 0u64;
        let mut open: [Option<u64>; 128] = [None; 128];
        for event in track {
            now += u64::from(event.delta.as_int());
            if let TrackEventKind::Midi { message, .. } = event.kind {
                match message {
                    MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                        open[usize::from(key.as_int())] = Some(now);
                    }
                    MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                        if let Some(start) = open[usize::from(key.as_int())].take() {
                            notes.push(MidiNote {
                                pitch: key.as_int(),
                                start,
                                length: now - start,
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    notes.sort_by_key(|n| (n.start, n.pitch));
    Ok((tpq.as_int(), notes))
}
