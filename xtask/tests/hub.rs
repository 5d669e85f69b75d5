//! The hub round trip against a local server on 127.0.0.1 that speaks the
//! parts of the Hugging Face hub API we use (create repository, preupload,
//! commit, HEAD/GET resolve): publish then download gives identical bytes, and
//! 401, 404, 5xx and an interrupted transfer end with clear messages and no
//! half-written cache entries. Runs with `--features hub`.
#![cfg(feature = "hub")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};

const TOKEN: &str = "hf_test_secret_token_0123";

/// How the server misbehaves for a file path (`resolve/.../NAME`).
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// 500 on every request for the file.
    ServerError,
    /// The GET announces the whole length and sends half, then hangs up.
    Truncated,
    /// The GET sends different bytes from those the HEAD described.
    Corrupted,
}

#[derive(Default)]
struct Hub {
    /// repo id -> (commit id, files)
    repos: HashMap<String, (String, HashMap<String, Vec<u8>>)>,
    private: HashMap<String, bool>,
    faults: HashMap<String, Fault>,
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Hub>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.split('?').next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    send: usize,
) {
    let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
    for (k, v) in headers {
        out += &format!("{k}: {v}\r\n");
    }
    out += &format!("Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&body[..send.min(body.len())]);
    let _ = stream.write_all(&bytes);
    let _ = stream.flush();
}

fn json(stream: &mut TcpStream, status: u16, value: serde_json::Value) {
    let body = value.to_string().into_bytes();
    respond(
        stream,
        status,
        &[("Content-Type", "application/json".into())],
        &body,
        body.len(),
    );
}

fn handle(mut stream: TcpStream, hub: &Shared) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let mut hub = hub.lock().unwrap();
    hub.requests
        .push(format!("{} {}", request.method, request.path));
    let authorized = request.headers.get("authorization").map(String::as_str)
        == Some(&format!("Bearer {TOKEN}"));
    // Every write needs the token.
    if request.method == "POST" && !authorized {
        return json(
            &mut stream,
            401,
            serde_json::json!({"error": "Invalid credentials"}),
        );
    }
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["api", "repos", "create"]) => {
            let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            let id = format!(
                "{}/{}",
                body["organization"].as_str().unwrap(),
                body["name"].as_str().unwrap()
            );
            if hub.repos.contains_key(&id) {
                return json(&mut stream, 409, serde_json::json!({"error": "exists"}));
            }
            hub.private
                .insert(id.clone(), body["private"].as_bool().unwrap_or(false));
            hub.repos
                .insert(id.clone(), (String::new(), HashMap::new()));
            json(
                &mut stream,
                200,
                serde_json::json!({"url": format!("http://hub/{id}")}),
            );
        }
        ("POST", ["api", "models", owner, name, "preupload", _]) => {
            let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            let files: Vec<serde_json::Value> = body["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| serde_json::json!({"path": f["path"], "uploadMode": "regular"}))
                .collect();
            let _ = (owner, name);
            json(&mut stream, 200, serde_json::json!({"files": files}));
        }
        ("POST", ["api", "models", owner, name, "commit", _]) => {
            let id = format!("{owner}/{name}");
            let mut files = HashMap::new();
            for line in request
                .body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
            {
                let entry: serde_json::Value = serde_json::from_slice(line).unwrap();
                if entry["key"] == "file" {
                    let content = base64::engine::general_purpose::STANDARD
                        .decode(entry["value"]["content"].as_str().unwrap())
                        .unwrap();
                    files.insert(entry["value"]["path"].as_str().unwrap().to_owned(), content);
                }
            }
            let Some(repo) = hub.repos.get_mut(&id) else {
                return json(
                    &mut stream,
                    404,
                    serde_json::json!({"error": "Repository not found"}),
                );
            };
            let commit = hex(&Sha256::digest(&request.body)[..20]);
            repo.0.clone_from(&commit);
            repo.1.extend(files);
            json(
                &mut stream,
                200,
                serde_json::json!({"commitUrl": format!("http://hub/{id}/commit/{commit}"), "commitOid": commit}),
            );
        }
        (method @ ("HEAD" | "GET"), [owner, name, "resolve", _revision, file]) => {
            let id = format!("{owner}/{name}");
            let fault = hub.faults.get(*file).copied();
            if fault == Some(Fault::ServerError) {
                return respond(&mut stream, 500, &[], b"", 0);
            }
            if hub.private.get(&id) == Some(&true) && !authorized {
                return respond(&mut stream, 401, &[], b"", 0);
            }
            let Some((commit, files)) = hub.repos.get(&id) else {
                return respond(
                    &mut stream,
                    404,
                    &[("X-Error-Code", "RepoNotFound".into())],
                    b"",
                    0,
                );
            };
            let Some(content) = files.get(*file) else {
                return respond(
                    &mut stream,
                    404,
                    &[
                        ("X-Error-Code", "EntryNotFound".into()),
                        ("X-Repo-Commit", commit.clone()),
                    ],
                    b"",
                    0,
                );
            };
            // Like the hub: large files are named by their SHA-256, others by a git hash.
            let etag = if file.ends_with(".safetensors") {
                hex(&Sha256::digest(content))
            } else {
                hex(&Sha256::digest(content)[..20])
            };
            let headers = [
                ("ETag", format!("\"{etag}\"")),
                ("X-Repo-Commit", commit.clone()),
            ];
            let mut body = content.clone();
            if method == "HEAD" {
                // Content-Length without a body.
                let mut out = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nETag: \"{etag}\"\r\nX-Repo-Commit: {commit}\r\nContent-Length: {}\r\n\r\n",
                    content.len()
                );
                out.truncate(out.len());
                let _ = stream.write_all(out.as_bytes());
                return;
            }
            let mut send = body.len();
            match fault {
                Some(Fault::Truncated) => send = body.len() / 2,
                Some(Fault::Corrupted) => {
                    let middle = body.len() / 2;
                    body[middle] ^= 0xFF;
                }
                _ => {}
            }
            respond(&mut stream, 200, &headers, &body, send);
        }
        _ => respond(&mut stream, 404, &[], b"", 0),
    }
}

