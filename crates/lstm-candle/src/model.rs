//! The melody model: embedding -> LSTM stack -> dropout -> linear.

use std::collections::HashMap;

use candle_core::{D, DType, Device, Module, Tensor, Var};
use candle_nn::{Linear, VarMap};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::bf16_product::{Bf16Kernel, Bf16Matrix};
use crate::fused::Recurrence;
use crate::lstm::{
    GateWeights, LayerState, LstmState, cell_update, project_sequence, run_layer, stack_steps,
};
use crate::names;
use crate::output_loss::OutputLoss;
use crate::summed_lookup::SummedLookup;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("bad model configuration: {0}")]
    Config(String),
    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    IdOutOfRange { id: u32, vocab_size: usize },
}

/// Architecture and size; everything needed to rebuild the model's tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub embedding_dim: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    /// Dropout on the output of every LSTM layer during training.
    pub dropout: f64,
    /// Inputs read beside each token, each embedded and added to the token's
    /// embedding; none in the reference's model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub side_inputs: Vec<SideInput>,
}

/// A side input: one of `size` values at every step (what the values mean is
/// the caller's business), with an embedding table of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideInput {
    pub name: String,
    pub size: usize,
}

impl ModelConfig {
    /// The reference notebook's model for a vocabulary: embedding dim = vocabulary
    /// size, hidden 128, one layer, dropout 0.2.
    pub fn reference(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            embedding_dim: vocab_size,
            hidden_size: 128,
            num_layers: 1,
            dropout: 0.2,
            side_inputs: Vec::new(),
        }
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        let positive = self.vocab_size > 0
            && self.embedding_dim > 0
            && self.hidden_size > 0
            && self.num_layers > 0;
        if !positive {
            return Err(ModelError::Config(
                "vocabulary, embedding, hidden size and layers must be positive".into(),
            ));
        }
        for (index, side) in self.side_inputs.iter().enumerate() {
            let valid_name = !side.name.is_empty()
                && side
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name || side.size == 0 {
                return Err(ModelError::Config(format!(
                    "side input {} (`{}`, {} values) needs a name of letters, digits and `_` and at least one value",
                    index + 1,
                    side.name,
                    side.size
                )));
            }
            if self.side_inputs[..index]
                .iter()
                .any(|s| s.name == side.name)
            {
                return Err(ModelError::Config(format!(
                    "side input `{}` is named twice",
                    side.name
                )));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::Config(format!(
                "dropout {} must be in [0, 1)",
                self.dropout
            )));
        }
        // A damaged config.json can name sizes whose tensor shapes overflow when
        // multiplied out (found by fuzzing), so they are counted with checks first.
        if self.checked_num_parameters().is_none() {
            return Err(ModelError::Config(format!(
                "vocabulary {}, embedding {}, hidden size {} and {} layer(s) make more \
                 parameters than a {}-bit count holds",
                self.vocab_size,
                self.embedding_dim,
                self.hidden_size,
                self.num_layers,
                usize::BITS
            )));
        }
        Ok(())
    }

    /// The parameter count (of a configuration with at least one layer), or
    /// `None` where it does not fit a `usize`. In closed form, since the layer
    /// count itself may be huge.
    fn checked_num_parameters(&self) -> Option<usize> {
        let (v, e, h) = (self.vocab_size, self.embedding_dim, self.hidden_size);
        let gates = h.checked_mul(4)?;
        let biases = gates.checked_mul(2)?;
        let layer = |input: usize| {
            input
                .checked_add(h)?
                .checked_mul(gates)?
                .checked_add(biases)
        };
        let later_layers = self.num_layers.saturating_sub(1).checked_mul(layer(h)?)?;
        let side_rows = self
            .side_inputs
            .iter()
            .try_fold(0usize, |sum, side| sum.checked_add(side.size))?;
        side_rows
            .checked_mul(e)?
            .checked_add(v.checked_mul(e)?)?
            .checked_add(layer(e)?)?
            .checked_add(later_layers)?
            .checked_add(v.checked_mul(h)?)?
            .checked_add(v)
    }

    /// Every parameter's PyTorch name and shape, in PyTorch's `state_dict` order.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (v, e, h) = (self.vocab_size, self.embedding_dim, self.hidden_size);
        let mut shapes = vec![(names::EMBEDDING.to_owned(), vec![v, e])];
        for side in &self.side_inputs {
            shapes.push((names::side_embedding(&side.name), vec![side.size, e]));
        }
        for layer in 0..self.num_layers {
            let input = if layer == 0 { e } else { h };
            shapes.push((names::weight_ih(layer), vec![4 * h, input]));
            shapes.push((names::weight_hh(layer), vec![4 * h, h]));
            shapes.push((names::bias_ih(layer), vec![4 * h]));
            shapes.push((names::bias_hh(layer), vec![4 * h]));
        }
        shapes.push((names::FC_WEIGHT.to_owned(), vec![v, h]));
        shapes.push((names::FC_BIAS.to_owned(), vec![v]));
        shapes
    }

    /// Panics for a configuration that `validate` refuses as too large.
    pub fn num_parameters(&self) -> usize {
        self.checked_num_parameters()
            .expect("a validated configuration's parameter count fits a usize")
    }

    /// Reads the configuration off a set of tensors named as PyTorch names them
    /// (dropout is not stored in weights; `dropout` fills it in).
    pub fn infer(shapes: &HashMap<String, Vec<usize>>, dropout: f64) -> Result<Self, ModelError> {
        let get = |name: &str| {
            shapes
                .get(name)
                .ok_or_else(|| ModelError::Config(format!("no tensor named {name}")))
        };
        let embedding = get(names::EMBEDDING)?;
        let recurrent = get(&names::weight_hh(0))?;
        let (&[vocab_size, embedding_dim], &[_, hidden_size]) =
            (embedding.as_slice(), recurrent.as_slice())
        else {
            return Err(ModelError::Config(
                "embedding.weight and lstm.weight_hh_l0 must be matrices".into(),
            ));
        };
        let num_layers = (0..)
            .take_while(|l| shapes.contains_key(&names::weight_ih(*l)))
            .count();
        let mut side_inputs: Vec<SideInput> = shapes
            .iter()
            .filter_map(|(name, shape)| {
                let side = names::side_input_of(name)?;
                Some(SideInput {
                    name: side.to_owned(),
                    size: shape.first().copied().unwrap_or(0),
                })
            })
            .collect();
        side_inputs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            vocab_size,
            embedding_dim,
            hidden_size,
            num_layers,
            dropout,
            side_inputs,
        })
    }
}

