//! `cargo xtask eval` scores songs as the model reads them: raw songs are
//! prepared with the model's encoding, and prepared songs are read through the
//! model's own vocabulary, whatever ids their folder gave the tokens.

// `json` is for the other suites.
#[allow(dead_code)]
mod common;

use std::path::Path;

use common::{erk_recorded_with_test_songs, songs, succeeds, train_tiny, xtask};
use grid_codec::{Token, Vocabulary};

const TINY: &[&str] = &["--hidden", "16", "--embedding-dim", "8"];

/// The whole-song test NLL `eval` prints.
fn test_nll(model: &Path, data: Option<&Path>) -> f64 {
    let mut args = vec!["eval", "--model", model.to_str().unwrap()];
    if let Some(data) = data {
        args.extend(["--data", data.to_str().unwrap()]);
    }
    let stdout = succeeds(&args);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    json["nll_per_token"].as_f64().unwrap()
}

/// A copy of the prepared folder `from`, its vocabulary replaced by `tokens`
/// (in id order) and each song's tokens passed through `edit`.
fn copy_prepared(from: &Path, to: &Path, tokens: Vec<Token>, edit: impl Fn(&str) -> String) {
    std::fs::create_dir(to).unwrap();
    std::fs::copy(from.join("encoding.json"), to.join("encoding.json")).unwrap();
    Vocabulary::from_tokens(tokens)
        .unwrap()
        .save(&to.join("tokenizer.json"))
        .unwrap();
    let mut records = trainer::read_songs(&from.join("songs.jsonl")).unwrap();
    for record in &mut records {
        record.tokens = edit(&record.id);
    }
    let lines = trainer::songs_jsonl(&records).unwrap();
    std::fs::write(to.join("songs.jsonl"), lines).unwrap();
}

#[test]
fn eval_reads_songs_and_prepared_folders_through_the_models_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    let songs = songs(dir.path());
    let runs = dir.path().join("runs");
    train_tiny(&songs, &runs, "tiny", TINY);
    let run = runs.join("tiny");
    let own = run.join("data");
    let reference = test_nll(&run, None);

    // The songs themselves, prepared again with the model's encoding: the
    // same test split, the same score.
    assert_eq!(test_nll(&run, Some(&songs)), reference);

    // Every song, not only the test split.
    let every = succeeds(&["eval", "--model", run.to_str().unwrap(), "--songs", "all"]);
    let every: serde_json::Value = serde_json::from_str(&every).unwrap();
    let records = trainer::read_songs(&own.join("songs.jsonl")).unwrap();
    assert_eq!(every["songs"], records.len());
    // Three songs hold no test split: said, and scored with --songs all.
    let three = dir.path().join("three");
    std::fs::create_dir(&three).unwrap();
    for record in &records[..3] {
        let file = Path::new(&record.file);
        std::fs::copy(file, three.join(file.file_name().unwrap())).unwrap();
    }
    let stderr = eval_fails(&[
        "--model",
        run.to_str().unwrap(),
        "--data",
        three.to_str().unwrap(),
    ]);
    assert!(
        stderr.contains("holds no test songs; --songs all scores every song"),
        "{stderr}"
    );
    let scored = succeeds(&[
        "eval",
        "--model",
        run.to_str().unwrap(),
        "--data",
        three.to_str().unwrap(),
        "--songs",
        "all",
    ]);
    let scored: serde_json::Value = serde_json::from_str(&scored).unwrap();
    assert_eq!(scored["songs"], 3);

    // The same songs with the pitches' ids reversed: a vocabulary of the same
    // size, which the model must not read by id.
    let tokens_of = |id: &str| {
        records
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.tokens.clone())
            .unwrap()
    };
    let model_tokens = Vocabulary::load(&own.join("tokenizer.json"))
        .unwrap()
        .tokens()
        .to_vec();
    let mut reordered = model_tokens.clone();
    let pitches = reordered.len() - 2;
    reordered[1..=pitches].reverse();
    assert_ne!(reordered, model_tokens);
    let permuted = dir.path().join("permuted");
    copy_prepared(&own, &permuted, reordered, tokens_of);
    assert_eq!(test_nll(&run, Some(&permuted)), reference);

    // A test song with a pitch the model never saw is named, with the pitch.
    let test_song = records
        .iter()
        .find(|r| r.split == trainer::Split::Test)
        .unwrap();
    let unknown = (0..128)
        .map(Token::Note)
        .find(|t| !model_tokens.contains(t))
        .unwrap();
    let mut widened = model_tokens.clone();
    widened.insert(1, unknown);
    let foreign = dir.path().join("foreign");
    copy_prepared(&own, &foreign, widened, |id| {
        let tokens = tokens_of(id);
        if id == test_song.id {
            format!("{unknown} _ {tokens}")
        } else {
            tokens
        }
    });
    let stderr = eval_fails(&[
        "--model",
        run.to_str().unwrap(),
        "--data",
        foreign.to_str().unwrap(),
    ]);
    assert!(
        stderr.contains(&format!("song {}", test_song.id))
            && stderr.contains(&format!("\"{unknown}\" is not in the vocabulary")),
        "{stderr}"
    );
}

