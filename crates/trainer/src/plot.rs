//! The loss curve as a PNG (plotters): training loss and whole-song validation
//! NLL against updates.
//!
//! Text needs a font file; a common system sans-serif font is used when one is
//! found, otherwise the curve is drawn without labels (and a warning is logged).

use std::path::Path;

use plotters::prelude::*;

use crate::logs::MetricRow;

/// Draws training and validation loss per update into `path` (PNG, 900 x 540).
pub fn loss_curve(rows: &[MetricRow], title: &str, path: &Path) -> Result<(), String> {
    if rows.is_empty() {
        return Err("no evaluations to plot yet".into());
    }
    let labels = melody_formats::font_available();
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let max_step = rows.iter().map(|r| r.step).max().unwrap_or(1).max(1) as f64;
    let values = rows
        .iter()
        .flat_map(|r| [r.train_loss, r.val_nll])
        .filter(|v| v.is_finite());
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let margin = ((high - low) * 0.08).max(0.01);
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if labels {
        builder
            .caption(title, ("sans-serif", 24))
            .x_label_area_size(45)
            .y_label_area_size(60);
    }
    let mut chart = builder
        .build_cartesian_2d(0f64..max_step, (low - margin)..(high + margin))
        .map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    if labels {
        mesh.x_desc("updates").y_desc("nats per token");
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(|e| e.to_string())?;
    let series = [
        (
            "training loss (windows)",
            BLUE,
            rows.iter()
                .map(|r| (r.step as f64, r.train_loss))
                .collect::<Vec<_>>(),
        ),
        (
            "validation NLL (whole songs)",
            RED,
            rows.iter().map(|r| (r.step as f64, r.val_nll)).collect(),
        ),
    ];
    for (name, color, points) in series {
        let drawn = chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        if labels {
            drawn.label(name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    if labels {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png() {
        let rows: Vec<MetricRow> = (1..=5)
            .map(|i| MetricRow {
                step: i * 10,
                epoch: 0,
                train_loss: 2.0 / i as f64,
                val_nll: 1.8 / i as f64 + 0.1,
                lr: 1e-3,
                grad_norm: 0.5,
                tokens_per_s: 1000.0,
                elapsed_s: i as f64,
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.png");
        loss_curve(&rows, "test", &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(loss_curve(&[], "empty", &path).is_err());
    }
}
