//! `cargo xtask train` as a process: kill -9 in the middle, then `--resume`
//! finishes with the same losses as a run that was never interrupted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn erk() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/essen/deutschl/erk");
    assert!(
        dir.is_dir(),
        "the Essen data is expected at {}",
        dir.display()
    );
    dir
}

fn tiny_run(data: &Path, runs: &Path, name: &str, resume: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args([
        "train",
        "--data",
        data.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
        "--name",
        name,
        "--hidden",
        "16",
        "--embedding-dim",
        "8",
        "--batch-size",
        "8",
        "--seq-len",
        "16",
        "--max-steps",
        "3000",
        "--epochs",
        "100000",
        "--patience",
        "100000",
        "--eval-every",
        "10",
        "--seed",
        "3",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--quiet",
    ]);
    if resume {
        command.arg("--resume");
    }
    command.stdout(Stdio::null()).stderr(Stdio::null());
    command
}

fn rows(run: &Path) -> Vec<(f64, f64)> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
            (f[2], f[3])
        })
        .collect()
}

fn saved_step(run: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(run.join("state/progress.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value[0]["step"].as_u64()
}

#[test]
fn kill_9_then_resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("songs");
    std::fs::create_dir(&data).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(erk())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "krn"))
        .take(80)
    {
        std::fs::copy(file, data.join(file.file_name().unwrap())).unwrap();
    }
    let runs = dir.path().join("runs");

    assert!(
        tiny_run(&data, &runs, "whole", false)
            .status()
            .unwrap()
            .success()
    );
    let expected = rows(&runs.join("whole"));
    assert!(
        expected.len() >= 300,
        "one evaluation every 10 updates and at each epoch end"
    );

    let mut child = tiny_run(&data, &runs, "killed", false).spawn().unwrap();
    let run = runs.join("killed");
    let deadline = Instant::now() + Duration::from_secs(120);
    while saved_step(&run).is_none_or(|s| s < 40) {
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = saved_step(&run).unwrap();
    assert!(at_kill < 3000, "killed in the middle (step {at_kill})");

    assert!(
        tiny_run(&data, &runs, "killed", true)
            .status()
            .unwrap()
            .success()
    );
    let resumed = rows(&run);
    assert_eq!(resumed.len(), expected.len());
    for (i, ((a, b), (c, d))) in expected.iter().zip(&resumed).enumerate() {
        assert!(
            (a - c).abs() < 1e-6 && (b - d).abs() < 1e-6,
            "row {i}: {a} {b} vs {c} {d}"
        );
    }
    let metrics = |name: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(runs.join(name).join("metrics.json")).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(metrics("whole")["test"], metrics("killed")["test"]);
}
