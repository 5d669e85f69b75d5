//! The esac-melody command line: argument types and the glue that calls the libraries and prints.
//!
//! [`download`] fetches and verifies collections, [`source`] picks the data a
//! command reads when none is named, [`train_cmd`] trains and evaluates
//! models (with [`loss_plot`]'s progress bar and loss curve attached), [`sample_cmd`] writes new melodies, [`judge_cmd`] reads them back
//! for the `judge` library, and [`mod@bench`] measures the parser, the training
//! step and sampling.

pub mod bench;
pub mod download;
pub mod judge_cmd;
pub mod loss_plot;
pub mod sample_cmd;
pub mod serve_cmd;
pub mod source;
pub mod train_cmd;
