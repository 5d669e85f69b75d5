//! The data a command reads when the user names none: the songs a model was
//! trained on, or the cached erk collection, downloaded on first use.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use grid_codec::Encoding;
use indicatif::{ProgressBar, ProgressStyle};
use model_folder::ModelFolder;
use trainer::{DatasetInfo, PrepareOptions, Prepared, SplitSizes};

use crate::download;

/// The given data paths, or the cached erk collection (downloaded if missing).
/// A name that is not a path names a collection to fetch: `essen` (every
/// collection, as an Essen tree), `erk`, `deutschl`, or one collection of the
/// Essen tree (`kinder`, `china`: the kern rendition where there is one).
/// `flag` is the option of the calling command that takes a local copy.
pub fn data_or_cached_erk(data: Vec<PathBuf>, flag: &str) -> Result<Vec<PathBuf>> {
    if data.is_empty() {
        let why = format!("no {flag} given, and the erk collection could not be fetched");
        return Ok(vec![fetch_named("erk", &why, flag, Fetch::IfMissing)?]);
    }
    data.into_iter()
        .map(|path| match path.to_str() {
            Some(name) if !path.exists() && !name.contains('/') && !name.contains('.') => {
                let why = format!(
                    "{flag} {name}: not a path here, and the collection could not be fetched"
                );
                fetch_named(name, &why, flag, Fetch::IfMissing)
            }
            _ => Ok(path),
        })
        .collect()
}

/// Whether a named collection that is not in the cache is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    IfMissing,
    /// For a server, whose request must not wait on the network.
    Never,
}

/// The songs a model was trained on, from its config's `dataset.source`: that
/// path when it is here, else the collection its last part names, from the
/// cache or fetched as `--data NAME` would be (`../shared/data/essen` is
/// `essen`). Prepared again, the same songs give the same test songs, since a
/// split stays put.
pub fn songs_trained_on(trained_on: &str, fetch: Fetch) -> Result<PathBuf> {
    let [path] = <[PathBuf; 1]>::try_from(recorded_paths(trained_on)).map_err(|_| {
        anyhow::anyhow!(
            "the model was trained on several sources ({trained_on}): pass --data with a folder `cargo xtask prepare` writes from them, for the same test songs"
        )
    })?;
    if path.exists() {
        return Ok(path);
    }
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().trim_end_matches(".zip").to_owned())
        .with_context(|| {
            format!("the model names no songs it was trained on ({trained_on:?}): pass --data")
        })?;
    let why = format!("the model was trained on {trained_on}, which is not here");
    fetch_named(&name, &why, "--data", fetch)
}

/// The songs under `paths` prepared as `folder`'s model's songs were: with
/// its encoding, split as `train` splits them.
pub fn prepare_as_trained(paths: &[PathBuf], folder: &ModelFolder) -> Result<Prepared> {
    prepare_to_read(paths, folder.encoding)
}

/// The songs under `paths` prepared with `encoding` and split as `train`
/// splits them, to be read rather than written: without the variant search,
/// which only `report.json` needs.
pub fn prepare_to_read(paths: &[PathBuf], encoding: Encoding) -> Result<Prepared> {
    let options = PrepareOptions {
        encoding,
        find_variants: false,
        ..PrepareOptions::default()
    };
    prepare_paths(paths, &options)
}

/// The sizes of the splits `folder`'s model was trained on, as its
/// config.json records them.
pub fn trained_split(folder: &ModelFolder) -> Option<SplitSizes> {
    let dataset = folder.config.get("dataset")?;
    Some(
        serde_json::from_value::<DatasetInfo>(dataset.clone())
            .ok()?
            .split,
    )
}

/// Refuses songs (`songs` names them) that give `found` where the model they
/// are read for was trained on songs that gave `trained`: their test songs
/// could then be songs it learned from. A model that records no split
/// (`None`) takes any.
pub fn check_split(trained: Option<SplitSizes>, found: SplitSizes, songs: &str) -> Result<()> {
    let Some(trained) = trained.filter(|trained| *trained != found) else {
        return Ok(());
    };
    bail!(
        "the songs of {songs} are not split as those the model was trained on: they give {found}, where its config.json records {trained}; pass --data with the songs it was trained on"
    )
}

/// The cached copy of a named collection, fetched if needed and allowed;
/// `why` says what failed when it cannot be had.
fn fetch_named(name: &str, why: &str, flag: &str, fetch: Fetch) -> Result<PathBuf> {
    let options = download::Options {
        cached_only: fetch == Fetch::Never,
        ..download::Options::new(trainer::source::cache_root())
    };
    let offline = || {
        let instead = format!(
            "{flag} with a folder of .krn or .sm files, a zip of them, an Essen tree, or a folder written by `cargo xtask prepare` (for example {flag} ../shared/data/essen/deutschl/erk)"
        );
        match fetch {
            Fetch::IfMissing => format!("{why}; without internet, pass {instead}"),
            Fetch::Never => {
                format!("{why} (`cargo xtask download {name}` fetches it, or pass {instead})")
            }
        }
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

/// What joins the paths in messages and in `config.json`'s `dataset.source`
/// (so a path that holds it reads back as two).
const PATH_SEPARATOR: &str = ", ";

/// The paths as one line, for messages and for `config.json`'s
/// `dataset.source`, which [`recorded_paths`] reads back.
pub fn describe(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(PATH_SEPARATOR)
}

/// The paths a `dataset.source` that [`describe`] wrote names.
pub fn recorded_paths(recorded: &str) -> Vec<PathBuf> {
    recorded.split(PATH_SEPARATOR).map(PathBuf::from).collect()
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

/// [`prepare_paths`] with a spinner, for the commands whose work it is
/// (`prepare`, and `train` staging its data): under a second for the
/// reference encoding, but about ten for the whole collection in all keys.
/// Drawn on a terminal only; the readers that prepare on the fly (`judge`,
/// `eval`, the server's background loads) show none, so it cannot cut into
/// their own lines.
pub fn prepare_paths_with_spinner(paths: &[PathBuf], options: &PrepareOptions) -> Result<Prepared> {
    let spinner = ProgressBar::new_spinner()
        .with_style(
            ProgressStyle::with_template("{spinner} preparing {msg} ({elapsed})")
                .expect("valid template"),
        )
        .with_message(describe(paths));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let prepared = prepare_paths(paths, options);
    spinner.finish_and_clear();
    prepared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_source_reads_back_as_the_paths_it_was_written_from() {
        let paths = [
            PathBuf::from("../shared/data/essen/deutschl/erk"),
            PathBuf::from("my songs.zip"),
        ];
        let recorded = describe(&paths);
        assert_eq!(recorded, "../shared/data/essen/deutschl/erk, my songs.zip");
        assert_eq!(recorded_paths(&recorded), paths);
        assert_eq!(
            recorded_paths("runs/erk/data"),
            [PathBuf::from("runs/erk/data")]
        );
    }
}
