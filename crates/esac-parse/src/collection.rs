//! Reading whole collections: every file is read or rejected with a reason.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, Location, ParseError};
use crate::model::Melody;
use crate::{esac, kern, text};

/// The two forms in which the Essen collection is distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// Humdrum `**kern`, one song per `.krn` file.
    Kern,
    /// Native EsAC database (`.sm`), many songs per file.
    Esac,
}

impl SourceFormat {
    /// Tells the format from the content; `None` for files that hold no songs.
    pub fn sniff(text: &str) -> Option<Self> {
        if text.lines().any(|l| l.starts_with("**")) {
            Some(SourceFormat::Kern)
        } else if has_field(text, "KEY[") && has_field(text, "MEL[") {
            Some(SourceFormat::Esac)
        } else {
            None
        }
    }
}

/// True when some line starts with the field opening `name` (after indentation).
fn has_field(text: &str, name: &str) -> bool {
    text.lines().any(|l| l.trim_start().starts_with(name))
}

/// A song or file that could not be read, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub location: Location,
    /// The text at fault (empty when the whole song or file is).
    pub token: String,
    pub kind: ErrorKind,
}

impl Rejection {
    /// What went wrong, with the text at fault.
    pub fn reason(&self) -> String {
        if self.token.is_empty() {
            self.kind.to_string()
        } else {
            format!("{} in `{}`", self.kind, self.token)
        }
    }
}

impl From<ParseError> for Rejection {
    fn from(error: ParseError) -> Self {
        Self {
            location: error.location,
            token: error.token,
            kind: error.kind,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.reason())
    }
}

/// Everything read from a set of files.
#[derive(Debug, Default)]
pub struct Collection {
    /// Files that held songs in a known format.
    pub music_files: usize,
    /// Songs read, in file order and, within a file, record order.
    pub songs: Vec<Melody>,
    /// Songs or files that could not be read, with reasons.
    pub rejected: Vec<Rejection>,
    /// Files that are not music (checksums, notes), with the reason they were passed over.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Reads one file's bytes (any encoding the real files use) into `into`.
pub fn read_bytes(path: &Path, bytes: &[u8], into: &mut Collection) {
    let text = text::decode(bytes);
    match SourceFormat::sniff(&text) {
        Some(SourceFormat::Kern) => {
            into.music_files += 1;
            match kern::parse(&text, path) {
                Ok(songs) => into.songs.extend(songs),
                Err(error) => into.rejected.push(error.into()),
            }
        }
        Some(SourceFormat::Esac) => {
            into.music_files += 1;
            for record in esac::parse(&text, path) {
                match record {
                    Ok(song) => into.songs.push(song),
                    Err(error) => into.rejected.push(error.into()),
                }
            }
        }
        None => into.skipped.push((
            path.to_owned(),
            "neither **kern nor EsAC (no `**` line, no KEY[] and MEL[])".into(),
        )),
    }
}

/// Reads a file, or every file under a directory (recursively, in name order).
/// Only a missing or unreadable top-level path is an error; unreadable files
/// inside a directory are recorded as rejections.
pub fn read_path(path: &Path) -> io::Result<Collection> {
    let mut collection = Collection::default();
    if path.is_dir() {
        let mut files = Vec::new();
        walk(path, &mut files)?;
        for file in files {
            match fs::read(&file) {
                Ok(bytes) => read_bytes(&file, &bytes, &mut collection),
                Err(error) => collection.rejected.push(Rejection {
                    location: Location {
                        file,
                        line: 0,
                        column: 0,
                    },
                    token: String::new(),
                    kind: ErrorKind::Unreadable(error.to_string()),
                }),
            }
        }
    } else {
        let bytes = fs::read(path)?;
        read_bytes(path, &bytes, &mut collection);
    }
    Ok(collection)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            walk(&entry, files)?;
        } else {
            files.push(entry);
        }
    }
    Ok(())
}
