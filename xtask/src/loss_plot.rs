//! What `train` shows while it runs: a progress bar, and the loss curve as a
//! PNG (plotters: training loss and whole-song validation NLL against updates),
//! redrawn after each evaluation.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use melody_formats::PictureError;
use plotters::prelude::*;
use trainer::Evaluation;
use trainer::logs::MetricRow;
use trainer::observe::{Observer, StepReport};

/// `loss.png` in the run folder.
pub struct LossPlot {
    pub path: PathBuf,
    pub title: String,
}

impl Observer for LossPlot {
    fn evaluated(
        &mut self,
        rows: &[MetricRow],
        _: &Evaluation,
        _: f64,
    ) -> Result<(), trainer::TrainError> {
        // A picture that cannot be drawn is no reason to stop training.
        if let Err(error) = loss_curve(rows, &self.title, &self.path) {
            tracing::warn!("{error}");
        }
        Ok(())
    }
}

/// The progress bar: what is trained on, steps, epoch, ETA, the loss and
/// tokens/s, then the validation NLL.
pub struct Progress {
    bar: ProgressBar,
    epochs: usize,
    epoch: usize,
}

impl Progress {
    /// `data` says what is trained on (`erk`, `28 collections`).
    pub fn new(hidden: bool, data: String, epochs: usize) -> Self {
        let bar = if hidden {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_prefix(data);
        Self {
            bar,
            epochs,
            epoch: 0,
        }
    }
}

impl Observer for Progress {
    fn conditions_withheld(&mut self, withheld: usize, songs: usize) {
        self.bar.suspend(|| {
            eprintln!("mode and style withheld from {withheld} of {songs} training songs")
        });
    }

    fn start(&mut self, step: usize, total_steps: usize) -> Result<(), trainer::TrainError> {
        self.bar.set_length(total_steps as u64);
        self.bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {elapsed_precise} [{bar:30}] {pos}/{len} steps, ETA {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.bar.set_position(step as u64);
        Ok(())
    }

    fn update(&mut self, step: usize) {
        self.bar.set_position(step as u64);
    }

    fn report(&mut self, r: &StepReport) -> Result<(), trainer::TrainError> {
        self.epoch = r.epoch;
        self.bar.set_message(format!(
            "epoch {}/{}, loss {:.3}, {:.0} tok/s",
            r.epoch + 1,
            self.epochs,
            r.mean_loss,
            r.tokens_per_s
        ));
        Ok(())
    }

    fn evaluated(
        &mut self,
        _: &[MetricRow],
        val: &Evaluation,
        best: f64,
    ) -> Result<(), trainer::TrainError> {
        self.bar.set_message(format!(
            "epoch {}/{}, val {:.4} (best {best:.4})",
            self.epoch + 1,
            self.epochs,
            val.nll_per_token
        ));
        Ok(())
    }

    fn end(&mut self, finished: bool) {
        if finished {
            self.bar.finish_and_clear();
        } else {
            self.bar.abandon();
        }
    }
}

/// Draws training and validation loss per update into `path` (PNG, 900 x 540).
pub fn loss_curve(rows: &[MetricRow], title: &str, path: &Path) -> Result<(), PictureError> {
    if rows.is_empty() {
        return Err(PictureError::Empty {
            path: path.to_path_buf(),
            what: "no evaluations yet",
        });
    }
    let failed = melody_formats::drawing_failed(path);
    let labels = melody_formats::font_available();
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(&failed)?;
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
        .map_err(&failed)?;
    let mut mesh = chart.configure_mesh();
    if labels {
        mesh.x_desc("updates").y_desc("nats per token");
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(&failed)?;
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
            .map_err(&failed)?;
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
            .map_err(&failed)?;
    }
    root.present().map_err(&failed)
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
        assert!(matches!(
            loss_curve(&[], "empty", &path),
            Err(PictureError::Empty { .. })
        ));
    }
}