/// Starts the mock hub; returns its address and state.
fn start_hub() -> (String, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hub: Shared = Arc::default();
    let state = hub.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let state = state.clone();
            thread::spawn(move || handle(stream, &state));
        }
    });
    (url, hub)
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn xtask(args: &[&str], endpoint: &str, home: &Path, token: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .current_dir(repo_root())
        .args(args)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", home)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HUGGINGFACE_HUB_CACHE")
        .env_remove("HF_TOKEN_PATH")
        .env_remove("HF_HUB_OFFLINE");
    match token {
        Some(token) => command.env("HF_TOKEN", token),
        None => command.env_remove("HF_TOKEN"),
    };
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The command failed, said `message`, and did not show the token.
fn fails_with(output: &Output, message: &str) {
    let said = text(output);
    assert!(!output.status.success(), "succeeded: {said}");
    assert!(said.contains(message), "expected {message:?} in: {said}");
    assert!(!said.contains(TOKEN), "the token was shown: {said}");
}

fn snapshot_files(home: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![home.join("hub")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else if path.components().any(|c| c.as_os_str() == "snapshots") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn publish_then_download_gives_identical_bytes() {
    let (endpoint, hub) = start_hub();
    let home = tempfile::tempdir().unwrap();
    let output = xtask(
        &[
            "publish",
            "assets/erk",
            "--repo",
            "tester/erk-lstm",
            "--private",
        ],
        &endpoint,
        home.path(),
        Some(TOKEN),
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(!text(&output).contains(TOKEN));
    {
        let hub = hub.lock().unwrap();
        assert_eq!(hub.private.get("tester/erk-lstm"), Some(&true));
        let (_, files) = &hub.repos["tester/erk-lstm"];
        for name in [
            "model.safetensors",
            "config.json",
            "tokenizer.json",
            "README.md",
            "generation_config.json",
        ] {
            let local = std::fs::read(repo_root().join("assets/erk").join(name)).unwrap();
            assert_eq!(files.get(name), Some(&local), "{name} uploaded intact");
        }
        // One commit for the whole folder.
        let commits = hub
            .requests
            .iter()
            .filter(|r| r.contains("/commit/"))
            .count();
        assert_eq!(commits, 1);
    }
    // Publishing again into the existing repository is fine (exist_ok).
    let again = xtask(
        &["publish", "assets/erk", "--repo", "tester/erk-lstm"],
        &endpoint,
        home.path(),
        Some(TOKEN),
    );
    assert!(again.status.success(), "{}", text(&again));

    let out = tempfile::tempdir().unwrap();
    let output = xtask(
        &[
            "sample",
            "--model",
            "hub:tester/erk-lstm",
            "--seed",
            "5",
            "--out",
            out.path().to_str().unwrap(),
        ],
        &endpoint,
        home.path(),
        Some(TOKEN),
    );
    assert!(output.status.success(), "{}", text(&output));
    let cached = snapshot_files(home.path());
    for name in ["model.safetensors", "config.json", "tokenizer.json"] {
        let path = cached
            .iter()
            .find(|p| p.file_name().unwrap() == name)
            .unwrap_or_else(|| panic!("{name} not in the cache: {cached:?}"));
        assert_eq!(
            std::fs::read(path).unwrap(),
            std::fs::read(repo_root().join("assets/erk").join(name)).unwrap()
        );
    }
    // The same seed from the local folder gives the same melody.
    let local = tempfile::tempdir().unwrap();
    let output = xtask(
        &[
            "sample",
            "--model",
            "assets/erk",
            "--seed",
            "5",
            "--out",
            local.path().to_str().unwrap(),
        ],
        &endpoint,
        home.path(),
        None,
    );
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        std::fs::read_to_string(out.path().join("melody-1.txt")).unwrap(),
        std::fs::read_to_string(local.path().join("melody-1.txt")).unwrap()
    );
    // Offline, the cached copy serves.
    let offline = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(repo_root())
        .args(["inspect", "hub:tester/erk-lstm"])
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(offline.status.success(), "{}", text(&offline));
    assert!(text(&offline).contains("lstm.weight_hh_l0"));
}

#[test]
fn hub_errors_are_clear_and_leave_no_half_written_cache() {
    let (endpoint, hub) = start_hub();
    let home = tempfile::tempdir().unwrap();
    // Publishing: no token, then a refused token (never echoed).
    let output = xtask(
        &["publish", "assets/erk", "--repo", "tester/m"],
        &endpoint,
        home.path(),
        None,
    );
    fails_with(&output, "no Hugging Face token: set HF_TOKEN");
    let wrong = "hf_wrong_token_987654";
    let output = xtask(
        &["publish", "assets/erk", "--repo", "tester/m"],
        &endpoint,
        home.path(),
        Some(wrong),
    );
    fails_with(&output, "401 unauthorized");
    assert!(!text(&output).contains(wrong), "{}", text(&output));
    let output = xtask(
        &["publish", "assets/erk", "--repo", "tester/m", "--private"],
        &endpoint,
        home.path(),
        Some(TOKEN),
    );
    assert!(output.status.success(), "{}", text(&output));

    let sample = |model: &str, token: Option<&str>| {
        let out = tempfile::tempdir().unwrap();
        xtask(
            &[
                "sample",
                "--model",
                model,
                "--out",
                out.path().to_str().unwrap(),
            ],
            &endpoint,
            home.path(),
            token,
        )
    };
    // 401: a private repository without a token.
    let output = sample("hub:tester/m", None);
    fails_with(&output, "401 unauthorized): set HF_TOKEN");
    // 404: no such repository.
    let output = sample("hub:tester/nothing", Some(TOKEN));
    fails_with(&output, "hub:tester/nothing: no config.json there");
    // A bad reference.
    let output = sample("hub:just-a-name", Some(TOKEN));
    fails_with(&output, "write the repository as OWNER/NAME");

    for (fault, message) in [
        (
            Fault::ServerError,
            "the hub answered 500 Internal Server Error several times",
        ),
        (Fault::Truncated, "the transfer failed or was cut off"),
        (Fault::Corrupted, "arrived corrupted"),
    ] {
        hub.lock()
            .unwrap()
            .faults
            .insert("model.safetensors".into(), fault);
        let output = sample("hub:tester/m", Some(TOKEN));
        fails_with(&output, message);
        assert!(
            !snapshot_files(home.path())
                .iter()
                .any(|p| p.file_name().unwrap() == "model.safetensors"),
            "{message}: a broken model.safetensors stayed in the cache"
        );
        hub.lock().unwrap().faults.clear();
    }
    // With the server mended, the same cache works.
    let output = sample("hub:tester/m", Some(TOKEN));
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn publish_dry_run_sends_nothing_and_refuses_a_folder_that_is_not_a_model() {
    let (endpoint, hub) = start_hub();
    let home = tempfile::tempdir().unwrap();
    let output = xtask(
        &["publish", "assets/erk", "--repo", "tester/dry", "--dry-run"],
        &endpoint,
        home.path(),
        Some(TOKEN),
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("model.safetensors"));
    assert!(text(&output).contains("dry run: nothing was sent (a token was found)"));
    assert!(hub.lock().unwrap().requests.is_empty());
    let output = xtask(
        &["publish", "crates", "--repo", "tester/dry"],
        &endpoint,
        home.path(),
        Some(TOKEN),
    );
    fails_with(&output, "has no model.safetensors");
}
