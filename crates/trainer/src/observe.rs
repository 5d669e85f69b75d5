//! What the training loop tells whoever watches it. The loop itself shows and
//! draws nothing: the CLI attaches observers (a progress bar, the loss curve),
//! and the run's logs are observers here too: `metrics.csv` ([`MetricsCsv`])
//! and TensorBoard event files ([`TensorBoard`]).

use std::path::{Path, PathBuf};

use crate::eval::Evaluation;
use crate::logs::{EventWriter, MetricRow, write_metrics_csv};
use crate::train::TrainError;

/// A few updates' worth of training, reported every [`REPORT_EVERY`] updates.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    pub step: usize,
    /// The epoch under way, from 0.
    pub epoch: usize,
    /// The last update's loss.
    pub loss: f64,
    /// Mean loss since the last evaluation.
    pub mean_loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
}

/// Updates between two [`StepReport`]s.
pub const REPORT_EVERY: usize = 10;

/// Hooks into the training loop; each does nothing unless implemented. An
/// error ends training (the last checkpoint stays).
pub trait Observer {
    /// Before training, when `TrainConfig::condition_dropout` withheld mode
    /// and style from `withheld` of the `songs` training songs.
    fn conditions_withheld(&mut self, _withheld: usize, _songs: usize) {}
    /// Before the first update: where training starts and how far it goes.
    fn start(&mut self, _step: usize, _total_steps: usize) -> Result<(), TrainError> {
        Ok(())
    }
    /// After every update.
    fn update(&mut self, _step: usize) {}
    /// Every [`REPORT_EVERY`] updates.
    fn report(&mut self, _report: &StepReport) -> Result<(), TrainError> {
        Ok(())
    }
    /// After each validation, with every evaluation so far (the last is this
    /// one) and the best validation NLL.
    fn evaluated(
        &mut self,
        _rows: &[MetricRow],
        _val: &Evaluation,
        _best: f64,
    ) -> Result<(), TrainError> {
        Ok(())
    }
    /// The best model's whole-song test scores, at the end.
    fn tested(&mut self, _step: usize, _test: &Evaluation) -> Result<(), TrainError> {
        Ok(())
    }
    /// Training ended, well (`true`) or with an error.
    fn end(&mut self, _finished: bool) {}
}

/// `metrics.csv` in the run folder, rewritten after each evaluation.
pub struct MetricsCsv {
    path: PathBuf,
}

impl MetricsCsv {
    pub fn new(run_dir: &Path) -> Self {
        Self {
            path: run_dir.join("metrics.csv"),
        }
    }
}

impl Observer for MetricsCsv {
    fn evaluated(&mut self, rows: &[MetricRow], _: &Evaluation, _: f64) -> Result<(), TrainError> {
        write_metrics_csv(&self.path, rows).map_err(|source| TrainError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// TensorBoard scalars (`tensorboard --logdir runs`): training loss, learning
/// rate, gradient norm and tokens/s, validation and test NLL and accuracy. A
/// new event file each time training starts or resumes.
pub struct TensorBoard {
    dir: PathBuf,
    events: Option<EventWriter>,
}

impl TensorBoard {
    pub fn new(run_dir: &Path) -> Self {
        Self {
            dir: run_dir.to_owned(),
            events: None,
        }
    }

    fn write(&mut self, step: usize, values: &[(&str, f64)]) -> Result<(), TrainError> {
        let Some(events) = self.events.as_mut() else {
            return Ok(());
        };
        events
            .scalars(step as u64, values)
            .map_err(|source| TrainError::Io {
                path: events.path.clone(),
                source,
            })
    }

    fn scores(&mut self, split: &str, step: usize, scores: &Evaluation) -> Result<(), TrainError> {
        let nll = format!("{split}/nll_per_token");
        let accuracy = format!("{split}/accuracy");
        self.write(
            step,
            &[
                (nll.as_str(), scores.nll_per_token),
                (accuracy.as_str(), scores.accuracy),
            ],
        )
    }
}

impl Observer for TensorBoard {
    fn start(&mut self, _: usize, _: usize) -> Result<(), TrainError> {
        let events = EventWriter::create(&self.dir).map_err(|source| TrainError::Io {
            path: self.dir.clone(),
            source,
        })?;
        self.events = Some(events);
        Ok(())
    }

    fn report(&mut self, r: &StepReport) -> Result<(), TrainError> {
        self.write(
            r.step,
            &[
                ("train/loss", r.loss),
                ("train/lr", r.lr),
                ("train/grad_norm", r.grad_norm),
                ("train/tokens_per_s", r.tokens_per_s),
            ],
        )
    }

    fn evaluated(
        &mut self,
        rows: &[MetricRow],
        val: &Evaluation,
        _: f64,
    ) -> Result<(), TrainError> {
        let step = rows.last().map_or(0, |r| r.step);
        self.scores("val", step, val)
    }

    fn tested(&mut self, step: usize, test: &Evaluation) -> Result<(), TrainError> {
        self.scores("test", step, test)
    }
}
