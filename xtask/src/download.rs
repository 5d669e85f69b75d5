//! Getting a collection onto the user's machine: fetch a zip (with resume and
//! retries), or take an offline mirror, verify the songs against a digest pinned
//! here, and unpack them into the cache. Idempotent: a verified cache is reused.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use trainer::source::{cached_collection, is_song_file, read_zip};

/// A collection we know how to fetch and verify.
#[derive(Debug, Clone)]
pub struct Collection {
    pub name: String,
    /// Where to fetch the zip, tried in order.
    pub urls: Vec<String>,
    /// Name of the folder inside the archive that holds the songs (`erk` for
    /// `.../deutschl/erk/deut0567.krn`); `None` takes every song file.
    pub folder: Option<String>,
    /// Pinned content digest (see [`content_digest`]) and song-file count.
    pub pinned: Option<(String, usize)>,
    /// How the archive's song files are laid out in the cache.
    pub arrangement: Arrangement,
}

/// Where song files go in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrangement {
    /// As the archive has them, below the collection folder.
    AsArchived,
    /// The native EsAC files, each in its collection's folder (`erk/erk10.sm`,
    /// `china/HAN1.sm`); files that are not one of them are left out.
    EsacCollections,
}

/// Every native EsAC file of the Essen collection and the folder it goes in,
/// as in `shared/data/essen/esac` (see its SOURCE.md).
const ESAC_FILES: [(&str, &str); 38] = [
    ("altdeu10.sm", "altdeu"),
    ("altdeu20.sm", "altdeu"),
    ("ballad10.sm", "ballad"),
    ("ballad20.sm", "ballad"),
    ("ballad30.sm", "ballad"),
    ("ballad40.sm", "ballad"),
    ("ballad50.sm", "ballad"),
    ("ballad60.sm", "ballad"),
    ("ballad70.sm", "ballad"),
    ("ballad80.sm", "ballad"),
    ("boehme10.sm", "boehme"),
    ("boehme20.sm", "boehme"),
    ("HAN1.sm", "china"),
    ("HAN2.sm", "china"),
    ("dva0.sm", "dva"),
    ("erk10.sm", "erk"),
    ("erk20.sm", "erk"),
    ("erk30.sm", "erk"),
    ("erk5.sm", "erk"),
    ("fink0.sm", "fink"),
    ("HAYDN.sm", "haydn"),
    ("IRL.sm", "irl"),
    ("kinder0.sm", "kinder"),
    ("dwok01_1.sm", "kolberg-dwok01"),
    ("dwok01_2.sm", "kolberg-dwok01"),
    ("dwok01_3.sm", "kolberg-dwok01"),
    ("dwok01_4.sm", "kolberg-dwok01"),
    ("dwok01_5.sm", "kolberg-dwok01"),
    ("dwok01_6.sm", "kolberg-dwok01"),
    ("dwok01_7.sm", "kolberg-dwok01"),
    ("LOT.sm", "lothringen"),
    ("LUX.sm", "luxemburg"),
    ("test0.sm", "test"),
    ("test1.sm", "test"),
    ("testd.sm", "test"),
    ("teste.sm", "test"),
    ("variant0.sm", "variant"),
    ("zuccal0.sm", "zuccal"),
];

/// Shlien's `abc_collection` at a fixed commit: its `esac/esac.zip` holds the
/// native EsAC files beside his ABC conversions.
const ESAC_ARCHIVES: [&str; 2] = [
    "https://raw.githubusercontent.com/sshlien/abc_collection/2ab0fa842e93276f4418448e7882e6465efa2d40/esac/esac.zip",
    "https://github.com/sshlien/abc_collection/raw/2ab0fa842e93276f4418448e7882e6465efa2d40/esac/esac.zip",
];

impl Arrangement {
    fn arrange(self, files: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
        match self {
            Arrangement::AsArchived => files,
            Arrangement::EsacCollections => files
                .into_iter()
                .filter_map(|(name, bytes)| {
                    let base = name.rsplit('/').next().unwrap_or(&name);
                    ESAC_FILES
                        .iter()
                        .find(|(file, _)| *file == base)
                        .map(|(file, folder)| (format!("{folder}/{file}"), bytes))
                })
                .collect(),
        }
    }
}

