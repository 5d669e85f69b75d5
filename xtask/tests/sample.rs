//! `cargo xtask sample` with the shipped model, as a user runs it right after
//! cloning: files written and read back, and clear errors for bad input.

// Its training helpers are for the other suites.
#[allow(dead_code)]
mod common;

use esac_parse::Key;
use std::path::PathBuf;

use common::{json, succeeds, xtask};

#[test]
fn samples_from_the_shipped_model_read_back() {
    let out = tempfile::tempdir().unwrap();
    succeeds(&[
        "sample",
        "--prime",
        "55 _ _ _",
        "--num",
        "2",
        "--seed",
        "1",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    for index in 1..=2 {
        let name = |ext: &str| out.path().join(format!("melody-{index}.{ext}"));
        let text = std::fs::read_to_string(name("txt")).unwrap();
        let tokens = grid_codec::parse_tokens(&text).unwrap();
        assert_eq!(grid_codec::tokens_to_string(&tokens[..4]), "55 _ _ _");
        let notes = tokens
            .iter()
            .filter(|t| matches!(t, grid_codec::Token::Note(_)))
            .count();
        let (tpq, midi) =
            melody_formats::midi::read_notes(&std::fs::read(name("mid")).unwrap()).unwrap();
        assert_eq!(midi.len(), notes, "one MIDI note per onset");
        assert_eq!(midi[0].pitch, 55);
        // The primer's note lasts its four sixteenths and whatever holds the
        // model added after them.
        let steps = 1 + tokens[1..]
            .iter()
            .take_while(|t| **t == grid_codec::Token::Hold)
            .count();
        assert!(steps >= 4);
        assert_eq!(midi[0].length, steps as u64 * u64::from(tpq) / 4);
        let xml = std::fs::read_to_string(name("musicxml")).unwrap();
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut xml_notes = 0;
        loop {
            match reader.read_event().expect("well-formed MusicXML") {
                quick_xml::events::Event::Start(e) if e.name().as_ref() == b"note" => {
                    xml_notes += 1
                }
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert!(
            xml_notes >= notes,
            "every onset is written (ties add pieces)"
        );
        let abc = std::fs::read_to_string(name("abc")).unwrap();
        assert!(abc.starts_with("X:1\n"), "{abc}");
        assert!(
            abc.contains("\nM:") && abc.contains("\nK:") && abc.trim_end().ends_with("|]"),
            "{abc}"
        );
        let png = std::fs::read(name("png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let wav = hound::WavReader::open(name("wav")).unwrap();
        assert_eq!(wav.spec().sample_rate, 44_100);
        let peak = wav
            .into_samples::<i16>()
            .map(|s| s.unwrap().unsigned_abs())
            .max()
            .unwrap();
        assert!(
            peak > 10_000 && peak < i16::MAX as u16,
            "audible, not clipped: {peak}"
        );
    }
}

#[test]
fn bars_limit_the_length_in_the_meter() {
    let out = tempfile::tempdir().unwrap();
    succeeds(&[
        "sample",
        "--bars",
        "2",
        "--meter",
        "3/4",
        "--temperature",
        "0.5",
        "--prime",
        "60 _ _ _",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(out.path().join("melody-1.txt")).unwrap();
    // Two bars of 3/4 are 24 sixteenths, unless the model ended the song sooner.
    let tokens = grid_codec::parse_tokens(&text).unwrap();
    let steps = tokens
        .iter()
        .filter(|t| **t != grid_codec::Token::End)
        .count();
    assert!(steps <= 24, "{text}");
}

#[test]
fn a_second_run_into_the_same_folder_leaves_only_its_own_melodies() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let sample = |num: &str| {
        let args = [
            "sample",
            "--model",
            "assets/erk",
            "--bars",
            "2",
            "--num",
            num,
            "--out",
            dir,
        ];
        let output = xtask(&args);
        assert!(output.status.success(), "{args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    sample("3");
    std::fs::write(out.path().join("judge.json"), "{}").unwrap();
    std::fs::write(out.path().join("melody-notes.txt"), "mine").unwrap();
    let said = sample("1");
    assert!(
        said.contains(&format!(
            "removed melody-2 to melody-3 and judge.json from {dir}, left by an earlier run"
        )),
        "{said}"
    );
    let mut left: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "melody-1.abc",
            "melody-1.mid",
            "melody-1.musicxml",
            "melody-1.png",
            "melody-1.txt",
            "melody-1.wav",
            "melody-notes.txt",
            "sample.json"
        ]
    );
}

/// Without the grammar the model may start a melody with a hold or end it at
/// once. At temperature 1000 every token is about as likely, so the seeds
/// below draw such a melody whatever the machine's rounding: melody 27 of
/// seed 1, which is melody 2 of seed 26.
#[test]
fn a_melody_that_makes_no_score_costs_only_its_own_files() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let no_grammar = |num: &str, seed: &str| {
        xtask(&[
            "sample",
            "--model",
            "assets/erk",
            "--no-grammar",
            "--temperature",
            "1000",
            "--max-len",
            "3",
            "--num",
            num,
            "--seed",
            seed,
            "--out",
            dir,
        ])
    };
    // An earlier run's melody-2, which the new melody-2 does not replace.
    succeeds(&[
        "sample",
        "--model",
        "assets/erk",
        "--max-len",
        "3",
        "--num",
        "3",
        "--out",
        dir,
    ]);
    let output = no_grammar("3", "26");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "removed melody-2 (all but its tokens) from {dir}, left by an earlier run"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "warning: melody-2: the model's tokens make no melody (the tokens hold no note or rest); without the grammar (--no-grammar, the API's grammar=false) a melody may start with a hold or end at once: keep the grammar, or try another seed; only its tokens were written, to {dir}/melody-2.txt"
        )),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("melody-2 (0 tokens, ended by the model; no score):"),
        "{stdout}"
    );
    let mut files: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected = vec!["sample.json".to_owned()];
    for (melody, outputs) in [(1, 6), (2, 1), (3, 6)] {
        for ext in &["txt", "mid", "musicxml", "abc", "wav", "png"][..outputs] {
            expected.push(format!("melody-{melody}.{ext}"));
        }
    }
    expected.sort();
    assert_eq!(files, expected);
    assert_eq!(
        std::fs::read_to_string(out.path().join("melody-2.txt")).unwrap(),
        ".\n"
    );
    // Judged with the others: it has no notes, and no score to count.
    let judged = succeeds(&["judge", "--samples", dir, "--data", erk().to_str().unwrap()]);
    assert!(
        judged.contains("melodies                                  3"),
        "{judged}"
    );

    let output = no_grammar("1", "27");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "the melody makes no score (see the warnings above); the tokens are in {dir}"
        )),
        "{stderr}"
    );
}

