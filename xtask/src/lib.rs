//! The esac-melody command line as a library, so that its pieces are testable:
//! [`download`] fetches and verifies collections, [`source`] reads songs from a
//! folder or zip, [`train_cmd`] trains and evaluates models, and [`bench`]
//! measures the parser, the training step and sampling; [`judge`] compares
//! generated melodies with the corpus; [`export`] writes a model in the hub
//! layout and [`hub`] downloads and publishes models.

pub mod bench;
pub mod download;
pub mod export;
pub mod hub;
pub mod judge;
pub mod piano_roll;
pub mod sample_cmd;
pub mod source;
pub mod train_cmd;
