//! `cargo xtask`: the esac-melody command line.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::DType;
use clap::{Parser, Subcommand, ValueEnum};
use esac_parse::Duration;
use grid_codec::{Encoding, Transposition};
use model_folder::{HubRef, ModelFolder, ModelRef, hub};
use trainer::{PrepareOptions, Split};
use xtask::judge_cmd::{self, SampleRecord};
use xtask::sample_cmd::{self, SampleArgs};
use xtask::serve_cmd::{self, ServeArgs};
use xtask::train_cmd::{self, DeviceArg, TrainArgs};
use xtask::{bench, download, source};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Learn folk melodies from the Essen collection and write new ones",
    after_help = "Examples:\n  cargo xtask train\n  cargo xtask sample --prime \"55 _ _ _\"\n  cargo xtask download erk\n  cargo xtask prepare --data ~/.cache/esac-melody/essen/erk --out data/erk\n  cargo xtask bench parse --data ../shared/data/essen/deutschl/erk"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch a collection (erk, deutschl, esac, essen, or a zip URL), verify it and cache it.
    #[command(
        after_help = "Examples:\n  cargo xtask download erk\n  cargo xtask download essen\n  cargo xtask download erk --from ../shared/data/essen/deutschl/erk\n  cargo xtask download essen --from ../shared/data/essen\n  cargo xtask download https://example.org/songs.zip"
    )]
    Download {
        /// `erk` (1,700 German songs), `deutschl` (all 5,365 German kern songs), `esac`
        /// (every native EsAC file: 20 collections), `essen` (deutschl and esac, as an
        /// Essen tree that --data takes) or a URL of a zip.
        #[arg(default_value = "erk")]
        target: String,
        /// Use an offline mirror instead of the network: a folder or a zip (for
        /// `essen`, a folder with deutschl/ and esac/).
        #[arg(long, value_name = "DIR|ZIP")]
        from: Option<PathBuf>,
        /// Cache folder (default: $ESAC_MELODY_CACHE or the platform cache folder).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Fetch again even if a verified copy is cached.
        #[arg(long)]
        force: bool,
    },
    /// Parse, encode and split a collection into songs.jsonl, tokenizer.json and report.json.
    #[command(
        after_help = "Examples:\n  cargo xtask prepare --out data/erk\n  cargo xtask prepare --data ../shared/data/essen/esac/erk --out data/erk-esac\n  cargo xtask prepare --data songs.zip --out data/mine --transpose none"
    )]
    Prepare {
        /// Songs: a folder of .krn or .sm files, one such file, a zip, or an Essen tree
        /// (a folder with deutschl/ and esac/, read as all its collections); several
        /// separated by commas or given again, each song kept once (the first source
        /// wins a duplicate) [default: the cached erk collection].
        #[arg(long, value_name = "DIR|ZIP", value_delimiter = ',')]
        data: Vec<PathBuf>,
        /// Output folder.
        #[arg(long, default_value = "data/erk")]
        out: PathBuf,
        /// Seed of the song-level 80/10/10 split.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Grid step as a fraction of a whole note.
        #[arg(long, default_value = "1/16", value_parser = esac_parse::parse_duration)]
        step: Duration,
        /// How songs are transposed before encoding.
        #[arg(long, value_enum, default_value_t = TransposeArg::Reference)]
        transpose: TransposeArg,
        /// Pitch range for `--transpose all-keys`, as LOW-HIGH MIDI numbers.
        #[arg(long, default_value = "45-84", value_parser = parse_range)]
        range: (u8, u8),
    },
    /// Get the data, prepare it, train the model, and report test-set NLL over whole songs.
    #[command(
        after_help = "Examples:\n  cargo xtask train\n  cargo xtask train --name big --hidden 256 --layers 2\n  cargo xtask train --name reference --reference-recipe\n  cargo xtask train --name erk --resume"
    )]
    Train(Box<TrainArgs>),
    /// Write new melodies as tokens, MIDI, MusicXML, ABC, WAV and a piano-roll PNG.
    #[command(
        after_help = "Examples:\n  cargo xtask sample --prime \"55 _ _ _\"\n  cargo xtask sample --num 4 --temperature 0.8 --top-p 0.95 --key G --meter 3/4\n  cargo xtask sample --meter 6/8 --mode minor --style deutschl/zuccal --bars 8 --num 4\n  cargo xtask sample --model runs/erk --seed 7 --out samples/mine"
    )]
    Sample(Box<SampleArgs>),
    /// Start the composer page: choose settings, see the score, play it, download it.
    #[command(
        after_help = "Examples:\n  cargo xtask serve\n  cargo xtask serve --port 9000 --model runs/erk\n  cargo xtask serve --data data/essen --soundfont /usr/share/sounds/sf2/TimGM6mb.sf2"
    )]
    Serve(Box<ServeArgs>),
    /// Musical statistics of generated melodies against the test songs, and how much they copy.
    #[command(
        after_help = "Examples:\n  cargo xtask judge --samples samples\n  cargo xtask judge --samples samples --data ../shared/data/essen/deutschl/erk\n  cargo xtask judge --validation-songs --data ../shared/data/essen --out judge-validation"
    )]
    Judge {
        /// A folder of .txt melodies written by `cargo xtask sample`; judge.json
        /// and judge.png go there too.
        #[arg(long, default_value = "samples")]
        samples: PathBuf,
        /// Judge the corpus's validation songs in the place of generated
        /// melodies, each with its own meter, mode and style: the figures of a
        /// model that wrote songs just like the collection's own.
        #[arg(long, conflicts_with = "samples", requires = "out")]
        validation_songs: bool,
        /// Where --validation-songs writes judge.json and judge.png.
        #[arg(long, requires = "validation_songs")]
        out: Option<PathBuf>,
        /// The corpus: a prepared folder or a collection [default: the data of
        /// the run that wrote the samples, else the cached erk collection].
        #[arg(long, value_name = "DIR|ZIP")]
        data: Option<PathBuf>,
    },
    /// Write a model folder in the Hugging Face layout (weights, config, tokenizer,
    /// generation config, model card).
    #[command(
        after_help = "Examples:\n  cargo xtask export --run runs/erk --out export/erk\n  cargo xtask export --run runs/erk --out export/erk-f16 --dtype f16 --repo me/erk-lstm"
    )]
    Export {
        /// A run folder or model folder (or hub:OWNER/NAME).
        #[arg(long)]
        run: ModelRef,
        /// The folder to write: new, empty, or an earlier export (replaced whole).
        #[arg(long)]
        out: PathBuf,
        /// Precision of the exported weights.
        #[arg(long, value_enum, default_value_t = ExportDtype::F32)]
        dtype: ExportDtype,
        /// The hub repository the model card names in its examples.
        #[arg(long, default_value = "esac-melody/erk-lstm")]
        repo: String,
    },
    /// Print every tensor (name, dtype, shape) and the config of a model folder or safetensors file.
    #[command(
        after_help = "Examples:\n  cargo xtask inspect assets/erk\n  cargo xtask inspect runs/erk/model.safetensors"
    )]
    Inspect {
        /// A model folder, a .safetensors file, or hub:OWNER/NAME.
        path: ModelRef,
    },
    /// Upload an exported folder to the hub as one commit (needs HF_TOKEN and the `hub` feature).
    #[command(
        after_help = "Examples:\n  cargo xtask publish assets/erk --repo esac-melody/erk-lstm --dry-run\n  HF_TOKEN=hf_... cargo xtask-hub publish export/erk --repo me/erk-lstm --private"
    )]
    Publish {
        /// A folder written by `cargo xtask export`.
        dir: PathBuf,
        /// OWNER/NAME of the model repository (created if needed).
        #[arg(long)]
        repo: String,
        /// Create the repository as private.
        #[arg(long)]
        private: bool,
        /// Check the folder and show what would be uploaded, without sending anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Whole-song NLL per token of a trained model, on its held-out songs or any others.
    #[command(
        after_help = "Examples:\n  cargo xtask eval --model runs/erk\n  cargo xtask eval --model assets/essen --data ../shared/data/essen/deutschl/kinder --style kinder"
    )]
    Eval {
        /// A run folder, any folder with model.safetensors and config.json, or hub:OWNER/NAME.
        #[arg(long)]
        model: ModelRef,
        /// Songs to score, read with the model's encoding and vocabulary: a
        /// folder of .krn/.sm files, a zip of them, an Essen tree, a
        /// collection name (erk, kinder, essen), or a folder written by
        /// `cargo xtask prepare`; split as `train` splits them
        /// [default: MODEL/data].
        #[arg(long, value_name = "DIR|ZIP|NAME")]
        data: Option<PathBuf>,
        /// Which of the songs are scored.
        #[arg(long, value_enum, default_value_t = train_cmd::EvalSongs::Test)]
        songs: train_cmd::EvalSongs,
        /// For a model trained with --condition: read every song as this
        /// collection (`deutschl/kinder`, or `kinder` where only one ends so)
        /// [default: each song's own; "other" for songs that name none, as a
        /// single collection read alone does].
        #[arg(long, value_name = "COLLECTION")]
        style: Option<String>,
        /// Where the model runs.
        #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
        device: DeviceArg,
        /// f32: the weights as trained; bf16: each song read step by step
        /// with the weights rounded, as generation with that setting reads it
        /// (see `sample --step-weights`).
        #[arg(long, value_name = "f32|bf16", default_value = "f32")]
        step_weights: lstm_candle::StepWeights,
    },
    /// Print eval-mode logits at every position for token ids, as JSON.
    #[command(after_help = "Example:\n  cargo xtask logits --model runs/erk --ids \"0 12 5 7\"")]
    Logits {
        /// A run folder, a model folder, or hub:OWNER/NAME.
        #[arg(long)]
        model: ModelRef,
        /// Space-separated token ids.
        #[arg(long)]
        ids: String,
        /// Where the model runs.
        #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
        device: DeviceArg,
    },
    /// Print a shell completion script for `xtask` (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  cargo xtask completions bash > ~/.local/share/bash-completion/completions/xtask\n  cargo xtask completions zsh > ~/.zfunc/_xtask\n\nThe scripts complete the `xtask` binary (target/release/xtask); for `cargo xtask`\nthe cargo completion of your shell applies."
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Benchmarks; results are printed as JSON lines.
    #[command(
        after_help = "Examples:\n  cargo xtask bench parse --data ../shared/data/essen/deutschl/erk\n  cargo xtask bench train --steps 20\n  cargo xtask bench sample"
    )]
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Parse + encode a whole collection; prints songs/s.
    #[command(
        after_help = "Example:\n  cargo xtask bench parse --data ../shared/data/essen/deutschl/erk --iterations 50"
    )]
    Parse {
        /// Folder, file or zip (default: the cached erk collection).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Timed passes over the collection; the best and the median are reported.
        #[arg(long, default_value_t = 20)]
        iterations: usize,
    },
    /// Training tokens/s (forward + backward + Adam) at the default size and at 2 x 256.
    #[command(
        after_help = "Examples:\n  cargo xtask bench train --steps 20\n  cargo xtask bench train --size default --threads 1 --fused-only\n  cargo xtask bench train --device cuda --size all --batch 512 --threads 1\n  cargo xtask bench train --side-inputs --fused-only --steps 20\n  cargo xtask bench train --side-inputs --lookback 3 --fused-only --size default"
    )]
    Train {
        /// Timed training steps per measurement (after two untimed warm-up steps).
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Model sizes to time: hidden 128 x 1 layer, hidden 256 x 2 layers,
        /// both, hidden 512 x 3 layers, those three, or the shipped model's
        /// hidden 512 x 1 layer.
        #[arg(long, value_enum, default_value = "both")]
        size: BenchSize,
        /// Windows per update.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Tokens per window (64 as the reference trains; `train`'s default
        /// recipe reads 16).
        #[arg(long, default_value_t = 64)]
        seq_len: usize,
        /// Where to train: auto, cpu, cuda, metal.
        #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
        device: DeviceArg,
        /// Thread count to time (default: 1 and every available core).
        #[arg(long)]
        threads: Option<usize>,
        /// Skip the step-by-step reference (for profiling the fused recurrence).
        #[arg(long)]
        fused_only: bool,
        /// Also time the fused step with the side inputs of a model trained
        /// with --condition on the whole collection (bar position, meter,
        /// mode, style, bars left), beside the same model without them.
        #[arg(long)]
        side_inputs: bool,
        /// With --side-inputs: also time them with this many lookback inputs
        /// more (`train --lookback 2,4,8` is 3), each holding a token at
        /// every step [default: 0].
        #[arg(long, value_name = "INPUTS", requires = "side_inputs")]
        lookback: Option<usize>,
    },
    /// Sampling tokens/s for 1 and 64 melodies at once, each with f32 and with
    /// bf16 step weights, and the per-token time after 10 and 1000 tokens
    /// (stateful, and re-feeding the prefix as the reference does).
    #[command(
        after_help = "Examples:\n  cargo xtask bench sample\n  cargo xtask bench sample --model runs/erk"
    )]
    Sample {
        /// Model folder.
        #[arg(long, default_value = "assets/erk")]
        model: PathBuf,
        /// Where to sample: auto, cpu, cuda, metal.
        #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
        device: DeviceArg,
    },
    /// Latency of the composer page's API: one client after another, then
    /// many at once, asking the shipped model for melodies (the target: p99
    /// under 250 ms for 32 clients asking for 8 bars).
    #[command(after_help = "Example:\n  cargo xtask bench serve --clients 32 --requests 320")]
    Serve {
        /// Clients asking at once in the second run.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Melodies asked for in each run (each with its own seed).
        #[arg(long, default_value_t = 320)]
        requests: usize,
        /// Bars of each melody asked for.
        #[arg(long, default_value_t = 8)]
        bars: usize,
    },
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum BenchSize {
    /// Hidden 128, 1 layer: the reference's size and the training default.
    Default,
    /// Hidden 256, 2 layers.
    Large,
    /// Default and large.
    Both,
    /// Hidden 512, 3 layers.
    Huge,
    /// Hidden 512, 1 layer: the shipped whole-collection model (`assets/essen`).
    Essen,
    /// Default, large and huge.
    All,
}

