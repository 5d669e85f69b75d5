//! The command line a new user meets: every subcommand explains itself with
//! examples, and shell completions come out of the same definition.

use std::process::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
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
