//! Evaluation as generation uses the model: every song read from its start
//! (`.` first, zero state) and every one of its tokens scored, including the
//! closing `.`. The reference scored only the last token of 64-token windows.

use candle_core::{D, DType, Tensor};
use lstm_candle::{MelodyModel, ModelError};
use serde::{Deserialize, Serialize};

use crate::data::song_pairs;

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

/// Scores `songs` in batches of similar length (padding is masked out).
pub fn evaluate(
    model: &MelodyModel,
    songs: &[Vec<u32>],
    batch_size: usize,
) -> Result<Evaluation, ModelError> {
    let mut order: Vec<usize> = (0..songs.len()).collect();
    order.sort_by_key(|&i| songs[i].len());
    let device = model.device().clone();
    let mut total_nll = 0f64;
    let mut correct = 0f64;
    let mut tokens = 0usize;
    for chunk in order.chunks(batch_size.max(1)) {
        let length = chunk.iter().map(|&i| songs[i].len() + 1).max().unwrap_or(1);
        let mut inputs = Vec::with_capacity(chunk.len());
        let mut targets = Vec::with_capacity(chunk.len() * length);
        let mut mask = Vec::with_capacity(chunk.len() * length);
        for &i in chunk {
            let (mut input, mut target) = song_pairs(&songs[i]);
            let real = input.len();
            input.resize(length, 0);
            target.resize(length, 0);
            inputs.push(input);
            targets.extend(target);
            mask.extend((0..length).map(|t| if t < real { 1f32 } else { 0f32 }));
            tokens += real;
        }
        let input = model.ids_tensor(&inputs)?;
        let targets = Tensor::from_vec(targets, (chunk.len(), length), &device)?;
        let mask = Tensor::from_vec(mask, (chunk.len(), length), &device)?;
        let (logits, _) = model.forward(&input, None, None)?;
        total_nll += MelodyModel::masked_nll(&logits, &targets, &mask)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        let hits = logits
            .argmax(D::Minus1)?
            .eq(&targets)?
            .to_dtype(DType::F32)?
            .mul(&mask)?
            .sum_all()?
            .to_scalar::<f32>()?;
        correct += f64::from(hits);
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
        };
        let model = MelodyModel::new(config, &Device::Cpu, DType::F64, 1).unwrap();
        let songs = vec![vec![1, 2, 3], vec![4], vec![5, 5, 1, 2, 2, 3]];
        let together = evaluate(&model, &songs, 8).unwrap();
        assert_eq!(together.tokens, 4 + 2 + 7);
        let mut nll = 0.0;
        for song in &songs {
            let one = evaluate(&model, std::slice::from_ref(song), 1).unwrap();
            nll += one.nll_per_token * one.tokens as f64;
        }
        assert!((together.nll_per_token - nll / 13.0).abs() < 1e-12);
        // A uniform model would score ln 6; an untrained one is near it.
        assert!((together.nll_per_token - 6f64.ln()).abs() < 0.5);
    }
}
