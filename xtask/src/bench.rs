//! `cargo xtask bench parse|train|sample`: songs per second for parse + encode
//! of a collection; training tokens per second (forward + backward + update);
//! sampling tokens per second, and the per-token cost at short and long
//! prefixes next to the reference's re-feeding of the whole prefix.

use sampler::SideValues;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use grid_codec::{Encoding, Schedule, SongConditions, encode_with};
use model_folder::ModelFolder;
use serde::Serialize;

/// One benchmark result, printed as a JSON line.
#[derive(Debug, Serialize)]
pub struct ParseBench {
    pub bench: &'static str,
    pub data: String,
    pub files: usize,
    pub songs: usize,
    pub on_grid: usize,
    pub iterations: usize,
    /// Best (smallest) wall time of one full parse + encode, in milliseconds.
    pub best_ms: f64,
    pub median_ms: f64,
    pub songs_per_s: f64,
}

/// Parses and encodes every song under `data`, `iterations` times (after one
/// warm-up that also fills the OS file cache), and reports the best and median.
pub fn parse(data: &Path, iterations: usize) -> Result<ParseBench> {
    let run = || -> Result<(usize, usize, usize)> {
        let collection = trainer::source::load_collection(data)?;
        let options = Encoding::default();
        let on_grid = collection
            .songs
            .iter()
            .filter(|s| encode_with(s, &options).is_ok())
            .count();
        Ok((collection.music_files, collection.songs.len(), on_grid))
    };
    let (files, songs, on_grid) = run()?;
    let mut times: Vec<Duration> = Vec::with_capacity(iterations);
    for _ in 0..iterations.max(1) {
        let start = Instant::now();
        run()?;
        times.push(start.elapsed());
    }
    times.sort();
    let best = times[0].as_secs_f64();
    let median = times[times.len() / 2].as_secs_f64();
    Ok(ParseBench {
        bench: "parse+encode",
        data: data.display().to_string(),
        files,
        songs,
        on_grid,
        iterations: times.len(),
        best_ms: best * 1e3,
        median_ms: median * 1e3,
        songs_per_s: songs as f64 / median,
    })
}

/// Training throughput at one model size, printed as a JSON line.
#[derive(Debug, Serialize)]
pub struct TrainBench {
    pub bench: &'static str,
    /// Where it ran, as Candle names the device (`Cpu`, `Cuda { gpu_id: 0 }`).
    pub device: String,
    pub hidden: usize,
    pub layers: usize,
    pub vocab: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub steps: usize,
    pub threads: usize,
    /// `fused` (the recurrence op, on the CPU or CUDA) or `step-by-step`
    /// (Candle operations).
    pub recurrence: &'static str,
    /// Side inputs read beside each token (0, or those of a conditioned
    /// whole-collection model).
    pub side_inputs: usize,
    pub median_step_ms: f64,
    pub tokens_per_s: f64,
}

/// The meters (12 and "free", "other") and styles (27 collections and
/// "other") of a model trained with `--condition` on the whole Essen
/// collection (`assets/essen`).
const WHOLE_COLLECTION_METERS: u32 = 14;
const WHOLE_COLLECTION_STYLES: u32 = 28;

/// The side inputs of a model trained with `--condition` on the whole Essen
/// collection: bar position, meter, mode, style and bars left.
fn whole_collection_side_inputs() -> Vec<lstm_candle::SideInput> {
    use grid_codec::conditions::{INPUT_NAMES, MAX_BAR_STEPS, MAX_BARS_LEFT};
    let sizes = [
        MAX_BAR_STEPS + 1,
        WHOLE_COLLECTION_METERS,
        3,
        WHOLE_COLLECTION_STYLES,
        MAX_BARS_LEFT + 2,
    ];
    INPUT_NAMES
        .into_iter()
        .zip(sizes)
        .map(|(name, size)| lstm_candle::SideInput {
            name: name.to_owned(),
            size: size as usize,
        })
        .collect()
}

