//! Melodies to grid tokens and back: transposition, the vocabulary, and the encoding that travels with data and models.
//!
//! A melody is laid on a time grid (default a sixteenth note): a note onset is its
//! MIDI number (`60`), each further step it lasts is `_`, a rest onset is `r`, and
//! `.` ends a song. [`encode`] does this with transposition and filtering (songs
//! off the grid are refused with the reason), [`decode`] goes back from tokens to
//! a melody, [`Vocabulary`] maps tokens to ids as a `tokenizers` WordLevel
//! `tokenizer.json`, [`Encoding`] records how a corpus was encoded, and
//! [`Conditioning`] gives each step its place in the bar, the song's meter, mode
//! and style, and the bars left, as side inputs for a model.

pub mod codec;
pub mod conditions;
pub mod encoding;
pub mod token;
pub mod vocab;

pub use codec::{
    DecodeError, DecodeOptions, Encoded, FilterReason, Transposition, decode, encode, encode_with,
    reference_transposition, transpose, transposed_key,
};
pub use conditions::{
    BarLayout, CONDITIONING_FILE, ConditionError, Conditioning, Echo, Lookback, Schedule,
    SongConditions,
};
pub use encoding::{ENCODING_FILE, Encoding, EncodingError};
pub use token::{Token, TokenError, parse_tokens, tokens_to_string};
pub use vocab::{VocabError, Vocabulary};

/// The default grid step: a sixteenth of a whole note, as in the reference.
pub fn default_step() -> esac_parse::Duration {
    esac_parse::Duration::new(1, 16)
}
