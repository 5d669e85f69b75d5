//! The parameters' names: PyTorch's, as its `LSTMModel` (`nn.Embedding`,
//! `nn.LSTM`, `nn.Linear`) calls them, so weights move both ways unchanged.

pub const EMBEDDING: &str = "embedding.weight";
pub const FC_WEIGHT: &str = "fc.weight";
pub const FC_BIAS: &str = "fc.bias";

/// Input weights of a layer, `(4 hidden, in)`.
pub fn weight_ih(layer: usize) -> String {
    format!("lstm.weight_ih_l{layer}")
}

/// Recurrent weights of a layer, `(4 hidden, hidden)`.
pub fn weight_hh(layer: usize) -> String {
    format!("lstm.weight_hh_l{layer}")
}

/// Input bias of a layer, `(4 hidden,)`.
pub fn bias_ih(layer: usize) -> String {
    format!("lstm.bias_ih_l{layer}")
}

/// Recurrent bias of a layer, `(4 hidden,)`.
pub fn bias_hh(layer: usize) -> String {
    format!("lstm.bias_hh_l{layer}")
}