/// Side values of [`whole_collection_side_inputs`] for a window of `len` steps
/// of one song, as training reads them: the meter, mode and style drawn once,
/// the bar position counting through bars of 8 to 24 steps from a drawn step,
/// and the bars left counting down from a drawn bar. Values drawn afresh at
/// every step would cost more than a song's: a song's values repeat from step
/// to step, and the model's lookups then stay in cache.
fn song_side_values(rng: &mut impl rand::Rng, len: usize) -> Vec<Vec<u32>> {
    let bar_steps = rng.random_range(8..=24_u32);
    let start = rng.random_range(0..bar_steps);
    let last_bar = rng.random_range(0..=grid_codec::conditions::MAX_BARS_LEFT);
    let [meter, mode, style] = [WHOLE_COLLECTION_METERS, 3, WHOLE_COLLECTION_STYLES]
        .map(|values| rng.random_range(0..values));
    let steps = (0..len as u32).map(move |i| start + i);
    vec![
        steps.clone().map(|step| step % bar_steps).collect(),
        vec![meter; len],
        vec![mode; len],
        vec![style; len],
        steps
            .map(|step| last_bar.saturating_sub(step / bar_steps))
            .collect(),
    ]
}

/// Where a benchmark ran, as Candle names it (`Cpu`, `Cuda { gpu_id: 0 }`).
fn device_name(device: &candle_core::Device) -> String {
    format!("{:?}", device.location())
}

/// The model size and batch of a training benchmark.
#[derive(Debug, Clone, Copy)]
pub struct TrainShape {
    pub hidden: usize,
    pub layers: usize,
    /// Windows per update.
    pub batch: usize,
    /// Tokens per window.
    pub seq_len: usize,
    /// With the side inputs of a conditioned whole-collection model, each
    /// window's values drawn as a song has them.
    pub side_inputs: bool,
    /// With `side_inputs`: this many lookback inputs more, each holding a
    /// token drawn as the window's own are.
    pub lookback: usize,
}

/// Times `steps` training updates (after two warm-up steps) of the melody model
/// on random token windows: forward, all-position loss, backward, Adam.
pub fn train(
    device: &candle_core::Device,
    TrainShape {
        hidden,
        layers,
        batch,
        seq_len,
        side_inputs,
        lookback,
    }: TrainShape,
    steps: usize,
    threads: usize,
    step_by_step: bool,
) -> Result<TrainBench> {
    use candle_core::DType;
    use lstm_candle::{MelodyModel, ModelConfig};
    use rand::{Rng, SeedableRng};
    use trainer::data::{Track, TrainBatch};
    use trainer::optim::{Adam, AdamConfig};
    use trainer::train::batch_gradients;

    let vocab = 38;
    let side = if side_inputs {
        let mut inputs = whole_collection_side_inputs();
        inputs.extend((0..lookback).map(|input| lstm_candle::SideInput {
            name: format!("lookback_{input}"),
            size: vocab + 1,
        }));
        inputs
    } else {
        Vec::new()
    };
    let side_count = side.len();
    let config = ModelConfig {
        hidden_size: hidden,
        num_layers: layers,
        side_inputs: side,
        ..ModelConfig::reference(vocab)
    };
    let mut model = MelodyModel::new(config, device, DType::F32, 0)?;
    model.set_step_by_step(step_by_step);
    let mut adam = Adam::new(model.parameters(), AdamConfig::default())?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut times = Vec::new();
    for step in 0..steps + 2 {
        let windows: Vec<Track> = (0..batch)
            .map(|_| Track {
                ids: (0..=seq_len)
                    .map(|_| rng.random_range(0..vocab as u32))
                    .collect(),
                side: if side_inputs {
                    let mut values = song_side_values(&mut rng, seq_len + 1);
                    values.extend((0..lookback).map(|_| {
                        (0..=seq_len)
                            .map(|_| rng.random_range(0..vocab as u32))
                            .collect()
                    }));
                    values
                } else {
                    Vec::new()
                },
            })
            .collect();
        let start = Instant::now();
        let batch = TrainBatch::from_windows(&windows, seq_len, false);
        let (_, grads, _) = batch_gradients(&model, &batch, None, step as u64, threads)?;
        adam.step(&grads, 1e-3, 1.0)?;
        // A GPU queues its work: the step ends when the device has done it.
        device.synchronize()?;
        if step >= 2 {
            times.push(start.elapsed());
        }
    }
    times.sort();
    let median = times[times.len() / 2].as_secs_f64();
    Ok(TrainBench {
        bench: "train-step",
        device: device_name(device),
        hidden,
        layers,
        vocab,
        batch,
        seq_len,
        steps,
        threads,
        recurrence: if step_by_step {
            "step-by-step"
        } else {
            "fused"
        },
        side_inputs: side_count,
        median_step_ms: median * 1e3,
        tokens_per_s: (batch * seq_len) as f64 / median,
    })
}

