//! The LSTM recurrence on Candle tensors.
//!
//! gates = x W_ih^T + b_ih + h W_hh^T + b_hh, in PyTorch's row order (input,
//! forget, cell, output); c' = f * c + i * g; h' = o * tanh(c'). The weights are
//! split per gate once per call, not the gate tensor once per step: the backward
//! pass of a split pads and concatenates, so splitting per step costs far more.

use candle_core::{D, Result, Tensor};
use candle_nn::ops::sigmoid;

/// (h, c) of one layer, each `(batch, hidden)`.
#[derive(Debug, Clone)]
pub struct LayerState {
    pub h: Tensor,
    pub c: Tensor,
}

/// The state of every layer, bottom first.
#[derive(Debug, Clone)]
pub struct LstmState {
    pub layers: Vec<LayerState>,
}

/// One layer's weights split per gate: `(hidden, in)` input weights,
/// `(hidden, hidden)` recurrent weights transposed for `h @ W^T`, and the summed bias.
pub(crate) struct GateWeights {
    /// `[i, f, g, o]` each `(in, hidden)`, i.e. W_ih^T per gate.
    pub input_t: Vec<Tensor>,
    /// `[i, f, g, o]` each `(hidden, hidden)`, i.e. W_hh^T per gate.
    pub recurrent_t: Vec<Tensor>,
    /// `[i, f, g, o]` each `(hidden,)`: b_ih + b_hh.
    pub bias: Vec<Tensor>,
}

impl GateWeights {
    pub fn split(w_ih: &Tensor, w_hh: &Tensor, b_ih: &Tensor, b_hh: &Tensor) -> Result<Self> {
        let hidden = w_hh.dim(1)?;
        let bias = (b_ih + b_hh)?;
        let mut input_t = Vec::with_capacity(4);
        let mut recurrent_t = Vec::with_capacity(4);
        let mut biases = Vec::with_capacity(4);
        for gate in 0..4 {
            input_t.push(w_ih.narrow(0, gate * hidden, hidden)?.t()?.contiguous()?);
            recurrent_t.push(w_hh.narrow(0, gate * hidden, hidden)?.t()?.contiguous()?);
            biases.push(bias.narrow(0, gate * hidden, hidden)?);
        }
        Ok(Self {
            input_t,
            recurrent_t,
            bias: biases,
        })
    }
}

/// tanh(x) as 2 sigmoid(2x) - 1. On the CPU, Candle's `tanh` calls libm's
/// `tanhf` (about 15 ns an element here), while its fused sigmoid runs at about
/// 2 ns; in the recurrence tanh was a fifth of a training step. The absolute
/// error stays within a few f32 ulps of 1.
pub fn fast_tanh(x: &Tensor) -> Result<Tensor> {
    sigmoid(&x.affine(2.0, 0.0)?)?.affine(2.0, -1.0)
}

/// One step of the cell given the input projections of the four gates
/// (`x W_ih^T + b` per gate, each `(batch, hidden)`).
pub fn lstm_cell_step(
    projected: &[Tensor; 4],
    recurrent_t: &[Tensor],
    state: &LayerState,
) -> Result<LayerState> {
    let gate = |k: usize| projected[k].add(&state.h.matmul(&recurrent_t[k])?);
    cell_update([gate(0)?, gate(1)?, gate(2)?, gate(3)?], &state.c)
}

/// The cell's update from the pre-activations of its four gates (input,
/// forget, cell, output): c' = σ(f) c + σ(i) tanh(g), h' = σ(o) tanh(c'). The
/// step-by-step graph uses it, and the stepper off the CPU; the fused CPU op
/// writes the same math in its own loop, which the stepper uses on the CPU,
/// and is tested against it.
pub(crate) fn cell_update(gates: [Tensor; 4], c: &Tensor) -> Result<LayerState> {
    let [input, forget, cell, output] = gates;
    let c = sigmoid(&forget)?
        .mul(c)?
        .add(&sigmoid(&input)?.mul(&fast_tanh(&cell)?)?)?;
    let h = sigmoid(&output)?.mul(&fast_tanh(&c)?)?;
    Ok(LayerState { h, c })
}

/// Runs one layer over a sequence whose input projections are given per step,
/// returning every step's h and the final state.
pub(crate) fn run_layer(
    steps: impl Iterator<Item = Result<[Tensor; 4]>>,
    weights: &GateWeights,
    mut state: LayerState,
) -> Result<(Vec<Tensor>, LayerState)> {
    let mut outputs = Vec::new();
    for projected in steps {
        state = lstm_cell_step(&projected?, &weights.recurrent_t, &state)?;
        outputs.push(state.h.clone());
    }
    Ok((outputs, state))
}

/// Input projections of a whole sequence `(batch, time, in)` in one matmul per
/// gate, as `(time, batch, hidden)` so that each step is a slice of the first axis.
pub(crate) fn project_sequence(inputs: &Tensor, weights: &GateWeights) -> Result<[Tensor; 4]> {
    let (batch, time, width) = inputs.dims3()?;
    let time_major = inputs
        .transpose(0, 1)?
        .contiguous()?
        .reshape((time * batch, width))?;
    let project = |k: usize| -> Result<Tensor> {
        time_major
            .matmul(&weights.input_t[k])?
            .broadcast_add(&weights.bias[k])?
            .reshape((time, batch, ()))
    };
    Ok([project(0)?, project(1)?, project(2)?, project(3)?])
}

/// Stacks per-step `(batch, hidden)` outputs into `(batch, time, hidden)`.
pub(crate) fn stack_steps(outputs: &[Tensor]) -> Result<Tensor> {
    Tensor::stack(outputs, 1)
}

/// Numerically safe mean negative log-likelihood of `targets` under `logits`
/// (`(n, vocab)` and `(n,)`), the same as PyTorch's `cross_entropy`.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    candle_nn::loss::nll(&log_probs, targets)
}
