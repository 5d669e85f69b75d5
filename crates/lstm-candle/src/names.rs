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

/// Embedding table of a side input, `(values, embedding)`: as a PyTorch
/// `nn.ModuleDict` of `nn.Embedding`s named `side_embeddings` would call it.
pub fn side_embedding(side: &str) -> String {
    format!("{SIDE_PREFIX}{side}.weight")
}

const SIDE_PREFIX: &str = "side_embeddings.";

/// The side input a tensor name belongs to, if it is a side embedding.
pub fn side_input_of(name: &str) -> Option<&str> {
    name.strip_prefix(SIDE_PREFIX)?.strip_suffix(".weight")
}
