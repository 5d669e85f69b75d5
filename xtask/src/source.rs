//! The data a command reads when the user names none: the songs a model was
//! trained on, or the cached erk collection, downloaded on first use.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use trainer::{PrepareOptions, Prepared};

use crate::download;

/// The given data paths, or the cached erk collection (downloaded if missing).
/// A name that is not a path names a collection to fetch: `essen` (every
/// collection, as an Essen tree), `erk`, `deutschl`, or one collection of the
/// Essen tree (`kinder`, `china`: the kern rendition where there is one).
/// `flag` is the option of the calling command that takes a local copy.
pub fn data_or_cached_erk(data: Vec<PathBuf>, flag: &str) -> Result<Vec<PathBuf>> {
    if data.is_empty() {
        let why = format!("no {flag} given, and the erk collection could not be fetched");
        return Ok(vec![fetch_named("erk", &why, flag)?]);
    }
    data.into_iter()
        .map(|path| match path.to_str() {
            Some(name) if !path.exists() && !name.contains('/') && !name.contains('.') => {
                let why = format!(
                    "{flag} {name}: not a path here, and the collection could not be fetched"
                );
                fetch_named(name, &why, flag)
            }
            _ => Ok(path),
        })
        .collect()
}

/// The songs a model was trained on, from its config's `dataset.source`: that
/// path when it is here, else the collection its last part names, fetched as
/// `--data NAME` would be (`../shared/data/essen` is `essen`). Prepared
/// again, the same songs give the same test songs, since a split stays put.
pub fn songs_trained_on(trained_on: &str) -> Result<PathBuf> {
    if trained_on.contains(", ") {
        bail!(
            "the model was trained on several sources ({trained_on}): pass --data with a folder `cargo xtask prepare` writes from them, for the same test songs"
        );
    }
    let path = PathBuf::from(trained_on);
    if path.exists() {
        return Ok(path);
    }
    let name = path
        .file_name()
        .map(|name| PathBuf::from(name.to_string_lossy().trim_end_matches(".zip")))
        .with_context(|| {
            format!("the model names no songs it was trained on ({trained_on:?}): pass --data")
        })?;
    Ok(data_or_cached_erk(vec![name], "--data")
        .with_context(|| format!("the model was trained on {trained_on}, which is not here"))?
        .remove(0))
}

/// The cached copy of a named collection, fetched if needed; `why` says what
/// failed when it cannot be.
fn fetch_named(name: &str, why: &str, flag: &str) -> Result<PathBuf> {
    let options = download::Options::new(trainer::source::cache_root());
    let offline = || {
        format!(
            "{why}; without internet, pass {flag} with a folder of .krn or .sm files, a zip of them, an Essen tree, or a folder written by `cargo xtask prepare` (for example {flag} ../shared/data/essen/deutschl/erk)"
        )
    };
    if let Some(collection) = download::known(name) {
        let done = download::download(&collection, &options).with_context(offline)?;
        if !done.cached {
            eprintln!("fetched {name} into {}", done.path.display());
        }
        return Ok(done.path);
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
            format!(
                "{flag} {name}: no such path, and no collection of that name in the Essen collection ({})",
                tree.display()
            )
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
    trainer::prepare_named(&named, options)
        .with_context(|| format!("nothing to prepare in {}", describe(paths)))
}