#[test]
fn bad_input_ends_with_a_clear_message() {
    let cases: [(&[&str], &str); 15] = [
        (
            &["sample", "--soundfont", "/no/such.sf2"],
            "--soundfont: cannot open /no/such.sf2",
        ),
        (
            &["sample", "--soundfont", "Cargo.toml"],
            "not a usable SF2 SoundFont",
        ),
        (
            &[
                "sample",
                "--bars",
                "1",
                "--meter",
                "4/4",
                "--pickup",
                "0",
                "--prime",
                "60 _ _ _ _ _ _ _ _ _ _ _ _ _ _ _",
            ],
            "leaves no room after a primer of 16 tokens",
        ),
        (
            &["sample", "--prime", "55 _ 999"],
            "token 3 \"999\" is not a grid token",
        ),
        (
            &["sample", "--prime", "55 _ 99"],
            "token 3 \"99\" is not in the vocabulary; nearest known",
        ),
        (&["sample", "--prime", "_ 55"], "cannot start with `_`"),
        (
            &["sample", "--temperature", "0"],
            "temperature 0 must be a positive number",
        ),
        (&["sample", "--top-p", "1.5"], "top-p 1.5 must be in (0, 1]"),
        (
            &["sample", "--model", "/no/such/model"],
            "no model at /no/such/model",
        ),
        (&["sample", "--num", "0"], "--num must be at least 1"),
        // Refused before composing: 100,000 melodies would take minutes.
        (
            &["sample", "--out", "Cargo.toml", "--num", "100000"],
            "--out: cannot create the folder Cargo.toml",
        ),
        // What the shipped conditioned model is asked for, refused naming what is allowed.
        (
            &["sample", "--meter", "7/0"],
            "\"7/0\": write a time signature such as 3/4 or 6/8",
        ),
        (
            &["sample", "--bars", "0"],
            "--bars: 0 is out of range: from 1 to 64",
        ),
        (
            &["sample", "--meter", "3/4", "--pickup", "12"],
            "--pickup: 12 is out of range: an upbeat in 3/4 is shorter than a bar, from 0 to 11 grid steps",
        ),
        (
            &["sample", "--style", "nosuch"],
            "the model knows no style `nosuch`; it knows deutschl/allerkbd, deutschl/altdeu1",
        ),
    ];
    for (args, message) in cases {
        let output = xtask(args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

fn erk() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/essen/deutschl/erk")
}

#[test]
fn judge_after_sampling_and_on_its_own_agree() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let data = erk();
    let data = data.to_str().unwrap();
    let stdout = succeeds(&[
        "sample", "--num", "6", "--seed", "3", "--out", dir, "--judge", "--data", data,
    ]);
    for row in [
        "notes in the scale",
        "ends on the tonic",
        "16-grams found in training",
    ] {
        assert!(stdout.contains(row), "{stdout}");
    }
    let read = |path: &str| json(&out.path().join(path));
    let after_sampling = read("judge.json");
    assert_eq!(after_sampling["generated"]["melodies"], 6);
    assert_eq!(after_sampling["test"]["melodies"], 168);
    let pitch_classes: f64 = after_sampling["generated"]["pitch_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((pitch_classes - 1.0).abs() < 1e-9);
    // The `.txt` files say which melodies the model ended, so judging them
    // again from the folder gives the same numbers.
    let melodies = &after_sampling["melodies"];
    let closed = melodies
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["closed"] == true)
        .count();
    let ended = (1..=6)
        .filter(|i| {
            std::fs::read_to_string(out.path().join(format!("melody-{i}.txt")))
                .unwrap()
                .trim_end()
                .ends_with(" .")
        })
        .count();
    assert_eq!(closed, ended);
    let png = std::fs::read(out.path().join("judge.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    succeeds(&["judge", "--samples", dir, "--data", data]);
    let again = read("judge.json");
    assert_eq!(after_sampling["generated"], again["generated"]);
    assert_eq!(after_sampling["test"], again["test"]);
}

#[test]
fn judge_without_data_reads_the_songs_the_model_was_trained_on() {
    // `assets/erk` says it was trained on ../shared/data/essen/deutschl/erk.
    let out = tempfile::tempdir().unwrap();
    let samples = out.path().join("samples");
    let samples = samples.to_str().unwrap();
    let model = "assets/erk";
    succeeds(&["sample", "--model", model, "--num", "2", "--out", samples]);
    let stdout = succeeds(&["judge", "--samples", samples]);
    assert!(
        stdout.contains("judged against the test songs of ../shared/data/essen/deutschl/erk\n"),
        "{stdout}"
    );
    assert_eq!(
        json(&out.path().join("samples/judge.json"))["test"]["melodies"],
        168
    );

    // Where that path is not, the collection its last part names is read
    // from the cache (put there from ../shared, as `download --from` does
    // offline).
    let moved = out.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(model);
    for entry in std::fs::read_dir(shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, moved.join(path.file_name().unwrap())).unwrap();
    }
    let set_source = |source: &str| {
        let mut config = json(&moved.join("config.json"));
        config["dataset"]["source"] = source.into();
        std::fs::write(moved.join("config.json"), config.to_string()).unwrap();
    };
    set_source("/nowhere/essen/deutschl/erk");
    let cache = out.path().join("cache");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
            .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
            .env("ESAC_MELODY_CACHE", &cache)
            .args(args)
            .output()
            .unwrap()
    };
    let erk = erk();
    assert!(
        run(&["download", "erk", "--from", erk.to_str().unwrap()])
            .status
            .success()
    );
    let moved_samples = out.path().join("moved-samples");
    let moved_samples = moved_samples.to_str().unwrap();
    let sampled = run(&[
        "sample",
        "--model",
        moved.to_str().unwrap(),
        "--num",
        "2",
        "--out",
        moved_samples,
        "--judge",
    ]);
    let stdout = String::from_utf8_lossy(&sampled.stdout);
    assert!(sampled.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "judged against the test songs of {}",
            cache.display()
        )),
        "{stdout}"
    );
    assert_eq!(
        json(&out.path().join("moved-samples/judge.json"))["test"]["melodies"],
        168
    );

    // Songs that are not split as the model's were are refused: a model
    // that says it was tested on one more song.
    let mut config = json(&moved.join("config.json"));
    config["dataset"]["source"] = "../shared/data/essen/deutschl/erk".into();
    config["dataset"]["test_songs"] = 169.into();
    std::fs::write(moved.join("config.json"), config.to_string()).unwrap();
    let judge_one_melody = || {
        succeeds(&[
            "sample",
            "--model",
            moved.to_str().unwrap(),
            "--num",
            "1",
            "--out",
            samples,
        ]);
        let judged = run(&["judge", "--samples", samples]);
        assert!(!judged.status.success());
        String::from_utf8_lossy(&judged.stderr).into_owned()
    };
    let stderr = judge_one_melody();
    assert_eq!(
        json(&out.path().join("samples/sample.json"))["trained_split"],
        serde_json::json!({"train_songs": 1346, "val_songs": 168, "test_songs": 169, "train_tokens": 205680})
    );
    assert!(
        stderr.contains("the songs of ../shared/data/essen/deutschl/erk are not split as those the model was trained on: they give 1346 training songs (205680 tokens), 168 validation and 168 test songs, where its config.json records 1346 training songs (205680 tokens), 168 validation and 169 test songs"),
        "{stderr}"
    );

    // Several sources make no one collection to judge against.
    set_source("../a, ../b");
    let stderr = judge_one_melody();
    assert!(
        stderr.contains("trained on several sources (../a, ../b): pass --data"),
        "{stderr}"
    );
}

