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

/// The forms an Essen tree holds, in the order their collections are read:
/// the Humdrum kern renditions first (the reference's form), then native EsAC.
const ESSEN_FORMS: [&str; 2] = ["deutschl", "esac"];
/// The collection every figure is measured on; it leads its form, so that a
/// duplicate of one of its songs elsewhere is the one left out.
const LEADING_COLLECTION: &str = "erk";

/// True for a folder laid out as the Essen collection: `deutschl/` and/or
/// `esac/`, each holding one folder per collection.
pub fn is_essen_tree(path: &Path) -> bool {
    ESSEN_FORMS.iter().any(|form| path.join(form).is_dir()) && !path.join("songs.jsonl").exists()
}

/// The collections a path names, in reading order, each with its name: an
/// Essen tree gives every collection in it (`deutschl/erk` first, then the
/// other kern collections, then the native EsAC ones, each form in name
/// order; folders starting with `_` and the single-record `samples` are
/// passed over); any other path is one collection named after its last part.
pub fn collections_in(path: &Path) -> Result<Vec<(String, PathBuf)>, SourceError> {
    if !path.exists() {
        return Err(SourceError::Missing(path.to_owned()));
    }
    if !is_essen_tree(path) {
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        return Ok(vec![(name, path.to_owned())]);
    }
    let mut found = Vec::new();
    for form in ESSEN_FORMS {
        let dir = path.join(form);
        if !dir.is_dir() {
            continue;
        }
        let mut names: Vec<String> = fs::read_dir(&dir)
            .map_err(|source| SourceError::Io {
                path: dir.clone(),
                source,
            })?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().is_dir())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('_') && name != "samples")
            .collect();
        names.sort_by_key(|name| (name != LEADING_COLLECTION, name.clone()));
        found.extend(
            names
                .into_iter()
                .map(|name| (format!("{form}/{name}"), dir.join(name))),
        );
    }
    Ok(found)
}

/// Reads every collection `paths` name (see [`collections_in`]), in order.
/// A single collection keeps an empty name, so that preparing it alone
/// writes what it always has.
pub fn read_sources(paths: &[PathBuf]) -> Result<Vec<(String, Collection)>, SourceError> {
    let mut named = Vec::new();
    for path in paths {
        named.extend(collections_in(path)?);
    }
    let single = named.len() == 1;
    named
        .into_iter()
        .map(|(name, path)| {
            let songs = load_collection(&path)?;
            Ok((if single { String::new() } else { name }, songs))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_essen_tree_lists_its_collections_kern_first_and_erk_leading() {
        let dir = tempfile::tempdir().unwrap();
        for folder in [
            "deutschl/kinder",
            "deutschl/erk",
            "deutschl/allerkbd",
            "esac/china",
            "esac/erk",
            "esac/_upstream",
            "esac/samples",
        ] {
            fs::create_dir_all(dir.path().join(folder)).unwrap();
        }
        fs::write(dir.path().join("esac/SOURCE.md"), "").unwrap();
        let names: Vec<String> = collections_in(dir.path())
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            names,
            [
                "deutschl/erk",
                "deutschl/allerkbd",
                "deutschl/kinder",
                "esac/erk",
                "esac/china"
            ]
        );
        let erk = dir.path().join("deutschl/erk");
        assert_eq!(
            collections_in(&erk).unwrap(),
            [("erk".to_owned(), erk.clone())]
        );
        assert!(matches!(
            collections_in(&dir.path().join("nothing")),
            Err(SourceError::Missing(_))
        ));
    }

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
