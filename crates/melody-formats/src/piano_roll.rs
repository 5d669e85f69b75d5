//! A piano-roll PNG of a melody: one bar per note, pitch upwards (spelled in
//! its key), time to the right in bars of its meter, with the bar lines.

use std::path::Path;

use esac_parse::{Duration, Melody};
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::notation::{sounding_notes, spell};
use crate::picture::{PictureError, drawing_failed};

/// At most this many bar numbers on the axis; longer melodies number every
/// second (or fourth, ...) bar, so that the numbers do not run into each other.
const MOST_BAR_NUMBERS: usize = 32;

/// `C4` for MIDI 60, `Bb4` rather than `A#4` in a key with flats.
fn pitch_name(midi: u8, fifths: i32) -> String {
    let (spelling, octave) = spell(midi, fifths);
    let sign = match spelling.alter {
        a if a < 0 => "b".repeat(usize::from(a.unsigned_abs())),
        a => "#".repeat(usize::from(a.unsigned_abs())),
    };
    format!("{}{sign}{octave}", spelling.letter)
}

fn quarters(d: Duration) -> f64 {
    *d.numer() as f64 / *d.denom() as f64 * 4.0
}

/// Where a bar begins, in quarter notes from the start, and its number as the
/// score counts it: an upbeat is bar 0, so the first full bar is 1.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BarStart {
    at: f64,
    number: u32,
}

/// The bars of the melody's opening meter, as the score writes them (see
/// [`crate::notation::bars`]); none in free or unknown meter, where the score's
/// 4/4 is only a way of writing it down.
fn bar_starts(melody: &Melody) -> Vec<BarStart> {
    let Some(bar) = melody.initial_meter().and_then(|m| m.bar_length()) else {
        return Vec::new();
    };
    let end = melody.total_duration();
    let mut at = melody.pickup() % bar;
    let mut starts = Vec::new();
    while at < end {
        starts.push(BarStart {
            at: quarters(at),
            number: starts.len() as u32 + 1,
        });
        at += bar;
    }
    starts
}

/// The positions of the axis' numbers: every bar (or every second, fourth, ...
/// bar of a long melody), or every 4 quarter notes in free meter.
fn ticks(starts: &[BarStart], end: f64) -> Vec<f64> {
    if starts.is_empty() {
        return (0..=end as usize).step_by(4).map(|q| q as f64).collect();
    }
    let every = starts.len().div_ceil(MOST_BAR_NUMBERS).next_power_of_two() as u32;
    starts
        .iter()
        .filter(|s| (s.number - 1) % every == 0)
        .map(|s| s.at)
        .collect()
}

/// The time axis, in quarter notes, numbered by bar where the melody has bars.
struct TimeAxis {
    quarters: RangedCoordf64,
    starts: Vec<BarStart>,
    ticks: Vec<f64>,
}

impl Ranged for TimeAxis {
    type ValueType = f64;
    type FormatOption = NoDefaultFormatting;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.quarters.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.quarters.range()
    }
}

impl ValueFormatter<f64> for TimeAxis {
    fn format_ext(&self, value: &f64) -> String {
        match self.starts.iter().find(|s| s.at == *value) {
            Some(start) => start.number.to_string(),
            None => format!("{value:.0}"),
        }
    }
}