#[test]
fn judge_reads_the_validation_songs_as_a_model_that_writes_real_songs() {
    // `--validation-songs` judges exactly the songs `prepare` held out for
    // validation, in the place of generated melodies, against the test songs.
    let dir = tempfile::tempdir().unwrap();
    let prepared = dir.path().join("prepared");
    let out = dir.path().join("judged");
    let erk = erk();
    succeeds(&[
        "prepare",
        "--data",
        erk.to_str().unwrap(),
        "--out",
        prepared.to_str().unwrap(),
    ]);
    let songs = std::fs::read_to_string(prepared.join("songs.jsonl")).unwrap();
    let validation: Vec<String> = songs
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|song| song["split"] == "val")
        // Named as a person finds them: id, title and file.
        .map(|song| {
            let file = song["file"].as_str().unwrap();
            format!(
                "{} {} ({})",
                song["id"].as_str().unwrap(),
                song["title"].as_str().unwrap(),
                &file[file.rfind('/').unwrap() + 1..]
            )
        })
        .collect();
    assert!(validation.len() > 150, "{}", validation.len());
    let stdout = succeeds(&[
        "judge",
        "--validation-songs",
        "--data",
        prepared.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("validation songs of") && stdout.contains("in the place of generated"),
        "{stdout}"
    );
    let judged = json(&out.join("judge.json"));
    let names: Vec<&str> = judged["melodies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, validation);
    assert_eq!(judged["generated"]["melodies"], validation.len());
    assert_eq!(judged["test"]["melodies"], 168);
    assert_eq!(judged["generated"]["closed"], 1.0);
    assert_eq!(judged["judged"], "validation-songs");
    assert!(
        stdout.contains("validation songs     test songs"),
        "{stdout}"
    );
    assert!(out.join("judge.png").is_file());

    // It has no samples to write beside, so it asks where to write.
    let output = xtask(&[
        "judge",
        "--validation-songs",
        "--data",
        erk.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--out"), "{stderr}");
}

#[test]
fn judge_finds_the_asked_style_with_the_whole_collection() {
    // The shipped model, asked for kinder, judged against the whole Essen
    // collection prepared as it was trained: the classifier keeps the 13
    // collections with at least 100 training songs, and reads each held-out
    // song with its own meter.
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let essen = erk().join("../..");
    let stdout = succeeds(&[
        "sample",
        "--style",
        "kinder",
        "--bars",
        "4",
        "--num",
        "6",
        "--seed",
        "3",
        "--out",
        dir,
        "--judge",
        "--data",
        essen.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("asked style deutschl/kinder: the style classifier finds"),
        "{stdout}"
    );
    let judged = json(&out.path().join("judge.json"));
    let styles = judged["styles"].as_array().unwrap();
    assert_eq!(styles.len(), 1, "{styles:?}");
    assert_eq!(styles[0]["style"], "deutschl/kinder");
    assert_eq!(styles[0]["generated"], 6);
    // 14 of kinder's 21 held-out songs are found in it (7 with the 27
    // collections and no meter, before).
    assert_eq!(styles[0]["test"], 21);
    assert!((styles[0]["test_found"].as_f64().unwrap() - 14.0 / 21.0).abs() < 1e-9);
    // Each melody names the key the key finder gives it, and the mode
    // comparison counts those keys' modes against the asked ones.
    let asked = json(&out.path().join("sample.json"))["asked"].clone();
    for comparison in judged["modes"].as_array().unwrap() {
        let minor = comparison["mode"] == "minor";
        let (mut of_mode, mut found) = (0, 0);
        for melody in judged["melodies"].as_array().unwrap() {
            if asked[melody["name"].as_str().unwrap()]["minor"] != minor {
                continue;
            }
            of_mode += 1;
            let key: Key = melody["key_found"].as_str().unwrap().parse().unwrap();
            found += usize::from(key.mode.is_minor_like() == minor);
        }
        assert_eq!(comparison["generated"], of_mode);
        let share = comparison["generated_found"].as_f64().unwrap();
        assert!(
            (share - found as f64 / of_mode as f64).abs() < 1e-12,
            "{comparison}"
        );
    }
    // Every bar of the written scores, upbeat and last aside, holds one bar
    // of its meter, for the melodies and the held-out songs alike.
    let meters = judged["meters"].as_array().unwrap();
    assert!(!meters.is_empty());
    for meter in meters {
        for side in ["generated", "test"] {
            let measures = &meter[side];
            assert_eq!(measures["full_bars"], 1.0, "{meter}");
            assert!(measures["inner_bars"].as_u64().unwrap() > 0, "{meter}");
            assert_eq!(measures["unwritten_scores"], 0, "{meter}");
        }
    }
    assert!(
        stdout.contains("full bars in the written score 100.0% / 100.0%"),
        "{stdout}"
    );
}

#[test]
fn a_length_left_open_is_one_the_asked_style_has() {
    // Asked only for kinder, each melody gets a meter, mode, upbeat and
    // number of bars that training songs of kinder have together.
    let out = tempfile::tempdir().unwrap();
    succeeds(&[
        "sample",
        "--style",
        "kinder",
        "--num",
        "3",
        "--seed",
        "5",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let config =
        json(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/essen/config.json"));
    let combinations = config["conditioning"]["combinations"].as_array().unwrap();
    let asked = json(&out.path().join("sample.json"))["asked"].clone();
    for melody in asked.as_object().unwrap().values() {
        let mode = if melody["minor"] == true {
            "minor"
        } else {
            "major"
        };
        assert!(
            combinations.iter().any(|c| c["style"] == "deutschl/kinder"
                && c["meter"] == melody["meter"]
                && c["mode"] == mode
                && c["pickup"] == melody["pickup"]
                && c["bars"] == melody["bars"]),
            "no kinder training song is like {melody}"
        );
    }
}

#[test]
fn bench_sample_runs_the_conditioned_model() {
    // Told nothing of the song, the shipped model writes on to the length
    // limit as an unconditioned one does (it used to refuse to start).
    let stdout = succeeds(&["bench", "sample", "--model", "assets/essen"]);
    let batch = stdout
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|line| line["bench"] == "sample" && line["melodies"] == 64)
        .expect(&stdout);
    assert!(batch["tokens"].as_u64().unwrap() > 64 * 500, "{batch}");
}

#[test]
fn judge_explains_an_empty_samples_folder() {
    let out = tempfile::tempdir().unwrap();
    let output = xtask(&[
        "judge",
        "--samples",
        out.path().to_str().unwrap(),
        "--data",
        erk().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no .txt melodies in"), "{stderr}");
}

#[test]
fn soundfont_wav_when_a_soundfont_is_installed() {
    let font = std::path::Path::new("/usr/share/sounds/sf2/TimGM6mb.sf2");
    if !font.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs timgm6mb-soundfont"
        );
        eprintln!(
            "skipped: no SoundFont at {} (apt install timgm6mb-soundfont)",
            font.display()
        );
        return;
    }
    let out = tempfile::tempdir().unwrap();
    succeeds(&[
        "sample",
        "--seed",
        "2",
        "--out",
        out.path().to_str().unwrap(),
        "--soundfont",
        font.to_str().unwrap(),
    ]);
    let reader = hound::WavReader::open(out.path().join("melody-1.wav")).unwrap();
    assert_eq!(reader.spec().channels, 2);
    assert_eq!(reader.spec().sample_rate, 44_100);
}

#[test]
fn the_composer_page_gives_the_command_lines_melodies() {
    let out = tempfile::tempdir().unwrap();
    succeeds(&[
        "sample",
        "--seed",
        "7",
        "--num",
        "2",
        "--bars",
        "8",
        "--meter",
        "6/8",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let server = melody_server::start(melody_server::Config::loopback(
        root.join("assets"),
        out.path().join("no-runs"),
    ))
    .unwrap();
    // Melody N of the command line is drawn with seed 7 + N - 1.
    for (melody, seed) in [(1, 7), (2, 8)] {
        let written =
            std::fs::read_to_string(out.path().join(format!("melody-{melody}.txt"))).unwrap();
        let url = format!(
            "http://{}/api/generate?seed={seed}&bars=8&meter=6/8",
            server.addr
        );
        let answer: serde_json::Value = serde_json::from_str(
            &ureq::get(&url)
                .call()
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap(),
        )
        .unwrap();
        let tokens = answer["tokens"].as_str().unwrap();
        let end = if answer["closed"] == true { " ." } else { "" };
        assert_eq!(
            written.trim_end(),
            format!("{tokens}{end}"),
            "melody {melody}"
        );
    }
}

#[test]
fn step_weights_other_than_f32_and_bf16_are_refused() {
    let output = xtask(&["sample", "--step-weights", "int8"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("step weights `int8` are not one of f32, bf16"),
        "{stderr}"
    );
}
