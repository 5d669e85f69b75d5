//! `cargo xtask bench parse|train|sample`: songs per second for parse + encode
//! of a collection; training tokens per second (forward + backward + update);
//! sampling tokens per second, and the per-token cost at short and long
//! prefixes next to the reference's re-feeding of the whole prefix.

use sampler::SideValues;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use grid_codec::{Encoding, encode_with};
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
    pub hidden: usize,
    pub layers: usize,
    pub vocab: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub steps: usize,
    pub threads: usize,
    /// `fused` (the CPU recurrence op) or `step-by-step` (Candle operations).
    pub recurrence: &'static str,
    pub median_step_ms: f64,
    pub tokens_per_s: f64,
}

/// Times `steps` training updates (after two warm-up steps) of the melody model
/// on random token windows: forward, all-position loss, backward, Adam.
pub fn train(
    hidden: usize,
    layers: usize,
    steps: usize,
    threads: usize,
    step_by_step: bool,
) -> Result<TrainBench> {
    use candle_core::{DType, Device};
    use lstm_candle::{MelodyModel, ModelConfig};
    use rand::{Rng, SeedableRng};
    use trainer::data::{Track, TrainBatch};
    use trainer::optim::{Adam, AdamConfig};
    use trainer::train::batch_gradients;

    let (vocab, batch, seq_len) = (38, 64, 64);
    let config = ModelConfig {
        hidden_size: hidden,
        num_layers: layers,
        ..ModelConfig::reference(vocab)
    };
    let device = Device::Cpu;
    let mut model = MelodyModel::new(config, &device, DType::F32, 0)?;
    model.set_step_by_step(step_by_step);
    let mut adam = Adam::new(model.parameters(), AdamConfig::default())?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut times = Vec::new();
    for step in 0..steps + 2 {
        let rows: Vec<Vec<u32>> = (0..batch)
            .map(|_| {
                (0..=seq_len)
                    .map(|_| rng.random_range(0..vocab as u32))
                    .collect()
            })
            .collect();
        let start = Instant::now();
        let windows: Vec<Track> = rows
            .into_iter()
            .map(|ids| Track {
                ids,
                side: Vec::new(),
            })
            .collect();
        let batch = TrainBatch::from_windows(&windows, seq_len, false);
        let (_, grads, _) = batch_gradients(&model, &batch, None, step as u64, threads)?;
        adam.step(&grads, 1e-3, 1.0)?;
        if step >= 2 {
            times.push(start.elapsed());
        }
    }
    times.sort();
    let median = times[times.len() / 2].as_secs_f64();
    Ok(TrainBench {
        bench: "train-step",
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
        median_step_ms: median * 1e3,
        tokens_per_s: (batch * seq_len) as f64 / median,
    })
}

/// Sampling throughput with `melodies` generated together, as a JSON line.
#[derive(Debug, Serialize)]
pub struct SampleBench {
    pub bench: &'static str,
    pub model: String,
    pub melodies: usize,
    /// Tokens generated, the closing `.` included.
    pub tokens: usize,
    pub seconds: f64,
    pub tokens_per_s: f64,
}

/// Generates `melodies` melodies at once from `model` (up to 1,000 tokens each,
/// temperature 1) after one warm-up run, and counts the tokens produced.
pub fn sample(model_dir: &Path, melodies: usize) -> Result<SampleBench> {
    let ModelFolder {
        model, vocabulary, ..
    } = ModelFolder::load(model_dir, &candle_core::Device::Cpu)?;
    let config = sampler::SamplingConfig {
        max_len: 1000,
        ..Default::default()
    };
    let generate = || {
        sampler::generate(
            &model,
            &vocabulary,
            &[],
            melodies,
            &config,
            SideValues::default(),
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
        melodies,
        tokens,
        seconds,
        tokens_per_s: tokens as f64 / seconds,
    })
}

/// The cost of the next token after a prefix, stateful against re-feeding.
#[derive(Debug, Serialize)]
pub struct PrefixBench {
    pub bench: &'static str,
    pub prefix: usize,
    /// One step carrying (h, c), as `sampler` does (median of 200).
    pub stateful_ms: f64,
    /// The whole prefix through the network again, as the reference notebook
    /// does for every token (median of 5).
    pub refeed_ms: f64,
}

/// Per-token time of one melody at a prefix length, both ways.
pub fn prefix(model_dir: &Path, prefix: usize) -> Result<PrefixBench> {
    use rand::{Rng, SeedableRng};
    let ModelFolder {
        model, vocabulary, ..
    } = ModelFolder::load(model_dir, &candle_core::Device::Cpu)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(prefix as u64);
    let ids: Vec<u32> = (0..prefix)
        .map(|_| rng.random_range(0..vocabulary.len() as u32))
        .collect();
    let mut session = sampler::Session::start(&model, &ids, 1, SideValues::default())?;
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
    let mut refeed = Vec::new();
    for _ in 0..6 {
        let start = Instant::now();
        let (logits, _) = model.forward(&input, &[], None, None)?;
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
        prefix,
        stateful_ms: median_ms(stateful),
        refeed_ms: median_ms(refeed),
    })
}