/// Draws `melody` into `path` (PNG, 1000 x 400).
pub fn piano_roll(melody: &Melody, title: &str, path: &Path) -> Result<(), PictureError> {
    let failed = drawing_failed(path);
    let notes: Vec<(u8, f64, f64)> = sounding_notes(melody)
        .iter()
        .map(|n| (n.pitch, quarters(n.onset), quarters(n.onset + n.length)))
        .collect();
    let (Some(low), Some(high)) = (
        notes.iter().map(|n| n.0).min(),
        notes.iter().map(|n| n.0).max(),
    ) else {
        return Err(PictureError::Empty {
            path: path.to_path_buf(),
            what: "the melody has no notes",
        });
    };
    let (low, high) = (low.saturating_sub(2), high.saturating_add(2));
    let (bottom, top) = (f64::from(low) - 0.5, f64::from(high) + 0.5);
    let fifths = i32::from(melody.key_signature.unwrap_or(0));
    let end = quarters(melody.total_duration()).max(1.0);
    let starts = bar_starts(melody);
    let axis = TimeAxis {
        quarters: (0f64..end).into(),
        ticks: ticks(&starts, end),
        starts: starts.clone(),
    };
    let labels = crate::font_available();
    let root = BitMapBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(&failed)?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(15);
    if labels {
        builder
            .caption(title, ("sans-serif", 20))
            .x_label_area_size(35)
            .y_label_area_size(45);
    }
    let mut chart = builder
        .build_cartesian_2d(axis, bottom..top)
        .map_err(&failed)?;
    let pitch_label = |y: &f64| pitch_name(y.round() as u8, fifths);
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh().light_line_style(WHITE.mix(0.0));
    if labels {
        mesh.x_desc(if starts.is_empty() {
            "quarter notes"
        } else {
            "bar"
        })
        .y_desc("pitch")
        .y_labels(usize::from(high - low) + 1)
        .y_label_formatter(&pitch_label);
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(&failed)?;
    chart
        .draw_series(
            starts
                .iter()
                .filter(|s| s.at > 0.0)
                .map(|s| PathElement::new(vec![(s.at, bottom), (s.at, top)], BLACK.mix(0.25))),
        )
        .map_err(&failed)?;
    chart
        .draw_series(notes.iter().map(|&(pitch, start, stop)| {
            let y = f64::from(pitch);
            Rectangle::new(
                [(start, y - 0.4), (stop - 0.03, y + 0.4)],
                BLUE.mix(0.8).filled(),
            )
        }))
        .map_err(&failed)?;
    root.present().map_err(&failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use esac_parse::{Event, Meter, MeterChange, Pitch};

    fn melody(meter: &str, measures_and_sixteenths: &[(u32, u64)]) -> Melody {
        let mut melody = Melody::new("test", "test.krn", 1);
        melody.meters.push(MeterChange {
            at_event: 0,
            meter: Meter::parse(meter).unwrap(),
        });
        for &(measure, sixteenths) in measures_and_sixteenths {
            let mut event = Event::new(Pitch::Note(67), Duration::new(sixteenths, 16));
            event.measure = measure;
            melody.events.push(event);
        }
        melody
    }

    #[test]
    fn bars_start_after_the_upbeat_and_count_from_it() {
        // 6/8 after an upbeat of an eighth: bars of 1.5 quarters from 0.5,
        // and the last bar short by the upbeat, as such songs are written.
        let song = melody("6/8", &[(0, 2), (1, 12), (2, 6), (2, 4)]);
        let starts = bar_starts(&song);
        assert_eq!(
            starts,
            [
                BarStart { at: 0.5, number: 1 },
                BarStart { at: 3.5, number: 2 },
            ]
        );
        // On the downbeat, the first bar starts at 0.
        let song = melody("3/4", &[(1, 12), (2, 12), (3, 4)]);
        let at: Vec<f64> = bar_starts(&song).iter().map(|s| s.at).collect();
        assert_eq!(at, [0.0, 3.0, 6.0]);
    }

    #[test]
    fn free_meter_has_no_bars_and_long_melodies_fewer_numbers() {
        let mut free = melody("4/4", &[(1, 16), (2, 16)]);
        free.meters.clear();
        assert!(bar_starts(&free).is_empty());
        assert_eq!(ticks(&[], 8.0), [0.0, 4.0, 8.0]);

        let long = melody("2/4", &vec![(1, 8); 40]);
        let starts = bar_starts(&long);
        assert_eq!(starts.len(), 40);
        // 40 bars: every second one numbered, 1, 3, ..., 39.
        let numbered = ticks(&starts, 80.0);
        assert_eq!(numbered.len(), 20);
        assert_eq!(numbered[..2], [0.0, 4.0]);
    }

    #[test]
    fn pitches_are_spelled_in_the_key() {
        assert_eq!(pitch_name(60, 0), "C4");
        assert_eq!(pitch_name(70, -1), "Bb4");
        assert_eq!(pitch_name(70, 2), "A#4");
        assert_eq!(pitch_name(66, 1), "F#4");
    }

    #[test]
    fn a_melody_without_notes_is_refused_naming_the_file() {
        let rests = Melody::new("rests", "rests.krn", 1);
        let error = piano_roll(&rests, "rests", Path::new("/tmp/rests.png")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/tmp/rests.png: nothing to draw: the melody has no notes"
        );
    }
}
