//! `cargo xtask train`, `eval` and `logits`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use clap::{Args, ValueEnum};
use model_folder::{ModelFolder, ModelRef};
use trainer::data::Windows;
use trainer::observe::{MetricsCsv, TensorBoard};
use trainer::{Dataset, Objective, PrepareOptions, RunOptions, Schedule, TrainConfig};

use crate::loss_plot::{LossPlot, Progress};
use crate::source;

/// Which songs `eval` scores.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EvalSongs {
    /// The test split, the songs `train` holds out.
    Test,
    /// Every song: for songs the model never saw, such as a collection of your own.
    All,
    /// The test songs that are not variants of a training song (80% or more of
    /// their 16-token stretches in one; in all keys, of any of their versions):
    /// the held-out figure without the tunes the model learned under other
    /// words or in another version.
    TestWithoutVariants,
}

/// Where a model runs.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DeviceArg {
    /// The best available: CUDA or Metal when built with that feature, else the CPU.
    Auto,
    Cpu,
    Cuda,
    Metal,
}

impl DeviceArg {
    pub fn device(self) -> Result<Device> {
        Ok(match self {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => cuda().map_err(anyhow::Error::msg)?,
            DeviceArg::Metal => metal().map_err(anyhow::Error::msg)?,
            // The best that works: a GPU build on a machine without a usable
            // GPU runs on the CPU and says why.
            DeviceArg::Auto => {
                let gpu = if candle_core::utils::cuda_is_available() {
                    Some(cuda())
                } else if candle_core::utils::metal_is_available() {
                    Some(metal())
                } else {
                    None
                };
                match gpu {
                    Some(Ok(device)) => device,
                    Some(Err(why)) => {
                        tracing::info!("{why}; running on the CPU");
                        Device::Cpu
                    }
                    None => Device::Cpu,
                }
            }
        })
    }
}

/// The first CUDA GPU, or what is missing: the feature in this build, or a
/// GPU and driver on this machine.
fn cuda() -> std::result::Result<Device, String> {
    if !candle_core::utils::cuda_is_available() {
        return Err("--device cuda: this build has no CUDA support; build with `--features cuda` (see the README's GPU section)".into());
    }
    Device::new_cuda(0).map_err(|e| {
        format!(
            "--device cuda: no usable CUDA GPU ({e}); check that `nvidia-smi` lists one and that CUDA_VISIBLE_DEVICES does not hide it"
        )
    })
}

