//! Reading a collection from what a user points at: a folder, a song file, or a zip.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use esac_parse::{Collection, read_bytes, read_path};

use crate::download;

/// Reads every song under `path` (a folder of `.krn`/`.sm` files, one such
/// file, or a zip of them). Bad songs are rejected with reasons, never fatal.
pub fn load(path: &Path) -> Result<Collection> {
    if !path.exists() {
        bail!(
            "{} does not exist; point --data at a folder of .krn or .sm files or a zip (or run `cargo xtask download erk`)",
            path.display()
        );
    }
    let is_zip = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    if !is_zip {
        return read_path(path).with_context(|| format!("cannot read {}", path.display()));
    }
    let files = download::read_zip(path, &download::any_songs("zip"))?;
    let mut collection = Collection::default();
    for (name, bytes) in files {
        read_bytes(&path.join(name), &bytes, &mut collection);
    }
    Ok(collection)
}

/// The given data path, or the cached erk collection (downloaded if missing).
pub fn data_or_cached_erk(data: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(data) = data {
        return Ok(data);
    }
    let collection = download::known("erk").expect("erk is known");
    let done = download::download(&collection, &download::Options::new(download::cache_root()))
        .context("no --data given, and the erk collection could not be fetched")?;
    if !done.cached {
        eprintln!("fetched erk into {}", done.path.display());
    }
    Ok(done.path)
}
