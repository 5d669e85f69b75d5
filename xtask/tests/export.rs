//! `export` and `inspect`: the shipped model is exactly the folder `export`
//! writes; half-precision exports load; malformed files are refused with the
//! reason; the reference notebook's own weights load and sample unchanged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(repo_root())
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_shipped_model_is_exactly_what_export_writes() {
    let out = tempfile::tempdir().unwrap();
    let output = xtask(&[
        "export",
        "--run",
        "assets/erk",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let shipped = repo_root().join("assets/erk");
    assert_eq!(files(&shipped), files(out.path()));
    for name in files(&shipped) {
        assert!(
            std::fs::read(shipped.join(&name)).unwrap()
                == std::fs::read(out.path().join(&name)).unwrap(),
            "{name} differs: re-export assets/erk"
        );
    }
    let card = std::fs::read_to_string(out.path().join("README.md")).unwrap();
    assert!(
        card.starts_with("---\nlicense: "),
        "YAML front matter first"
    );
    assert!(card.contains("| 0.7516 nats |"), "{card}");
    let generation: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("generation_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(generation["end_token"], ".");
    assert_eq!(generation["end_token_id"], 0);
}

#[test]
fn half_precision_exports_load_and_sample() {
    for (dtype, name) in [("f16", "F16"), ("bf16", "BF16")] {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().to_str().unwrap();
        let output = xtask(&[
            "export",
            "--run",
            "assets/erk",
            "--out",
            dir,
            "--dtype",
            dtype,
        ]);
        assert!(output.status.success(), "{}", text(&output));
        let full = std::fs::metadata(repo_root().join("assets/erk/model.safetensors"))
            .unwrap()
            .len();
        let half = std::fs::metadata(out.path().join("model.safetensors"))
            .unwrap()
            .len();
        assert!(half < full * 6 / 10, "{dtype}: {half} bytes against {full}");
        let output = xtask(&["inspect", dir]);
        assert!(output.status.success(), "{}", text(&output));
        assert!(
            text(&output).contains(&format!("lstm.weight_ih_l0        {name}")),
            "{}",
            text(&output)
        );
        // Logits of the rounded weights stay close to the f32 model's.
        let logits = |model: &str| -> Vec<f64> {
            let output = xtask(&["logits", "--model", model, "--ids", "0 12 5 7"]);
            assert!(output.status.success(), "{}", text(&output));
            let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            let mut all = Vec::new();
            fn collect(v: &serde_json::Value, into: &mut Vec<f64>) {
                match v {
                    serde_json::Value::Array(items) => items.iter().for_each(|i| collect(i, into)),
                    serde_json::Value::Number(n) => into.push(n.as_f64().unwrap()),
                    serde_json::Value::Object(map) => map.values().for_each(|i| collect(i, into)),
                    _ => {}
                }
            }
            collect(&value, &mut all);
            all
        };
        let exact = logits("assets/erk");
        let rounded = logits(dir);
        assert_eq!(exact.len(), rounded.len());
        let worst = exact
            .iter()
            .zip(&rounded)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst < 0.15 && worst > 0.0,
            "{dtype}: largest logit change {worst}"
        );
    }
}

#[test]
fn inspect_lists_a_conditioned_models_side_inputs_in_aligned_columns() {
    let output = xtask(&["inspect", "assets/essen"]);
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    // The longest tensor name sets the column, so every dtype lines up.
    assert!(
        said.contains("  side_embeddings.bar_position.weight F32        [49, 49]       2401\n"),
        "{said}"
    );
    assert!(
        said.contains("  lstm.weight_hh_l0                   F32     [2048, 512]    1048576\n"),
        "{said}"
    );
    assert!(
        said.contains("side inputs: bar_position (49 values), meter (14 values), mode (3 values), style (28 values), bars_left (34 values)\n"),
        "{said}"
    );
}

#[test]
fn inspect_refuses_malformed_files_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(repo_root().join("assets/erk/model.safetensors")).unwrap();
    let header = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut bad_json = good.clone();
    bad_json[8] = b'#';
    let mut huge_header = good.clone();
    huge_header[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "truncated",
            good[..good.len() - 100].to_vec(),
            "not a valid safetensors file",
        ),
        ("tiny", good[..5].to_vec(), "not a valid safetensors file"),
        ("bad-json", bad_json, "not a valid safetensors file"),
        ("huge-header", huge_header, "not a valid safetensors file"),
    ];
    assert!(header > 0);
    for (name, bytes, message) in cases {
        let path = dir.path().join(format!("{name}.safetensors"));
        std::fs::write(&path, bytes).unwrap();
        let output = xtask(&["inspect", path.to_str().unwrap()]);
        assert!(!output.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(message) && stderr.contains(&format!("{name}.safetensors")),
            "{name}: {stderr}"
        );
    }
    let output = xtask(&["inspect", "/no/such/file.safetensors"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("/no/such/file.safetensors"));
}

/// A bare PyTorch state_dict (the reference notebook's names, no config.json)
/// with its vocab.json samples, and exports to a complete model folder with the
/// architecture read off the tensor shapes and the weights unchanged.
fn pytorch_state_dict_samples_and_exports(dir: &Path, hidden: usize, layers: usize) {
    assert!(dir.join("model.safetensors").is_file(), "{}", dir.display());
    let out = tempfile::tempdir().unwrap();
    let output = xtask(&[
        "sample",
        "--model",
        dir.to_str().unwrap(),
        "--seed",
        "4",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let tokens = grid_codec::parse_tokens(
        &std::fs::read_to_string(out.path().join("melody-1.txt")).unwrap(),
    )
    .unwrap();
    assert!(tokens.len() > 4);
    let exported = tempfile::tempdir().unwrap();
    let output = xtask(&[
        "export",
        "--run",
        dir.to_str().unwrap(),
        "--out",
        exported.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(exported.path().join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["hidden_size"], hidden);
    assert_eq!(config["num_layers"], layers);
    assert_eq!(config["vocab_size"], 38);
    // Same names, same values (the file's tensor order may differ).
    let weights = |dir: &Path| -> Vec<(String, Vec<f32>)> {
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let tensors =
            lstm_candle::checkpoint::safetensors_to_tensors(&bytes, &lstm_candle::Device::Cpu)
                .unwrap();
        let mut named: Vec<(String, Vec<f32>)> = tensors
            .into_iter()
            .map(|(name, t)| (name, t.flatten_all().unwrap().to_vec1().unwrap()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    };
    assert!(
        weights(exported.path()) == weights(dir),
        "the weights pass through unchanged"
    );
}

/// The committed fixture made by PyTorch (`scripts/make_pytorch_fixture.py`).
#[test]
fn a_pytorch_state_dict_loads_and_samples() {
    let fixture = repo_root().join("crates/lstm-candle/tests/fixtures/pytorch-two-layer");
    pytorch_state_dict_samples_and_exports(&fixture, 24, 2);
}

/// The reference notebook's own trained weights, read in place from ../shared.
#[test]
fn the_reference_notebooks_weights_load_and_sample_unchanged() {
    let reference = repo_root().join("../shared/models/reference-lstm-erk");
    pytorch_state_dict_samples_and_exports(&reference, 128, 1);
}
