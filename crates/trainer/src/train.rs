//! The training loop: next-token loss at every position (or, for comparison,
//! only the last as the reference did), Adam, clipping, a schedule, evaluation
//! at an interval, early stopping, atomic checkpoints and exact `--resume`.
//!
//! A run folder holds `model.safetensors` + `config.json` (the best-validation
//! weights, loadable by `lstm_candle::load_checkpoint`), `tokenizer.json`,
//! `state/` (latest weights, optimizer moments and progress: what `--resume`
//! reads), `metrics.csv`, `metrics.json`, TensorBoard events and `model.dot`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use grid_codec::{Conditioning, Encoding};
use lstm_candle::checkpoint::{read_safetensors, tensors_to_safetensors};
use lstm_candle::{
    CheckpointError, Dropout, LayerState, LstmState, MelodyModel, ModelConfig, ModelError,
    SideInput, load_checkpoint, save_checkpoint,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::data::{
    Dataset, SplitSizes, Track, TrainBatch, Windows, epoch_lanes, epoch_song_batches, epoch_windows,
};
use crate::eval::{Evaluation, evaluate, evaluate_test};
use crate::logs::{MetricRow, model_dot};
use crate::observe::{Observer, REPORT_EVERY, StepReport};
use crate::optim::{Adam, AdamConfig, Schedule, learning_rate};
use crate::prepare::write_atomic;

/// Which positions of a window are trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Next-token loss at every position (teacher forcing).
    All,
    /// Only the last position, as the reference notebook did.
    Last,
}

/// What is trained, in words: "loss at every position".
impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Objective::All => "loss at every position",
            Objective::Last => "loss at the last position",
        })
    }
}

/// Every hyper-parameter of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Embedding width; `None` = vocabulary size, as in the reference.
    pub embedding_dim: Option<usize>,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub dropout: f64,
    pub batch_size: usize,
    pub seq_len: usize,
    pub lr: f64,
    pub schedule: Schedule,
    pub warmup_steps: usize,
    pub epochs: usize,
    /// Stop after this many updates even if epochs remain.
    pub max_steps: Option<usize>,
    /// Clip the global gradient norm to this.
    pub clip_norm: Option<f64>,
    pub weight_decay: f64,
    pub objective: Objective,
    /// Whole songs or fixed windows from the stream (`seq_len` applies to windows).
    pub windows: Windows,
    /// Evaluate (and checkpoint) every this many updates, at each epoch's end,
    /// and at the end.
    pub eval_every: usize,
    /// Stop when validation has not improved for this many evaluations.
    pub patience: Option<usize>,
    pub seed: u64,
    /// Share of the training songs read with their mode and style withheld
    /// (see [`crate::Dataset::withhold_conditions`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub condition_dropout: f64,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

impl TrainConfig {
    /// The reference notebook's recipe: its model and optimiser, last-position
    /// objective, 10 epochs, constant learning rate.
    pub const fn reference() -> Self {
        Self {
            embedding_dim: None,
            hidden_size: 128,
            num_layers: 1,
            dropout: 0.2,
            batch_size: 64,
            seq_len: 64,
            lr: 1e-3,
            schedule: Schedule::Constant,
            warmup_steps: 0,
            epochs: 10,
            max_steps: None,
            clip_norm: None,
            weight_decay: 0.0,
            objective: Objective::Last,
            windows: Windows::Stream,
            eval_every: 1000,
            patience: None,
            seed: 42,
            condition_dropout: 0.0,
        }
    }

