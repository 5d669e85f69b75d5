//! Evaluation as generation uses the model: every song read from its start
//! (`.` first, zero state) and every one of its tokens scored, including the
//! closing `.`. The reference scored only the last token of 64-token windows.

use candle_core::{D, DType, Tensor};
use lstm_candle::{MelodyModel, ModelError, StepWeights};
use serde::{Deserialize, Serialize};

use crate::data::{Song, TrainBatch};

/// Whole-song scores over a set of songs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean negative log-likelihood per token, in nats.
    pub nll_per_token: f64,
    pub perplexity: f64,
    /// Share of tokens whose most likely prediction is right.
    pub accuracy: f64,
    pub tokens: usize,
    pub songs: usize,
}

/// Scores `songs` in batches of similar length (padding is masked out), the
/// batches shared among `threads` threads, with the model's step weights (see
/// [`MelodyModel::set_step_weights`]).
pub fn evaluate(
    model: &MelodyModel,
    songs: &[Song],
    batch_size: usize,
    threads: usize,
) -> Result<Evaluation, ModelError> {
    let mut order: Vec<usize> = (0..songs.len()).collect();
    order.sort_by_key(|&i| songs[i].ids.len());
    let batches: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
    let workers = threads.clamp(1, batches.len().max(1));
    // Batches dealt round-robin, so that each thread gets short and long songs.
    let work = |worker: usize| -> Result<(f64, f64, usize), ModelError> {
        let mut sums = (0f64, 0f64, 0usize);
        for chunk in batches.iter().skip(worker).step_by(workers) {
            let batch = TrainBatch::from_songs(chunk.iter().map(|&i| &songs[i]));
            let (rows, length) = (batch.rows(), batch.inputs[0].len());
            let device = model.device();
            let input = model.ids_tensor(&batch.inputs)?;
            let side = model.side_tensors(&batch.side)?;
            let targets: Vec<u32> = batch.targets.iter().flatten().copied().collect();
            let mask: Vec<f32> = batch.weights.iter().flatten().copied().collect();
            let targets = Tensor::from_vec(targets, (rows, length), device)?;
            let mask = Tensor::from_vec(mask, (rows, length), device)?;
            let logits = match model.step_weights() {
                StepWeights::F32 => model.forward(&input, &side, None, None)?.0,
                // Rounded weights exist only in the stepper.
                StepWeights::Bf16 => model.stepped_logits(&input, &side)?,
            };
            sums.0 += MelodyModel::masked_nll(&logits, &targets, &mask)?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
            let hits = logits
                .argmax(D::Minus1)?
                .eq(&targets)?
                .to_dtype(DType::F32)?
                .mul(&mask)?
                .sum_all()?
                .to_scalar::<f32>()?;
            sums.1 += f64::from(hits);
            sums.2 += batch.scored() as usize;
        }
        Ok(sums)
    };
    let partials: Vec<Result<(f64, f64, usize), ModelError>> = if workers == 1 {
        vec![work(0)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers).map(|w| scope.spawn(move || work(w))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("an evaluation thread panicked"))
                .collect()
        })
    };
    let (mut total_nll, mut correct, mut tokens) = (0f64, 0f64, 0usize);
    for partial in partials {
        let (nll, hits, count) = partial?;
        total_nll += nll;
        correct += hits;
        tokens += count;
    }
    let nll = total_nll / tokens.max(1) as f64;
    Ok(Evaluation {
        nll_per_token: nll,
        perplexity: nll.exp(),
        accuracy: correct / tokens.max(1) as f64,
        tokens,
        songs: songs.len(),
    })
}

/// Whole-song scores of a dataset's test songs: all of them, and each
/// collection's own when there are several (the whole is then pooled from the
/// parts, so no song is scored twice).
pub fn evaluate_test(
    model: &MelodyModel,
    dataset: &crate::Dataset,
    threads: usize,
) -> Result<(Evaluation, std::collections::BTreeMap<String, Evaluation>), ModelError> {
    let per_collection = dataset
        .test_by_collection()
        .into_iter()
        .map(|(name, songs)| Ok((name.to_owned(), evaluate(model, &songs, 32, threads)?)))
        .collect::<Result<std::collections::BTreeMap<_, _>, ModelError>>()?;
    let all = if per_collection.is_empty() {
        evaluate(model, &dataset.test, 32, threads)?
    } else {
        Evaluation::pooled(per_collection.values())
    };
    Ok((all, per_collection))
}

impl Evaluation {
    /// The scores of disjoint sets of songs taken together.
    pub fn pooled<'a>(parts: impl IntoIterator<Item = &'a Evaluation>) -> Evaluation {
        let (mut nll, mut hits, mut tokens, mut songs) = (0f64, 0f64, 0usize, 0usize);
        for part in parts {
            nll += part.nll_per_token * part.tokens as f64;
            hits += part.accuracy * part.tokens as f64;
            tokens += part.tokens;
            songs += part.songs;
        }
        let nll_per_token = nll / tokens.max(1) as f64;
        Evaluation {
            nll_per_token,
            perplexity: nll_per_token.exp(),
            accuracy: hits / tokens.max(1) as f64,
            tokens,
            songs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use lstm_candle::ModelConfig;

    #[test]
    fn batched_scores_equal_song_by_song_scores() {
        let config = ModelConfig {
            vocab_size: 6,
            embedding_dim: 4,
            hidden_size: 5,
            num_layers: 1,
            dropout: 0.0,
            side_inputs: Vec::new(),
        };
        let model = MelodyModel::new(config, &Device::Cpu, DType::F64, 1).unwrap();
        let songs: Vec<Song> = [vec![1, 2, 3], vec![4], vec![5, 5, 1, 2, 2, 3]]
            .into_iter()
            .map(Song::plain)
            .collect();
        let together = evaluate(&model, &songs, 8, 1).unwrap();
        let parallel = evaluate(&model, &songs, 1, 2).unwrap();
        assert!((together.nll_per_token - parallel.nll_per_token).abs() < 1e-12);
        assert_eq!(together.tokens, parallel.tokens);
        assert_eq!(together.tokens, 4 + 2 + 7);
        let mut nll = 0.0;
        for song in &songs {
            let one = evaluate(&model, std::slice::from_ref(song), 1, 1).unwrap();
            nll += one.nll_per_token * one.tokens as f64;
        }
        assert!((together.nll_per_token - nll / 13.0).abs() < 1e-12);
        // A uniform model would score ln 6; an untrained one is near it.
        assert!((together.nll_per_token - 6f64.ln()).abs() < 0.5);
        // Scores of disjoint parts pool to the scores of the whole.
        let first = evaluate(&model, &songs[..1], 8, 1).unwrap();
        let rest = evaluate(&model, &songs[1..], 8, 1).unwrap();
        let pooled = Evaluation::pooled([&first, &rest]);
        assert!((pooled.nll_per_token - together.nll_per_token).abs() < 1e-12);
        assert!((pooled.accuracy - together.accuracy).abs() < 1e-12);
        assert_eq!((pooled.tokens, pooled.songs), (13, 3));
    }
}