/// Training-mode dropout: the seed of this update and the index of the batch's
/// first row within the whole batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropout {
    pub seed: u64,
    pub first_row: usize,
}

/// The error for an expected tensor that is not among `remaining` (the tensors
/// not yet taken). The count was right, so some other name stands in its place;
/// both are named, the stranger first by name, so that the message is the same
/// on every run and shows whether the file comes from another kind of model.
fn misplaced_tensor(
    missing: &str,
    remaining: &HashMap<String, Tensor>,
    shapes: &[(String, Vec<usize>)],
) -> ModelError {
    let stranger = remaining
        .keys()
        .filter(|name| shapes.iter().all(|(expected, _)| expected != *name))
        .min()
        .expect("with the tensor count right, another name stands in for a missing one");
    ModelError::Config(format!(
        "missing tensor {missing}; the file has {stranger} in its place, \
         which this configuration does not use"
    ))
}

/// Refuses a number of side inputs other than the model's.
fn side_count(expected: usize, given: usize) -> Result<(), ModelError> {
    if expected == given {
        return Ok(());
    }
    Err(ModelError::Config(format!(
        "the model reads {expected} side input(s), {given} were given"
    )))
}

/// A standard normal draw (Box-Muller), so that initialisation needs no extra crate.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The melody model. Parameters live in a candle-nn [`VarMap`] under PyTorch names.
pub struct MelodyModel {
    pub config: ModelConfig,
    varmap: VarMap,
    device: Device,
    dtype: DType,
    step_by_step: bool,
    /// How generation's steps hold the LSTM weights.
    step_weights: StepWeights,
    /// The stepping layout laid out once, for a model only sampled from.
    kept_stepper: Option<Stepper>,
}

/// How a [`Stepper`] holds the LSTM weights for generation, and
/// [`MelodyModel::stepped_logits`] with it. Training and the whole-sequence
/// forward always use the weights as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepWeights {
    /// As trained.
    #[default]
    F32,
    /// Rounded to bf16, and each step's inputs with them, the products summed
    /// in f32: on a CPU with Intel AMX or AVX-512 BF16 faster at hidden 512
    /// (see [`crate::bf16_product`]); elsewhere the same rounding, multiplied
    /// in f32.
    Bf16,
}

impl StepWeights {
    pub const ALL: [StepWeights; 2] = [StepWeights::F32, StepWeights::Bf16];

    pub fn name(self) -> &'static str {
        match self {
            StepWeights::F32 => "f32",
            StepWeights::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for StepWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for StepWeights {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|w| w.name() == text)
            .ok_or_else(|| format!("step weights `{text}` are not one of f32, bf16"))
    }
}

impl MelodyModel {
    /// A new model initialised as PyTorch does: embedding N(0, 1); every LSTM
    /// tensor U(-1/sqrt(hidden), 1/sqrt(hidden)); the linear layer's weight and
    /// bias U(-1/sqrt(hidden), 1/sqrt(hidden)) (Kaiming-uniform with a = sqrt(5)).
    pub fn new(
        config: ModelConfig,
        device: &Device,
        dtype: DType,
        seed: u64,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let bound = 1.0 / (config.hidden_size as f64).sqrt();
        let mut tensors = HashMap::new();
        for (name, shape) in config.parameter_shapes() {
            let count: usize = shape.iter().product();
            let is_embedding = name == names::EMBEDDING || names::side_input_of(&name).is_some();
            let values: Vec<f64> = if is_embedding {
                (0..count).map(|_| normal(&mut rng)).collect()
            } else {
                (0..count)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect()
            };
            let tensor = Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?;
            tensors.insert(name, tensor);
        }
        Self::from_tensors(config, tensors, device, dtype)
    }

