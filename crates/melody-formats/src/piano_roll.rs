//! A piano-roll PNG of a melody: one bar per note, pitch upwards, time to the
//! right, bar lines from the meter.

use std::path::Path;

use esac_parse::{Duration, Melody};
use plotters::prelude::*;

use crate::notation::sounding_notes;

/// `C4` for MIDI 60.
fn pitch_name(midi: i32) -> String {
    const NAMES: [&str; 12] = [
        "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
    ];
    format!(
        "{}{}",
        NAMES[midi.rem_euclid(12) as usize],
        midi.div_euclid(12) - 1
    )
}

fn quarters(d: Duration) -> f64 {
    *d.numer() as f64 / *d.denom() as f64 * 4.0
}

/// Draws `melody` into `path` (PNG, 1000 x 400).
pub fn piano_roll(melody: &Melody, title: &str, path: &Path) -> Result<(), String> {
    let notes: Vec<(u8, f64, f64)> = sounding_notes(melody)
        .iter()
        .map(|n| (n.pitch, quarters(n.onset), quarters(n.onset + n.length)))
        .collect();
    if notes.is_empty() {
        return Err("the melody has no notes".into());
    }
    let low = notes
        .iter()
        .map(|n| n.0)
        .min()
        .unwrap_or(60)
        .saturating_sub(2);
    let high = notes
        .iter()
        .map(|n| n.0)
        .max()
        .unwrap_or(72)
        .saturating_add(2);
    let end = quarters(melody.total_duration()).max(1.0);
    let labels = crate::font_available();
    let root = BitMapBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(15);
    if labels {
        builder
            .caption(title, ("sans-serif", 20))
            .x_label_area_size(35)
            .y_label_area_size(45);
    }
    let mut chart = builder
        .build_cartesian_2d(0f64..end, f64::from(low) - 0.5..f64::from(high) + 0.5)
        .map_err(|e| e.to_string())?;
    let pitch_label = |y: &f64| pitch_name(y.round() as i32);
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh().light_line_style(WHITE.mix(0.0));
    if labels {
        mesh.x_desc("quarter notes")
            .y_desc("pitch")
            .y_labels(usize::from(high - low) + 1)
            .y_label_formatter(&pitch_label);
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(|e| e.to_string())?;
    if let Some(bar) = melody.initial_meter().and_then(|m| m.bar_length()) {
        let bar = quarters(bar);
        let first = quarters(melody.pickup());
        let mut at = if first > 0.0 { first } else { bar };
        while at < end {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(at, f64::from(low) - 0.5), (at, f64::from(high) + 0.5)],
                    BLACK.mix(0.25),
                )))
                .map_err(|e| e.to_string())?;
            at += bar;
        }
    }
    chart
        .draw_series(notes.iter().map(|&(pitch, start, stop)| {
            let y = f64::from(pitch);
            Rectangle::new(
                [(start, y - 0.4), (stop - 0.03, y + 0.4)],
                BLUE.mix(0.8).filled(),
            )
        }))
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
