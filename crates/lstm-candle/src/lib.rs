//! The LSTM and the melody network on Candle, its fused CPU ops and its checkpoint format; it knows no music.
//!
//! A hand-written LSTM cell and stack whose gate math runs on Candle tensors, the
//! melody model built on it (embedding, plus generic side inputs each embedded and
//! added to it -> LSTM stack -> dropout -> linear), and
//! its checkpoint format (`config.json` + `model.safetensors`).
//!
//! Parameters carry PyTorch's names (`embedding.weight`, `lstm.weight_ih_l0`,
//! `lstm.weight_hh_l0`, `lstm.bias_ih_l0`, `lstm.bias_hh_l0`, ..., `fc.weight`,
//! `fc.bias`), gate rows are in PyTorch's order (input, forget, cell, output) and
//! initialisation follows PyTorch's rules, so weights move both ways between this
//! crate and a PyTorch `LSTMModel`. On the CPU the recurrence of each layer, the
//! first layer's summed lookups of a model with side inputs, and the training
//! objective's output layer and loss, run as fused Candle ops with their own
//! backward passes; with the `cuda` feature the recurrence's op runs
//! on CUDA as well; elsewhere, and as the reference they are tested against, as
//! Candle operations step by step.
//! Generation steps one token at a time through a [`Stepper`], which can hold
//! the gate weights rounded to bf16 and multiply them on Intel AMX tiles or
//! with AVX-512 BF16 ([`StepWeights`], [`bf16_product`]).

pub mod bf16_product;
pub mod checkpoint;
mod fused;
#[cfg(feature = "cuda")]
mod fused_cuda;
pub mod lstm;
pub mod model;
pub mod names;
mod output_loss;
mod summed_lookup;

pub use checkpoint::{CheckpointError, load_checkpoint, save_checkpoint};
pub use lstm::{LayerState, LstmState, lstm_cell_step};
pub use model::{Dropout, MelodyModel, ModelConfig, ModelError, SideInput, StepWeights, Stepper};

pub use candle_core::{DType, Device, Tensor};
