//! Melodies in the formats people read, hear and exchange: MIDI, MusicXML, kern, ABC, WAV and a piano-roll PNG.
//!
//! Every writer takes the plain [`esac_parse::Melody`]: [`midi`] (with a reader
//! of its notes, for tests), [`musicxml`], [`kern`] and [`abc`] (bars cut into
//! notatable, tied pieces), [`audio`] (a small built-in synthesizer, or a
//! General MIDI SoundFont through `rustysynth`, written as WAV) and
//! [`piano_roll`] (a PNG). Readers of other formats sit beside them.

pub mod abc;
pub mod audio;
pub mod kern;
pub mod midi;
pub mod musicxml;
pub mod notation;
pub mod piano_roll;
mod picture;

pub use notation::NotationError;
pub use picture::{PictureError, drawing_failed, font_available};