/// What a failing `eval` said.
fn eval_fails(args: &[&str]) -> String {
    let output = xtask(&[&["eval"], args].concat());
    assert!(!output.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `eval`'s output and what it said on stderr.
fn eval_with(args: &[&str]) -> (f64, String) {
    let output = xtask(&[&["eval"], args].concat());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{args:?}\n{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    (json["nll_per_token"].as_f64().unwrap(), stderr)
}

#[test]
fn a_conditioned_model_reads_a_lone_collection_as_the_style_it_is_told() {
    let kinder =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/essen/deutschl/kinder");
    assert!(
        kinder.is_dir(),
        "the Essen data is expected at {}",
        kinder.display()
    );
    let kinder = kinder.to_str().unwrap();
    let shipped = ["--model", "assets/essen", "--data", kinder];

    // Read alone, kinder's songs name no collection: style "other", said so.
    let (as_other, said) = eval_with(&shipped);
    assert!(said.contains("read as style \"other\""), "{said}");
    let (as_kinder, said) = eval_with(&[&shipped[..], &["--style", "kinder"]].concat());
    assert!(said.is_empty(), "{said}");
    let (whole_name, _) = eval_with(&[&shipped[..], &["--style", "deutschl/kinder"]].concat());
    assert_eq!(as_kinder, whole_name);
    // Told its collection, the model knows kinder's songs far better.
    assert!(as_kinder < as_other - 0.1, "{as_kinder} vs {as_other}");

    let refused = |args: &[&str], expected: &str| {
        let stderr = eval_fails(args);
        assert!(stderr.contains(expected), "{stderr}");
    };
    refused(
        &[&shipped[..], &["--style", "nosuch"]].concat(),
        "the model knows no style `nosuch`; it knows deutschl/allerkbd,",
    );
    refused(
        &[
            "--model",
            "assets/erk",
            "--data",
            kinder,
            "--style",
            "kinder",
        ],
        "--style: assets/erk was trained without --condition, so it reads no style",
    );
}

#[test]
fn eval_without_data_reads_the_songs_the_model_was_trained_on() {
    // `assets/erk` says it was trained on ../shared/data/essen/deutschl/erk:
    // prepared again, its test songs score as they did when it was trained.
    let (nll, said) = eval_with(&["--model", "assets/erk"]);
    assert!(
        said.contains("the songs assets/erk was trained on: ../shared/data/essen/deutschl/erk"),
        "{said}"
    );
    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/erk/metrics.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(nll, metrics["test"]["nll_per_token"].as_f64().unwrap());
}

#[test]
fn eval_can_leave_out_the_test_songs_that_are_variants_of_training_songs() {
    // In ERK one test song, E0816C, has 84% of its 16-token stretches in the
    // training song E0816B, another version of it (found by a separate Python
    // script over songs.jsonl); no other test song reaches 80%.
    let (nll, said) = eval_with(&["--model", "assets/erk", "--songs", "test-without-variants"]);
    assert!(
        said.contains("scoring 167 of 168 test songs; left out as variants of a training song: 1"),
        "{said}"
    );
    let (all, _) = eval_with(&["--model", "assets/erk"]);
    assert!(
        nll != all && (nll - all).abs() < 0.01,
        "{nll} against {all}"
    );
}

#[test]
fn eval_in_all_keys_leaves_out_every_version_of_a_variant() {
    // Kolberg writes K0026t, K0077t, K0197t and K0215t twice at the same
    // pitches under two keys, one copy in training and one in test (see
    // `prepare.rs`). In all keys a test copy has 10 or 12 versions, and the
    // training copy has only some of their keys, since the two end
    // differently: compared version by version, 24 of the 46 are found.
    let scratch = tempfile::tempdir().unwrap();
    let prepared = scratch.path().join("prepared");
    let kolberg =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/essen/esac/kolberg-dwok01");
    succeeds(&[
        "prepare",
        "--data",
        kolberg.to_str().unwrap(),
        "--transpose",
        "all-keys",
        "--out",
        prepared.to_str().unwrap(),
    ]);
    train_tiny(&prepared, scratch.path(), "kolberg", TINY);
    let model = scratch.path().join("kolberg");
    let (_, said) = eval_with(&[
        "--model",
        model.to_str().unwrap(),
        "--songs",
        "test-without-variants",
    ]);
    assert!(
        said.contains("scoring 950 of 996 test songs; left out as variants of a training song: 46"),
        "{said}"
    );
}

#[test]
fn eval_refuses_songs_not_split_as_the_model_was_trained() {
    // The same songs, but the model says it was tested on one more: its test
    // songs could not all be held out.
    let scratch = tempfile::tempdir().unwrap();
    let model = erk_recorded_with_test_songs(scratch.path(), 169);
    let said = eval_fails(&["--model", model.to_str().unwrap()]);
    assert!(
        said.contains(
            "the songs of ../shared/data/essen/deutschl/erk are not split as those the model was trained on: they give 1346 training songs (205680 tokens), 168 validation and 168 test songs, where its config.json records 1346 training songs (205680 tokens), 168 validation and 169 test songs"
        ),
        "{said}"
    );
}