    /// A model from named tensors (PyTorch names); shapes are checked against the config.
    pub fn from_tensors(
        config: ModelConfig,
        mut tensors: HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        // Three tensors around the stack, four per layer and one per side input;
        // checked before the list of expected names is built, which a huge layer
        // count in a damaged config.json would make unbounded (found by fuzzing).
        let expected = config
            .num_layers
            .checked_mul(4)
            .and_then(|n| n.checked_add(3 + config.side_inputs.len()));
        if expected != Some(tensors.len()) {
            return Err(ModelError::Config(format!(
                "the configuration has {} layer(s) and {} side input(s), which need {} tensors, but there are {}",
                config.num_layers,
                config.side_inputs.len(),
                expected.map_or_else(|| "more".to_owned(), |n| n.to_string()),
                tensors.len()
            )));
        }
        let shapes = config.parameter_shapes();
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("fresh varmap");
            for (name, shape) in &shapes {
                let tensor = tensors
                    .remove(name)
                    .ok_or_else(|| misplaced_tensor(name, &tensors, &shapes))?;
                if tensor.dims() != shape.as_slice() {
                    return Err(ModelError::Config(format!(
                        "{name} has shape {:?}, the configuration needs {shape:?}",
                        tensor.dims()
                    )));
                }
                let tensor = tensor.to_device(device)?.to_dtype(dtype)?;
                data.insert(name.clone(), Var::from_tensor(&tensor)?);
            }
        }
        Ok(Self {
            config,
            varmap,
            device: device.clone(),
            dtype,
            step_by_step: false,
            step_weights: StepWeights::F32,
            kept_stepper: None,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The parameters in PyTorch's `state_dict` order.
    pub fn parameters(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().expect("not poisoned");
        self.config
            .parameter_shapes()
            .into_iter()
            .map(|(name, _)| {
                let var = data[&name].clone();
                (name, var)
            })
            .collect()
    }

    /// Every parameter's current value, by name, in the configuration's order.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.parameters()
            .into_iter()
            .map(|(name, var)| (name, var.as_tensor().clone()))
            .collect()
    }

    /// The underlying candle-nn variable map.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn tensor(&self, name: &str) -> Tensor {
        let data = self.varmap.data().lock().expect("not poisoned");
        data[name].as_tensor().clone()
    }

    /// One LSTM layer's weights with the gates side by side, as the fused
    /// recurrence and the stepper take them (still in the autograd graph).
    fn side_by_side(&self, layer: usize) -> candle_core::Result<SideBySide> {
        Ok(SideBySide {
            input_t: self.tensor(&names::weight_ih(layer)).t()?.contiguous()?,
            recurrent_t: self.tensor(&names::weight_hh(layer)).t()?.contiguous()?,
            bias: (self.tensor(&names::bias_ih(layer)) + self.tensor(&names::bias_hh(layer)))?,
        })
    }

    /// One LSTM layer's weights split per gate.
    fn gate_weights(&self, layer: usize) -> candle_core::Result<GateWeights> {
        GateWeights::split(
            &self.tensor(&names::weight_ih(layer)),
            &self.tensor(&names::weight_hh(layer)),
            &self.tensor(&names::bias_ih(layer)),
            &self.tensor(&names::bias_hh(layer)),
        )
    }

    /// All-zero (h, c) for every layer.
    pub fn zero_state(&self, batch: usize) -> Result<LstmState, ModelError> {
        let zeros = Tensor::zeros((batch, self.config.hidden_size), self.dtype, &self.device)?;
        Ok(LstmState {
            layers: (0..self.config.num_layers)
                .map(|_| LayerState {
                    h: zeros.clone(),
                    c: zeros.clone(),
                })
                .collect(),
        })
    }

