//! The data pipeline, the training loop, evaluation and checkpoints; it shows nothing itself.
//!
//! [`source`] reads songs from a folder, a file, a zip or the download cache;
//! [`mod@prepare`] turns a parsed collection into what training reads: grid tokens
//! per song (`songs.jsonl`), a song-level seeded train/val/test split (the
//! reference split 64-token windows at random, which leaks neighbouring windows
//! into validation), the vocabulary (`tokenizer.json`) and a report of every song
//! left out and why (`report.json`). [`mod@train`] trains the LSTM of `lstm-candle`
//! on it with checkpoints, reporting to [`observe::Observer`]s (the run's
//! `metrics.csv` and TensorBoard logs are observers here; progress bars and
//! pictures are the caller's); [`eval`] scores whole held-out songs.

pub mod data;
pub mod eval;
pub mod init;
pub mod logs;
pub mod observe;
pub mod optim;
pub mod prepare;
pub mod source;
pub mod train;
pub mod variants;

pub use data::{Dataset, SplitSizes};
pub use eval::{Evaluation, evaluate, evaluate_test};
pub use init::Init;
pub use optim::Schedule;
pub use prepare::{
    CollectionCounts, Exclusion, PrepareError, PrepareOptions, Prepared, Report, SongRecord,
    Source, Split, is_prepared_folder, prepare, prepare_named, prepare_sources, read_songs,
    songs_jsonl, write_atomic, write_prepared,
};
pub use train::{
    DatasetInfo, FinalMetrics, Objective, RunConfig, RunOptions, TrainConfig, TrainError,
    TrainOutcome, train,
};