    /// Refuses settings that cannot train, naming what is wrong.
    pub fn validate(&self) -> Result<(), TrainError> {
        let zero: Vec<&str> = [
            ("batch size", Some(self.batch_size)),
            ("sequence length", Some(self.seq_len)),
            ("eval interval", Some(self.eval_every)),
            ("hidden size", Some(self.hidden_size)),
            ("layer count", Some(self.num_layers)),
            ("embedding width", self.embedding_dim),
            ("epochs", Some(self.epochs)),
            ("step limit", self.max_steps),
        ]
        .into_iter()
        .filter(|(_, value)| *value == Some(0))
        .map(|(name, _)| name)
        .collect();
        if let Some((last, others)) = zero.split_last() {
            let named = match others {
                [] => last.to_string(),
                _ => format!("{} and {last}", others.join(", ")),
            };
            return Err(TrainError::Config(format!(
                "{named} must be positive, not 0: nothing would be trained"
            )));
        }
        if self.objective == Objective::Last && self.windows != Windows::Stream {
            return Err(TrainError::Config(
                "the last-position objective trains on windows cut from the stream of songs, not on lanes or whole songs".into(),
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(TrainError::Config(format!(
                "learning rate {} must be positive",
                self.lr
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(TrainError::Config(format!(
                "dropout {} must be in [0, 1)",
                self.dropout
            )));
        }
        if !(0.0..1.0).contains(&self.condition_dropout) {
            return Err(TrainError::Config(format!(
                "condition dropout {} must be in [0, 1)",
                self.condition_dropout
            )));
        }
        Ok(())
    }

    /// The model for a vocabulary, reading the side inputs of `conditioning`.
    pub fn model_config(
        &self,
        vocab_size: usize,
        conditioning: Option<&Conditioning>,
    ) -> ModelConfig {
        ModelConfig {
            vocab_size,
            embedding_dim: self.embedding_dim.unwrap_or(vocab_size),
            hidden_size: self.hidden_size,
            num_layers: self.num_layers,
            dropout: self.dropout,
            side_inputs: conditioning.map_or_else(Vec::new, |c| {
                c.inputs()
                    .into_iter()
                    .map(|(name, size)| SideInput { name, size })
                    .collect()
            }),
        }
    }
}

/// Which data a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub source: String,
    pub fingerprint: String,
    /// Written as `train_songs`, `val_songs`, `test_songs`, `train_tokens`.
    #[serde(flatten)]
    pub split: SplitSizes,
}

impl DatasetInfo {
    /// What a run records of `dataset`, read from `source`.
    pub fn of(dataset: &Dataset, source: &str) -> Self {
        Self {
            source: source.to_owned(),
            fingerprint: dataset.fingerprint.clone(),
            split: dataset.split_sizes(),
        }
    }
}

/// Final scores of a run, also written to `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalMetrics {
    pub test: Evaluation,
    /// Test scores of each collection's own test songs, when there are several.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub test_per_collection: std::collections::BTreeMap<String, Evaluation>,
    pub best_val_nll: f64,
    pub steps: usize,
    pub epochs_completed: f64,
    pub train_seconds: f64,
    pub tokens_per_s: f64,
    pub stopped_early: bool,
}

/// `config.json` of a run: the model's configuration (what `load_checkpoint`
/// reads) plus everything else about the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(flatten)]
    pub model: ModelConfig,
    /// How the training songs were encoded; what sampling and judging read.
    /// Configs written before it was stored used the reference's.
    #[serde(default)]
    pub encoding: Encoding,
    pub training: TrainConfig,
    pub dataset: DatasetInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<FinalMetrics>,
    /// The model whose weights the run started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<String>,
    /// The values of the side inputs (meter, mode, style, bar position, bars
    /// left) when the model reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditioning: Option<Conditioning>,
}

/// Progress saved with each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Progress {
    step: usize,
    epoch: usize,
    batch_in_epoch: usize,
    best_val: Option<f64>,
    evals_since_best: usize,
    rows: Vec<MetricRow>,
    train_seconds: f64,
    tokens_seen: u64,
}

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Folder(#[from] model_folder::FolderError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the loss became {loss} at step {step}; training stopped and the last good checkpoint in {checkpoint} was kept (a lower learning rate or gradient clipping may help)"
    )]
    NonFinite {
        step: usize,
        loss: f64,
        checkpoint: PathBuf,
    },
    #[error("cannot resume {run}: {reason}")]
    Resume { run: PathBuf, reason: String },
    #[error(
        "cannot resume {0}: its hyper-parameters differ from these (only the epoch count, the step limit and the patience may change)"
    )]
    ResumeChanged(PathBuf),
    #[error("{0} already holds a run")]
    RunExists(PathBuf),
    #[error("bad training configuration: {0}")]
    Config(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How to run, beyond the hyper-parameters.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub resume: bool,
    /// Weights to start from instead of a fresh initialisation (not on resume).
    pub init: Option<crate::init::Init>,
    pub device: Device,
    /// Threads that share each batch (data parallel).
    pub threads: usize,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub run_dir: PathBuf,
    pub metrics: FinalMetrics,
}

const STATE_DIR: &str = "state";