/// Sampling throughput with `melodies` generated together, as a JSON line.
#[derive(Debug, Serialize)]
pub struct SampleBench {
    pub bench: &'static str,
    pub model: String,
    pub device: String,
    pub melodies: usize,
    pub step_weights: lstm_candle::StepWeights,
    /// The kernel bf16 products ran on (`amx-tiles`, `avx512-bf16` or
    /// `f32-candle`); `null` with f32 weights.
    pub bf16_kernel: Option<lstm_candle::bf16_product::Bf16Kernel>,
    /// Tokens generated, the closing `.` included.
    pub tokens: usize,
    pub seconds: f64,
    pub tokens_per_s: f64,
}

/// Generates `melodies` melodies at once from `model` (up to 1,000 tokens each,
/// temperature 1) after one warm-up run, the LSTM weights held as
/// `step_weights` says, and counts the tokens produced.
pub fn sample(
    model_dir: &Path,
    device: &candle_core::Device,
    melodies: usize,
    step_weights: lstm_candle::StepWeights,
) -> Result<SampleBench> {
    let mut folder = ModelFolder::load(model_dir, device)?;
    folder.model.set_step_weights(step_weights);
    let (model, vocabulary) = (&folder.model, &folder.vocabulary);
    let config = sampler::SamplingConfig {
        max_len: 1000,
        ..Default::default()
    };
    let generate = || {
        sampler::generate(
            model,
            vocabulary,
            &[],
            melodies,
            &config,
            unknown_song(&folder, melodies),
        )
    };
    // Once to warm up, once timed.
    generate()?;
    let start = Instant::now();
    let generated = generate()?;
    let seconds = start.elapsed().as_secs_f64();
    let tokens = generated
        .iter()
        .map(|(tokens, closed)| tokens.len() + usize::from(*closed))
        .sum();
    Ok(SampleBench {
        bench: "sample",
        model: model_dir.display().to_string(),
        device: device_name(device),
        melodies,
        step_weights,
        bf16_kernel: model.stepper()?.bf16_kernel(),
        tokens,
        seconds,
        tokens_per_s: tokens as f64 / seconds,
    })
}

/// For each of `rows` melodies, the side values of a song of which nothing is
/// known (free meter, unknown mode, no style, no bars to count down), so that
/// a conditioned model writes on as an unconditioned one does; none for a
/// model without side inputs.
fn unknown_song(folder: &ModelFolder, rows: usize) -> SideValues {
    match &folder.conditioning {
        Some(conditioning) => SideValues {
            rows: vec![Schedule::fixed(conditioning.values(&SongConditions::default(), &[])); rows],
        },
        None => SideValues::default(),
    }
}

/// The cost of the next token after a prefix, stateful against re-feeding.
#[derive(Debug, Serialize)]
pub struct PrefixBench {
    pub bench: &'static str,
    pub device: String,
    pub prefix: usize,
    /// One step carrying (h, c), as `sampler` does (median of 200).
    pub stateful_ms: f64,
    /// The whole prefix through the network again, as the reference notebook
    /// does for every token (median of 5).
    pub refeed_ms: f64,
}

