//! `download` against a local HTTP server on 127.0.0.1 that serves a zip built
//! from `../shared/data`: the happy path, server errors, a truncated transfer
//! that is resumed, a corrupt archive, a wrong checksum, and offline mirrors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use xtask::download::{self, Collection, Options};

fn erk_dir() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/essen/deutschl/erk");
    assert!(
        dir.is_dir(),
        "the Essen data is expected at {}",
        dir.display()
    );
    dir
}

/// A zip of the erk kern files laid out as `deutschl/erk/NAME`, built once.
fn erk_zip(modify: Option<&str>) -> Vec<u8> {
    static PLAIN: OnceLock<Vec<u8>> = OnceLock::new();
    let build = |modify: Option<&str>| {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let mut names: Vec<PathBuf> = std::fs::read_dir(erk_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut bytes = std::fs::read(&path).unwrap();
            if Some(name.as_str()) == modify {
                bytes.extend_from_slice(b"!! tampered\n");
            }
            writer
                .start_file(format!("deutschl/erk/{name}"), options)
                .unwrap();
            writer.write_all(&bytes).unwrap();
        }
        writer.finish().unwrap().into_inner()
    };
    match modify {
        None => PLAIN.get_or_init(|| build(None)).clone(),
        Some(_) => build(modify),
    }
}

/// What the server does for one request.
#[derive(Clone)]
enum Reply {
    /// Serve the body, honouring a Range header.
    Body(Arc<Vec<u8>>),
    /// Announce the full length but send only this many bytes, then hang up.
    Truncated(Arc<Vec<u8>>, usize),
    Status(u16),
}

/// Requests seen: (path, range start).
type Seen = Arc<Mutex<Vec<(String, Option<u64>)>>>;

/// Serves `replies` in order (the last one repeats) on 127.0.0.1; stops after `limit` requests.
fn serve(replies: Vec<Reply>, limit: usize) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/erk.zip", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    thread::spawn(move || {
        for (index, stream) in listener.incoming().take(limit).enumerate() {
            let Ok(stream) = stream else { continue };
            let reply = replies[index.min(replies.len() - 1)].clone();
            answer(stream, reply, &log);
        }
    });
    (url, seen)
}

fn answer(mut stream: TcpStream, reply: Reply, log: &Seen) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = value.trim().trim_end_matches('-').parse().ok();
        }
    }
    log.lock().unwrap().push((path, range));
    let response = match reply {
        Reply::Status(code) => {
            format!("HTTP/1.1 {code} Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .into_bytes()
        }
        Reply::Body(body) => {
            let start = range.unwrap_or(0) as usize;
            let (status, extra) = if range.is_some() {
                (
                    "206 Partial Content",
                    format!(
                        "Content-Range: bytes {start}-{}/{}\r\n",
                        body.len() - 1,
                        body.len()
                    ),
                )
            } else {
                ("200 OK", String::new())
            };
            let mut out = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                body.len() - start
            )
            .into_bytes();
            out.extend_from_slice(&body[start..]);
            out
        }
        Reply::Truncated(body, keep) => {
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(&body[..keep]);
            out
        }
    };
    let _ = stream.write_all(&response);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
    // Drain so the client sees a clean close rather than a reset.
    let _ = stream.read(&mut [0u8; 16]);
}

fn erk_from(url: &str) -> Collection {
    let mut collection = download::known("erk").unwrap();
    collection.urls = vec![url.to_owned()];
    collection
}

fn options(cache: &tempfile::TempDir) -> Options {
    let mut options = Options::new(cache.path().to_owned());
    options.backoff = Duration::from_millis(10);
    options.progress = false;
    options
}

#[test]
fn happy_path_then_cached() {
    let (url, seen) = serve(vec![Reply::Body(Arc::new(erk_zip(None)))], 10);
    let cache = tempfile::tempdir().unwrap();
    let done = download::download(&erk_from(&url), &options(&cache)).unwrap();
    assert_eq!(done.files, 1700);
    assert!(!done.cached);
    assert!(done.path.join("deut0567.krn").is_file());
    let again = download::download(&erk_from(&url), &options(&cache)).unwrap();
    assert!(again.cached);
    assert_eq!(again.digest, done.digest);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "a verified cache is not fetched again"
    );
}

#[test]
fn server_errors_are_retried() {
    let zip = Arc::new(erk_zip(None));
    let (url, seen) = serve(
        vec![Reply::Status(500), Reply::Status(503), Reply::Body(zip)],
        10,
    );
    let cache = tempfile::tempdir().unwrap();
    let done = download::download(&erk_from(&url), &options(&cache)).unwrap();
    assert_eq!(done.files, 1700);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[test]
fn a_missing_file_is_not_retried() {
    let (url, seen) = serve(vec![Reply::Status(404)], 10);
    let cache = tempfile::tempdir().unwrap();
    let err = download::download(&erk_from(&url), &options(&cache)).unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("server answered 404"), "{message}");
    // The library names no flag: each command adds the one it has.
    assert!(!message.contains("--"), "{message}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn a_truncated_download_resumes_where_it_stopped() {
    let zip = Arc::new(erk_zip(None));
    let cut = zip.len() / 3;
    let (url, seen) = serve(
        vec![Reply::Truncated(zip.clone(), cut), Reply::Body(zip)],
        10,
    );
    let cache = tempfile::tempdir().unwrap();
    let done = download::download(&erk_from(&url), &options(&cache)).unwrap();
    assert_eq!(done.files, 1700);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].1,
        Some(cut as u64),
        "the second request asks for the rest"
    );
}