/// The Metal GPU, or what is missing.
fn metal() -> std::result::Result<Device, String> {
    if !candle_core::utils::metal_is_available() {
        return Err(
            "--device metal: this build has no Metal support; build with `--features metal` on macOS".into(),
        );
    }
    Device::new_metal(0).map_err(|e| format!("--device metal: no usable Metal GPU ({e})"))
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ObjectiveArg {
    /// Next-token loss at every position.
    All,
    /// Only the last position of each window (the reference notebook).
    Last,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum WindowsArg {
    /// Whole songs, each from its start (as evaluation and generation read them).
    Songs,
    /// --seq-len windows from the stream of songs (the reference's way).
    Stream,
    /// One stream of songs per batch row; consecutive --seq-len windows carry the LSTM state.
    Lanes,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ScheduleArg {
    Constant,
    Cosine,
}

/// A flag's help with the default it takes in each recipe.
fn help(what: &str, ours: impl std::fmt::Display, reference: impl std::fmt::Display) -> String {
    let (ours, reference) = (ours.to_string(), reference.to_string());
    if ours == reference {
        format!("{what} [default: {ours}]")
    } else {
        format!("{what} [default: {ours}; with --reference-recipe: {reference}]")
    }
}

fn or_none<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

/// Everything `train` takes.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Songs to train on: a folder of .krn/.sm files, a zip of them, an Essen
    /// tree (a folder with deutschl/ and esac/: every collection in it), several
    /// of these separated by commas (each song kept once), or a folder written by
    /// `cargo xtask prepare` (trained on as it is, with its encoding) [default:
    /// the cached erk collection, downloaded on first use].
    #[arg(long, value_name = "DIR|ZIP", value_delimiter = ',')]
    pub data: Vec<PathBuf>,
    /// Name of the run, written to RUNS/NAME [default: erk; when runs/erk already
    /// holds a run, the next free erk-2, erk-3, ...].
    #[arg(long)]
    pub name: Option<String>,
    /// Folder that holds the runs.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Continue a run that was stopped, from its last checkpoint.
    #[arg(long, conflicts_with = "init")]
    pub resume: bool,
    /// Start from this model's weights (a model folder, a run, or
    /// hub:OWNER/NAME) and train on the given data: tokens it knows keep their
    /// rows, new ones start fresh; its architecture is used (a different
    /// --hidden, --layers or --embedding-dim is refused); the optimizer starts
    /// fresh [default: a fresh initialisation].
    #[arg(long, value_name = "DIR|hub:OWNER/NAME")]
    pub init: Option<ModelRef>,
    /// Train as the reference notebook did (last-position objective, 10 epochs, constant lr);
    /// other flags still apply on top.
    #[arg(long)]
    pub reference_recipe: bool,
    /// Tell the model, beside each token, its place in the bar and the song's
    /// meter, mode, style (collection) and bars left, so that `sample` can ask
    /// for them (--meter, --mode, --style, --bars, --pickup). The model then no
    /// longer loads into the reference notebook's LSTMModel.
    #[arg(long)]
    pub condition: bool,
    /// With --condition: the share of training songs read with their mode and
    /// style withheld (unknown mode, style "other"; chosen once with --seed),
    /// so that the model also learns melodies of no given mode or style; 0.1
    /// lowered the whole-Essen model's test NLL from 0.653 to 0.648 (see the
    /// README) [default: 0].
    #[arg(long, value_name = "SHARE")]
    pub condition_dropout: Option<f64>,
    /// With --condition: also tell the model, at each step, the song's own
    /// token this many bars earlier, one input per number given
    /// (comma-separated, 1 to 16), so that it can say a bar again as folk
    /// songs do; `sample` feeds them from the tokens it draws. 2,4,8 lowered
    /// a hidden-128 whole-Essen model's test NLL by 0.035 (see the README,
    /// "Repetition") [default: none].
    #[arg(long, value_name = "BARS", value_delimiter = ',', num_args = 1)]
    pub lookback: Vec<u32>,
    /// With --lookback: also tell the model, at each step, which of those
    /// earlier bars its bar says again (the song's form, ABAB...), and keep
    /// the training songs' forms, so that `sample` draws one or takes one
    /// asked with --form AABA. Its NLL is not comparable with a model's
    /// without it: the form tells which bars repeat.
    #[arg(long)]
    pub form: bool,
    #[arg(long, help = help("Passes over the training songs at most", D.epochs, R.epochs))]
    pub epochs: Option<usize>,
    #[arg(long, help = help("Stop after this many updates", or_none(D.max_steps), or_none(R.max_steps)))]
    pub max_steps: Option<usize>,
    #[arg(long, help = help("Batch rows (lanes, windows or songs) per update", D.batch_size, R.batch_size))]
    pub batch_size: Option<usize>,
    #[arg(long, help = help("Tokens per training window", D.seq_len, R.seq_len))]
    pub seq_len: Option<usize>,
    #[arg(long, help = help("Peak learning rate", D.lr, R.lr))]
    pub lr: Option<f64>,
    #[arg(long, value_enum, help = help("Learning-rate schedule", schedule_name(D.schedule), schedule_name(R.schedule)))]
    pub schedule: Option<ScheduleArg>,
    #[arg(long, help = help("Updates of linear learning-rate warm-up", D.warmup_steps, R.warmup_steps))]
    pub warmup_steps: Option<usize>,
    #[arg(long, help = help("LSTM hidden size", D.hidden_size, R.hidden_size))]
    pub hidden: Option<usize>,
    #[arg(long, help = help("LSTM layers", D.num_layers, R.num_layers))]
    pub layers: Option<usize>,
    /// Embedding width [default: the vocabulary size, as in the reference].
    #[arg(long)]
    pub embedding_dim: Option<usize>,
    #[arg(long, help = help("Dropout after the LSTM", D.dropout, R.dropout))]
    pub dropout: Option<f64>,
    #[arg(long, help = help("Clip the global gradient norm to this", or_none(D.clip_norm), or_none(R.clip_norm)))]
    pub clip_norm: Option<f64>,
    #[arg(long, help = help("Decoupled weight decay (AdamW)", D.weight_decay, R.weight_decay))]
    pub weight_decay: Option<f64>,
    #[arg(long, value_enum, help = help("Which positions are trained", "all", "last"))]
    pub objective: Option<ObjectiveArg>,
    #[arg(long, value_enum, help = help("How training examples are cut from the songs", "lanes", "stream"))]
    pub windows: Option<WindowsArg>,
    #[arg(long, help = help("Evaluate and checkpoint every N updates (and at each epoch's end)", D.eval_every, R.eval_every))]
    pub eval_every: Option<usize>,
    #[arg(long, help = help("Stop after N evaluations without a better validation loss", or_none(D.patience), or_none(R.patience)))]
    pub patience: Option<usize>,
    #[arg(long, help = help("Seed of initialisation, shuffling and dropout", D.seed, R.seed))]
    pub seed: Option<u64>,
    /// Where the model trains.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Threads that share each batch [default: all cores on the CPU, 1 on a GPU].
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The defaults, for the help texts.
const D: TrainConfig = default_config();
const R: TrainConfig = TrainConfig::reference();

fn schedule_name(schedule: Schedule) -> &'static str {
    match schedule {
        Schedule::Constant => "constant",
        Schedule::Cosine { .. } => "cosine",
    }
}

/// Our defaults: the reference's model (and Adam), every position trained with
/// the LSTM state carried from window to window along 64 lanes of songs (so short
/// 16-step windows lose no context and give four times the updates of 64-step
/// ones), a cosine schedule peaking at 1e-2 with clipping, 24 epochs: about 26 s
/// on 2 cores, test NLL 0.752, below the reference recipe's 0.765 with our code
/// (15 minutes); 10 epochs gave 0.786, 20 gave 0.766, 30 gave 0.749 in 33 s.
pub const fn default_config() -> TrainConfig {
    TrainConfig {
        objective: Objective::All,
        windows: Windows::Lanes,
        seq_len: 16,
        epochs: 24,
        lr: 1e-2,
        schedule: Schedule::Cosine { min_ratio: 0.05 },
        warmup_steps: 20,
        clip_norm: Some(1.0),
        eval_every: 200,
        patience: Some(5),
        ..TrainConfig::reference()
    }
}

impl TrainArgs {
    pub fn config(&self) -> TrainConfig {
        let mut c = if self.reference_recipe {
            TrainConfig::reference()
        } else {
            default_config()
        };
        macro_rules! set {
            ($($flag:ident => $field:ident),*) => { $(if let Some(v) = self.$flag { c.$field = v; })* };
        }
        set!(epochs => epochs, batch_size => batch_size, seq_len => seq_len, lr => lr, warmup_steps => warmup_steps,
             hidden => hidden_size, layers => num_layers, dropout => dropout, weight_decay => weight_decay,
             eval_every => eval_every, seed => seed);
        if self.max_steps.is_some() {
            c.max_steps = self.max_steps;
        }
        if self.embedding_dim.is_some() {
            c.embedding_dim = self.embedding_dim;
        }
        if self.clip_norm.is_some() {
            c.clip_norm = self.clip_norm;
        }
        if self.patience.is_some() {
            c.patience = self.patience;
        }
        if let Some(share) = self.condition_dropout {
            c.condition_dropout = share;
        }
        if let Some(schedule) = self.schedule {
            c.schedule = match schedule {
                ScheduleArg::Constant => Schedule::Constant,
                ScheduleArg::Cosine => Schedule::Cosine { min_ratio: 0.05 },
            };
        }
        if let Some(windows) = self.windows {
            c.windows = match windows {
                WindowsArg::Songs => Windows::Songs,
                WindowsArg::Stream => Windows::Stream,
                WindowsArg::Lanes => Windows::Lanes,
            };
        }
        if let Some(objective) = self.objective {
            c.objective = match objective {
                ObjectiveArg::All => Objective::All,
                ObjectiveArg::Last => Objective::Last,
            };
        }
        c
    }
}

/// Cores to use when none are given.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Threads that share a batch when none are given: every core on the CPU, one
/// on a GPU, which runs a batch as a whole (more threads would only queue
/// their shards on the same device).
fn default_threads(device: &Device) -> usize {
    if device.is_cpu() {
        available_threads()
    } else {
        1
    }
}

/// The run folder: RUNS/NAME, or when no name was given and RUNS/erk already
/// holds a run, the next free RUNS/erk-N (a second `cargo xtask train` keeps
/// the first run and says where the new one goes).
fn run_folder(args: &TrainArgs) -> Result<PathBuf> {
    let holds_run = |dir: &Path| dir.join("config.json").exists() || dir.join("state").exists();
    let name = args.name.as_deref().unwrap_or(DEFAULT_RUN);
    let dir = args.runs.join(name);
    if args.resume || !holds_run(&dir) {
        return Ok(dir);
    }
    if args.name.is_some() {
        bail!(
            "{} already holds a run; pass --resume to continue it or choose another --name",
            dir.display()
        );
    }
    let free = (2..)
        .map(|n| args.runs.join(format!("{DEFAULT_RUN}-{n}")))
        .find(|dir| !holds_run(dir))
        .expect("some number is free");
    eprintln!(
        "{} already holds a run; this one goes to {} (--name chooses, --resume continues)",
        dir.display(),
        free.display()
    );
    Ok(free)
}

/// The weights of `--init` and the configuration they fix: their
/// architecture, unless a flag asks for another, which is refused.
fn init_from(
    model: &ModelRef,
    args: &TrainArgs,
    mut config: TrainConfig,
) -> Result<(TrainConfig, trainer::Init)> {
    let folder = ModelFolder::open(model, &candle_core::Device::Cpu)
        .with_context(|| format!("--init {model}"))?;
    let theirs = &folder.model.config;
    for (flag, asked, has) in [
        ("--hidden", args.hidden, theirs.hidden_size),
        ("--layers", args.layers, theirs.num_layers),
        ("--embedding-dim", args.embedding_dim, theirs.embedding_dim),
    ] {
        if let Some(asked) = asked
            && asked != has
        {
            bail!(
                "--init {model} has {flag} {has}, not {asked}: leave {flag} out to train it further"
            );
        }
    }
    config.hidden_size = theirs.hidden_size;
    config.num_layers = theirs.num_layers;
    config.embedding_dim = Some(theirs.embedding_dim);
    let init = trainer::Init::from_model(
        &folder.model,
        &folder.vocabulary,
        folder.conditioning.clone(),
        model.to_string(),
    );
    Ok((config, init))
}

/// Refuses `--lookback` values a run cannot use, before the run folder is made.
fn check_lookback(args: &TrainArgs, init: Option<&trainer::Init>, conditioned: bool) -> Result<()> {
    if args.lookback.is_empty() {
        if args.form {
            bail!(
                "--form tells which of the --lookback bars a bar says again, so it needs --lookback (such as --lookback 2,4,8)"
            );
        }
        return Ok(());
    }
    if !conditioned {
        bail!("--lookback is a side input beside the conditions, so it needs --condition");
    }
    if let Some(init) = init {
        bail!(
            "--lookback: a fine-tuned model keeps the side inputs of --init {} (it looks back {}); leave --lookback out",
            init.source,
            init.conditioning
                .as_ref()
                .and_then(|c| c.lookback.as_ref())
                .map_or_else(|| "no bars".to_owned(), |l| format!("{:?} bars", l.bars))
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for &bars in &args.lookback {
        if !(1..=16).contains(&bars) {
            bail!("--lookback {bars}: each number of bars must be from 1 to 16");
        }
        if !seen.insert(bars) {
            bail!("--lookback {bars} is given twice");
        }
    }
    Ok(())
}

/// The run name when none is given.
const DEFAULT_RUN: &str = "erk";

/// Puts the training data into `data_dir`: a prepared folder is checked and
/// copied as it is (its encoding with it); songs are prepared with the
/// defaults. Nothing is written unless every split has songs.
fn stage_data(data: &[PathBuf], data_dir: &Path) -> Result<()> {
    if let [folder] = data
        && trainer::is_prepared_folder(folder)
    {
        Dataset::load(folder).with_context(|| format!("cannot train on {}", folder.display()))?;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        for name in [
            trainer::prepare::SONGS_FILE,
            trainer::prepare::TOKENIZER_FILE,
            grid_codec::ENCODING_FILE,
            trainer::prepare::REPORT_FILE,
        ] {
            let from = folder.join(name);
            if from.is_file() {
                let bytes = std::fs::read(&from)
                    .with_context(|| format!("cannot read {}", from.display()))?;
                trainer::write_atomic(&data_dir.join(name), &bytes)
                    .with_context(|| format!("cannot write into {}", data_dir.display()))?;
            }
        }
        return Ok(());
    }
    let prepared = source::prepare_paths_with_spinner(data, &PrepareOptions::default())?;
    for (split, songs) in &prepared.report.songs_per_split {
        if *songs == 0 {
            bail!(
                "cannot train on {}: its {} songs leave the {split:?} split empty (the split is 80/10/10 by song); give it more songs",
                source::describe(data),
                prepared.report.on_grid
            );
        }
    }
    trainer::write_prepared(&prepared, data_dir)
        .with_context(|| format!("cannot write {}", data_dir.display()))?;
    Ok(())
}

/// On `--resume` the run keeps its own `data/`: the songs given are staged
/// beside it and must be the same, so that a refused resume changes nothing.
/// Gives the run's songs.
fn check_resumed_data(data: &[PathBuf], run_dir: &Path, data_dir: &Path) -> Result<Dataset> {
    let staging = run_dir.join("data.resume");
    // Left behind only by a resume that was killed while staging.
    let _ = std::fs::remove_dir_all(&staging);
    let staged = stage_data(data, &staging).and_then(|()| Ok(Dataset::load(&staging)?.fingerprint));
    let _ = std::fs::remove_dir_all(&staging);
    let run_songs = Dataset::load(data_dir)?;
    if staged? == run_songs.fingerprint {
        return Ok(run_songs);
    }
    let trained_on = recorded_paths(run_dir).map_or_else(String::new, |paths| {
        format!(" ({})", source::describe(&paths))
    });
    bail!(
        "cannot resume {}: {} gives other songs than the run was trained on{trained_on}, and its data/ is left as it was; pass --data with the songs it was trained on",
        run_dir.display(),
        source::describe(data)
    )
}

/// The songs a run's config.json says it was trained on.
fn recorded_paths(run_dir: &Path) -> Option<Vec<PathBuf>> {
    let text = std::fs::read_to_string(run_dir.join("config.json")).ok()?;
    let config: trainer::RunConfig = serde_json::from_str(&text).ok()?;
    Some(source::recorded_paths(&config.dataset.source))
}

/// Prepares the data into the run folder (so the run is self-contained) and trains.
pub fn train(args: &TrainArgs) -> Result<()> {
    let start = Instant::now();
    let config = args.config();
    config.validate().map_err(|error| match error {
        trainer::TrainError::Config(_) if config.objective == trainer::Objective::Last => {
            anyhow::Error::new(error).context("use --windows stream with --objective last")
        }
        other => other.into(),
    })?;
    let device = args.device.device()?;
    let (config, init) = match &args.init {
        Some(model) => {
            let (config, init) = init_from(model, args, config)?;
            (config, Some(init))
        }
        None => (config, None),
    };
    // Refused before the run folder is made, so that a refusal leaves none behind.
    let conditioned = match init.as_ref().map(|init| init.conditioning.is_some()) {
        Some(false) if args.condition => bail!(
            "--condition: the --init model reads no conditions, so it cannot start a run that does"
        ),
        Some(theirs) => theirs,
        None => args.condition,
    };
    if !conditioned && config.condition_dropout > 0.0 {
        bail!("--condition-dropout withholds conditions, so it needs --condition");
    }
    check_lookback(args, init.as_ref(), conditioned)?;
    let run_dir = run_folder(args)?;
    let data_dir = run_dir.join("data");
    let resuming = args.resume && trainer::is_prepared_folder(&data_dir);
    // What config.json says the songs are: --data, or on --resume without it
    // what the run recorded, its own songs read as they were prepared.
    let (songs_from, run_songs) = if resuming && args.data.is_empty() {
        let recorded = recorded_paths(&run_dir).unwrap_or_else(|| vec![data_dir.clone()]);
        (recorded, None)
    } else {
        let data = source::data_or_cached_erk(args.data.clone(), "--data")?;
        let run_songs = if resuming {
            Some(check_resumed_data(&data, &run_dir, &data_dir)?)
        } else {
            stage_data(&data, &data_dir)?;
            None
        };
        (data, run_songs)
    };
    let mut dataset = match run_songs {
        Some(dataset) => dataset,
        None => Dataset::load(&data_dir)?,
    };
    let conditioning = match init.as_ref().map(|init| &init.conditioning) {
        // A fine-tuned model keeps its values' meanings.
        Some(theirs) => theirs.clone(),
        None if conditioned => Some(grid_codec::Conditioning {
            lookback: (!args.lookback.is_empty()).then(|| {
                let mut lookback = grid_codec::Lookback {
                    bars: args.lookback.clone(),
                    tokens: dataset.vocabulary.len() as u32,
                    forms: None,
                };
                if args.form {
                    let songs = dataset.train.iter();
                    let forms = lookback.count_forms(songs.map(|s| (&s.conditions, &s.ids[..])));
                    lookback.forms = Some(forms);
                }
                lookback
            }),
            ..grid_codec::Conditioning::from_songs(dataset.train.iter().map(|s| &s.conditions))
        }),
        None => None,
    };
    if let Some(conditioning) = conditioning {
        let looking_back = conditioning
            .lookback
            .as_ref()
            .map_or_else(String::new, |l| {
                let bars: Vec<String> = l.bars.iter().map(u32::to_string).collect();
                let form = if l.forms.is_some() {
                    " and its form"
                } else {
                    ""
                };
                format!(
                    ", and the song's tokens {} bars back{form}",
                    bars.join(", ")
                )
            });
        eprintln!(
            "conditioning on bar position, meter ({}), mode, style ({}) and bars left{looking_back}",
            conditioning.meters[2..].join(", "),
            conditioning.styles.len() - 1
        );
        let named_styles = conditioning.styles.len() > 1;
        if named_styles && dataset.train.iter().all(|s| s.conditions.style.is_empty()) {
            eprintln!(
                "the songs name no collection, so the model learns them as its style \"other\" (one collection read alone names none; an Essen tree or several sources name theirs)"
            );
        }
        dataset.condition(conditioning);
    }
    eprintln!(
        "training on {} songs ({} tokens; {}), validating on {}, testing on {}; {}, {} epochs at most",
        dataset.train.len(),
        dataset.train_tokens(),
        dataset.encoding,
        dataset.val.len(),
        dataset.test.len(),
        config.objective,
        config.epochs
    );
    eprintln!(
        "{}",
        trainer::logs::parameter_summary(
            &config.model_config(dataset.vocabulary.len(), dataset.conditioning.as_ref())
        )
    );
    let threads = args.threads.unwrap_or_else(|| default_threads(&device));
    let options = RunOptions {
        resume: args.resume,
        init,
        device,
        threads,
    };
    let mut csv = MetricsCsv::new(&run_dir);
    let mut tensorboard = TensorBoard::new(&run_dir);
    let mut plot = LossPlot {
        path: run_dir.join("loss.png"),
        title: format!(
            "{} ({})",
            run_dir.file_name().unwrap_or_default().to_string_lossy(),
            config.objective
        ),
    };
    let collections = std::fs::read_to_string(data_dir.join(trainer::prepare::REPORT_FILE))
        .ok()
        .and_then(|text| serde_json::from_str::<trainer::Report>(&text).ok())
        .map_or(0, |report| report.collections.len());
    let data_label = if collections > 1 {
        format!("{collections} collections")
    } else {
        // The first source's last part: `erk` for .../deutschl/erk.
        songs_from
            .first()
            .and_then(|first| first.file_name())
            .map_or_else(|| "songs".to_owned(), |n| n.to_string_lossy().into_owned())
    };
    let mut progress = Progress::new(args.quiet, data_label, config.epochs);
    let outcome = trainer::train(
        &dataset,
        &source::describe(&songs_from),
        &config,
        &run_dir,
        &options,
        &mut [&mut csv, &mut tensorboard, &mut plot, &mut progress],
    )
    .map_err(|error| match error {
        trainer::TrainError::Checkpoint(_) if args.resume => anyhow::Error::new(error).context(
            format!(
                "cannot resume {}: its checkpoint is damaged; restore it, or train again under another --name",
                run_dir.display()
            ),
        ),
        trainer::TrainError::ResumeChanged(_) => anyhow::Error::new(error).context(
            "only --epochs, --max-steps and --patience may change on --resume; to start over, leave out --resume and choose another --name",
        ),
        trainer::TrainError::NonFinite { .. } => {
            anyhow::Error::new(error).context("try a lower --lr or a --clip-norm")
        }
        other => other.into(),
    })?;
    let m = &outcome.metrics;
    println!(
        "test: {:.4} nats/token over whole songs (perplexity {:.3}, next-token accuracy {:.1} %), {} songs",
        m.test.nll_per_token,
        m.test.perplexity,
        100.0 * m.test.accuracy,
        m.test.songs
    );
    for (name, scores) in &m.test_per_collection {
        println!(
            "  {name:<26} {:.4} nats/token over {} test songs",
            scores.nll_per_token, scores.songs
        );
    }
    println!(
        "{} updates ({:.1} epochs{}), best validation {:.4}, {:.0} tokens/s, {:.1} s in all",
        m.steps,
        m.epochs_completed,
        if m.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        m.best_val_nll,
        m.tokens_per_s,
        start.elapsed().as_secs_f64()
    );
    println!("run folder: {}", run_dir.display());
    println!("  model.safetensors, config.json, tokenizer.json  the best-validation model");
    println!("  data/  the prepared songs and their encoding");
    println!(
        "  metrics.csv, metrics.json, events.out.tfevents.*  (tensorboard --logdir {})",
        args.runs.display()
    );
    println!("  loss.png  training loss and validation NLL per update");
    println!(
        "  model.dot  the network's graph (dot -Tpng {}/model.dot -o model.png)",
        run_dir.display()
    );
    println!("  state/  what --resume continues from");
    println!("evaluate: cargo xtask eval --model {}", run_dir.display());
    println!(
        "sample:   cargo xtask sample --model {} --prime \"55 _ _ _\"",
        run_dir.display()
    );
    Ok(())
}

/// `cargo xtask eval`: whole-song NLL of a model on the test split, or all,
/// of songs or prepared data (the model's own when it is a run folder).
pub fn eval(
    model: &ModelRef,
    data: Option<&Path>,
    songs: EvalSongs,
    style: Option<&str>,
    device: DeviceArg,
    step_weights: lstm_candle::StepWeights,
) -> Result<()> {
    let device = device.device()?;
    let mut folder = ModelFolder::open(model, &device)?;
    folder.model.set_step_weights(step_weights);
    let (data, trained_on) = match (data, folder.data_dir()) {
        (Some(data), _) => (data.to_owned(), false),
        (None, Some(own)) => (own, false),
        (None, None) => {
            let trained_on = folder.trained_on().with_context(|| format!(
                "{model} has no prepared data beside it and does not say what it was trained on: pass --data with songs (a folder of .krn or .sm files, a zip of them, an Essen tree, or a collection name such as erk or essen) or a folder written by `cargo xtask prepare`"
            ))?;
            let songs = source::songs_trained_on(trained_on, source::Fetch::IfMissing)?;
            eprintln!("the songs {model} was trained on: {}", songs.display());
            (songs, true)
        }
    };
    let mut dataset = songs_for(&folder, &data)?;
    if trained_on {
        source::check_split(
            source::trained_split(&folder),
            dataset.split_sizes(),
            &data.display().to_string(),
        )?;
    }
    if songs == EvalSongs::All {
        let mut every = std::mem::take(&mut dataset.train);
        every.append(&mut dataset.val);
        every.append(&mut dataset.test);
        dataset.test = every;
    }
    if songs == EvalSongs::TestWithoutVariants {
        leave_out_variants(&mut dataset);
    }
    if dataset.test.is_empty() {
        bail!(
            "{} holds no test songs; --songs all scores every song",
            data.display()
        );
    }
    match (&folder.conditioning, style) {
        (Some(conditioning), Some(style)) => {
            let style = conditioning.style_named(style)?;
            for song in dataset.songs_mut() {
                song.conditions.style.clone_from(&style);
            }
        }
        (Some(_), None) => {
            if dataset
                .test
                .iter()
                .any(|song| song.conditions.style.is_empty())
            {
                eprintln!(
                    "the songs name no collection, so they are read as style \"other\"; --style COLLECTION reads them as one of the model's"
                );
            }
        }
        (None, Some(_)) => {
            bail!("--style: {model} was trained without --condition, so it reads no style")
        }
        (None, None) => {}
    }
    if let Some(conditioning) = &folder.conditioning {
        dataset.condition(conditioning.clone());
    }
    let (test, per_collection) =
        trainer::evaluate_test(&folder.model, &dataset, default_threads(&device))?;
    if per_collection.is_empty() {
        println!("{}", serde_json::to_string_pretty(&test)?);
    } else {
        let json = serde_json::json!({ "test": test, "collections": per_collection });
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(())
}

/// Leaves out the test songs that are variants of a training song (every
/// version of a song of which any version is, as `prepare`'s report lists
/// them), and says how many.
fn leave_out_variants(dataset: &mut Dataset) {
    // A vocabulary holds at most 131 tokens (128 pitches, `_`, `r`, `.`).
    let ids = |songs: &[trainer::data::Song]| -> Vec<Vec<u8>> {
        songs
            .iter()
            .map(|song| {
                song.ids
                    .iter()
                    .map(|&id| u8::try_from(id).expect("a vocabulary of at most 131 tokens"))
                    .collect()
            })
            .collect()
    };
    // The versions of one tune are one song; a song without a tune is its own.
    let mut songs = HashMap::new();
    let song_of: Vec<usize> = dataset
        .test
        .iter()
        .enumerate()
        .map(|(index, song)| {
            let next = songs.len();
            *songs.entry(song.tune.ok_or(index)).or_insert(next)
        })
        .collect();
    let found = trainer::variants::song_variants_of(
        &ids(&dataset.train),
        &ids(&dataset.test),
        &song_of,
        songs.len(),
    );
    let before = dataset.test.len();
    dataset.test = std::mem::take(&mut dataset.test)
        .into_iter()
        .zip(song_of)
        .filter(|(_, song)| found[*song].is_none())
        .map(|(song, _)| song)
        .collect();
    eprintln!(
        "scoring {} of {before} test songs; left out as variants of a training song: {}",
        dataset.test.len(),
        before - dataset.test.len()
    );
}

/// The songs of `data` as `folder`'s model reads them: a prepared folder
/// (refused when encoded otherwise), or songs prepared with the model's
/// encoding, split as `train` splits them; either way encoded with the
/// model's vocabulary.
fn songs_for(folder: &ModelFolder, data: &Path) -> Result<Dataset> {
    let vocabulary = folder.vocabulary.clone();
    if trainer::is_prepared_folder(data) {
        let encoding = grid_codec::Encoding::load(data)?.unwrap_or_default();
        if encoding != folder.encoding {
            bail!(
                "the model was trained on tokens encoded as {} but {} holds tokens encoded as {encoding}",
                folder.encoding,
                data.display(),
            );
        }
        return Dataset::load_in(data, vocabulary).with_context(|| {
            format!(
                "cannot read {} with the model's {} tokens",
                data.display(),
                folder.vocabulary.len()
            )
        });
    }
    let paths = source::data_or_cached_erk(vec![data.to_owned()], "--data")?;
    let prepared = source::prepare_as_trained(&paths, folder)?;
    Dataset::from_prepared(prepared, vocabulary).with_context(|| {
        format!(
            "cannot read the songs of {} with the model's {} tokens",
            source::describe(&paths),
            folder.vocabulary.len()
        )
    })
}

/// `cargo xtask logits`: eval-mode logits at every position, as JSON.
pub fn logits(model: &ModelRef, ids: &str, device: DeviceArg) -> Result<()> {
    let ModelFolder { model, .. } = ModelFolder::open(model, &device.device()?)?;
    let ids: Vec<u32> = ids
        .split_whitespace()
        .enumerate()
        .map(|(i, word)| {
            word.parse()
                .with_context(|| format!("id {} {word:?} is not a number", i + 1))
        })
        .collect::<Result<_>>()?;
    if ids.is_empty() {
        bail!("give at least one id, e.g. --ids \"0 12 5 7\"");
    }
    if let Some(bad) = ids
        .iter()
        .find(|&&id| id as usize >= model.config.vocab_size)
    {
        bail!(
            "id {bad} is outside the model's vocabulary of {} tokens",
            model.config.vocab_size
        );
    }
    let input = model.ids_tensor(std::slice::from_ref(&ids))?;
    let (logits, _) = model.forward(&input, &[], None, None)?;
    let logits: Vec<Vec<f32>> = logits
        .squeeze(0)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec2()?;
    let json =
        serde_json::json!({ "ids": ids, "vocab_size": model.config.vocab_size, "logits": logits });
    println!("{json}");
    Ok(())
}
