//! The command line a new user meets: every subcommand explains itself with
//! examples, and shell completions come out of the same definition.

use std::process::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn every_subcommand_has_help_with_examples() {
    let top = String::from_utf8(xtask(&["--help"]).stdout).unwrap();
    let commands = [
        "download",
        "prepare",
        "train",
        "sample",
        "judge",
        "eval",
        "logits",
        "export",
        "inspect",
        "publish",
        "completions",
        "bench",
    ];
    for command in commands {
        assert!(top.contains(command), "{command} missing from --help");
    }
    let mut all: Vec<Vec<&str>> = commands.iter().map(|c| vec![*c]).collect();
    all.extend([
        vec!["bench", "parse"],
        vec!["bench", "train"],
        vec!["bench", "sample"],
    ]);
    for command in all {
        let mut args = command.clone();
        args.push("--help");
        let output = xtask(&args);
        assert!(output.status.success(), "{command:?}");
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(
            help.contains("Example"),
            "{command:?} --help has no example:\n{help}"
        );
        assert!(help.contains("cargo xtask"), "{command:?}");
    }
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_xtask()"),
        ("zsh", "#compdef xtask"),
        ("fish", "complete -c xtask"),
    ] {
        let output = xtask(&["completions", shell]);
        assert!(output.status.success());
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.contains(marker), "{shell}");
        assert!(
            script.contains("sample") && script.contains("temperature"),
            "{shell}"
        );
    }
}

/// Without the `hub` feature, a hub model says how to get one.
#[cfg(not(feature = "hub"))]
#[test]
fn hub_models_without_the_feature_explain_how_to_get_them() {
    let output = xtask(&["sample", "--model", "hub:esac-melody/erk-lstm"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("this build has no hub support: run the command as `cargo xtask-hub"),
        "{stderr}"
    );
}

/// Each option of a `--help` text with its description: an option's header
/// line is indented by at most six spaces; its description follows on that
/// line after two spaces, or on deeper-indented lines.
fn options_described(help: &str) -> Vec<(String, String)> {
    let options = help
        .split_once("Options:\n")
        .map(|(_, rest)| rest.split_once("\nExamples:").map_or(rest, |(o, _)| o))
        .unwrap_or_else(|| panic!("no options in {help}"));
    let mut described: Vec<(String, String)> = Vec::new();
    for line in options.lines() {
        let indent = line.len() - line.trim_start().len();
        if (1..=6).contains(&indent) && line.trim_start().starts_with('-') {
            let (option, text) = line.trim().split_once("  ").unwrap_or((line.trim(), ""));
            described.push((option.to_owned(), format!("{} ", text.trim())));
        } else if let Some((_, text)) = described.last_mut() {
            text.push_str(line.trim());
            text.push(' ');
        }
    }
    described
}

#[test]
fn train_help_gives_every_flag_a_description_and_its_default() {
    let help = String::from_utf8(xtask(&["train", "--help"]).stdout).unwrap();
    let described = options_described(&help);
    assert!(described.len() > 25, "{help}");
    for (option, text) in &described {
        let switch = [
            "--resume",
            "--reference-recipe",
            "--condition",
            "--form",
            "--quiet",
            "-h, --help",
        ]
        .iter()
        .any(|s| option.starts_with(s));
        assert!(
            switch || text.contains("[default:"),
            "{option} does not say its default: {text}"
        );
    }
}

#[test]
fn every_option_of_every_command_is_described() {
    let commands: &[&[&str]] = &[
        &["download"],
        &["prepare"],
        &["train"],
        &["sample"],
        &["judge"],
        &["eval"],
        &["logits"],
        &["export"],
        &["inspect"],
        &["publish"],
        &["completions"],
        &["serve"],
        &["bench", "parse"],
        &["bench", "train"],
        &["bench", "sample"],
        &["bench", "serve"],
    ];
    let mut undescribed = Vec::new();
    for command in commands {
        let help = String::from_utf8(xtask(&[command, &["--help"][..]].concat()).stdout).unwrap();
        for (option, text) in options_described(&help) {
            let words = text
                .split('[')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .count();
            if words < 2 {
                undescribed.push(format!("{} {option}", command.join(" ")));
            }
        }
    }
    assert!(undescribed.is_empty(), "no description: {undescribed:#?}");
}

#[test]
fn negative_numbers_reach_the_validator() {
    let output = xtask(&["sample", "--temperature", "-1", "--out", "/tmp/unused"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("temperature -1 must be a positive number"),
        "{stderr}"
    );
}

#[test]
fn a_gpu_device_without_gpu_support_says_what_is_missing() {
    for (device, feature) in [("cuda", "--features cuda"), ("metal", "--features metal")] {
        let output = xtask(&["sample", "--device", device, "--out", "/tmp/unused"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if cfg!(feature = "cuda") && device == "cuda" {
            // A CUDA build: what is missing is a GPU, unless there is one.
            assert!(
                output.status.success() || stderr.contains("no usable CUDA GPU"),
                "{stderr}"
            );
            continue;
        }
        assert!(!output.status.success());
        assert!(
            stderr.contains(&format!("--device {device}: this build has no"))
                && stderr.contains(feature),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn bench_train_times_the_model_with_and_without_side_inputs() {
    let output = xtask(&[
        "bench",
        "train",
        "--side-inputs",
        "--fused-only",
        "--size",
        "default",
        "--threads",
        "1",
        "--steps",
        "1",
        "--seq-len",
        "16",
        "--lookback",
        "3",
    ]);
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let side_inputs: Vec<u64> = lines
        .iter()
        .map(|line| line["side_inputs"].as_u64().unwrap())
        .collect();
    assert_eq!(side_inputs, [0, 5, 8], "{stdout}");
    assert!(
        lines
            .iter()
            .all(|line| { line["tokens_per_s"].as_f64().unwrap() > 0.0 && line["seq_len"] == 16 })
    );
}
