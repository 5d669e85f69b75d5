//! Typed parse errors that say where and what.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// A place in a source file (1-based line and column; column counts characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// What went wrong while reading a song.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ErrorKind {
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    #[error("bad duration: {0}")]
    BadDuration(String),
    #[error("bad pitch: {0}")]
    BadPitch(String),
    #[error("pitch {0} is outside the MIDI range 0..=127")]
    PitchOutOfRange(i32),
    #[error("chords are not supported: the melody must be monophonic")]
    Chord,
    #[error("spine {0}: only monophonic files are read; {1}")]
    Spines(usize, String),
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("bad KEY[] field: {0}")]
    BadKey(String),
    #[error(
        "bad key signature {0:?}: a signature has at most seven sharps or flats, as in *k[b-e-a-]"
    )]
    BadKeySignature(String),
    #[error("bad meter {0:?}")]
    BadMeter(String),
    #[error("unknown tonic {0:?}")]
    BadTonic(String),
    #[error("`^` continues a previous note, but there is none")]
    DanglingTie,
    #[error("unbalanced triplet bracket")]
    UnbalancedTuplet,
    #[error("pitch `x` is a placeholder with no known pitch")]
    UnknownPitch,
    #[error("the melody has no notes")]
    Empty,
    #[error("cannot read the file: {0}")]
    Unreadable(String),
    #[error("{0}")]
    Other(String),
}

impl ErrorKind {
    /// The kind without its details, for counting like errors together.
    pub fn label(&self) -> &'static str {
        match self {
            ErrorKind::UnexpectedChar(_) => "unexpected character",
            ErrorKind::BadDuration(_) => "bad duration",
            ErrorKind::BadPitch(_) => "bad pitch",
            ErrorKind::PitchOutOfRange(_) => "pitch outside the MIDI range",
            ErrorKind::Chord => "chord",
            ErrorKind::Spines(..) => "several spines",
            ErrorKind::Missing(_) => "missing field",
            ErrorKind::BadKey(_) => "bad KEY[] field",
            ErrorKind::BadKeySignature(_) => "bad key signature",
            ErrorKind::BadMeter(_) => "bad meter",
            ErrorKind::BadTonic(_) => "unknown tonic",
            ErrorKind::DanglingTie => "tie without a note",
            ErrorKind::UnbalancedTuplet => "unbalanced triplet bracket",
            ErrorKind::UnknownPitch => "unknown pitch",
            ErrorKind::Empty => "no notes",
            ErrorKind::Unreadable(_) => "unreadable file",
            ErrorKind::Other(_) => "other",
        }
    }
}

/// A parse error with its place and the offending token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{location}: {kind} in `{token}`")]
pub struct ParseError {
    pub location: Location,
    pub token: String,
    pub kind: ErrorKind,
}

impl ParseError {
    pub fn new(
        file: impl Into<PathBuf>,
        line: usize,
        column: usize,
        token: impl Into<String>,
        kind: ErrorKind,
    ) -> Self {
        Self {
            location: Location {
                file: file.into(),
                line,
                column,
            },
            token: token.into(),
            kind,
        }
    }
}