/// Per-token time of one melody at a prefix length, both ways.
pub fn prefix(
    model_dir: &Path,
    device: &candle_core::Device,
    prefix: usize,
) -> Result<PrefixBench> {
    use rand::{Rng, SeedableRng};
    let folder = ModelFolder::load(model_dir, device)?;
    let (model, vocabulary) = (&folder.model, &folder.vocabulary);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(prefix as u64);
    let ids: Vec<u32> = (0..prefix)
        .map(|_| rng.random_range(0..vocabulary.len() as u32))
        .collect();
    let side = unknown_song(&folder, 1);
    let mut session = sampler::Session::start(model, &ids, 1, side.clone())?;
    let mut stateful = Vec::new();
    for step in 0..210u32 {
        let start = Instant::now();
        session.advance(&[step % vocabulary.len() as u32])?;
        session.logits()?;
        if step >= 10 {
            stateful.push(start.elapsed());
        }
    }
    let input = model.ids_tensor(&[ids])?;
    // The same values at every step of the prefix.
    let side = model.side_tensors(
        &side
            .rows
            .iter()
            .flat_map(|schedule| &schedule.values)
            .map(|values| vec![vec![values[0]; prefix]])
            .collect::<Vec<_>>(),
    )?;
    let mut refeed = Vec::new();
    for _ in 0..6 {
        let start = Instant::now();
        let (logits, _) = model.forward(&input, &side, None, None)?;
        logits.narrow(1, prefix - 1, 1)?.to_vec3::<f32>()?;
        refeed.push(start.elapsed());
    }
    refeed.remove(0);
    let median_ms = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2].as_secs_f64() * 1e3
    };
    Ok(PrefixBench {
        bench: "sample-prefix",
        device: device_name(device),
        prefix,
        stateful_ms: median_ms(stateful),
        refeed_ms: median_ms(refeed),
    })
}

/// One run of `bench serve`: latencies of melodies asked of a loopback
/// server by `clients` clients at once.
#[derive(Debug, Serialize)]
pub struct ServeBench {
    pub bench: &'static str,
    pub clients: usize,
    pub requests: usize,
    pub bars: usize,
    pub melodies_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Answers that were not the melody the same seed gives alone.
    pub wrong: usize,
    /// Requests with no answer or an error status.
    pub lost: usize,
}

/// The `p` quantile (0..=1) of sorted milliseconds.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

/// `requests` melodies of `bars` bars from the shipped model, asked by one
/// client after another (the reference, whose answers are the expected
/// melodies), then by `clients` clients at once with the same seeds.
pub fn serve(clients: usize, requests: usize, bars: usize) -> Result<Vec<ServeBench>> {
    let server = melody_server::start(melody_server::Config::loopback(
        "assets".into(),
        "runs".into(),
    ))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    // The tempo differs between the runs so that no answer comes from the cache.
    let ask = |seed: usize, tempo: usize| -> Option<(String, f64)> {
        let url = format!(
            "http://{}/api/generate?seed={seed}&bars={bars}&tempo={tempo}",
            server.addr
        );
        let start = Instant::now();
        let mut response = agent.get(&url).call().ok()?;
        let body: serde_json::Value =
            serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        (response.status() == 200)
            .then(|| (body["tokens"].as_str().unwrap_or_default().to_owned(), ms))
    };
    ask(requests, 99); // loads the model
    let run = |clients: usize, tempo: usize, expected: Option<&[Option<String>]>| {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let start = Instant::now();
        let answers: Vec<(usize, Option<(String, f64)>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..clients)
                .map(|_| {
                    scope.spawn(|| {
                        let mut answers = Vec::new();
                        loop {
                            let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if seed >= requests {
                                return answers;
                            }
                            answers.push((seed, ask(seed, tempo)));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a client thread"))
                .collect()
        });
        let seconds = start.elapsed().as_secs_f64();
        let mut tokens = vec![None; requests];
        let mut ms: Vec<f64> = Vec::with_capacity(requests);
        for (seed, answer) in answers {
            if let Some((t, latency)) = answer {
                tokens[seed] = Some(t);
                ms.push(latency);
            }
        }
        ms.sort_by(f64::total_cmp);
        let wrong = expected.map_or(0, |expected| {
            tokens
                .iter()
                .zip(expected)
                .filter(|(got, want)| got.is_some() && got != want)
                .count()
        });
        let result = ServeBench {
            bench: "serve",
            clients,
            requests,
            bars,
            melodies_per_s: ms.len() as f64 / seconds,
            p50_ms: quantile(&ms, 0.5),
            p99_ms: quantile(&ms, 0.99),
            max_ms: ms.last().copied().unwrap_or(f64::NAN),
            wrong,
            lost: requests - ms.len(),
        };
        (result, tokens)
    };
    let (alone, expected) = run(1, 100, None);
    let (together, _) = run(clients, 101, Some(&expected));
    Ok(vec![alone, together])
}