/// The GitHub mirror of CCARH's Essen kern files at a fixed commit: its content
/// is the same as the kern server's, and the digest check makes either safe.
const GITHUB_ARCHIVE: &str = "https://github.com/ccarh/essen-folksong-collection/archive/2d0ca75e87dc7a725556c8090e3681c1fa3a0452.zip";

/// The collections `cargo xtask download NAME` knows, with their digests
/// (computed from the CCARH files, byte-identical to `shared/data/essen/deutschl`).
pub fn known(name: &str) -> Option<Collection> {
    if name == "esac" {
        return Some(Collection {
            name: name.to_owned(),
            urls: ESAC_ARCHIVES.iter().map(|u| (*u).to_owned()).collect(),
            folder: None,
            pinned: Some((
                "8530d37ffc87092ec9c2c70ea0163a7ffb3d8ac9ebf92e9cf86d6be2cec59eec".to_owned(),
                ESAC_FILES.len(),
            )),
            arrangement: Arrangement::EsacCollections,
        });
    }
    let (folder, count, digest) = match name {
        "erk" => (
            "erk",
            1700,
            "4bc37715c2296457e519b7b5e8b3daad18533a9c9eb735c8fe50e6a9f78eb0f4",
        ),
        "deutschl" => (
            "deutschl",
            5365,
            "d514fc80fdd15a56c2e95442e5668a3e25fcccf24c5c27c66728d56b7eee30e7",
        ),
        _ => return None,
    };
    let server_path = if folder == "deutschl" {
        "/essen/europa/deutschl".to_owned()
    } else {
        format!("/essen/europa/deutschl/{folder}")
    };
    Some(Collection {
        name: name.to_owned(),
        urls: vec![
            format!("https://kern.humdrum.org/data?f=zip&l={server_path}"),
            GITHUB_ARCHIVE.to_owned(),
        ],
        folder: Some(folder.to_owned()),
        pinned: Some((digest.to_owned(), count)),
        arrangement: Arrangement::AsArchived,
    })
}

/// The whole collection as an Essen tree in the cache (`essen/deutschl`, the
/// kern renditions of the German sets, and `essen/esac`, every native EsAC
/// file): both downloaded and verified like any collection. Returns the tree.
pub fn download_essen(options: &Options) -> Result<PathBuf> {
    for name in ["deutschl", "esac"] {
        let collection = known(name).expect("known");
        let done = download(&collection, options)?;
        let state = if done.cached {
            "already cached"
        } else {
            "downloaded"
        };
        eprintln!("{name}: {state}, {} files, verified", done.files);
    }
    Ok(cached_collection(&options.cache, "deutschl")
        .parent()
        .expect("the cache has a root")
        .to_owned())
}

/// Any song files in an archive or folder, kept under their own names.
pub fn any_songs(name: &str) -> Collection {
    Collection {
        name: name.to_owned(),
        urls: Vec::new(),
        folder: None,
        pinned: None,
        arrangement: Arrangement::AsArchived,
    }
}

/// A user-given URL: no pinned digest; the files are kept as the archive has them.
pub fn from_url(url: &str) -> Collection {
    let name: String = url
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("collection")
        .trim_end_matches(".zip")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Collection {
        urls: vec![url.to_owned()],
        ..any_songs(&name)
    }
}

/// How a download behaves.
#[derive(Debug, Clone)]
pub struct Options {
    pub cache: PathBuf,
    /// An offline mirror: a folder of song files or a zip.
    pub from: Option<PathBuf>,
    /// Attempts per URL.
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub backoff: Duration,
    /// Re-fetch even if a verified copy is cached.
    pub force: bool,
    /// Take a verified copy from the cache (or the mirror) only, never the network.
    pub cached_only: bool,
    pub progress: bool,
}

impl Options {
    pub fn new(cache: PathBuf) -> Self {
        Self {
            cache,
            from: None,
            attempts: 4,
            backoff: Duration::from_millis(500),
            force: false,
            cached_only: false,
            progress: true,
        }
    }
}

/// What a download produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Folder holding the song files.
    pub path: PathBuf,
    pub files: usize,
    pub digest: String,
    /// True when a verified copy was already cached.
    pub cached: bool,
}

const MARKER: &str = ".verified";