impl BenchSize {
    /// (hidden, layers) of every size this one asks for.
    fn shapes(self) -> Vec<(usize, usize)> {
        match self {
            BenchSize::Default => vec![(128, 1)],
            BenchSize::Large => vec![(256, 2)],
            BenchSize::Both => vec![(128, 1), (256, 2)],
            BenchSize::Huge => vec![(512, 3)],
            BenchSize::Essen => vec![(512, 1)],
            BenchSize::All => vec![(128, 1), (256, 2), (512, 3)],
        }
    }
}

/// Precision of exported weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportDtype {
    F32,
    F16,
    Bf16,
}

impl ExportDtype {
    fn dtype(self) -> DType {
        match self {
            ExportDtype::F32 => DType::F32,
            ExportDtype::F16 => DType::F16,
            ExportDtype::Bf16 => DType::BF16,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum TransposeArg {
    /// To C major / A minor, as the reference notebook does.
    Reference,
    /// Keep the written pitches.
    None,
    /// Every key whose pitches stay within --range (data augmentation).
    AllKeys,
}

fn parse_range(text: &str) -> Result<(u8, u8), String> {
    let (low, high) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?}: write the range as LOW-HIGH, e.g. 45-84"))?;
    let low: u8 = low
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: bad low pitch"))?;
    let high: u8 = high
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: bad high pitch"))?;
    if low > high || high > 127 {
        return Err(format!("{text:?}: need 0 <= LOW <= HIGH <= 127"));
    }
    Ok((low, high))
}

/// Keeps glibc's malloc from returning training's large buffers to the kernel.
/// By default every buffer over 128 KiB to 32 MiB (the threshold adapts) is its
/// own mapping, unmapped when freed and page-faulted in, zeroed, on the next
/// allocation; a training step allocates and frees its activations and
/// gradients (megabytes each) every time, and that churn was a quarter of a
/// step. With the threshold at its maximum and trimming off, freed buffers are
/// reused instead.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes malloc's tuning; called before any thread
    // starts. A refused setting (return 0) just leaves the default.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    keep_freed_memory();
    // Training splits each batch across cores itself; Candle's matrix products
    // are small here and run fastest on one thread each. Set before any thread
    // starts; a user's own RAYON_NUM_THREADS wins.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // hf-hub logs its own retries and failures; the errors we print
                // say what happened and what to do.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,hf_hub=off")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only where a terminal shows them, not in logs and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
    if let Err(error) = run(Cli::parse()) {
        eprintln!("error: {}", describe(&error));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, each cause once: library errors often
/// repeat their source in their own message.
fn describe(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
    }
    message
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Download {
            target,
            from,
            cache,
            force,
        } => {
            let mut options =
                download::Options::new(cache.unwrap_or_else(trainer::source::cache_root));
            options.force = force;
            if target == "essen" {
                // Both forms; an offline mirror is an Essen tree with both.
                let mut tree = None;
                for part in ["deutschl", "esac"] {
                    options.from = from.as_ref().map(|f| f.join(part));
                    let collection = download::known(part).expect("known");
                    let done = fetch(&collection, &options)?;
                    tree = done.path.parent().map(Path::to_owned);
                }
                println!(
                    "essen: both forms verified\n  {}",
                    tree.expect("two parts").display()
                );
            } else {
                options.from = from;
                fetch(&resolve_target(&target)?, &options)?;
            }
        }
        Command::Prepare {
            data,
            out,
            seed,
            step,
            transpose,
            range,
        } => {
            let data = source::data_or_cached_erk(data, "--data")?;
            let transposition = match transpose {
                TransposeArg::Reference => Transposition::ToCMajorAMinor,
                TransposeArg::None => Transposition::None,
                TransposeArg::AllKeys => Transposition::AllKeys {
                    low: range.0,
                    high: range.1,
                },
            };
            let options = PrepareOptions {
                encoding: Encoding {
                    step,
                    transposition,
                },
                seed,
                ..Default::default()
            };
            prepare(&data, &out, &options)?;
        }
        Command::Bench {
            which: BenchCommand::Parse { data, iterations },
        } => {
            let data = source::data_or_cached_erk(data.into_iter().collect(), "--data")?.remove(0);
            let result = bench::parse(&data, iterations)?;
            println!("{}", serde_json::to_string(&result)?);
        }
        Command::Bench {
            which:
                BenchCommand::Train {
                    steps,
                    size,
                    batch,
                    seq_len,
                    device,
                    threads,
                    fused_only,
                    side_inputs,
                    lookback,
                },
        } => {
            let device = device.device()?;
            let cores = train_cmd::available_threads();
            let mut thread_counts = threads.map_or(vec![1, cores], |n| vec![n.max(1)]);
            thread_counts.dedup();
            for (hidden, layers) in size.shapes() {
                for &threads in &thread_counts {
                    // The step-by-step recurrence is the in-process reference
                    // for the fused one, and the fused step without side
                    // inputs for the ones with them.
                    let lookback = lookback.unwrap_or(0);
                    let variants = [(false, false, 0), (true, false, 0), (false, true, 0)]
                        .into_iter()
                        .chain((lookback > 0).then_some((false, true, lookback)));
                    for (step_by_step, with_side, lookback) in variants {
                        if (step_by_step && fused_only) || (with_side && !side_inputs) {
                            continue;
                        }
                        let shape = bench::TrainShape {
                            hidden,
                            layers,
                            batch,
                            seq_len,
                            side_inputs: with_side,
                            lookback,
                        };
                        let result = bench::train(&device, shape, steps, threads, step_by_step)?;
                        println!("{}", serde_json::to_string(&result)?);
                    }
                }
            }
        }
        Command::Bench {
            which: BenchCommand::Sample { model, device },
        } => {
            let device = device.device()?;
            // Both ways of holding the weights, in the same process.
            for melodies in [1, 64] {
                for weights in lstm_candle::StepWeights::ALL {
                    let result = bench::sample(&model, &device, melodies, weights)?;
                    println!("{}", serde_json::to_string(&result)?);
                }
            }
            for prefix in [10, 1000] {
                let result = bench::prefix(&model, &device, prefix)?;
                println!("{}", serde_json::to_string(&result)?);
            }
        }
        Command::Bench {
            which:
                BenchCommand::Serve {
                    clients,
                    requests,
                    bars,
                },
        } => {
            for result in bench::serve(clients, requests, bars)? {
                println!("{}", serde_json::to_string(&result)?);
            }
        }
        Command::Train(args) => train_cmd::train(&args)?,
        Command::Sample(args) => sample_cmd::sample(&args)?,
        Command::Serve(args) => serve_cmd::serve(&args)?,
        Command::Judge {
            validation_songs: true,
            out: Some(out),
            data,
            ..
        } => {
            let data = match data {
                Some(data) => data,
                None => source::data_or_cached_erk(Vec::new(), "--data")?.remove(0),
            };
            let judgement = judge_cmd::run_validation_songs(&out, &data)?;
            println!(
                "the validation songs of {} in the place of generated melodies:",
                data.display()
            );
            judge_cmd::print(&judgement, &out);
        }
        Command::Judge { samples, data, .. } => {
            let melodies = judge_cmd::read_samples(&samples)?;
            let record = SampleRecord::read(&samples)?;
            let data = judge_cmd::data_to_judge_against(data, record.as_ref())?;
            println!("judged against the test songs of {}", data.path.display());
            let (encoding, asked) = record.map(|r| (r.encoding, r.asked)).unwrap_or_default();
            let judgement = judge_cmd::run(&melodies, &encoding, &asked, &samples, &data)?;
            judge_cmd::print(&judgement, &samples);
        }
        Command::Eval {
            model,
            data,
            songs,
            style,
            device,
            step_weights,
        } => train_cmd::eval(
            &model,
            data.as_deref(),
            songs,
            style.as_deref(),
            device,
            step_weights,
        )?,
        Command::Logits { model, ids, device } => train_cmd::logits(&model, &ids, device)?,
        Command::Export {
            run,
            out,
            dtype,
            repo,
        } => {
            let folder = ModelFolder::open(&run, &candle_core::Device::Cpu)?;
            let files = folder.export(&out, dtype.dtype(), &repo)?;
            println!("exported {run} to {} ({dtype:?} weights):", out.display());
            for file in files {
                println!("  {}", file.display());
            }
            println!(
                "check it with `cargo xtask inspect {0}`; publish it with `cargo xtask-hub publish {0} --repo {repo}`",
                out.display()
            );
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "xtask", &mut std::io::stdout());
        }
        Command::Inspect { path } => print!("{}", model_folder::inspect(&path.local_dir()?)?),
        Command::Publish {
            dir,
            repo,
            private,
            dry_run,
        } => {
            let hub_ref = HubRef::parse(&repo)?;
            let files = hub::publish_plan(&dir)?;
            let visibility = if private { "private" } else { "public" };
            println!(
                "{} {} files from {} to {} ({visibility}) in one commit:",
                if dry_run { "would upload" } else { "uploading" },
                files.len(),
                dir.display(),
                hub_ref.repo_id()
            );
            for (name, size) in &files {
                println!("  {name:<24} {size:>10} bytes");
            }
            if dry_run {
                let token = if hub::find_token().is_some() {
                    "a token was found"
                } else {
                    "no token found: set HF_TOKEN before publishing"
                };
                println!("dry run: nothing was sent ({token})");
            } else {
                let commit = hub::publish(&dir, &hub_ref, private)?;
                println!("published: {commit}");
                println!(
                    "sample from it with `cargo xtask-hub sample --model hub:{}`",
                    hub_ref.repo_id()
                );
            }
        }
    }
    Ok(())
}

