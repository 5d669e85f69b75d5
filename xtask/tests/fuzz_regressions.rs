//! Replays every input kept in `fuzz/regressions` (crashes the fuzzers found,
//! now fixed) and `fuzz/seeds` through the same code the `cargo fuzz` targets
//! run, so CI checks them without nightly or libFuzzer.

use std::path::PathBuf;

#[path = "../../fuzz/entry.rs"]
mod entry;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    inputs_in(&["regressions", "seeds"], target)
}

/// Every file in `fuzz/KIND/TARGET` for each of `kinds`, with its name.
fn inputs_in(kinds: &[&str], target: &str) -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut found = Vec::new();
    for kind in kinds {
        let dir = root.join(kind).join(target);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if path.is_file() && !hidden {
                found.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    assert!(!found.is_empty(), "no inputs for {target}");
    found
}

#[test]
fn kern_inputs_are_read_or_rejected() {
    for (name, bytes) in inputs("kern") {
        eprintln!("{name}");
        entry::read_songs("input.krn", &bytes);
    }
}

#[test]
fn esac_inputs_are_read_or_rejected() {
    for (name, bytes) in inputs("esac") {
        eprintln!("{name}");
        entry::read_songs("input.sm", &bytes);
    }
}

#[test]
fn token_inputs_are_parsed_or_rejected() {
    for (name, bytes) in inputs("tokens") {
        eprintln!("{name}");
        entry::tokens(&bytes);
    }
}

#[test]
fn every_checkpoint_seed_loads_as_a_model() {
    for (name, bytes) in inputs_in(&["seeds"], "checkpoint") {
        assert!(entry::checkpoint(&bytes), "{name} does not load");
    }
}

#[test]
fn checkpoint_inputs_load_or_are_refused() {
    for (name, bytes) in inputs("checkpoint") {
        eprintln!("{name}");
        entry::checkpoint(&bytes);
    }
}
