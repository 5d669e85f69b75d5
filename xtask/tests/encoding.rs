//! The encoding travels with the data and the model: songs prepared in their
//! written keys train, sample and judge in those keys, and songs prepared in
//! every key train as they are.

// `erk_recorded_with_test_songs` is for the other suites.
#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};

use common::{json, songs, succeeds, train_tiny, xtask};
use esac_parse::Key;

/// A tiny model.
const TINY: &[&str] = &["--hidden", "16", "--embedding-dim", "8"];

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
    train_tiny(&prepared, &runs, "none", TINY);
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
    // Given the songs themselves, it prepares them in the melodies' encoding:
    // the same test songs in their written keys, with nothing to warn of.
    let raw = dir.path().join("songs");
    let output = xtask(&[
        "judge",
        "--samples",
        samples.to_str().unwrap(),
        "--data",
        raw.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(!said.contains("not directly comparable"), "{said}");
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
        stderr.contains("the model was trained on tokens encoded as 1/16 grid, written keys but"),
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
    train_tiny(&prepared, &runs, "all-keys", TINY);
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
