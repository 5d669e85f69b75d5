//! `cargo xtask serve` as a user starts it: without `--data`, each shipped
//! model offers its own held-out songs, those its config.json says it was
//! trained on, prepared again; a model whose recorded split they do not give
//! offers none, rather than songs it may have learned from.

// `songs` and `train_tiny` are for the other suites.
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::{erk_recorded_with_test_songs, json, succeeds, xtask};

/// The ids of a model's songs as `/api/models/NAME/songs` lists them.
fn listed_ids(url: &str, model: &str) -> BTreeSet<String> {
    let text = ureq::get(&format!("{url}api/models/{model}/songs"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    body["songs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|song| song["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Serves with `args`, lists the songs of `erk` and of the `given` model, and
/// returns them with what the server said on stderr.
fn serve_and_list(args: &[&str]) -> (BTreeSet<String>, BTreeSet<String>, String) {
    let (server, url) = serve(args);
    let erk = listed_ids(&url, "erk");
    let given = listed_ids(&url, "given");
    (erk, given, stop(server))
}

/// `serve` with `args` on a free port, and the address it prints.
fn serve(args: &[&str]) -> (Child, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(["serve", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let url = first_line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
        .to_owned();
    (server, url)
}

/// Stops a server, and returns what it said on stderr.
fn stop(mut server: Child) -> String {
    server.kill().unwrap();
    let mut said = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    server.wait().unwrap();
    said
}

#[test]
fn serve_offers_the_songs_each_model_was_trained_on() {
    let scratch = tempfile::tempdir().unwrap();
    let misrecorded = erk_recorded_with_test_songs(scratch.path(), 169);
    // The reference: erk's test songs as `prepare` splits them.
    let prepared = scratch.path().join("prepared");
    succeeds(&[
        "prepare",
        "--data",
        "../shared/data/essen/deutschl/erk",
        "--out",
        prepared.to_str().unwrap(),
    ]);
    let test_ids: BTreeSet<String> = std::fs::read_to_string(prepared.join("songs.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|song| song["split"] == "test")
        .map(|song| song["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(test_ids.len(), 168);

    let (erk, given, said) = serve_and_list(&["--model", misrecorded.to_str().unwrap()]);
    assert_eq!(erk, test_ids, "{said}");
    assert!(
        said.contains(
            "assets/erk: 168 held-out songs to start like, from ../shared/data/essen/deutschl/erk"
        ),
        "{said}"
    );
    assert!(given.is_empty(), "{given:?}");
    assert!(
        said.contains("given: no held-out songs: the songs of ../shared/data/essen/deutschl/erk are not split as those the model was trained on"),
        "{said}"
    );

    // Songs given with --data are offered even to a model not trained on
    // their split, with a warning.
    let (_, given, said) = serve_and_list(&[
        "--model",
        misrecorded.to_str().unwrap(),
        "--data",
        "../shared/data/essen/deutschl/erk",
    ]);
    assert_eq!(given, test_ids);
    assert!(
        said.contains("warning: ") && said.contains("erk-misrecorded: the songs of ../shared/data/essen/deutschl/erk are not split as those the model was trained on"),
        "{said}"
    );
}

#[test]
fn the_page_judges_a_melody_as_judge_does() {
    // The composer API's statistics of the shipped model's melodies name the
    // key the key finder gives and the collection the style classifier finds
    // nearest, fitted on the songs the model was trained on: what `judge`
    // writes for the same melodies.
    let (server, url) = serve(&[]);
    let query = "bars=8&meter=3/4&mode=minor";
    let answers: Vec<serde_json::Value> = (11..15)
        .map(|seed| {
            let text = ureq::get(&format!("{url}api/generate?seed={seed}&{query}"))
                .call()
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap();
            serde_json::from_str(&text).unwrap()
        })
        .collect();
    let said = stop(server);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    succeeds(&[
        "sample", "--seed", "11", "--bars", "8", "--meter", "3/4", "--mode", "minor", "--num", "4",
        "--judge", "--out", dir,
    ]);
    let judged = json(&out.path().join("judge.json"));
    for (index, answer) in answers.iter().enumerate() {
        let melody = &judged["melodies"][index];
        let tokens =
            std::fs::read_to_string(out.path().join(format!("melody-{}.txt", index + 1))).unwrap();
        assert_eq!(
            tokens,
            format!("{} .\n", answer["tokens"].as_str().unwrap())
        );
        let statistics = &answer["statistics"];
        assert_eq!(statistics["key_found"], melody["key_found"], "{said}");
        assert!(statistics["style_found"].is_string(), "{statistics}");
        assert_eq!(statistics["style_found"], melody["style_found"]);
    }
}

#[test]
fn a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = xtask(&["serve", "--port", &port]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot listen on 127.0.0.1:{port}: Address already in use"
        )),
        "{stderr}"
    );
}