/// Downloads one collection and says what happened.
fn fetch(
    collection: &download::Collection,
    options: &download::Options,
) -> Result<download::Downloaded> {
    let done = download::download(collection, options).with_context(|| {
        format!(
            "cannot fetch {} (check the network, or without internet use an offline copy with --from DIR|ZIP)",
            collection.name
        )
    })?;
    let verified = if collection.pinned.is_some() {
        "verified against the pinned checksum"
    } else {
        "no pinned checksum for a custom URL"
    };
    let state = if done.cached {
        "already cached"
    } else {
        "downloaded"
    };
    println!(
        "{}: {state}, {} files, {verified}\n  {}",
        collection.name,
        done.files,
        done.path.display()
    );
    Ok(done)
}

fn resolve_target(target: &str) -> Result<download::Collection> {
    if let Some(known) = download::known(target) {
        return Ok(known);
    }
    if target.starts_with("http://") || target.starts_with("https://") {
        return Ok(download::from_url(target));
    }
    bail!(
        "unknown collection {target:?}: use `erk`, `deutschl`, `esac`, `essen`, or the URL of a zip"
    )
}

fn prepare(data: &[PathBuf], out: &Path, options: &PrepareOptions) -> Result<()> {
    let start = Instant::now();
    let prepared = source::prepare_paths_with_spinner(data, options)?;
    let files = trainer::write_prepared(&prepared, out)
        .with_context(|| format!("--out: cannot write into {}", out.display()))?;
    let r = &prepared.report;
    println!(
        "read {} files from {}: {} songs, {} rejected",
        r.files,
        source::describe(data),
        r.songs_read,
        r.rejected
    );
    for (reason, count) in &r.rejected_reasons {
        println!("  rejected {count:>5}  {reason}");
    }
    if !r.skipped_files.is_empty() {
        println!(
            "  skipped {} files that hold no songs, e.g. {}",
            r.skipped_files.len(),
            r.skipped_files[0].file
        );
    }
    println!(
        "on the {} grid: {} songs, {} filtered, {} grace notes dropped",
        r.encoding.step, r.on_grid, r.filtered, r.grace_notes_dropped
    );
    let mut reasons: Vec<(&String, &usize)> = r.filtered_reasons.iter().collect();
    reasons.sort_by_key(|(_, count)| std::cmp::Reverse(**count));
    for (reason, count) in reasons.iter().take(8) {
        println!("  filtered {count:>5}  {reason}");
    }
    if reasons.len() > 8 {
        println!("  ... {} more kinds in report.json", reasons.len() - 8);
    }
    if r.duplicates > 0 {
        println!(
            "  {} songs left out as duplicates of earlier ones",
            r.duplicates
        );
    }
    if !r.collections.is_empty() {
        println!(
            "  {:<26} {:>6} {:>6} {:>6} {:>6} {:>6}",
            "collection", "read", "dup", "train", "val", "test"
        );
        for (name, c) in &r.collections {
            let split = |s| c.songs_per_split.get(&s).copied().unwrap_or(0);
            println!(
                "  {name:<26} {:>6} {:>6} {:>6} {:>6} {:>6}",
                c.songs_read,
                c.duplicates,
                split(Split::Train),
                split(Split::Val),
                split(Split::Test)
            );
        }
    }
    for split in [Split::Train, Split::Val, Split::Test] {
        println!(
            "  {:<5} {:>5} songs {:>8} tokens",
            format!("{split:?}").to_lowercase(),
            r.songs_per_split[&split],
            r.tokens_per_split[&split]
        );
    }
    if let Some(found) = &r.held_out_variants {
        let variants = |split| found.iter().filter(|v| v.split == split).count();
        println!(
            "  variants: {} validation and {} test songs are variants of a training song ({}% or more of their {}-token stretches in it; kept, listed in report.json)",
            variants(Split::Val),
            variants(Split::Test),
            trainer::variants::VARIANT_SHARE * 100.0,
            trainer::variants::VARIANT_NGRAM
        );
    }
    println!(
        "vocabulary: {} tokens; split seed {}; {:.2} s",
        r.vocabulary_size,
        r.seed,
        start.elapsed().as_secs_f64()
    );
    println!("encoding: {}", r.encoding);
    println!(
        "wrote {}, {}, {}, {}",
        files.songs.display(),
        files.tokenizer.display(),
        files.encoding.display(),
        files.report.display()
    );
    println!("train on it: cargo xtask train --data {}", out.display());
    Ok(())
}
