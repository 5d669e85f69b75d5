//! Where songs come from: a folder of `.krn`/`.sm` files, one such file, a zip
//! of them, or the download cache. Bad songs inside are rejected with reasons,
//! never fatal; only a source that cannot be opened at all is an error.

use std::fs;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use esac_parse::{Collection, read_bytes, read_path};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("{0} does not exist")]
    Missing(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable zip archive: {message}")]
    Zip { path: PathBuf, message: String },
}

/// The cache root: `$ESAC_MELODY_CACHE`, else the platform cache folder.
pub fn cache_root() -> PathBuf {
    std::env::var_os("ESAC_MELODY_CACHE")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("esac-melody")))
        .unwrap_or_else(|| PathBuf::from(".cache/esac-melody"))
}

/// The folder a downloaded collection is unpacked into.
pub fn cached_collection(cache: &Path, name: &str) -> PathBuf {
    cache.join("essen").join(name)
}

/// True for the file names that hold songs.
pub fn is_song_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".krn", ".sm", ".esa"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// The name of `path` (`/`-separated, inside an archive) below the last folder
/// called `folder`; `None` when it is elsewhere in the archive.
pub fn relative_name(path: &str, folder: Option<&str>) -> Option<String> {
    let path = path.trim_start_matches("./");
    match folder {
        None => Some(path.to_owned()),
        Some(folder) => {
            let parts: Vec<&str> = path.split('/').collect();
            match parts.iter().rposition(|p| *p == folder) {
                Some(at) => Some(parts[at + 1..].join("/")),
                // A flat archive of just the songs.
                None if parts.len() == 1 => Some(path.to_owned()),
                None => None,
            }
        }
    }
}

/// The song files of a zip (below the folder `folder` when given), with their
/// names relative to it.
pub fn read_zip(path: &Path, folder: Option<&str>) -> Result<Vec<(String, Vec<u8>)>, SourceError> {
    let file = fs::File::open(path).map_err(|source| SourceError::Io {
        path: path.to_owned(),
        source,
    })?;
    read_zip_from(file, folder).map_err(|message| SourceError::Zip {
        path: path.to_owned(),
        message,
    })
}

fn read_zip_from(
    reader: impl Read + Seek,
    folder: Option<&str>,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| e.to_string())?;
    let mut files = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| e.to_string())?;
        if entry.is_dir() {
            continue;
        }
        // `enclosed_name` refuses absolute paths and `..`, so nothing lands outside the cache.
        let Some(name) = entry.enclosed_name() else {
            return Err(format!("unsafe path in archive: {:?}", entry.name_raw()));
        };
        let name = name.to_string_lossy().replace('\\', "/");
        if !is_song_file(&name) {
            continue;
        }
        let Some(relative) = relative_name(&name, folder) else {
            continue;
        };
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {name} from the archive: {e}"))?;
        files.push((relative, bytes));
    }
    if files.is_empty() {
        return Err("no song files (.krn, .sm) found in the archive".into());
    }
    Ok(files)
}

/// Reads every song under `path`: a folder of `.krn`/`.sm` files, one such
/// file, or a zip of them.
pub fn load_collection(path: &Path) -> Result<Collection, SourceError> {
    if !path.exists() {
        return Err(SourceError::Missing(path.to_owned()));
    }
    let is_zip = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    if !is_zip {
        return read_path(path).map_err(|source| SourceError::Io {
            path: path.to_owned(),
            source,
        });
    }
    let mut collection = Collection::default();
    for (name, bytes) in read_zip(path, None)? {
        read_bytes(&path.join(name), &bytes, &mut collection);
    }
    Ok(collection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_are_taken_below_the_collection_folder() {
        assert_eq!(
            relative_name("essen-x/europa/deutschl/erk/deut0567.krn", Some("erk")),
            Some("deut0567.krn".into())
        );
        assert_eq!(
            relative_name("deutschl/erk/deut0567.krn", Some("deutschl")),
            Some("erk/deut0567.krn".into())
        );
        assert_eq!(
            relative_name("deut0567.krn", Some("erk")),
            Some("deut0567.krn".into())
        );
        assert_eq!(
            relative_name("europa/deutschl/fink/a.krn", Some("erk")),
            None
        );
    }
}
