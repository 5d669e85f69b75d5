//! Helpers the end-to-end tests share: running the CLI, reading JSON, and a
//! small copy of the real ERK songs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the CLI from the repository root.
pub fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(args)
        .output()
        .unwrap()
}

/// Runs the CLI, expects success and returns what it printed.
pub fn succeeds(args: &[&str]) -> String {
    let output = xtask(args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?}\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A JSON file's contents.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The first 100 erk songs copied into `dir/songs`.
pub fn songs(dir: &Path) -> PathBuf {
    let erk =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/essen/deutschl/erk");
    let data = dir.join("songs");
    std::fs::create_dir(&data).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&erk)
        .unwrap_or_else(|e| panic!("the Essen data is expected at {}: {e}", erk.display()))
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|e| e == "krn"))
        .collect();
    files.sort();
    for file in files.iter().take(100) {
        std::fs::copy(file, data.join(file.file_name().unwrap())).unwrap();
    }
    data
}

/// A few updates of a tiny model, with `extra` flags.
pub fn train_tiny(data: &Path, runs: &Path, name: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
        "--name",
        name,
        "--batch-size",
        "8",
        "--max-steps",
        "30",
        "--eval-every",
        "30",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    succeeds(&args)
}

/// A copy of `assets/erk` in `dir` whose config.json records `test_songs`
/// test songs: a model whose recorded split its songs no longer give.
pub fn erk_recorded_with_test_songs(dir: &Path, test_songs: usize) -> PathBuf {
    let erk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/erk");
    let copy = dir.join("erk-misrecorded");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&erk).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
    }
    let mut config = json(&copy.join("config.json"));
    config["dataset"]["test_songs"] = test_songs.into();
    std::fs::write(copy.join("config.json"), config.to_string()).unwrap();
    copy
}
