//! The data a command reads when the user names none: the cached erk
//! collection, downloaded on first use.

use std::path::PathBuf;

use anyhow::{Context, Result};
use trainer::{PrepareOptions, Prepared, Source};

use crate::download;

/// The given data paths, or the cached erk collection (downloaded if missing).
/// A name that is not a path names a collection to fetch: `essen` (every
/// collection, as an Essen tree), `erk`, `deutschl`, or one collection of the
/// Essen tree (`kinder`, `china`: the kern rendition where there is one).
/// `flag` is the option of the calling command that takes a local copy.
pub fn data_or_cached_erk(data: Vec<PathBuf>, flag: &str) -> Result<Vec<PathBuf>> {
    if !data.is_empty() {
        return data
            .into_iter()
            .map(|path| {
                if path.exists() {
                    return Ok(path);
                }
                match path.to_str() {
                    Some(name) if !name.contains('/') && !name.contains('.') => {
                        fetch_named(name, flag)
                    }
                    _ => Ok(path),
                }
            })
            .collect();
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
    Ok(vec![done.path])
}

/// The cached copy of a named collection, fetched if needed.
fn fetch_named(name: &str, flag: &str) -> Result<PathBuf> {
    let options = download::Options::new(trainer::source::cache_root());
    let offline = || {
        format!(
            "{flag} {name}: not a path here, and the collection could not be fetched; without internet, pass {flag} with a folder of .krn or .sm files or an Essen tree (for example {flag} ../shared/data/essen)"
        )
    };
    if let Some(collection) = download::known(name) {
        return Ok(download::download(&collection, &options)
            .with_context(offline)?
            .path);
    }
    let tree = download::download_essen(&options).with_context(offline)?;
    if name == "essen" {
        return Ok(tree);
    }
    ["deutschl", "esac"]
        .iter()
        .map(|form| tree.join(form).join(name))
        .find(|dir| dir.is_dir())
        .with_context(|| {
            format!("{flag} {name}: no such path, and no collection of that name in the Essen collection ({})", tree.display())
        })
}

/// The paths as one line, for messages.
pub fn describe(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads and prepares the songs under `paths` (folders, zips, Essen trees) as
/// one corpus.
pub fn prepare_paths(paths: &[PathBuf], options: &PrepareOptions) -> Result<Prepared> {
    let named = trainer::source::read_sources(paths).context(
        "point --data at a folder of .krn or .sm files, a zip of them, or an Essen tree",
    )?;
    let sources: Vec<Source> = named
        .iter()
        .map(|(name, songs)| Source {
            name: name.clone(),
            songs,
        })
        .collect();
    trainer::prepare_sources(&sources, options)
        .with_context(|| format!("nothing to prepare in {}", describe(paths)))
}
