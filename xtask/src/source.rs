//! The data a command reads when the user names none: the cached erk
//! collection, downloaded on first use.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::download;

/// The given data path, or the cached erk collection (downloaded if missing).
/// `flag` is the option of the calling command that takes a local copy.
pub fn data_or_cached_erk(data: Option<PathBuf>, flag: &str) -> Result<PathBuf> {
    if let Some(data) = data {
        return Ok(data);
    }
    let collection = download::known("erk").expect("erk is known");
    let options = download::Options::new(trainer::source::cache_root());
    let done = download::download(&collection, &options).with_context(|| {
        format!(
            "no {flag} given, and the erk collection could not be fetched; without internet, pass {flag} with a folder of .krn or .sm files, a zip of them, or a folder written by `cargo xtask prepare` (for example {flag} ../shared/data/essen/deutschl/erk)"
        )
    })?;
    if !done.cached {
        eprintln!("fetched erk into {}", done.path.display());
    }
    Ok(done.path)
}
