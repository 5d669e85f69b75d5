//! `cargo xtask sample` with the shipped model, as a user runs it right after
//! cloning: files written and read back, and clear errors for bad input.

use std::path::PathBuf;
use std::process::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn samples_from_the_shipped_model_read_back() {
    let out = tempfile::tempdir().unwrap();
    let output = xtask(&[
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
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
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
            grid_codec::midi::read_notes(&std::fs::read(name("mid")).unwrap()).unwrap();
        assert_eq!(midi.len(), notes, "one MIDI note per onset");
        assert_eq!(midi[0].pitch, 55);
        assert_eq!(midi[0].length, u64::from(tpq), "55 _ _ _ is a quarter note");
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
    let output = xtask(&[
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
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(out.path().join("melody-1.txt")).unwrap();
    // Two bars of 3/4 are 24 sixteenths, unless the model ended the song sooner.
    assert!(
        grid_codec::parse_tokens(&text).unwrap().len() <= 24,
        "{text}"
    );
}

#[test]
fn bad_input_ends_with_a_clear_message() {
    let cases: [(&[&str], &str); 7] = [
        (
            &[
                "sample",
                "--bars",
                "1",
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
    ];
    for (args, message) in cases {
        let output = xtask(args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
