//! The encoding travels with the data and the model: songs prepared in their
//! written keys train, sample and judge in those keys, and songs prepared in
//! every key train as they are.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use esac_parse::Key;

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(args)
        .output()
        .unwrap()
}

fn succeeds(args: &[&str]) -> String {
    let output = xtask(args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?}\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The first 100 erk songs copied into `dir/songs`.
fn songs(dir: &Path) -> PathBuf {
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

/// The first 100 erk songs prepared into `dir/TRANSPOSE`.
fn prepare(dir: &Path, transpose: &str) -> PathBuf {
    let prepared = dir.join(transpose);
    succeeds(&[
        "prepare",
        "--data",
        songs(dir).to_str().unwrap(),
        "--out",
        prepared.to_str().unwrap(),
        "--transpose",
        transpose,
    ]);
    prepared
}

/// A few updates of a tiny model on a prepared folder.
fn train_tiny(data: &Path, runs: &Path, name: &str) -> String {
    succeeds(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
        "--name",
        name,
        "--hidden",
        "16",
        "--embedding-dim",
        "8",
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
    ])
}

#[test]
fn songs_in_their_written_keys_train_sample_and_judge_in_those_keys() {
    let dir = tempfile::tempdir().unwrap();
    let prepared = prepare(dir.path(), "none");
    assert_eq!(
        json(&prepared.join("encoding.json")),
        serde_json::json!({
            "step": {"numerator": 1, "denominator": 16},
            "transposition": {"mode": "none"}
        })
    );
    let records = trainer::read_songs(&prepared.join("songs.jsonl")).unwrap();
    // ERK E0001 (deut0567.krn) is in F major and keeps its written pitches.
    let first = &records[0];
    assert_eq!((first.id.as_str(), first.transposed_by), ("E0001", 0));
    assert_eq!(first.key.unwrap().to_string(), "F major");
    assert!(
        first.tokens.starts_with("60 _ 65 _ 65 _ 65 _ 67 _"),
        "{}",
        first.tokens
    );

    let runs = dir.path().join("runs");
    train_tiny(&prepared, &runs, "none");
    let run = runs.join("none");
    assert_eq!(
        json(&run.join("config.json"))["encoding"]["transposition"]["mode"],
        "none"
    );
    assert!(run.join("data/encoding.json").is_file());

    // Sampling reads the model's encoding, and judging uses the run's own
    // data (no download) with each song's own key.
    let samples = dir.path().join("samples");
    let stdout = succeeds(&[
        "sample",
        "--model",
        run.to_str().unwrap(),
        "--num",
        "4",
        "--max-len",
        "64",
        "--seed",
        "5",
        "--out",
        samples.to_str().unwrap(),
        "--judge",
    ]);
    assert!(stdout.contains("notes in the scale"), "{stdout}");
    let judgement = json(&samples.join("judge.json"));
    assert_eq!(
        judgement["data"].as_str().unwrap(),
        run.join("data").display().to_string()
    );
    // The held-out songs' share of notes in the scale, worked out here from
    // each test song's recorded key: the judge must give exactly this.
    let (mut in_scale, mut notes) = (0usize, 0usize);
    for record in records.iter().filter(|r| r.split == trainer::Split::Test) {
        let key: Key = record.key.unwrap();
        for token in record.tokens.split(' ') {
            if let Ok(pitch) = token.parse::<u8>() {
                notes += 1;
                let above = (pitch + 12 - key.tonic.pitch_class()) % 12;
                in_scale += usize::from(key.mode.scale().contains(&above));
            }
        }
    }
    let expected = in_scale as f64 / notes as f64;
    let judged = judgement["test"]["in_scale"].as_f64().unwrap();
    assert!((judged - expected).abs() < 1e-12, "{judged} vs {expected}");
    // Every generated melody was judged in a key found in its notes.
    for melody in judgement["melodies"].as_array().unwrap() {
        let key: Key = melody["key"].as_str().unwrap().parse().unwrap();
        assert!(matches!(
            key.mode,
            esac_parse::Mode::Major | esac_parse::Mode::Minor
        ));
    }
    let record = json(&samples.join("sample.json"));
    assert_eq!(record["encoding"]["transposition"]["mode"], "none");

    // `judge` on its own finds the same data through the sample record.
    succeeds(&["judge", "--samples", samples.to_str().unwrap()]);
    assert_eq!(json(&samples.join("judge.json"))["test"], judgement["test"]);

    // eval reads the run's data; data of another encoding is refused.
    let eval = succeeds(&["eval", "--model", run.to_str().unwrap()]);
    assert!(eval.contains("nll_per_token"), "{eval}");
    let reference = dir.path().join("reference");
    succeeds(&[
        "prepare",
        "--data",
        dir.path().join("songs").to_str().unwrap(),
        "--out",
        reference.to_str().unwrap(),
    ]);
    let output = xtask(&[
        "eval",
        "--model",
        run.to_str().unwrap(),
        "--data",
        reference.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("encoded as 1/16 grid, written keys but") || stderr.contains("vocabulary"),
        "{stderr}"
    );
}

#[test]
fn songs_prepared_in_every_key_train_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let prepared = prepare(dir.path(), "all-keys");
    let records = trainer::read_songs(&prepared.join("songs.jsonl")).unwrap();
    let train_songs = records
        .iter()
        .filter(|r| r.split == trainer::Split::Train)
        .count();
    let distinct_train_ids = records
        .iter()
        .filter(|r| r.split == trainer::Split::Train)
        .map(|r| &r.id)
        .collect::<std::collections::HashSet<_>>()
        .len();
    assert!(
        train_songs > 5 * distinct_train_ids,
        "{train_songs} versions of {distinct_train_ids} songs"
    );

    let runs = dir.path().join("runs");
    train_tiny(&prepared, &runs, "all-keys");
    let config = json(&runs.join("all-keys/config.json"));
    assert_eq!(config["dataset"]["train_songs"], train_songs);
    assert_eq!(config["encoding"]["transposition"]["mode"], "all-keys");
    assert_eq!(config["encoding"]["transposition"]["low"], 45);
    assert_eq!(
        std::fs::read(prepared.join("songs.jsonl")).unwrap(),
        std::fs::read(runs.join("all-keys/data/songs.jsonl")).unwrap(),
        "the prepared songs are trained on as they are"
    );
}