/// Trains a model on `dataset` into `run_dir`, telling `observers` as it goes.
pub fn train(
    dataset: &Dataset,
    data_source: &str,
    config: &TrainConfig,
    run_dir: &Path,
    options: &RunOptions,
    observers: &mut [&mut dyn Observer],
) -> Result<TrainOutcome, TrainError> {
    let outcome = run(dataset, data_source, config, run_dir, options, observers);
    for observer in observers.iter_mut() {
        observer.end(outcome.is_ok());
    }
    outcome
}

fn run(
    dataset: &Dataset,
    data_source: &str,
    config: &TrainConfig,
    run_dir: &Path,
    options: &RunOptions,
    observers: &mut [&mut dyn Observer],
) -> Result<TrainOutcome, TrainError> {
    config.validate()?;
    let withholding;
    let dataset = if config.condition_dropout > 0.0 {
        if dataset.conditioning.is_none() {
            return Err(TrainError::Config(
                "condition dropout withholds conditions, so the songs need them (Dataset::condition)"
                    .into(),
            ));
        }
        let mut copy = dataset.clone();
        let withheld = copy.withhold_conditions(config.condition_dropout, config.seed);
        for observer in observers.iter_mut() {
            observer.conditions_withheld(withheld, copy.train.len());
        }
        withholding = copy;
        &withholding
    } else {
        dataset
    };
    let model_config = config.model_config(dataset.vocabulary.len(), dataset.conditioning.as_ref());
    let run_config = RunConfig {
        model: model_config.clone(),
        encoding: dataset.encoding,
        training: config.clone(),
        dataset: DatasetInfo::of(dataset, data_source),
        metrics: None,
        init_from: options.init.as_ref().map(|init| init.source.clone()),
        conditioning: dataset.conditioning.clone(),
    };
    let state_dir = run_dir.join(STATE_DIR);
    let (model, mut adam, mut progress, mut carry) = if options.resume {
        resume(run_dir, &run_config, &options.device)?
    } else {
        if state_dir.exists() || run_dir.join("config.json").exists() {
            return Err(TrainError::RunExists(run_dir.to_owned()));
        }
        let model = MelodyModel::new(
            model_config.clone(),
            &options.device,
            DType::F32,
            config.seed,
        )?;
        if let Some(init) = &options.init {
            let new_tokens = init.apply(&model, &dataset.vocabulary)?;
            tracing::info!("started from {} ({new_tokens} new tokens)", init.source);
        }
        let adam = Adam::new(model.parameters(), adam_config(config))?;
        let progress = Progress {
            step: 0,
            epoch: 0,
            batch_in_epoch: 0,
            best_val: None,
            evals_since_best: 0,
            rows: Vec::new(),
            train_seconds: 0.0,
            tokens_seen: 0,
        };
        (model, adam, progress, None)
    };
    fs::create_dir_all(run_dir).map_err(io(run_dir))?;
    let dot_path = run_dir.join("model.dot");
    write_atomic(&dot_path, model_dot(&model_config).as_bytes()).map_err(io(&dot_path))?;
    if !options.resume {
        // A first checkpoint before any update: a run killed or diverging early
        // still has a good state to resume from.
        save_state(
            run_dir,
            &model,
            &adam,
            &progress,
            carry.as_ref(),
            &run_config,
        )?;
    }
    let batches_per_epoch = EpochPlan::new(dataset, config, 0).len();
    let total_steps = config
        .max_steps
        .unwrap_or(usize::MAX)
        .min(config.epochs * batches_per_epoch);
    for observer in observers.iter_mut() {
        observer.start(progress.step, total_steps)?;
    }

    let started = Instant::now() - std::time::Duration::from_secs_f64(progress.train_seconds);
    let mut loss_sum = 0f64;
    let mut loss_count = 0usize;
    let mut interval_start = (Instant::now(), progress.tokens_seen);
    let mut stopped_early = false;
    'epochs: while progress.step < total_steps {
        let plan = EpochPlan::new(dataset, config, progress.epoch as u64);
        while progress.batch_in_epoch < plan.len() {
            if progress.step >= total_steps {
                break 'epochs;
            }
            let batch = plan.batch(dataset, config, progress.batch_in_epoch);
            let dropout_seed = config.seed.wrapping_add(1)
                ^ (progress.step as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
            let initial = if progress.batch_in_epoch == 0 {
                None
            } else {
                carry.as_ref()
            };
            let (loss_value, grads, last) =
                batch_gradients(&model, &batch, initial, dropout_seed, options.threads)?;
            carry = plan.carries_state().then_some(last);
            if !loss_value.is_finite() {
                return Err(TrainError::NonFinite {
                    step: progress.step,
                    loss: loss_value,
                    checkpoint: state_dir,
                });
            }
            let grad_norm = adam.grad_norm(&grads)?;
            let scale = match config.clip_norm {
                Some(max) if grad_norm > max => max / grad_norm,
                _ => 1.0,
            };
            let lr = learning_rate(
                config.lr,
                config.schedule,
                config.warmup_steps,
                progress.step,
                total_steps,
            );
            adam.step(&grads, lr, scale)?;
            progress.step += 1;
            progress.batch_in_epoch += 1;
            progress.tokens_seen += batch.positions() as u64;
            loss_sum += loss_value;
            loss_count += 1;
            for observer in observers.iter_mut() {
                observer.update(progress.step);
            }
            if progress.step % REPORT_EVERY == 0 {
                let elapsed = interval_start.0.elapsed().as_secs_f64().max(1e-9);
                let report = StepReport {
                    step: progress.step,
                    epoch: progress.epoch,
                    loss: loss_value,
                    mean_loss: loss_sum / loss_count as f64,
                    lr,
                    grad_norm,
                    tokens_per_s: (progress.tokens_seen - interval_start.1) as f64 / elapsed,
                };
                for observer in observers.iter_mut() {
                    observer.report(&report)?;
                }
            }
            let last_step = progress.step >= total_steps;
            let epoch_end = progress.batch_in_epoch == plan.len();
            if progress.step % config.eval_every == 0 || last_step || epoch_end {
                let val = evaluate(&model, &dataset.val, 32, options.threads)?;
                // An update can blow the weights up without the training loss
                // showing it yet: never checkpoint a model that scores non-finite.
                if !val.nll_per_token.is_finite() {
                    return Err(TrainError::NonFinite {
                        step: progress.step,
                        loss: val.nll_per_token,
                        checkpoint: state_dir,
                    });
                }
                let elapsed = interval_start.0.elapsed().as_secs_f64().max(1e-9);
                let row = MetricRow {
                    step: progress.step,
                    epoch: progress.epoch,
                    train_loss: loss_sum / loss_count.max(1) as f64,
                    val_nll: val.nll_per_token,
                    lr,
                    grad_norm,
                    tokens_per_s: (progress.tokens_seen - interval_start.1) as f64 / elapsed,
                    elapsed_s: started.elapsed().as_secs_f64(),
                };
                tracing::info!(
                    step = row.step,
                    train_loss = row.train_loss,
                    val_nll = row.val_nll,
                    "evaluation"
                );
                progress.rows.push(row);
                loss_sum = 0.0;
                loss_count = 0;
                let improved = progress
                    .best_val
                    .is_none_or(|best| val.nll_per_token < best);
                if improved {
                    progress.best_val = Some(val.nll_per_token);
                    progress.evals_since_best = 0;
                    model_folder::write_model(run_dir, &model, &dataset.vocabulary, &run_config)?;
                } else {
                    progress.evals_since_best += 1;
                }
                progress.train_seconds = started.elapsed().as_secs_f64();
                save_state(
                    run_dir,
                    &model,
                    &adam,
                    &progress,
                    carry.as_ref(),
                    &run_config,
                )?;
                let best = progress.best_val.unwrap_or(f64::NAN);
                for observer in observers.iter_mut() {
                    observer.evaluated(&progress.rows, &val, best)?;
                }
                interval_start = (Instant::now(), progress.tokens_seen);
                if config
                    .patience
                    .is_some_and(|p| progress.evals_since_best >= p)
                {
                    stopped_early = true;
                    break 'epochs;
                }
            }
        }
        progress.epoch += 1;
        progress.batch_in_epoch = 0;
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let best = load_checkpoint(run_dir, &options.device)?;
    let (test, test_per_collection) = evaluate_test(&best, dataset, options.threads)?;
    let metrics = FinalMetrics {
        test,
        test_per_collection,
        best_val_nll: progress.best_val.unwrap_or(f64::NAN),
        steps: progress.step,
        epochs_completed: progress.step as f64 / batches_per_epoch as f64,
        train_seconds,
        tokens_per_s: progress.tokens_seen as f64 / train_seconds.max(1e-9),
        stopped_early,
    };
    for observer in observers.iter_mut() {
        observer.tested(progress.step, &test)?;
    }
    let metrics_path = run_dir.join("metrics.json");
    write_atomic(
        &metrics_path,
        serde_json::to_string_pretty(&metrics)
            .expect("serialisable")
            .as_bytes(),
    )
    .map_err(io(&metrics_path))?;
    write_run_config(
        run_dir,
        &RunConfig {
            metrics: Some(metrics.clone()),
            ..run_config
        },
    )?;
    Ok(TrainOutcome {
        run_dir: run_dir.to_owned(),
        metrics,
    })
}

/// The batches of one epoch, built one at a time.
enum EpochPlan {
    /// Windows, and how many go in a batch.
    Windows(Vec<Track>, usize),
    Songs(Vec<Vec<usize>>),
    /// One stream per batch row, and the window length.
    Lanes(Vec<Track>, usize),
}

impl EpochPlan {
    fn new(dataset: &Dataset, config: &TrainConfig, epoch: u64) -> Self {
        match config.windows {
            Windows::Songs => EpochPlan::Songs(epoch_song_batches(
                &dataset.train,
                config.batch_size,
                config.seed,
                epoch,
            )),
            Windows::Stream => {
                // One window per target for the last-position objective (the
                // reference), back-to-back windows when every position is trained.
                let stride = match config.objective {
                    Objective::All => config.seq_len,
                    Objective::Last => 1,
                };
                let windows =
                    epoch_windows(&dataset.train, config.seq_len, stride, config.seed, epoch);
                EpochPlan::Windows(windows, config.batch_size.max(1))
            }
            Windows::Lanes => EpochPlan::Lanes(
                epoch_lanes(&dataset.train, config.batch_size, config.seed, epoch),
                config.seq_len,
            ),
        }
    }

    fn len(&self) -> usize {
        match self {
            EpochPlan::Windows(windows, batch_size) => windows.len().div_ceil(*batch_size),
            EpochPlan::Songs(batches) => batches.len(),
            EpochPlan::Lanes(lanes, length) => lanes[0].ids.len().saturating_sub(1) / length,
        }
    }

    /// Whether the state at the end of a batch starts the next one.
    fn carries_state(&self) -> bool {
        matches!(self, EpochPlan::Lanes(..))
    }

    fn batch(&self, dataset: &Dataset, config: &TrainConfig, index: usize) -> TrainBatch {
        match self {
            EpochPlan::Windows(windows, batch_size) => {
                let start = index * batch_size;
                let end = (start + batch_size).min(windows.len());
                TrainBatch::from_windows(
                    &windows[start..end],
                    config.seq_len,
                    config.objective == Objective::Last,
                )
            }
            EpochPlan::Songs(batches) => {
                TrainBatch::from_songs(batches[index].iter().map(|&i| &dataset.train[i]))
            }
            EpochPlan::Lanes(lanes, length) => {
                let start = index * length;
                let windows: Vec<Track> = lanes
                    .iter()
                    .map(|lane| lane.window(start, length + 1))
                    .collect();
                TrainBatch::from_windows(&windows, *length, false)
            }
        }
    }
}

/// Forward and backward of one batch, its rows split over `threads` threads that
/// each run their own graph; returns the mean loss over the scored positions and
/// the summed gradients. Dropout masks depend on the row, not on the split, so
/// the thread count does not change what is computed.
pub fn batch_gradients(
    model: &MelodyModel,
    batch: &TrainBatch,
    initial: Option<&LstmState>,
    seed: u64,
    threads: usize,
) -> Result<(f64, GradStore, LstmState), TrainError> {
    let rows = batch.rows();
    let scored = batch.scored().max(1.0);
    let shard_rows = rows.div_ceil(threads.clamp(1, rows.max(1)));
    let shard = |first_row: usize| -> Result<(f64, GradStore, LstmState), TrainError> {
        let range = first_row..(first_row + shard_rows).min(rows);
        let time = batch.inputs[first_row].len();
        let count = range.len();
        let device = model.device();
        let input = model.ids_tensor(&batch.inputs[range.clone()])?;
        let side: Vec<Vec<Vec<u32>>> = batch
            .side
            .iter()
            .map(|rows| rows[range.clone()].to_vec())
            .collect();
        let side = model.side_tensors(&side)?;
        let targets: Vec<u32> = batch.targets[range.clone()]
            .iter()
            .flatten()
            .copied()
            .collect();
        let weights: Vec<f32> = batch.weights[range].iter().flatten().copied().collect();
        let targets = Tensor::from_vec(targets, (count, time), device)?;
        let weights = Tensor::from_vec(weights, (count, time), device)?;
        let state = initial
            .map(|state| -> candle_core::Result<LstmState> {
                let layers = state
                    .layers
                    .iter()
                    .map(|l| {
                        Ok(LayerState {
                            h: l.h.narrow(0, first_row, count)?,
                            c: l.c.narrow(0, first_row, count)?,
                        })
                    })
                    .collect::<candle_core::Result<_>>()?;
                Ok(LstmState { layers })
            })
            .transpose()?;
        let dropout = Some(Dropout { seed, first_row });
        let (loss, last) = model.summed_nll(&input, &side, &targets, &weights, state, dropout)?;
        // Divided by the whole batch's count, so that the shards add up to its mean.
        let loss = loss.affine(1.0 / scored, 0.0)?;
        let value = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
        // The next window starts from this state, but gradients stop here.
        let last = LstmState {
            layers: last
                .layers
                .into_iter()
                .map(|l| LayerState {
                    h: l.h.detach(),
                    c: l.c.detach(),
                })
                .collect(),
        };
        Ok((value, loss.backward()?, last))
    };
    let starts: Vec<usize> = (0..rows).step_by(shard_rows.max(1)).collect();
    let results: Vec<Result<(f64, GradStore, LstmState), TrainError>> = if starts.len() == 1 {
        vec![shard(0)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = starts
                .iter()
                .map(|&start| scope.spawn(move || shard(start)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a training thread panicked"))
                .collect()
        })
    };
    let mut total = 0.0;
    let mut merged: Option<GradStore> = None;
    let mut finals = Vec::with_capacity(starts.len());
    for result in results {
        let (value, grads, last) = result?;
        total += value;
        finals.push(last);
        match merged.as_mut() {
            Some(all) => all.extend(grads)?,
            None => merged = Some(grads),
        }
    }
    let layers = (0..model.config.num_layers)
        .map(|layer| -> candle_core::Result<LayerState> {
            let h: Vec<&Tensor> = finals.iter().map(|f| &f.layers[layer].h).collect();
            let c: Vec<&Tensor> = finals.iter().map(|f| &f.layers[layer].c).collect();
            Ok(LayerState {
                h: Tensor::cat(&h, 0)?,
                c: Tensor::cat(&c, 0)?,
            })
        })
        .collect::<candle_core::Result<_>>()?;
    Ok((
        total,
        merged.expect("at least one shard"),
        LstmState { layers },
    ))
}

fn adam_config(config: &TrainConfig) -> AdamConfig {
    AdamConfig {
        weight_decay: config.weight_decay,
        ..AdamConfig::default()
    }
}

fn write_run_config(dir: &Path, config: &RunConfig) -> Result<(), TrainError> {
    let path = dir.join("config.json");
    let text = serde_json::to_string_pretty(config).expect("serialisable");
    write_atomic(&path, text.as_bytes()).map_err(io(&path))
}

/// Writes `state/` as a whole: into a fresh folder, then swapped in, so a kill
/// at any moment leaves the previous state or the new one.
fn save_state(
    run_dir: &Path,
    model: &MelodyModel,
    adam: &Adam,
    progress: &Progress,
    carry: Option<&LstmState>,
    config: &RunConfig,
) -> Result<(), TrainError> {
    let state = run_dir.join(STATE_DIR);
    let staging = run_dir.join(format!(".state.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    save_checkpoint(model, &staging)?;
    write_run_config(&staging, config)?;
    let mut moments = Vec::new();
    for (name, _) in model.parameters() {
        let (m, v) = &adam.moments[&name];
        moments.push((format!("m.{name}"), m.clone()));
        moments.push((format!("v.{name}"), v.clone()));
    }
    // The state carried into the next window, for lane training.
    for (layer, state) in carry.iter().flat_map(|c| c.layers.iter().enumerate()) {
        moments.push((format!("carry.h.l{layer}"), state.h.clone()));
        moments.push((format!("carry.c.l{layer}"), state.c.clone()));
    }
    let optimizer_path = staging.join("optimizer.safetensors");
    let bytes = tensors_to_safetensors(&moments)?;
    write_atomic(&optimizer_path, &bytes).map_err(io(&optimizer_path))?;
    let progress_path = staging.join("progress.json");
    let text = serde_json::to_string_pretty(&(progress, adam.steps)).expect("serialisable");
    write_atomic(&progress_path, text.as_bytes()).map_err(io(&progress_path))?;
    let old = run_dir.join(format!(".state.old-{}", std::process::id()));
    if state.exists() {
        fs::rename(&state, &old).map_err(io(&state))?;
    }
    fs::rename(&staging, &state).map_err(io(&state))?;
    let _ = fs::remove_dir_all(&old);
    Ok(())
}

/// What a saved run resumes with: model, optimizer, progress, carried state.
type Resumed = (MelodyModel, Adam, Progress, Option<LstmState>);

fn resume(run_dir: &Path, expected: &RunConfig, device: &Device) -> Result<Resumed, TrainError> {
    let fail = |reason: String| TrainError::Resume {
        run: run_dir.to_owned(),
        reason,
    };
    let state = run_dir.join(STATE_DIR);
    if !state.is_dir() {
        return Err(fail(
            "it has no saved state (state/) to continue from".into(),
        ));
    }
    let saved: RunConfig =
        serde_json::from_str(&fs::read_to_string(state.join("config.json")).map_err(io(&state))?)
            .map_err(|e| fail(format!("state/config.json: {e}")))?;
    if saved.dataset.fingerprint != expected.dataset.fingerprint {
        return Err(fail(
            "the prepared data differs from the data it was trained on".into(),
        ));
    }
    let comparable = |c: &TrainConfig| TrainConfig {
        epochs: 0,
        max_steps: None,
        patience: None,
        ..c.clone()
    };
    if comparable(&saved.training) != comparable(&expected.training)
        || saved.model != expected.model
    {
        return Err(TrainError::ResumeChanged(run_dir.to_owned()));
    }
    let model = load_checkpoint(&state, device)?;
    let mut adam = Adam::new(model.parameters(), adam_config(&expected.training))?;
    let moments = read_safetensors(&state.join("optimizer.safetensors"), device)?;
    for (name, _) in model.parameters() {
        let get = |prefix: &str| {
            moments
                .get(&format!("{prefix}.{name}"))
                .cloned()
                .ok_or_else(|| fail(format!("optimizer state lacks {prefix}.{name}")))
        };
        adam.moments.insert(name.clone(), (get("m")?, get("v")?));
    }
    let (progress, steps): (Progress, u64) =
        serde_json::from_str(&fs::read_to_string(state.join("progress.json")).map_err(io(&state))?)
            .map_err(|e| fail(format!("state/progress.json: {e}")))?;
    adam.steps = steps;
    let carry = (0..model.config.num_layers)
        .map(|layer| {
            Some(LayerState {
                h: moments.get(&format!("carry.h.l{layer}"))?.clone(),
                c: moments.get(&format!("carry.c.l{layer}"))?.clone(),
            })
        })
        .collect::<Option<Vec<_>>>()
        .map(|layers| LstmState { layers });
    Ok((model, adam, progress, carry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_train_are_refused_naming_what_is_wrong() {
        let fine = TrainConfig::reference();
        assert!(fine.validate().is_ok());
        let cases: [(TrainConfig, &str); 9] = [
            (
                TrainConfig {
                    batch_size: 0,
                    ..fine
                },
                "batch size",
            ),
            (
                TrainConfig {
                    eval_every: 0,
                    ..fine
                },
                "eval interval",
            ),
            (
                TrainConfig {
                    windows: Windows::Lanes,
                    ..fine
                },
                "last-position objective",
            ),
            (TrainConfig { lr: 0.0, ..fine }, "learning rate 0"),
            (
                TrainConfig {
                    dropout: 1.0,
                    ..fine
                },
                "dropout 1",
            ),
            (
                TrainConfig {
                    condition_dropout: -0.1,
                    ..fine
                },
                "condition dropout -0.1",
            ),
            (
                TrainConfig {
                    hidden_size: 0,
                    ..fine
                },
                "hidden size",
            ),
            (TrainConfig { epochs: 0, ..fine }, "epochs"),
            (
                TrainConfig {
                    max_steps: Some(0),
                    ..fine
                },
                "step limit",
            ),
        ];
        for (config, named) in cases {
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains(named), "{message}");
        }
        // Only what is wrong is named.
        let message = TrainConfig {
            num_layers: 0,
            max_steps: Some(0),
            ..fine
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert_eq!(
            message,
            "bad training configuration: layer count and step limit must be positive, not 0: nothing would be trained"
        );
    }
}
