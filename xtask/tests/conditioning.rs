//! Conditioning end to end: `prepare` records each song's meter and bars,
//! `train --condition` gives the model their side inputs, `sample` asks for a
//! meter, mode, style, length and upbeat and writes the score with them, `eval`
//! scores with them, `--init` keeps the starting model's conditioning, and
//! `--lookback` gives the model the song's own tokens whole bars back.

// `erk_recorded_with_test_songs` is for the other suites.
#[allow(dead_code)]
mod common;

use std::path::Path;

use common::{json, songs, succeeds, train_tiny, xtask};

fn fails(args: &[&str]) -> String {
    let output = xtask(args);
    assert!(!output.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `train` with `flags` fails with `message` and leaves no run folder.
fn refused_before_the_run_folder(
    songs: &Path,
    runs: &Path,
    name: &str,
    flags: &[&str],
    message: &str,
) {
    let mut args = vec![
        "train",
        "--data",
        songs.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
        "--name",
        name,
        "--quiet",
    ];
    args.extend_from_slice(flags);
    let error = fails(&args);
    assert!(error.contains(message), "{flags:?}: {error}");
    assert!(!runs.join(name).exists(), "{flags:?}");
}

#[test]
fn a_conditioned_model_is_asked_for_meter_mode_length_and_upbeat() {
    let dir = tempfile::tempdir().unwrap();
    let songs = songs(dir.path());
    let runs = dir.path().join("runs");
    train_tiny(
        &songs,
        &runs,
        "conditioned",
        &["--condition", "--hidden", "16", "--embedding-dim", "8"],
    );
    let run = runs.join("conditioned");

    // ERK E0001 (deut0567.krn) is in 2/4 and opens with an eighth-note
    // upbeat: bars of 2, then 8 sixteenths, as its kern file writes them.
    let records = trainer::read_songs(&run.join("data/songs.jsonl")).unwrap();
    let first = &records[0];
    assert_eq!(first.id, "E0001");
    assert_eq!(first.meter.unwrap().to_string(), "2/4");
    let bars = first.bars.as_ref().unwrap();
    assert_eq!((bars.bar_steps, bars.upbeat), (8, 6));
    assert_eq!(bars.bars[..3], [2, 8, 8]);
    assert_eq!(
        bars.total_steps() as usize,
        first.tokens.split(' ').count(),
        "the bars cover the tokens"
    );

    let config = json(&run.join("config.json"));
    let names: Vec<&str> = config["side_inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["bar_position", "meter", "mode", "style", "bars_left"]
    );
    assert_eq!(config["conditioning"]["meters"][0], "free");

    let samples = dir.path().join("samples");
    let stdout = succeeds(&[
        "sample",
        "--model",
        run.to_str().unwrap(),
        "--num",
        "3",
        "--meter",
        "6/8",
        "--mode",
        "minor",
        "--bars",
        "4",
        "--pickup",
        "2",
        "--seed",
        "2",
        "--out",
        samples.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("melody-1 asked for: 4 bars of 6/8 after an upbeat of 2 steps, minor"),
        "{stdout}"
    );
    let record = json(&samples.join("sample.json"));
    assert_eq!(record["asked"]["melody-3"]["meter"], "6/8");
    assert_eq!(record["asked"]["melody-3"]["minor"], true);
    // Each melody says when few training songs are of its kind, counted
    // here from the prepared songs.
    let style = record["asked"]["melody-1"]["style"].as_str().unwrap();
    let alike = records
        .iter()
        .filter(|song| {
            song.split == trainer::Split::Train
                && song.collection == style
                && song.meter.is_some_and(|m| m.to_string() == "6/8")
                && song.key.is_some_and(|k| k.mode.is_minor_like())
        })
        .count();
    let caution = match alike {
        0 => format!(
            "melody-1: no training song is minor, in 6/8 and of style {style}: the model has not heard such a song\n"
        ),
        1 => format!("melody-1: only 1 training song is minor, in 6/8 and of style {style}\n"),
        n => format!("melody-1: only {n} training songs are minor, in 6/8 and of style {style}\n"),
    };
    assert_eq!(
        stdout.contains(&caution),
        alike < 10,
        "{alike} alike: {stdout}"
    );
    // The score is in 6/8 and opens with an eighth-note upbeat bar.
    let score = std::fs::read_to_string(samples.join("melody-1.musicxml")).unwrap();
    assert!(score.contains("<beats>6</beats>"), "{score}");
    assert!(
        score.contains("<measure number=\"0\" implicit=\"yes\">"),
        "{score}"
    );
    // Each file says what its melody was asked to be.
    let remark = "esac-melody, asked for 4 bars of 6/8 after an upbeat of 2 steps, minor";
    assert!(
        score.contains(&format!("<miscellaneous-field name=\"remark\">{remark}")),
        "{score}"
    );
    let abc = std::fs::read_to_string(samples.join("melody-1.abc")).unwrap();
    assert!(abc.contains(&format!("\nN:{remark}")), "{abc}");

    // A primer note longer than the upbeat is tied across its bar line: the
    // upbeat bar holds the asked two sixteenths, not the whole quarter, so
    // every later bar line stays put.
    let primed = dir.path().join("primed");
    succeeds(&[
        "sample",
        "--model",
        run.to_str().unwrap(),
        "--prime",
        "55 _ _ _",
        "--meter",
        "2/4",
        "--bars",
        "2",
        "--pickup",
        "2",
        "--out",
        primed.to_str().unwrap(),
    ]);
    let score = std::fs::read_to_string(primed.join("melody-1.musicxml")).unwrap();
    let number_after = |text: &str, tag: &str| -> u32 {
        text.split(tag)
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // Divisions of a quarter: the score's shortest note sets them.
    let per_quarter = number_after(&score, "<divisions>");
    let upbeat = score
        .split("<measure number=\"0\" implicit=\"yes\">")
        .nth(1)
        .and_then(|rest| rest.split("</measure>").next())
        .unwrap_or_else(|| panic!("no upbeat bar: {score}"));
    let divisions: u32 = upbeat
        .split("<duration>")
        .skip(1)
        .map(|d| d.split('<').next().unwrap().parse::<u32>().unwrap())
        .sum();
    assert_eq!(divisions * 4, 2 * per_quarter, "{upbeat}");
    assert!(upbeat.contains("<tie type=\"start\"/>"), "{upbeat}");

    // Guided towards the asked mode: said, and recorded per melody.
    let guided = dir.path().join("guided");
    let stdout = succeeds(&[
        "sample",
        "--model",
        run.to_str().unwrap(),
        "--num",
        "2",
        "--mode",
        "minor",
        "--mode-guidance",
        "0.5",
        "--bars",
        "2",
        "--out",
        guided.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains(", minor (guided, weight 0.5), style"),
        "{stdout}"
    );
    let record = json(&guided.join("sample.json"));
    assert_eq!(record["mode_guidance"]["melody-2"], 0.5);
    let error = fails(&[
        "sample",
        "--model",
        run.to_str().unwrap(),
        "--mode-guidance",
        "3",
        "--out",
        guided.to_str().unwrap(),
    ]);
    assert!(
        error.contains("--mode-guidance: 3 is out of range: from 0 (no guidance) to 2"),
        "{error}"
    );

    // What the model was not trained on is refused with what it knows (the
    // 100 songs hold at least 20 in 2/4 and in 6/8, no other meter).
    let error = fails(&[
        "sample",
        "--model",
        run.to_str().unwrap(),
        "--style",
        "china",
        "--out",
        samples.to_str().unwrap(),
    ]);
    assert!(
        error.contains("the model knows no style `china`"),
        "{error}"
    );
    let error = fails(&[
        "sample",
        "--model",
        run.to_str().unwrap(),
        "--meter",
        "7/8",
        "--out",
        samples.to_str().unwrap(),
    ]);
    assert!(
        error.contains("the model knows no meter 7/8; it knows 2/4, 6/8"),
        "{error}"
    );
    let error = fails(&[
        "sample",
        "--model",
        "assets/erk",
        "--mode",
        "minor",
        "--out",
        samples.to_str().unwrap(),
    ]);
    assert!(
        error.contains("was not trained with --condition"),
        "{error}"
    );
    let error = fails(&[
        "sample",
        "--model",
        "assets/erk",
        "--mode-guidance",
        "0.3",
        "--out",
        samples.to_str().unwrap(),
    ]);
    assert!(
        error.contains("--mode-guidance: the model was not trained with --condition"),
        "{error}"
    );

    // eval scores the test songs with their own meters, modes and bars.
    let stdout = succeeds(&["eval", "--model", run.to_str().unwrap()]);
    assert!(stdout.contains("nll_per_token"), "{stdout}");

    // Fine-tuning keeps the starting model's conditioning without being told,
    // and may withhold mode and style from a share of the songs.
    train_tiny(
        &songs,
        &runs,
        "tuned",
        &[
            "--init",
            run.to_str().unwrap(),
            "--condition-dropout",
            "0.25",
        ],
    );
    let tuned = json(&runs.join("tuned/config.json"));
    assert_eq!(tuned["conditioning"], config["conditioning"]);
    assert_eq!(tuned["training"]["condition_dropout"], 0.25);

    // Fine-tuning the shipped model on one collection read alone: its songs
    // name no collection, which the run says.
    let output = xtask(&[
        "train",
        "--data",
        songs.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
        "--name",
        "lone",
        "--init",
        "assets/essen",
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--quiet",
    ]);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains(
            "the songs name no collection, so the model learns them as its style \"other\""
        ),
        "{said}"
    );
    // Settings refused before the run folder is made, each with its message.
    let refusals: [(&str, &[&str], &str); 3] = [
        (
            "plain",
            &["--condition-dropout", "0.1"],
            "--condition-dropout withholds conditions, so it needs --condition",
        ),
        // A conditioned run cannot start from a model that reads no conditions.
        (
            "from-plain",
            &["--condition", "--init", "assets/erk"],
            "--condition: the --init model reads no conditions, so it cannot start a run that does",
        ),
        // The --init model fixes the architecture.
        (
            "resized",
            &["--init", "assets/erk", "--hidden", "64"],
            "--init assets/erk has --hidden 128, not 64: leave --hidden out to train it further",
        ),
    ];
    for (name, flags, message) in refusals {
        refused_before_the_run_folder(&songs, &runs, name, flags, message);
    }
}

#[test]
fn a_model_that_looks_back_is_trained_scored_and_sampled_with_its_own_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let songs = songs(dir.path());
    let runs = dir.path().join("runs");
    train_tiny(
        &songs,
        &runs,
        "looking",
        &[
            "--condition",
            "--lookback",
            "1,4",
            "--form",
            "--hidden",
            "16",
            "--embedding-dim",
            "8",
        ],
    );
    let run = runs.join("looking");
    let config = json(&run.join("config.json"));
    let tokens = config["vocab_size"].as_u64().unwrap();
    let looking: Vec<(&str, u64)> = config["side_inputs"].as_array().unwrap()[5..]
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        looking,
        [
            ("lookback_1", tokens + 1),
            ("lookback_4", tokens + 1),
            ("form", 4)
        ]
    );
    let lookback = &config["conditioning"]["lookback"];
    assert_eq!(lookback["bars"], serde_json::json!([1, 4]));
    // The training songs' forms are kept, each of one letter a bar.
    let forms = lookback["forms"].as_array().unwrap();
    assert!(!forms.is_empty());
    for form in forms {
        let letters = form["form"].as_str().unwrap().chars().count();
        assert_eq!(letters as u64, form["bars"].as_u64().unwrap(), "{form}");
    }
    // `eval` gives the lookback inputs as training did: the run's own test
    // figure again.
    let metrics = json(&run.join("metrics.json"));
    let evaluated: serde_json::Value =
        serde_json::from_str(&succeeds(&["eval", "--model", run.to_str().unwrap()])).unwrap();
    let (trained, scored) = (
        metrics["test"]["nll_per_token"].as_f64().unwrap(),
        evaluated["nll_per_token"].as_f64().unwrap(),
    );
    assert!(
        (trained - scored).abs() < 1e-9,
        "{trained} against {scored}"
    );
    let samples = dir.path().join("samples");
    succeeds(&[
        "sample",
        "--model",
        run.to_str().unwrap(),
        "--num",
        "2",
        "--meter",
        "2/4",
        "--bars",
        "8",
        "--form",
        "AA",
        "--seed",
        "3",
        "--out",
        samples.to_str().unwrap(),
    ]);
    assert!(samples.join("melody-2.musicxml").is_file());
    // The form asked, written one letter a bar: bars 5-7 say 1-3 again,
    // and the last is the melody's own.
    let asked = std::fs::read_to_string(samples.join("sample.json")).unwrap();
    assert!(asked.contains("\"form\": \"ABCDABCE\""), "{asked}");
    let refused = fails(&[
        "sample",
        "--model",
        run.to_str().unwrap(),
        "--bars",
        "8",
        "--form",
        "AABA",
        "--out",
        samples.to_str().unwrap(),
    ]);
    assert!(
        refused.contains("--form: form `AABA`: phrase 2 says again phrase 1 (2 bars back), but the model looks back 1, 4 bars only"),
        "{refused}"
    );
    // Its card says what the extra inputs hold.
    let exported = dir.path().join("exported");
    succeeds(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--out",
        exported.to_str().unwrap(),
    ]);
    let card = std::fs::read_to_string(exported.join("README.md")).unwrap();
    assert!(
        card.contains("and the song's own token 1, 4 bars back (`lookback_N`"),
        "{card}"
    );
    assert!(card.contains("and which of those bars its bar says again (`form`"));

    let refusals: [(&[&str], &str); 5] = [
        (
            &["--condition", "--form"],
            "--form tells which of the --lookback bars a bar says again, so it needs --lookback",
        ),
        (
            &["--lookback", "2"],
            "--lookback is a side input beside the conditions, so it needs --condition",
        ),
        (
            &["--condition", "--lookback", "2,0"],
            "--lookback 0: each number of bars must be from 1 to 16",
        ),
        (
            &["--condition", "--lookback", "2,4,2"],
            "--lookback 2 is given twice",
        ),
        (
            &[
                "--condition",
                "--lookback",
                "2",
                "--init",
                run.to_str().unwrap(),
            ],
            "--lookback: a fine-tuned model keeps the side inputs of --init",
        ),
    ];
    for (flags, message) in refusals {
        refused_before_the_run_folder(&songs, &runs, "refused", flags, message);
    }
}
