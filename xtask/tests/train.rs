//! `cargo xtask train` as a process: killed with SIGKILL at several points and
//! resumed each time, it finishes with the same losses as a run that was never
//! interrupted; an unwritable run folder, a full disk or a corrupted checkpoint
//! ends with an error that names the file, and the previous checkpoint stays
//! intact.

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

/// A tiny training run; an empty `data` or `name` leaves its flag out.
fn tiny_run(data: &Path, runs: &Path, name: &str, steps: u32, resume: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(["train", "--runs", runs.to_str().unwrap()]);
    if !data.as_os_str().is_empty() {
        command.args(["--data", data.to_str().unwrap()]);
    }
    if !name.is_empty() {
        command.args(["--name", name]);
    }
    command.args([
        "--hidden",
        "16",
        "--embedding-dim",
        "8",
        "--batch-size",
        "8",
        "--seq-len",
        "16",
        "--max-steps",
        &steps.to_string(),
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

/// The first 80 erk songs copied into `dir/songs`: enough for a tiny run.
fn songs(dir: &Path) -> PathBuf {
    let data = dir.join("songs");
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
    data
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

/// Updates in the kill-and-resume runs.
const STEPS: u32 = 600;

#[test]
fn kill_9_then_resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = songs(dir.path());
    let runs = dir.path().join("runs");

    assert!(
        tiny_run(&data, &runs, "whole", STEPS, false)
            .status()
            .unwrap()
            .success()
    );
    let expected = rows(&runs.join("whole"));
    assert!(
        expected.len() >= STEPS as usize / 10,
        "one evaluation every 10 updates and at each epoch end"
    );

    // Fixed kill points (steps), early, middle and late: the run is killed as
    // soon as a checkpoint at or past each has been written.
    let points = [37, 251, 463];
    let run = runs.join("killed");
    for (round, point) in points.into_iter().enumerate() {
        let mut child = tiny_run(&data, &runs, "killed", STEPS, round > 0)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(300);
        while saved_step(&run).is_none_or(|s| s < point) {
            assert!(
                Instant::now() < deadline,
                "no checkpoint past {point} appeared"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before it could be killed at {point}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let at_kill = saved_step(&run).unwrap();
        assert!(
            at_kill < STEPS as u64,
            "killed in the middle (step {at_kill})"
        );
    }

    assert!(
        tiny_run(&data, &runs, "killed", STEPS, true)
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

/// Makes a folder unwritable for as long as it lives: `chattr +i` for root
/// (which permissions do not stop), read-only permissions otherwise.
struct Unwritable(PathBuf);

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Unwritable {
    fn new(path: &Path) -> Self {
        if is_root() {
            let status = Command::new("chattr").arg("+i").arg(path).status().unwrap();
            assert!(status.success(), "chattr +i {}", path.display());
        } else {
            let mut permissions = std::fs::metadata(path).unwrap().permissions();
            permissions.set_readonly(true);
            std::fs::set_permissions(path, permissions).unwrap();
        }
        Self(path.to_owned())
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        if is_root() {
            let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        } else if let Ok(metadata) = std::fs::metadata(&self.0) {
            let mut permissions = metadata.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            permissions.set_readonly(false);
            let _ = std::fs::set_permissions(&self.0, permissions);
        }
    }
}

fn snapshot(run: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for dir in [run.to_owned(), run.join("state")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

fn short_run(data: &Path, runs: &Path, steps: u32, resume: bool) -> std::process::Output {
    let mut command = tiny_run(data, runs, "short", steps, resume);
    command.stderr(Stdio::piped());
    command.output().unwrap()
}

/// A short run that finishes, and the bytes of its checkpoint files.
fn first_checkpoint(data: &Path, runs: &Path) -> (PathBuf, Vec<(PathBuf, Vec<u8>)>) {
    let output = short_run(data, runs, 60, false);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run = runs.join("short");
    let files = snapshot(&run);
    (run, files)
}

#[test]
fn an_unwritable_run_folder_or_a_corrupted_checkpoint_is_named_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = songs(dir.path());
    let runs = dir.path().join("runs");
    let (run, before) = first_checkpoint(&data, &runs);

    {
        let _locked = Unwritable::new(&run);
        let _state_locked = Unwritable::new(&run.join("state"));
        let output = short_run(&data, &runs, 120, true);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&run.display().to_string())
                && (stderr.contains("not permitted") || stderr.contains("denied")),
            "{stderr}"
        );
    }
    assert!(snapshot(&run) == before, "the previous checkpoint changed");

    // A corrupted checkpoint is detected and named, not trained on.
    let optimizer = run.join("state/optimizer.safetensors");
    let mut bytes = std::fs::read(&optimizer).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&optimizer, bytes).unwrap();
    let output = short_run(&data, &runs, 120, true);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("optimizer.safetensors") && stderr.contains("not a valid safetensors file"),
        "{stderr}"
    );
}

#[test]
fn a_resume_with_other_songs_or_settings_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = songs(dir.path());
    let runs = dir.path().join("runs");
    let (run, before) = first_checkpoint(&data, &runs);
    let prepared = |run: &Path| std::fs::read(run.join("data/songs.jsonl")).unwrap();
    let songs_before = prepared(&run);

    // Other songs: the same less one.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in &files[1..] {
        std::fs::copy(file, other.join(file.file_name().unwrap())).unwrap();
    }
    let output = short_run(&other, &runs, 120, true);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot resume {}: {} gives other songs than the run was trained on ({}), and its data/ is left as it was",
            run.display(),
            other.display(),
            data.display()
        )),
        "{stderr}"
    );
    assert_eq!(prepared(&run), songs_before, "the run's songs changed");
    assert!(!run.join("data.resume").exists());

    // Other settings.
    let mut command = tiny_run(&data, &runs, "short", 120, true);
    let output = command
        .args(["--lr", "0.5"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&format!(
            "only --epochs, --max-steps and --patience may change on --resume; to start over, leave out --resume and choose another --name: cannot resume {}: its hyper-parameters differ from these",
            run.display()
        )),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(snapshot(&run) == before, "the checkpoint changed");
    assert_eq!(prepared(&run), songs_before, "the run's songs changed");

    // Without --data, a resume reads the run's own songs (nothing is
    // fetched: the cache is empty) and records them as it was trained on.
    let empty_cache = dir.path().join("empty-cache");
    let output = tiny_run(Path::new(""), &runs, "short", 120, true)
        .env("ESAC_MELODY_CACHE", &empty_cache)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(saved_step(&run), Some(120));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["dataset"]["source"], data.to_str().unwrap());
    assert!(!empty_cache.exists() || std::fs::read_dir(&empty_cache).unwrap().next().is_none());
}

