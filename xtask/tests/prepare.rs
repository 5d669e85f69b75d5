//! `cargo xtask prepare` on the real erk collection, run as a user would.

use std::path::PathBuf;
use std::process::Command;

fn shared() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    assert!(dir.is_dir(), "../shared is expected beside the checkout");
    dir
}

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env(
            "ESAC_MELODY_CACHE",
            std::env::temp_dir().join("esac-melody-test-cache-unused"),
        )
        .output()
        .unwrap()
}

#[test]
fn prepare_erk_matches_the_reference_vocabulary_and_counts() {
    let out = tempfile::tempdir().unwrap();
    let data = shared().join("data/essen/deutschl/erk");
    let output = xtask(&[
        "prepare",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1699 songs, 1 rejected"), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["files"], 1700);
    assert_eq!(report["songs_read"], 1699);
    assert_eq!(report["rejected"], 1);
    assert_eq!(report["filtered"], 17);
    assert_eq!(report["on_grid"], 1682);
    assert_eq!(report["songs_per_split"]["train"], 1346);
    assert_eq!(report["songs_per_split"]["val"], 168);
    assert_eq!(report["songs_per_split"]["test"], 168);

    // Variants, as a separate Python script over songs.jsonl finds them: the
    // held-out songs with 80% or more of their 16-token stretches in one
    // training song.
    let variants: Vec<(&str, &str, &str)> = report["held_out_variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert_eq!(v["training_collection"], serde_json::Value::Null);
            (
                v["id"].as_str().unwrap(),
                v["split"].as_str().unwrap(),
                v["training_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        variants,
        [
            ("E0698A", "val", "E0698"),
            ("E0816C", "test", "E0816B"),
            ("E0935B", "val", "E0935A"),
        ]
    );
    let shared_by = |i: usize| report["held_out_variants"][i]["shared"].as_f64().unwrap();
    assert!((shared_by(0) - 0.9379).abs() < 1e-4 && (shared_by(1) - 0.8407).abs() < 1e-4);
    assert!(
        stdout.contains("variants: 2 validation and 1 test songs are variants of a training song"),
        "{stdout}"
    );

    // Same 38 tokens in the same order as the reference notebook's vocabulary.
    let vocab = grid_codec::Vocabulary::load(&out.path().join("tokenizer.json")).unwrap();
    let ours: Vec<String> = vocab.tokens().iter().map(ToString::to_string).collect();
    let reference: Vec<String> = serde_json::from_str(
        &std::fs::read_to_string(shared().join("models/reference-lstm-erk/vocab.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(ours, reference);

    let songs = trainer::read_songs(&out.path().join("songs.jsonl")).unwrap();
    assert_eq!(songs.len(), 1682);
    let first = &songs[0];
    assert_eq!((first.id.as_str(), first.transposed_by), ("E0001", -5));
    assert!(first.tokens.starts_with("55 _ 60 _ 60 _ 60 _ 62 _"));
    // No song sits in two splits.
    let mut ids = std::collections::HashMap::new();
    for s in &songs {
        assert_eq!(*ids.entry(&s.file).or_insert(s.split), s.split);
    }
}

#[test]
fn prepare_reads_native_esac_too() {
    let out = tempfile::tempdir().unwrap();
    let data = shared().join("data/essen/esac/erk");
    let output = xtask(&[
        "prepare",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("1781 songs, 0 rejected"), "{stdout}");
}

#[test]
fn bad_arguments_end_with_a_clear_message() {
    let output = xtask(&["prepare", "--data", "/no/such/folder", "--out", "/tmp/x"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/no/such/folder does not exist"),
        "{stderr}"
    );

    let output = xtask(&["prepare", "--step", "1/0"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("\"1/0\": write a positive fraction of a whole note such as 1/16")
    );

    let output = xtask(&["download", "nonsense"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown collection \"nonsense\""));
}

#[test]
fn a_folder_where_nothing_reads_fails_naming_the_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.krn"), "**kern\n4c 4d\n*-\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not music").unwrap();
    let out = dir.path().join("out");
    let output = xtask(&[
        "prepare",
        "--data",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no song could be read")
            && stderr.contains("broken.krn")
            && stderr.contains("notes.txt"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is written");
}
