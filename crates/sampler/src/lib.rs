//! Stateful generation: runs a primer once, then one step per token carrying the
//! LSTM state (h, c) of every layer, never re-feeding the prefix. Temperature,
//! top-k and top-p sampling, seeded. Filled in by the sampler issue.
