//! Starting from a trained model's weights (`train --init`): tokens both
//! vocabularies know keep their rows of the embedding and the output layer,
//! tokens new to the model keep their fresh initialisation, and the LSTM is
//! taken whole, so the architecture must be the same. Side inputs are taken
//! whole too, with the starting model's conditioning; a model that looks back
//! over its own tokens ([`grid_codec::Lookback`]) needs the same tokens.

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use grid_codec::{Conditioning, Token, Vocabulary};
use lstm_candle::{MelodyModel, ModelConfig, names};

use crate::train::TrainError;

/// The weights a run starts from.
#[derive(Debug, Clone)]
pub struct Init {
    pub config: ModelConfig,
    /// Every parameter, by name.
    pub tensors: HashMap<String, Tensor>,
    /// The model's tokens in id order.
    pub tokens: Vec<Token>,
    /// Where the weights came from, for `config.json` and the model card.
    pub source: String,
    /// The values of its side inputs, which the run keeps so that each value
    /// means what it meant (`None` for a model without them).
    pub conditioning: Option<Conditioning>,
}

impl Init {
    /// The weights and vocabulary of a trained model.
    pub fn from_model(
        model: &MelodyModel,
        vocabulary: &Vocabulary,
        conditioning: Option<Conditioning>,
        source: String,
    ) -> Self {
        Self {
            config: model.config.clone(),
            tensors: model.tensors().into_iter().collect(),
            tokens: vocabulary.tokens().to_vec(),
            source,
            conditioning,
        }
    }

    /// Refuses a model of another shape than `config` (the vocabulary aside).
    pub fn check(&self, config: &ModelConfig) -> Result<(), TrainError> {
        let ours = (config.embedding_dim, config.hidden_size, config.num_layers);
        let theirs = (
            self.config.embedding_dim,
            self.config.hidden_size,
            self.config.num_layers,
        );
        if ours != theirs {
            return Err(TrainError::Config(format!(
                "{} has embedding {}, hidden size {} and {} layer(s); this run has embedding {}, hidden size {} and {} layer(s): the weights cannot start it",
                self.source, theirs.0, theirs.1, theirs.2, ours.0, ours.1, ours.2
            )));
        }
        if config.side_inputs != self.config.side_inputs {
            return Err(TrainError::Config(format!(
                "{} reads the side inputs {:?}; this run gives {:?}: the weights cannot start it",
                self.source, self.config.side_inputs, config.side_inputs
            )));
        }
        Ok(())
    }

    /// Sets `model`'s parameters from these weights: whole for the LSTM, row by
    /// row for the tokens `vocabulary` shares with them. Returns how many
    /// tokens were new.
    pub fn apply(&self, model: &MelodyModel, vocabulary: &Vocabulary) -> Result<usize, TrainError> {
        self.check(&model.config)?;
        let looks_back = self
            .conditioning
            .as_ref()
            .is_some_and(|c| c.lookback.is_some());
        if looks_back && vocabulary.tokens() != self.tokens.as_slice() {
            return Err(TrainError::Config(format!(
                "{} looks back over its own tokens by id, so it trains further only on songs of the same tokens; these have {} tokens, of which {} it does not know",
                self.source,
                vocabulary.len(),
                vocabulary
                    .tokens()
                    .iter()
                    .filter(|t| !self.tokens.contains(t))
                    .count()
            )));
        }
        let old_id: HashMap<Token, usize> = self
            .tokens
            .iter()
            .enumerate()
            .map(|(id, token)| (*token, id))
            .collect();
        // For each new id, the old id of the same token.
        let rows: Vec<Option<usize>> = vocabulary
            .tokens()
            .iter()
            .map(|token| old_id.get(token).copied())
            .collect();
        for (name, var) in model.parameters() {
            let old = self.tensors.get(&name).ok_or_else(|| {
                TrainError::Config(format!("{} has no tensor {name}", self.source))
            })?;
            let fresh = var.as_tensor();
            let value = if name == names::EMBEDDING || name == names::FC_WEIGHT {
                by_rows(fresh, old, &rows)?
            } else if name == names::FC_BIAS {
                by_rows(&fresh.unsqueeze(1)?, &old.unsqueeze(1)?, &rows)?.squeeze(1)?
            } else {
                old.to_dtype(fresh.dtype())?.to_device(fresh.device())?
            };
            var.set(&value)?;
        }
        Ok(rows.iter().filter(|r| r.is_none()).count())
    }
}

/// `fresh` with each row that has an old counterpart replaced by that row of `old`.
fn by_rows(fresh: &Tensor, old: &Tensor, rows: &[Option<usize>]) -> Result<Tensor, TrainError> {
    let mut values: Vec<Vec<f32>> = fresh.to_dtype(DType::F32)?.to_vec2()?;
    let old: Vec<Vec<f32>> = old.to_dtype(DType::F32)?.to_vec2()?;
    for (row, from) in values.iter_mut().zip(rows) {
        if let Some(from) = from {
            row.clone_from(&old[*from]);
        }
    }
    Ok(Tensor::new(values, fresh.device())?.to_dtype(fresh.dtype())?)
}