    /// Checks ids against the vocabulary and makes a `(batch, time)` u32 tensor.
    pub fn ids_tensor(&self, ids: &[Vec<u32>]) -> Result<Tensor, ModelError> {
        let time = ids.first().map_or(0, Vec::len);
        if ids.iter().any(|row| row.len() != time) || time == 0 {
            return Err(ModelError::Config(
                "id rows must be non-empty and of equal length".into(),
            ));
        }
        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        if let Some(&id) = flat
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return Err(ModelError::IdOutOfRange {
                id,
                vocab_size: self.config.vocab_size,
            });
        }
        Ok(Tensor::from_vec(flat, (ids.len(), time), &self.device)?)
    }

    /// Checks side input values (per side input, `(batch, time)` rows) against
    /// the configuration and makes a u32 tensor of each.
    pub fn side_tensors(&self, side: &[Vec<Vec<u32>>]) -> Result<Vec<Tensor>, ModelError> {
        side_count(self.config.side_inputs.len(), side.len())?;
        side.iter()
            .zip(&self.config.side_inputs)
            .map(|(rows, input)| {
                if let Some(&value) = rows.iter().flatten().find(|&&v| v as usize >= input.size) {
                    return Err(ModelError::Config(format!(
                        "side input `{}` has {} values; {value} is not one of them",
                        input.name, input.size
                    )));
                }
                let time = rows.first().map_or(0, Vec::len);
                let flat: Vec<u32> = rows.iter().flatten().copied().collect();
                if flat.len() != rows.len() * time {
                    return Err(ModelError::Config(format!(
                        "side input `{}`: rows must be of equal length",
                        input.name
                    )));
                }
                Ok(Tensor::from_vec(flat, (rows.len(), time), &self.device)?)
            })
            .collect()
    }

    /// Each side input's table: its embedding projected by the first layer's
    /// input weights (the side embeddings are lookups added to the token's, so
    /// their projections are per-value tables added to the token's).
    fn side_tables(&self, input_t: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        self.config
            .side_inputs
            .iter()
            .map(|side| {
                self.tensor(&names::side_embedding(&side.name))
                    .matmul(input_t)
            })
            .collect()
    }

    /// Checks that side inputs match the configuration and the ids' shape.
    fn check_side(&self, ids: &Tensor, side: &[Tensor]) -> Result<(), ModelError> {
        side_count(self.config.side_inputs.len(), side.len())?;
        if let Some(bad) = side.iter().find(|s| s.dims() != ids.dims()) {
            return Err(ModelError::Config(format!(
                "side input of shape {:?} beside ids of shape {:?}",
                bad.dims(),
                ids.dims()
            )));
        }
        Ok(())
    }

    /// Logits `(batch, time, vocab)` for `(batch, time)` ids and side inputs
    /// (one `(batch, time)` tensor per side input), and the final state.
    /// With `dropout` the model runs in training mode.
    pub fn forward(
        &self,
        ids: &Tensor,
        side: &[Tensor],
        state: Option<LstmState>,
        dropout: Option<Dropout>,
    ) -> Result<(Tensor, LstmState), ModelError> {
        let (hidden, state) = self.lstm_outputs(ids, side, state, dropout)?;
        let fc = Linear::new(
            self.tensor(names::FC_WEIGHT),
            Some(self.tensor(names::FC_BIAS)),
        );
        Ok((fc.forward(&hidden)?, state))
    }

    /// The LSTM stack alone: the top layer's output at every step `(batch, time,
    /// hidden)` (after dropout in training mode) and the final (h, c) of every layer.
    pub fn lstm_outputs(
        &self,
        ids: &Tensor,
        side: &[Tensor],
        state: Option<LstmState>,
        dropout: Option<Dropout>,
    ) -> Result<(Tensor, LstmState), ModelError> {
        self.check_side(ids, side)?;
        let (batch, time) = ids.dims2()?;
        let state = self.state_or_zero(state, batch)?;
        if self.fused_recurrence() {
            return self.fused_lstm_outputs(ids, side, state, dropout);
        }
        let embedding = self.tensor(names::EMBEDDING);
        let by_step = |t: &Tensor| -> candle_core::Result<Vec<Tensor>> {
            (0..time).map(|s| t.narrow(1, s, 1)?.squeeze(1)).collect()
        };
        let ids_by_step = by_step(ids)?;
        let side_by_step: Vec<Vec<Tensor>> = side.iter().map(by_step).collect::<Result<_, _>>()?;
        let mut final_layers = Vec::with_capacity(self.config.num_layers);
        let mut outputs: Vec<Tensor> = Vec::new();
        for (layer, layer_state) in state.layers.into_iter().enumerate() {
            let weights = self.gate_weights(layer)?;
            let (steps, last) = if layer == 0 {
                // The embedding is a lookup, so its projection is a per-token table:
                // one (vocab x embedding) @ (embedding x hidden) matmul per gate.
                let tables: Vec<Tensor> = (0..4)
                    .map(|k| {
                        embedding
                            .matmul(&weights.input_t[k])?
                            .broadcast_add(&weights.bias[k])
                    })
                    .collect::<candle_core::Result<_>>()?;
                let side_tables: Vec<Vec<Tensor>> = (0..4)
                    .map(|k| self.side_tables(&weights.input_t[k]))
                    .collect::<candle_core::Result<_>>()?;
                let gate = |k: usize, t: usize| -> candle_core::Result<Tensor> {
                    let mut sum = tables[k].index_select(&ids_by_step[t], 0)?;
                    for (table, values) in side_tables[k].iter().zip(&side_by_step) {
                        sum = sum.add(&table.index_select(&values[t], 0)?)?;
                    }
                    Ok(sum)
                };
                let steps =
                    (0..time).map(|t| Ok([gate(0, t)?, gate(1, t)?, gate(2, t)?, gate(3, t)?]));
                run_layer(steps, &weights, layer_state)?
            } else {
                let inputs = stack_steps(&outputs)?;
                let projected = project_sequence(&inputs, &weights)?;
                let steps = (0..time).map(|t| {
                    Ok([
                        projected[0].get(t)?,
                        projected[1].get(t)?,
                        projected[2].get(t)?,
                        projected[3].get(t)?,
                    ])
                });
                run_layer(steps, &weights, layer_state)?
            };
            outputs = steps;
            if let Some(dropout) = dropout {
                outputs = outputs
                    .iter()
                    .enumerate()
                    .map(|(t, h)| self.dropout(h, dropout, layer, t))
                    .collect::<Result<_, _>>()?;
            }
            final_layers.push(last);
        }
        Ok((
            stack_steps(&outputs)?,
            LstmState {
                layers: final_layers,
            },
        ))
    }

    /// Whether `lstm_outputs` runs each layer's recurrence as one fused op (f32
    /// or f64 on the CPU, and on CUDA in a build with the `cuda` feature, unless
    /// switched off) or as Candle operations step by step (any device; the
    /// reference the fused op is tested against).
    fn fused_recurrence(&self) -> bool {
        let fused_device =
            self.device.is_cpu() || (cfg!(feature = "cuda") && self.device.is_cuda());
        !self.step_by_step && fused_device && matches!(self.dtype, DType::F32 | DType::F64)
    }

    /// Runs the recurrence step by step in Candle operations even on the CPU
    /// (slower; to check the fused op against).
    pub fn set_step_by_step(&mut self, step_by_step: bool) {
        self.step_by_step = step_by_step;
    }

    /// `lstm_outputs` with each layer's recurrence as one [`Recurrence`] op.
    fn fused_lstm_outputs(
        &self,
        ids: &Tensor,
        side: &[Tensor],
        state: LstmState,
        dropout: Option<Dropout>,
    ) -> Result<(Tensor, LstmState), ModelError> {
        let (top, last) = self.fused_stack(ids, side, state, dropout)?;
        let top = match dropout {
            Some(dropout) => self.sequence_dropout(&top, dropout, self.config.num_layers - 1)?,
            None => top,
        };
        Ok((top.transpose(0, 1)?.contiguous()?, last))
    }

    /// The fused LSTM stack: the top layer's h at every step, time-major `(time,
    /// batch, hidden)` and before its dropout, and the final state of every
    /// layer. Dropout applies between layers.
    fn fused_stack(
        &self,
        ids: &Tensor,
        side: &[Tensor],
        state: LstmState,
        dropout: Option<Dropout>,
    ) -> Result<(Tensor, LstmState), ModelError> {
        let (batch, time) = ids.dims2()?;
        let hidden = self.config.hidden_size;
        let time_major = |t: &Tensor| t.t()?.contiguous()?.flatten_all();
        let time_major_ids = time_major(ids)?;
        let mut below: Option<Tensor> = None;
        let mut final_layers = Vec::with_capacity(self.config.num_layers);
        for (layer, layer_state) in state.layers.into_iter().enumerate() {
            let SideBySide {
                input_t,
                recurrent_t,
                bias,
            } = self.side_by_side(layer)?;
            let initial = Tensor::stack(&[&layer_state.h, &layer_state.c], 0)?.contiguous()?;
            let out = match &below {
                // The embedding is a lookup, so its projection is a per-token table.
                None if side.is_empty() => self
                    .tensor(names::EMBEDDING)
                    .matmul(&input_t)?
                    .broadcast_add(&bias)?
                    .index_select(&time_major_ids, 0)?
                    .apply_op3(&recurrent_t, &initial, Recurrence::new(hidden))?,
                // With side inputs each input's embedding is projected into a
                // table too, and a position's projection sums one row of each.
                None if self.device.is_cpu() => {
                    // The side embeddings stacked and projected together (one
                    // product and one graph node, not one per input); the
                    // bias goes with the token's table, read once a position.
                    let side_embeddings: Vec<Tensor> = self
                        .config
                        .side_inputs
                        .iter()
                        .map(|input| self.tensor(&names::side_embedding(&input.name)))
                        .collect();
                    let tables = [
                        self.tensor(names::EMBEDDING)
                            .matmul(&input_t)?
                            .broadcast_add(&bias)?,
                        Tensor::cat(&side_embeddings, 0)?.matmul(&input_t)?,
                    ];
                    let mut inputs =
                        vec![(time_major_ids.to_vec1::<u32>()?, self.config.vocab_size)];
                    for (input, values) in self.config.side_inputs.iter().zip(side) {
                        inputs.push((time_major(values)?.to_vec1::<u32>()?, input.size));
                    }
                    Tensor::cat(&tables, 0)?
                        .apply_op1(SummedLookup::new(&inputs, batch)?)?
                        .apply_op3(&recurrent_t, &initial, Recurrence::new(hidden))?
                }
                // Elsewhere (CUDA) the embeddings are summed first, so that the
                // lookups and their gradients are as narrow as the embedding,
                // and the op projects the sums as it does a layer below.
                None => {
                    let mut embedded = self
                        .tensor(names::EMBEDDING)
                        .index_select(&time_major_ids, 0)?;
                    for (input, values) in self.config.side_inputs.iter().zip(side) {
                        let table = self.tensor(&names::side_embedding(&input.name));
                        embedded = embedded.add(&table.index_select(&time_major(values)?, 0)?)?;
                    }
                    let weights = Tensor::cat(&[&input_t, &recurrent_t, &bias.unsqueeze(0)?], 0)?;
                    embedded.apply_op3(
                        &weights,
                        &initial,
                        Recurrence::projecting(hidden, self.config.embedding_dim),
                    )?
                }
                Some(below) => {
                    let inputs = match dropout {
                        Some(dropout) => self.sequence_dropout(below, dropout, layer - 1)?,
                        None => below.clone(),
                    };
                    let weights = Tensor::cat(&[&input_t, &recurrent_t, &bias.unsqueeze(0)?], 0)?;
                    inputs
                        .reshape((time * batch, hidden))?
                        .contiguous()?
                        .apply_op3(&weights, &initial, Recurrence::projecting(hidden, hidden))?
                }
            };
            final_layers.push(LayerState {
                h: out.get(time - 1)?,
                c: out.get(time)?,
            });
            below = Some(out.narrow(0, 0, time)?);
        }
        let top = below.ok_or_else(|| ModelError::Config("the model has no layers".into()))?;
        Ok((
            top,
            LstmState {
                layers: final_layers,
            },
        ))
    }

    /// The training objective: the negative log-likelihood of `targets`
    /// `(batch, time)` summed over the positions where `mask` is 1 (or weighted
    /// by it), and the final state; the same as [`Self::masked_nll`] of
    /// [`Self::forward`]. On the CPU the output layer and the loss run as one
    /// fused op (`OutputLoss`) on the fused stack's time-major outputs.
    pub fn summed_nll(
        &self,
        ids: &Tensor,
        side: &[Tensor],
        targets: &Tensor,
        mask: &Tensor,
        state: Option<LstmState>,
        dropout: Option<Dropout>,
    ) -> Result<(Tensor, LstmState), ModelError> {
        // The fused output layer and loss are written for the CPU only.
        if !(self.fused_recurrence() && self.device.is_cpu()) {
            let (logits, last) = self.forward(ids, side, state, dropout)?;
            return Ok((Self::masked_nll(&logits, targets, mask)?, last));
        }
        self.check_side(ids, side)?;
        let (batch, time) = ids.dims2()?;
        let state = self.state_or_zero(state, batch)?;
        let (top, last) = self.fused_stack(ids, side, state, dropout)?;
        let time_major = |t: &Tensor| t.t()?.contiguous()?.flatten_all();
        let targets = time_major(targets)?.to_vec1::<u32>()?;
        let weights = time_major(&mask.to_dtype(DType::F32)?)?.to_vec1::<f32>()?;
        let factors = dropout.and_then(|dropout| {
            self.dropout_factors(time, batch, dropout, self.config.num_layers - 1)
        });
        let loss = top.apply_op3(
            &self.tensor(names::FC_WEIGHT),
            &self.tensor(names::FC_BIAS),
            OutputLoss::new(targets, weights, factors),
        )?;
        Ok((loss, last))
    }

    /// Logits `(batch, time, vocab)` for `(batch, time)` ids and side inputs
    /// from a zero state, as generation computes them: one step at a time
    /// through [`Self::stepper`], so with the weights held as
    /// [`Self::set_step_weights`] says. Inference only.
    pub fn stepped_logits(&self, ids: &Tensor, side: &[Tensor]) -> Result<Tensor, ModelError> {
        self.check_side(ids, side)?;
        let (batch, time) = ids.dims2()?;
        let stepper = self.stepper()?;
        let mut state = self.zero_state(batch)?;
        let column = |values: &Tensor, t: usize| values.narrow(1, t, 1)?.squeeze(1)?.contiguous();
        let mut steps = Vec::with_capacity(time);
        for t in 0..time {
            let step_side = side
                .iter()
                .map(|values| column(values, t))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let (logits, next) = stepper.step(&column(ids, t)?, &step_side, state)?;
            state = next;
            steps.push(logits);
        }
        Ok(Tensor::stack(&steps, 1)?)
    }

    /// The given state, or zeros for `batch` sequences.
    fn state_or_zero(
        &self,
        state: Option<LstmState>,
        batch: usize,
    ) -> Result<LstmState, ModelError> {
        state.map_or_else(|| self.zero_state(batch), Ok)
    }

    /// One step for every sequence of a batch: logits `(batch, vocab)` for the ids
    /// `(batch,)`, carrying the state. Costs the same however long the sequence is.
    /// For many steps, prepare a [`Stepper`] once instead.
    pub fn step(
        &self,
        ids: &Tensor,
        side: &[Tensor],
        state: LstmState,
    ) -> Result<(Tensor, LstmState), ModelError> {
        self.stepper()?.step(ids, side, state)
    }

    /// Lays the weights out for stepping once and keeps them, so that every
    /// later [`stepper`](Self::stepper) is a cheap copy (a server starts many
    /// sampling sessions). Only for a model that is no longer trained: its
    /// steppers would keep the weights of this moment.
    pub fn keep_stepper(&mut self) -> Result<(), ModelError> {
        self.kept_stepper = Some(self.stepper()?);
        Ok(())
    }

    /// How later steppers hold the weights; forgets a kept stepper laid out
    /// otherwise.
    pub fn set_step_weights(&mut self, weights: StepWeights) {
        if weights != self.step_weights {
            self.step_weights = weights;
            self.kept_stepper = None;
        }
    }

    pub fn step_weights(&self) -> StepWeights {
        self.step_weights
    }

    /// The weights laid out for stepping (inference only: no gradients flow).
    pub fn stepper(&self) -> Result<Stepper, ModelError> {
        if let Some(kept) = &self.kept_stepper {
            return Ok(kept.clone());
        }
        let layers = (0..self.config.num_layers)
            .map(|layer| {
                let weights = self.side_by_side(layer)?;
                let products = match self.step_weights {
                    StepWeights::F32 => GateProducts::F32 {
                        input_t: weights.input_t.detach(),
                        recurrent_t: weights.recurrent_t.detach(),
                    },
                    StepWeights::Bf16 => GateProducts::Bf16(Bf16Matrix::new(
                        &Tensor::cat(&[&weights.input_t, &weights.recurrent_t], 0)?
                            .to_dtype(DType::F32)?
                            .detach(),
                    )?),
                };
                Ok(StepLayer {
                    products,
                    bias: weights.bias.detach(),
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Stepper {
            embedding: self.tensor(names::EMBEDDING).detach(),
            side_embeddings: self
                .config
                .side_inputs
                .iter()
                .map(|side| self.tensor(&names::side_embedding(&side.name)).detach())
                .collect(),
            layers,
            fc_t: self.tensor(names::FC_WEIGHT).detach().t()?.contiguous()?,
            fc_bias: self.tensor(names::FC_BIAS).detach(),
            hidden: self.config.hidden_size,
        })
    }

    /// Inverted dropout on one step's `(batch, hidden)` output. Each row's mask
    /// comes from a generator seeded by (seed, row, layer, step), so a batch split
    /// across threads draws the same masks as the whole batch (Candle's own
    /// dropout cannot be seeded on the CPU).
    fn dropout(
        &self,
        x: &Tensor,
        dropout: Dropout,
        layer: usize,
        step: usize,
    ) -> Result<Tensor, ModelError> {
        if self.config.dropout == 0.0 {
            return Ok(x.clone());
        }
        let (rows, width) = x.dims2()?;
        let mask = self.dropout_mask(rows, width, dropout, layer, step);
        let mask = Tensor::from_vec(mask, x.shape(), &self.device)?.to_dtype(self.dtype)?;
        Ok(x.mul(&mask)?)
    }

    /// The same masks as [`Self::dropout`] step by step, for a `(time, batch,
    /// hidden)` sequence at once.
    fn sequence_dropout(
        &self,
        x: &Tensor,
        dropout: Dropout,
        layer: usize,
    ) -> Result<Tensor, ModelError> {
        let (time, rows, _) = x.dims3()?;
        match self.dropout_factors(time, rows, dropout, layer) {
            Some(factors) => {
                let factors = Tensor::from_vec(factors, x.shape(), &self.device)?;
                Ok(x.mul(&factors.to_dtype(self.dtype)?)?)
            }
            None => Ok(x.clone()),
        }
    }

    /// One layer's dropout factors for a time-major `(time, rows, hidden)`
    /// output, or none when the model has no dropout.
    fn dropout_factors(
        &self,
        time: usize,
        rows: usize,
        dropout: Dropout,
        layer: usize,
    ) -> Option<Vec<f32>> {
        if self.config.dropout == 0.0 {
            return None;
        }
        let width = self.config.hidden_size;
        let mut factors = Vec::with_capacity(time * rows * width);
        for step in 0..time {
            self.extend_dropout_mask(&mut factors, rows, width, dropout, layer, step);
        }
        Some(factors)
    }

    /// Inverted-dropout factors (0 or 1 / (1 - p)) for `rows` rows of `width`.
    fn dropout_mask(
        &self,
        rows: usize,
        width: usize,
        dropout: Dropout,
        layer: usize,
        step: usize,
    ) -> Vec<f32> {
        let mut mask = Vec::with_capacity(rows * width);
        self.extend_dropout_mask(&mut mask, rows, width, dropout, layer, step);
        mask
    }

    /// [`Self::dropout_mask`] appended to `mask`. Each factor is 0 where the
    /// row's generator draws a uniform f64 below p, as `random::<f64>() < p`
    /// would: that draw is the top 53 bits of a `u64` times 2^-53, so comparing
    /// those bits with p * 2^53 is the same test, exactly. Drawing a row's
    /// words at once lets ChaCha fill them in bulk and the comparisons
    /// vectorise, where one `random` a factor cost 8% of a training step.
    fn extend_dropout_mask(
        &self,
        mask: &mut Vec<f32>,
        rows: usize,
        width: usize,
        dropout: Dropout,
        layer: usize,
        step: usize,
    ) {
        let p = self.config.dropout;
        let keep = (1.0 / (1.0 - p)) as f32;
        let dropped_below = p * (1u64 << 53) as f64;
        let mut words = vec![0u64; width];
        for row in 0..rows {
            dropout_generator(dropout, row, layer, step).fill(&mut words[..]);
            mask.extend(words.iter().map(|&word| {
                if ((word >> 11) as f64) < dropped_below {
                    0.0
                } else {
                    keep
                }
            }));
        }
    }

    /// Summed negative log-likelihood and count of the targets where `mask` is 1,
    /// for `(batch, time, vocab)` logits and `(batch, time)` targets and mask.
    pub fn masked_nll(
        logits: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor, ModelError> {
        let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
        let picked = log_probs
            .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
            .squeeze(D::Minus1)?;
        Ok(picked
            .mul(&mask.to_dtype(picked.dtype())?)?
            .sum_all()?
            .neg()?)
    }
}

/// One layer's weights with the four gates side by side.
struct SideBySide {
    /// W_ih^T, `(in, 4 * hidden)`.
    input_t: Tensor,
    /// W_hh^T, `(hidden, 4 * hidden)`.
    recurrent_t: Tensor,
    /// b_ih + b_hh, `(4 * hidden,)`.
    bias: Tensor,
}

/// One layer's weights laid out for stepping, so a step is one or
/// two matrix products per layer rather than eight.
#[derive(Clone)]
struct StepLayer {
    products: GateProducts,
    /// b_ih + b_hh, `(4 * hidden,)`.
    bias: Tensor,
}

/// A layer's gate products `x W_ih^T + h W_hh^T`, as [`StepWeights`] says.
#[derive(Clone)]
enum GateProducts {
    F32 {
        /// W_ih^T, `(in, 4 * hidden)`.
        input_t: Tensor,
        /// W_hh^T, `(hidden, 4 * hidden)`.
        recurrent_t: Tensor,
    },
    /// `[W_ih^T; W_hh^T]`, `(in + hidden, 4 * hidden)`, one product with x and h
    /// side by side.
    Bf16(Bf16Matrix),
}

impl GateProducts {
    fn apply(&self, input: &Tensor, h: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            GateProducts::F32 {
                input_t,
                recurrent_t,
            } => input.matmul(input_t)?.add(&h.matmul(recurrent_t)?),
            GateProducts::Bf16(matrix) => matrix.product(&[input, h])?.to_dtype(input.dtype()),
        }
    }
}

/// A model's weights prepared once for generation, one token at a time
/// (a copy shares the tensors).
#[derive(Clone)]
pub struct Stepper {
    embedding: Tensor,
    side_embeddings: Vec<Tensor>,
    layers: Vec<StepLayer>,
    fc_t: Tensor,
    fc_bias: Tensor,
    hidden: usize,
}

impl Stepper {
    /// The kernel its gate products run on with bf16 weights (`None` with
    /// f32 weights): AMX tiles or AVX-512 BF16 where the CPU has them and
    /// the gates are a multiple of 16 wide, else Candle's f32 product.
    pub fn bf16_kernel(&self) -> Option<Bf16Kernel> {
        self.layers.iter().find_map(|layer| match &layer.products {
            GateProducts::Bf16(matrix) => Some(matrix.kernel()),
            GateProducts::F32 { .. } => None,
        })
    }

    /// Logits `(batch, vocab)` for the ids `(batch,)` and one `(batch,)`
    /// tensor per side input, and the next state.
    pub fn step(
        &self,
        ids: &Tensor,
        side: &[Tensor],
        state: LstmState,
    ) -> Result<(Tensor, LstmState), ModelError> {
        side_count(self.side_embeddings.len(), side.len())?;
        let mut input = self.embedding.index_select(ids, 0)?;
        for (table, values) in self.side_embeddings.iter().zip(side) {
            input = input.add(&table.index_select(values, 0)?)?;
        }
        let mut layers = Vec::with_capacity(self.layers.len());
        for (weights, previous) in self.layers.iter().zip(state.layers) {
            let products = weights.products.apply(&input, &previous.h)?;
            let next = if products.device().is_cpu() && products.dtype() == DType::F32 {
                crate::fused::step_cell(&products, &weights.bias, &previous.c)?
            } else {
                let gates = products.broadcast_add(&weights.bias)?;
                let gate = |k: usize| gates.narrow(1, k * self.hidden, self.hidden);
                cell_update([gate(0)?, gate(1)?, gate(2)?, gate(3)?], &previous.c)?
            };
            input = next.h.clone();
            layers.push(next);
        }
        let logits = input.matmul(&self.fc_t)?.broadcast_add(&self.fc_bias)?;
        Ok((logits, LstmState { layers }))
    }
}

/// The generator of one row's dropout draws at one step of one layer, seeded
/// by all four so that any split of the rows draws the same.
fn dropout_generator(dropout: Dropout, row: usize, layer: usize, step: usize) -> ChaCha8Rng {
    let key = [
        dropout.seed,
        (dropout.first_row + row) as u64,
        layer as u64,
        step as u64,
    ]
    .iter()
    .fold(0xCBF2_9CE4_8422_2325u64, |h, v| {
        (h ^ v).wrapping_mul(0x0000_0100_0000_01B3)
    });
    <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bulk draw gives the factors one `random::<f64>()` a factor gives.
    #[test]
    fn dropout_masks_are_the_per_draw_ones() {
        for p in [0.2, 0.5, 0.05] {
            let config = ModelConfig {
                dropout: p,
                ..ModelConfig::reference(38)
            };
            let model = MelodyModel::new(config, &Device::Cpu, DType::F32, 0).unwrap();
            let dropout = Dropout {
                seed: 11,
                first_row: 3,
            };
            let (rows, width) = (5, 37);
            let keep = (1.0 / (1.0 - p)) as f32;
            let per_draw: Vec<f32> = (0..rows)
                .flat_map(|row| {
                    let mut rng = dropout_generator(dropout, row, 1, 4);
                    (0..width)
                        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
                        .collect::<Vec<_>>()
                })
                .collect();
            let mask = model.dropout_mask(rows, width, dropout, 1, 4);
            assert_eq!(mask, per_draw, "p = {p}");
            let dropped = mask.iter().filter(|&&f| f == 0.0).count() as f64;
            assert!((dropped / mask.len() as f64 - p).abs() < 0.1, "p = {p}");
        }
    }
}