/// Song files in a collection: kern and EsAC.
/// Digest of a set of files, independent of how they were packed: SHA-256 over
/// `name NUL sha256(content) LF` for each file, sorted by name (names relative
/// to the collection folder, `/`-separated).
pub fn content_digest(files: &[(String, Vec<u8>)]) -> String {
    let mut entries: Vec<(&str, String)> = files
        .iter()
        .map(|(name, bytes)| (name.as_str(), hex(&Sha256::digest(bytes))))
        .collect();
    entries.sort();
    let mut hasher = Sha256::new();
    for (name, hash) in entries {
        hasher.update(format!("{name}\0{hash}\n").as_bytes());
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fetches (or takes from a mirror), verifies and unpacks a collection.
pub fn download(collection: &Collection, options: &Options) -> Result<Downloaded> {
    let target = cached_collection(&options.cache, &collection.name);
    if !options.force
        && let Some(done) = verified_cache(&target, collection)
    {
        return Ok(done);
    }
    let files = match &options.from {
        Some(mirror) if mirror.is_dir() => read_mirror_dir(mirror, collection)?,
        Some(mirror) => read_zip(mirror, collection.folder.as_deref())?,
        None if options.cached_only => bail!(
            "{} is not in the cache ({})",
            collection.name,
            target.display()
        ),
        None => {
            let archive = fetch_any(collection, options)?;
            let files = read_zip(&archive, collection.folder.as_deref());
            if files.is_err() {
                // A corrupt archive must not be resumed from next time.
                let _ = fs::remove_file(&archive);
            }
            files?
        }
    };
    let files = collection.arrangement.arrange(files);
    let digest = content_digest(&files);
    if let Some((pinned, count)) = &collection.pinned
        && (pinned != &digest || *count != files.len())
    {
        bail!(
            "the {} collection does not match its pinned checksum: expected {count} files with digest {pinned}, got {} files with digest {digest}. The source may have changed or the download is damaged; nothing was written to the cache",
            collection.name,
            files.len()
        );
    }
    unpack(&target, &files, &digest)?;
    Ok(Downloaded {
        path: target,
        files: files.len(),
        digest,
        cached: false,
    })
}

/// A cache folder whose marker names the pinned digest (or any digest when none is pinned).
fn verified_cache(target: &Path, collection: &Collection) -> Option<Downloaded> {
    let marker = fs::read_to_string(target.join(MARKER)).ok()?;
    let (digest, files) = marker.trim().split_once(' ')?;
    let files: usize = files.parse().ok()?;
    match &collection.pinned {
        Some((pinned, count)) if pinned != digest || *count != files => None,
        _ => Some(Downloaded {
            path: target.to_owned(),
            files,
            digest: digest.to_owned(),
            cached: true,
        }),
    }
}

/// Writes the files into a temporary folder beside `target`, then swaps it in,
/// so that a crash leaves either the old cache or the new one, never half of one.
fn unpack(target: &Path, files: &[(String, Vec<u8>)], digest: &str) -> Result<()> {
    let parent = target.parent().context("cache folder has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = parent.join(format!(
        ".{}.partial-{}",
        target.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&staging);
    let result = (|| -> Result<()> {
        for (name, bytes) in files {
            let path = staging.join(name);
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        }
        fs::write(staging.join(MARKER), format!("{digest} {}\n", files.len()))?;
        if target.exists() {
            fs::remove_dir_all(target)
                .with_context(|| format!("cannot replace {}", target.display()))?;
        }
        fs::rename(&staging, target)
            .with_context(|| format!("cannot move the collection into {}", target.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// The name of a song file relative to the collection folder, or `None` if it is
/// not in that folder.
/// Reads song files from a local folder (an offline mirror).
pub fn read_mirror_dir(dir: &Path, collection: &Collection) -> Result<Vec<(String, Vec<u8>)>> {
    // Accept the collection folder itself or a folder above it.
    let root = match &collection.folder {
        Some(folder) if dir.file_name().is_some_and(|n| n == folder.as_str()) => dir.to_owned(),
        Some(folder) => find_folder(dir, folder)?.unwrap_or_else(|| dir.to_owned()),
        None => dir.to_owned(),
    };
    let mut files = Vec::new();
    collect_files(&root, &root, &mut files)?;
    if files.is_empty() {
        bail!("no song files (.krn, .sm) under {}", root.display());
    }
    Ok(files)
}

fn find_folder(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for entry in entries {
        if entry.file_name().is_some_and(|n| n == name) {
            return Ok(Some(entry));
        }
        if let Some(found) = find_folder(&entry, name)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn collect_files(root: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, files)?;
        } else if is_song_file(&path.to_string_lossy()) {
            let name = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            let bytes =
                fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            files.push((name, bytes));
        }
    }
    Ok(())
}

/// Tries each URL in turn; returns the path of the complete archive.
fn fetch_any(collection: &Collection, options: &Options) -> Result<PathBuf> {
    let downloads = options.cache.join("downloads");
    fs::create_dir_all(&downloads)
        .with_context(|| format!("cannot create {}", downloads.display()))?;
    let mut failures = Vec::new();
    for (index, url) in collection.urls.iter().enumerate() {
        let part = downloads.join(format!("{}-{index}.zip.part", collection.name));
        match fetch(url, &part, options) {
            Ok(()) => {
                let done = part.with_extension("");
                fs::rename(&part, &done)?;
                return Ok(done);
            }
            Err(error) => {
                tracing::warn!("{url}: {error:#}");
                failures.push(format!("{url}: {error:#}"));
            }
        }
    }
    Err(anyhow!(
        "could not download the {} collection:\n  {}",
        collection.name,
        failures.join("\n  ")
    ))
}

/// Why one attempt failed, and whether another may help.
enum Attempt {
    Retry(anyhow::Error),
    GiveUp(anyhow::Error),
}

/// Downloads `url` into `part`, resuming what an earlier attempt left there.
fn fetch(url: &str, part: &Path, options: &Options) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut wait = options.backoff;
    let mut last = anyhow!("no attempt made");
    for attempt in 1..=options.attempts.max(1) {
        match fetch_once(&agent, url, part, options.progress) {
            Ok(()) => return Ok(()),
            Err(Attempt::GiveUp(error)) => return Err(error),
            Err(Attempt::Retry(error)) => {
                tracing::info!("attempt {attempt} failed: {error:#}");
                last = error;
            }
        }
        if attempt < options.attempts {
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
    Err(last.context(format!("gave up after {} attempts", options.attempts)))
}

fn fetch_once(agent: &ureq::Agent, url: &str, part: &Path, progress: bool) -> Result<(), Attempt> {
    let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request
        .call()
        .map_err(|e| Attempt::Retry(anyhow!("request failed: {e}")))?;
    let status = response.status().as_u16();
    let resumed = match status {
        200 => false,
        206 => true,
        416 => {
            // Our partial file is no prefix of what the server has: start over.
            let _ = fs::remove_file(part);
            return Err(Attempt::Retry(anyhow!(
                "server refused to resume (416); restarting"
            )));
        }
        500..=599 | 429 | 408 => return Err(Attempt::Retry(anyhow!("server error {status}"))),
        _ => return Err(Attempt::GiveUp(anyhow!("server answered {status}"))),
    };
    let length: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(part)
        .map_err(|e| Attempt::GiveUp(anyhow!("cannot write {}: {e}", part.display())))?;
    let start = if resumed { have } else { 0 };
    let bar = if progress {
        let bar = length.map_or_else(ProgressBar::new_spinner, |l| ProgressBar::new(start + l));
        bar.set_style(model_folder::hub::transfer_style());
        bar.set_message("downloading");
        bar.set_position(start);
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut reader = response.into_body().into_reader();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut received = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = file.flush();
                bar.abandon_with_message("interrupted");
                return Err(Attempt::Retry(anyhow!(
                    "transfer interrupted after {} bytes: {e}",
                    start + received
                )));
            }
        };
        file.write_all(&buffer[..n])
            .map_err(|e| Attempt::GiveUp(anyhow!("cannot write {}: {e}", part.display())))?;
        received += n as u64;
        bar.inc(n as u64);
    }
    file.sync_all()
        .map_err(|e| Attempt::GiveUp(anyhow!("cannot write {}: {e}", part.display())))?;
    if let Some(length) = length
        && received != length
    {
        return Err(Attempt::Retry(anyhow!(
            "truncated download: got {received} of {length} bytes"
        )));
    }
    bar.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_order() {
        let a = vec![
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), b"2".to_vec()),
        ];
        let b = vec![a[1].clone(), a[0].clone()];
        assert_eq!(content_digest(&a), content_digest(&b));
        assert_ne!(content_digest(&a), content_digest(&a[..1]));
    }
}
