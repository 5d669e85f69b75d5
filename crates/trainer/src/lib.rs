//! The data pipeline and, with the model issue, the training loop.
//!
//! [`prepare`] turns a parsed collection into what training reads: grid tokens
//! per song (`songs.jsonl`), a song-level seeded train/val/test split (the
//! reference split 64-token windows at random, which leaks neighbouring windows
//! into validation), the vocabulary (`tokenizer.json`) and a report of every song
//! left out and why (`report.json`).

pub mod prepare;

pub use prepare::{
    Exclusion, PrepareOptions, Prepared, Report, SongRecord, Split, prepare, read_songs,
    write_atomic, write_prepared,
};