/// A small filesystem of its own, for a full disk; None where mounting is not
/// allowed (not root), in which case the test says so and returns.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Self(at.to_owned()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_named_and_the_previous_checkpoint_survives() {
    let dir = tempfile::tempdir().unwrap();
    let data = songs(dir.path());
    let Some(disk) = SmallDisk::mount(&dir.path().join("disk")) else {
        assert!(
            !is_root(),
            "root could not mount a tmpfs for the full-disk test"
        );
        eprintln!("skipped: mounting a small filesystem needs root");
        return;
    };
    let runs = disk.0.join("runs");
    let (run, before) = first_checkpoint(&data, &runs);
    // Fill what is left of the disk.
    let mut filler = std::fs::File::create(disk.0.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);

    let output = short_run(&data, &runs, 120, true);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("No space left on device") && stderr.contains(&run.display().to_string()),
        "{stderr}"
    );
    assert!(snapshot(&run) == before, "the previous checkpoint changed");
    // With room again, the run resumes.
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    let output = short_run(&data, &runs, 120, true);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_second_run_without_a_name_goes_to_the_next_free_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = songs(dir.path());
    let runs = dir.path().join("runs");
    let unnamed = || {
        tiny_run(&data, &runs, "", 20, false)
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    let first = unnamed();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = unnamed();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("erk already holds a run; this one goes to") && stderr.contains("erk-2"),
        "{stderr}"
    );
    assert!(runs.join("erk/model.safetensors").is_file());
    assert!(runs.join("erk-2/model.safetensors").is_file());
    // With the name given, the taken folder is an error that says what to do.
    let output = tiny_run(&data, &runs, "erk", 20, false)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("already holds a run; pass --resume to continue it or choose another --name"),
        "{stderr}"
    );
}

#[test]
fn data_that_leaves_a_split_empty_writes_no_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let all = songs(dir.path());
    let few = dir.path().join("few");
    std::fs::create_dir(&few).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in &files[..2] {
        std::fs::copy(file, few.join(file.file_name().unwrap())).unwrap();
    }
    let runs = dir.path().join("runs");
    let output = tiny_run(&few, &runs, "few", 20, false)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("split empty"), "{stderr}");
    assert!(
        !runs.join("few").exists(),
        "a half-made run folder was left"
    );
}
