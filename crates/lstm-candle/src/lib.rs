//! A hand-written LSTM cell and stack whose gate math runs on Candle tensors, the
//! melody model built on it (embedding -> LSTM -> dropout -> linear, with
//! PyTorch's parameter names), and its checkpoint format (config + weights).
//!
//! This crate knows nothing about music. It is filled in by the model issue.
