//! Reads the Essen folk song collection into a plain melody model.
//!
//! Two source forms are understood: the native EsAC text format (`.sm` databases
//! with `KEY[]`/`MEL[]` records, see [`esac`]) and its Humdrum `**kern` renditions
//! (one song per `.krn` file, see [`kern`]). Both produce the same [`Melody`]:
//! notes and rests with exact rational durations, meters, key, ties, phrases and
//! bars. [`collection`] walks directories, never aborting on one bad file, and
//! [`text`] decodes the old DOS and Latin-1 bytes found in the real files.

pub mod collection;
pub mod error;
pub mod esac;
pub mod kern;
pub mod model;
pub mod text;

pub use collection::{Collection, Rejection, SourceFormat, read_bytes, read_path};
pub use error::{ErrorKind, Location, ParseError};
pub use model::{
    Duration, Event, Key, Melody, Meter, MeterChange, Mode, NameError, Pitch, Spelling, Tie,
    parse_duration,
};