#[test]
fn a_corrupt_archive_is_refused_and_not_cached() {
    let garbage = Arc::new(b"PK\x03\x04 this is not really a zip archive".repeat(100));
    let (url, _) = serve(vec![Reply::Body(garbage)], 10);
    let cache = tempfile::tempdir().unwrap();
    let err = download::download(&erk_from(&url), &options(&cache)).unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("not a usable zip archive"), "{message}");
    assert!(!cache.path().join("essen/erk").exists());
    let leftovers: Vec<_> = std::fs::read_dir(cache.path().join("downloads"))
        .unwrap()
        .collect();
    assert!(
        leftovers.is_empty(),
        "the bad archive is removed so that it is not resumed"
    );
}

#[test]
fn a_wrong_checksum_is_refused_and_not_cached() {
    let tampered = Arc::new(erk_zip(Some("deut0567.krn")));
    let (url, _) = serve(vec![Reply::Body(tampered)], 10);
    let cache = tempfile::tempdir().unwrap();
    let err = download::download(&erk_from(&url), &options(&cache)).unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("does not match its pinned checksum"),
        "{message}"
    );
    assert!(!cache.path().join("essen/erk").exists());
}

#[test]
fn offline_mirrors_folder_and_zip() {
    let cache = tempfile::tempdir().unwrap();
    let mut opts = options(&cache);
    opts.from = Some(erk_dir().parent().unwrap().to_owned());
    let done = download::download(&download::known("erk").unwrap(), &opts).unwrap();
    assert_eq!(done.files, 1700);

    let zip_path = cache.path().join("mirror.zip");
    std::fs::write(&zip_path, erk_zip(None)).unwrap();
    let mut opts = options(&cache);
    opts.from = Some(zip_path);
    opts.force = true;
    let again = download::download(&download::known("erk").unwrap(), &opts).unwrap();
    assert!(!again.cached);
    assert_eq!(again.digest, done.digest);
}

/// A zip laid out like Shlien's `esac/esac.zip`: the native EsAC files flat
/// under `esac/`, beside other files (an ABC conversion), one file tampered
/// with when `modify` names it.
fn esac_zip(modify: Option<&str>) -> Vec<u8> {
    let root = erk_dir().join("../../esac");
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .flat_map(|dir| std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sm"))
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut bytes = std::fs::read(&path).unwrap();
        if Some(name.as_str()) == modify {
            bytes.push(b' ');
        }
        writer.start_file(format!("esac/{name}"), options).unwrap();
        writer.write_all(&bytes).unwrap();
    }
    writer.start_file("esac/erk10.abc", options).unwrap();
    writer.write_all(b"X:1\nK:C\nCDE|\n").unwrap();
    writer.finish().unwrap().into_inner()
}

fn esac_from(url: &str) -> Collection {
    let mut collection = download::known("esac").unwrap();
    collection.urls = vec![url.to_owned()];
    collection
}

#[test]
fn the_native_esac_files_arrive_in_their_collections_and_verified() {
    let (url, _) = serve(vec![Reply::Body(Arc::new(esac_zip(None)))], 10);
    let cache = tempfile::tempdir().unwrap();
    let done = download::download(&esac_from(&url), &options(&cache)).unwrap();
    assert_eq!(done.files, 38);
    for file in [
        "erk/erk10.sm",
        "china/HAN1.sm",
        "kolberg-dwok01/dwok01_7.sm",
        "irl/IRL.sm",
    ] {
        assert!(done.path.join(file).is_file(), "{file}");
    }
    // Laid out as an Essen tree beside deutschl, it reads as collections.
    let tree = done.path.parent().unwrap();
    assert!(trainer::source::is_essen_tree(tree));
    let names: Vec<String> = trainer::source::collections_in(tree)
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names[0], "esac/erk");
    assert_eq!(names.len(), 16);

    let (url, _) = serve(vec![Reply::Body(Arc::new(esac_zip(Some("HAN2.sm"))))], 10);
    let cache = tempfile::tempdir().unwrap();
    let err = download::download(&esac_from(&url), &options(&cache)).unwrap_err();
    assert!(
        format!("{err:#}").contains("does not match its pinned checksum"),
        "{err:#}"
    );
    assert!(!cache.path().join("essen/esac").exists(), "nothing cached");
}

#[test]
fn essen_from_an_offline_tree() {
    let cache = tempfile::tempdir().unwrap();
    let mut options = options(&cache);
    let tree = erk_dir().join("../..");
    for part in ["deutschl", "esac"] {
        options.from = Some(tree.join(part));
        let done = download::download(&download::known(part).unwrap(), &options).unwrap();
        assert!(!done.cached);
    }
    options.from = None;
    // Both are cached and verified now: nothing is fetched.
    let essen = download::download_essen(&options).unwrap();
    assert_eq!(essen, cache.path().join("essen"));
    let collections = trainer::source::collections_in(&essen).unwrap();
    assert_eq!(collections[0].0, "deutschl/erk");
    assert_eq!(collections.len(), 12 + 16);
}
