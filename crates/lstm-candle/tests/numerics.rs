//! The model's numbers against independent references: PyTorch's logits for the
//! reference notebook's trained weights, candle-nn's own LSTM, and finite
//! differences of the loss.
//!
//! Every test here runs on the CPU, and again on the device named by
//! `LSTM_CANDLE_TEST_DEVICE` (`cuda` or `cuda:N`, in a build with `--features
//! lstm-candle/cuda` on a machine with an NVIDIA GPU), where the fused ops'
//! results are also compared with the CPU's:
//!
//! ```sh
//! LSTM_CANDLE_TEST_DEVICE=cuda cargo test -p lstm-candle --features cuda --test numerics
//! ```

use std::path::PathBuf;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use candle_nn::rnn::{LSTMConfig, RNN};
use lstm_candle::{
    Dropout, MelodyModel, ModelConfig, StepWeights, load_checkpoint, save_checkpoint,
};

fn reference_dir() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/reference-lstm-erk");
    assert!(
        dir.is_dir(),
        "the reference model is expected at {}",
        dir.display()
    );
    dir
}

/// Largest absolute difference between two f64 tensors of one shape.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// The environment switch naming a second device for these tests.
const TEST_DEVICE: &str = "LSTM_CANDLE_TEST_DEVICE";

/// The devices the tests run on: the CPU, then the one `LSTM_CANDLE_TEST_DEVICE`
/// names, if any. A device that is named but cannot be opened fails the test
/// run rather than quietly testing the CPU alone.
fn devices() -> Vec<Device> {
    let mut devices = vec![Device::Cpu];
    let Ok(name) = std::env::var(TEST_DEVICE) else {
        return devices;
    };
    let ordinal = match name.as_str() {
        "" | "cpu" => return devices,
        "cuda" => 0,
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{TEST_DEVICE}={other}: expected cpu, cuda or cuda:N")),
    };
    devices.push(Device::new_cuda(ordinal).unwrap_or_else(|error| {
        panic!(
            "{TEST_DEVICE}={name}: {error} (it needs --features lstm-candle/cuda and an NVIDIA GPU)"
        )
    }));
    devices
}

/// How far results on `device` may be from the CPU's or from a reference's
/// beyond what the CPU itself is allowed: GPU math rounds its own way (its exp,
/// tanh and cuBLAS's summation order), so a GPU gets ten times the tolerance.
fn on(device: &Device, cpu_tolerance: f64) -> f64 {
    if device.is_cpu() {
        cpu_tolerance
    } else {
        cpu_tolerance * 10.0
    }
}

/// The same model with its weights on `device`.
fn moved(model: &MelodyModel, device: &Device) -> MelodyModel {
    let tensors = model
        .tensors()
        .into_iter()
        .map(|(name, t)| (name, t.to_device(device).unwrap()))
        .collect();
    MelodyModel::from_tensors(model.config.clone(), tensors, device, model.dtype()).unwrap()
}

fn small(layers: usize, dtype: DType) -> MelodyModel {
    let config = ModelConfig {
        vocab_size: 7,
        embedding_dim: 5,
        hidden_size: 6,
        num_layers: layers,
        dropout: 0.2,
        side_inputs: Vec::new(),
    };
    MelodyModel::new(config, &Device::Cpu, dtype, 3).unwrap()
}

fn ids(model: &MelodyModel, rows: &[&[u32]]) -> Tensor {
    model
        .ids_tensor(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>())
        .unwrap()
}

#[test]
fn pytorch_logits_of_the_reference_model() {
    // Written by PyTorch (eval mode, zero state) for the reference notebook's
    // trained weights; we load the bare state_dict without a config.json.
    let dir = reference_dir();
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("logits.json")).unwrap()).unwrap();
    for device in devices() {
        let model = load_checkpoint(&dir, &device).unwrap();
        assert_eq!(model.config, ModelConfig::reference(38));
        for case in fixture["cases"].as_array().unwrap() {
            let row: Vec<u32> = case["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let expected: Vec<Vec<f64>> = serde_json::from_value(case["logits"].clone()).unwrap();
            let input = model.ids_tensor(std::slice::from_ref(&row)).unwrap();
            let (logits, _) = model.forward(&input, &[], None, None).unwrap();
            let got: Vec<Vec<f32>> = logits.squeeze(0).unwrap().to_vec2().unwrap();
            let mut worst = 0f64;
            for (g, e) in got.iter().flatten().zip(expected.iter().flatten()) {
                worst = worst.max((f64::from(*g) - e).abs());
            }
            // float32 paths differ by up to ~1e-5 (the fixture's own note).
            assert!(
                worst < on(&device, 5e-5),
                "{} on {device:?}: max |diff| {worst}",
                case["name"]
            );
        }
    }
}

/// The committed fixture written by `scripts/make_pytorch_fixture.py`: a
/// two-layer model trained by PyTorch and saved as a bare state_dict.
fn pytorch_fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch-two-layer")
}

#[test]
fn pytorch_fixture_logits_and_state() {
    let dir = pytorch_fixture_dir();
    for device in devices() {
        let model = load_checkpoint(&dir, &device).unwrap();
        let fixture: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("logits.json")).unwrap())
                .unwrap();
        let architecture: ModelConfig =
            serde_json::from_value(fixture["architecture"].clone()).unwrap();
        assert_eq!(model.config, architecture);
        // The same weights in f64, against PyTorch's float64 forward pass: the
        // arithmetic is the same, so only rounding remains.
        let tensors = model.tensors().into_iter().collect();
        let model64 =
            MelodyModel::from_tensors(model.config.clone(), tensors, &device, DType::F64).unwrap();
        let cases = fixture["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 3);
        for case in cases {
            let rows: Vec<Vec<u32>> = serde_json::from_value(case["ids"].clone()).unwrap();
            for (model, key, tolerance) in [
                (&model, "f32", on(&device, 2e-5)),
                (&model64, "f64", on(&device, 1e-12)),
            ] {
                let input = model.ids_tensor(&rows).unwrap();
                let (logits, last) = model.forward(&input, &[], None, None).unwrap();
                let expected = |field: &str| -> Vec<f64> {
                    let nested: serde_json::Value = case[format!("{field}_{key}")].clone();
                    let mut flat = Vec::new();
                    let mut stack = vec![nested];
                    while let Some(value) = stack.pop() {
                        match value {
                            serde_json::Value::Array(items) => {
                                stack.extend(items.into_iter().rev())
                            }
                            number => flat.push(number.as_f64().unwrap()),
                        }
                    }
                    flat
                };
                let found = |t: &Tensor| -> Vec<f64> {
                    t.to_dtype(DType::F64)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                };
                let hs = Tensor::stack(&last.layers.iter().map(|l| &l.h).collect::<Vec<_>>(), 0);
                let cs = Tensor::stack(&last.layers.iter().map(|l| &l.c).collect::<Vec<_>>(), 0);
                for (field, got) in [
                    ("logits", found(&logits)),
                    ("h", found(&hs.unwrap())),
                    ("c", found(&cs.unwrap())),
                ] {
                    let want = expected(field);
                    assert_eq!(got.len(), want.len(), "{} {field}", case["name"]);
                    let worst = got
                        .iter()
                        .zip(&want)
                        .map(|(g, w)| (g - w).abs())
                        .fold(0f64, f64::max);
                    assert!(
                        worst < tolerance,
                        "{} {field} {key} on {device:?}: max |diff| {worst}",
                        case["name"]
                    );
                }
            }
        }
    }
}

#[test]
fn matches_candle_nn_lstm_with_the_same_weights() {
    for device in devices() {
        let model = moved(&small(2, DType::F64), &device);
        let input = ids(&model, &[&[0, 3, 1, 6, 2], &[5, 5, 4, 0, 1]]);
        let (ours, state) = model.forward(&input, &[], None, None).unwrap();

        let vb = VarBuilder::from_varmap(model.varmap(), DType::F64, &device);
        let embedding = candle_nn::embedding(7, 5, vb.pp("embedding")).unwrap();
        let mut x = embedding.forward(&input).unwrap();
        let mut finals = Vec::new();
        for layer in 0..2 {
            let config = LSTMConfig {
                layer_idx: layer,
                ..Default::default()
            };
            let lstm =
                candle_nn::lstm(if layer == 0 { 5 } else { 6 }, 6, config, vb.pp("lstm")).unwrap();
            let states = lstm.seq(&x).unwrap();
            x = lstm.states_to_tensor(&states).unwrap();
            finals.push(states.last().unwrap().clone());
        }
        let (hidden, _) = model.lstm_outputs(&input, &[], None, None).unwrap();
        let tolerance = on(&device, 1e-12);
        let diff = max_abs_diff(&hidden, &x);
        assert!(
            diff < tolerance,
            "{device:?}: top layer outputs differ by {diff}"
        );
        let fc = candle_nn::linear(6, 7, vb.pp("fc")).unwrap();
        let theirs = fc.forward(&x).unwrap();
        let diff = max_abs_diff(&ours, &theirs);
        assert!(diff < tolerance, "{device:?}: max |diff| {diff}");
        for (layer, theirs) in state.layers.iter().zip(&finals) {
            let dh = max_abs_diff(&layer.h, theirs.h());
            let dc = max_abs_diff(&layer.c, theirs.c());
            assert!(dh < tolerance && dc < tolerance, "{device:?}");
        }
    }
}

fn loss(model: &MelodyModel, input: &Tensor, targets: &Tensor) -> Tensor {
    let (logits, _) = model.forward(input, &[], None, None).unwrap();
    let (b, t, v) = logits.dims3().unwrap();
    lstm_candle::lstm::cross_entropy(
        &logits.reshape((b * t, v)).unwrap(),
        &targets.flatten_all().unwrap(),
    )
    .unwrap()
}

#[test]
fn gradients_match_finite_differences() {
    for device in devices() {
        let model = moved(&small(2, DType::F64), &device);
        let input = ids(&model, &[&[0, 3, 1, 6], &[5, 2, 4, 0]]);
        let targets = ids(&model, &[&[3, 1, 6, 2], &[2, 4, 0, 1]]);
        let grads = loss(&model, &input, &targets).backward().unwrap();
        let eps = 1e-6;
        for (name, var) in model.parameters() {
            let analytic = grads
                .get(var.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let original = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let shape = var.as_tensor().shape().clone();
            // A spread of entries of every parameter.
            for index in (0..original.len()).step_by(original.len().div_ceil(5)) {
                let at = |delta: f64| {
                    let mut values = original.clone();
                    values[index] += delta;
                    var.set(&Tensor::from_vec(values, shape.clone(), &device).unwrap())
                        .unwrap();
                    loss(&model, &input, &targets).to_scalar::<f64>().unwrap()
                };
                let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
                var.set(&Tensor::from_vec(original.clone(), shape.clone(), &device).unwrap())
                    .unwrap();
                let error = (numeric - analytic[index]).abs()
                    / (1e-8 + numeric.abs().max(analytic[index].abs()));
                assert!(
                    error < 1e-5 || (numeric - analytic[index]).abs() < 1e-9,
                    "{name}[{index}] on {device:?}: numeric {numeric} analytic {}",
                    analytic[index]
                );
            }
        }
    }
}

#[test]
fn one_step_at_a_time_equals_the_whole_sequence() {
    for device in devices() {
        let model = moved(&small(2, DType::F64), &device);
        let sequence = [[0u32, 4], [3, 4], [1, 2], [6, 6], [2, 0]];
        let rows: Vec<Vec<u32>> = (0..2)
            .map(|b| sequence.iter().map(|s| s[b]).collect())
            .collect();
        let (whole, whole_state) = model
            .forward(&model.ids_tensor(&rows).unwrap(), &[], None, None)
            .unwrap();
        let mut state = model.zero_state(2).unwrap();
        for (t, step_ids) in sequence.iter().enumerate() {
            let (logits, next) = model
                .step(
                    &Tensor::new(step_ids.as_slice(), &device).unwrap(),
                    &[],
                    state,
                )
                .unwrap();
            state = next;
            let expected = whole.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
            let diff = max_abs_diff(&logits, &expected);
            assert!(diff < on(&device, 1e-12), "step {t} on {device:?}: {diff}");
        }
        let dh = max_abs_diff(&state.layers[1].h, &whole_state.layers[1].h);
        assert!(dh < on(&device, 1e-12), "{device:?}: {dh}");
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn dropout_is_seeded_and_off_in_eval() {
    for device in devices() {
        let model = moved(&small(1, DType::F32), &device);
        let input = ids(&model, &[&[0, 3, 1, 6, 2]]);
        let run = |seed| {
            let dropout = Dropout { seed, first_row: 0 };
            flat(&model.forward(&input, &[], None, Some(dropout)).unwrap().0)
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let eval = flat(&model.forward(&input, &[], None, None).unwrap().0);
        assert_ne!(run(1), eval);
        // Rows split across two calls draw the same masks as one call.
        let two = ids(&model, &[&[0, 3, 1, 6, 2], &[4, 4, 1, 0, 5]]);
        let whole = model
            .forward(
                &two,
                &[],
                None,
                Some(Dropout {
                    seed: 9,
                    first_row: 0,
                }),
            )
            .unwrap()
            .0;
        let second_row = two.narrow(0, 1, 1).unwrap();
        let split = model
            .forward(
                &second_row,
                &[],
                None,
                Some(Dropout {
                    seed: 9,
                    first_row: 1,
                }),
            )
            .unwrap()
            .0;
        let (whole, split) = (flat(&whole.narrow(0, 1, 1).unwrap()), flat(&split));
        if device.is_cpu() {
            assert_eq!(whole, split);
        } else {
            // cuBLAS may choose another kernel for another batch size.
            let worst = whole
                .iter()
                .zip(&split)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "{device:?}: {worst}");
        }
    }
}

#[test]
fn initialisation_follows_pytorch_rules() {
    let config = ModelConfig::reference(38);
    let model = MelodyModel::new(config.clone(), &Device::Cpu, DType::F32, 0).unwrap();
    let again = MelodyModel::new(config, &Device::Cpu, DType::F32, 0).unwrap();
    let bound = 1.0 / 128f32.sqrt();
    for ((name, var), (_, other)) in model.parameters().iter().zip(again.parameters()) {
        let values = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(
            values,
            other
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            "seeded"
        );
        if name == "embedding.weight" {
            let mean = values.iter().sum::<f32>() / values.len() as f32;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / values.len() as f32;
            assert!(
                mean.abs() < 0.1 && (var - 1.0).abs() < 0.1,
                "N(0,1): mean {mean} var {var}"
            );
        } else {
            assert!(
                values.iter().all(|v| v.abs() <= bound),
                "{name} within U(-1/sqrt(128), 1/sqrt(128))"
            );
        }
    }
    assert_eq!(
        model.config.num_parameters(),
        38 * 38 + 4 * 128 * (38 + 128 + 2) + 38 * 128 + 38
    );
}

#[test]
fn checkpoint_round_trip_and_corruption() {
    let model = small(2, DType::F32);
    let dir = tempfile::tempdir().unwrap();
    save_checkpoint(&model, dir.path()).unwrap();
    let loaded = load_checkpoint(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(loaded.config, model.config);
    let input = ids(&model, &[&[0, 3, 1, 6]]);
    let a = model
        .forward(&input, &[], None, None)
        .unwrap()
        .0
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = loaded
        .forward(&input, &[], None, None)
        .unwrap()
        .0
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(a, b);
    let weights = dir.path().join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&weights, bytes).unwrap();
    let err = load_checkpoint(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("not a valid safetensors file"),
        "{err}"
    );
}

/// A saved two-layer checkpoint, its tensors passed through `rename` and its
/// config.json replaced by `config` (`None`: removed), loaded again; returns the
/// error, if any, with the folder's path cut to `DIR`.
fn load_altered(rename: &[(&str, &str)], config: Option<&str>) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    save_checkpoint(&small(2, DType::F32), dir.path()).unwrap();
    let weights = dir.path().join("model.safetensors");
    let tensors = lstm_candle::checkpoint::read_safetensors(&weights, &Device::Cpu).unwrap();
    let renamed: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(name, tensor)| {
            let new_name = rename
                .iter()
                .find(|(from, _)| *from == name)
                .map_or(name, |(_, to)| to.to_string());
            (new_name, tensor)
        })
        .collect();
    let bytes = lstm_candle::checkpoint::tensors_to_safetensors(&renamed).unwrap();
    std::fs::write(&weights, bytes).unwrap();
    let config_path = dir.path().join("config.json");
    match config {
        Some(text) => std::fs::write(&config_path, text).unwrap(),
        None => std::fs::remove_file(&config_path).unwrap(),
    }
    load_checkpoint(dir.path(), &Device::Cpu)
        .map(|_| ())
        .map_err(|e| {
            e.to_string()
                .replace(&dir.path().display().to_string(), "DIR")
        })
}

fn config_json(hidden_size: usize, num_layers: usize) -> String {
    format!(
        r#"{{"vocab_size": 7, "embedding_dim": 5, "hidden_size": {hidden_size}, "num_layers": {num_layers}, "dropout": 0.2}}"#
    )
}

#[test]
fn a_checkpoint_that_does_not_fit_its_configuration_is_refused_with_the_names() {
    // Unaltered, it loads with or without its config.json.
    assert_eq!(load_altered(&[], Some(&config_json(6, 2))), Ok(()));
    assert_eq!(load_altered(&[], None), Ok(()));
    let refused = |rename: &[(&str, &str)], config: Option<&str>| {
        load_altered(rename, config).expect_err("the altered checkpoint is refused")
    };
    assert_eq!(
        refused(&[], Some("{")),
        "DIR/config.json: bad configuration: EOF while parsing an object at line 1 column 1"
    );
    assert_eq!(
        refused(&[], Some(r#"{"vocab_size": 7}"#)),
        "DIR/config.json: bad configuration: missing field `embedding_dim` at line 1 column 17"
    );
    assert_eq!(
        refused(&[], Some(&config_json(6, 1))),
        "DIR/model.safetensors: bad model configuration: the configuration has 1 layer(s) \
         and 0 side input(s), which need 7 tensors, but there are 11"
    );
    assert_eq!(
        refused(&[], Some(&config_json(4, 2))),
        "DIR/model.safetensors: bad model configuration: lstm.weight_ih_l0 has shape [24, 5], \
         the configuration needs [16, 5]"
    );
    // Two strangers: the one first by name is named, the same on every run.
    assert_eq!(
        refused(
            &[
                ("lstm.bias_hh_l1", "rnn.bias_hh_l1"),
                ("fc.bias", "output.bias")
            ],
            Some(&config_json(6, 2))
        ),
        "DIR/model.safetensors: bad model configuration: missing tensor lstm.bias_hh_l1; \
         the file has output.bias in its place, which this configuration does not use"
    );
    // Without config.json the configuration is read off the names PyTorch gives.
    assert_eq!(
        refused(&[("embedding.weight", "encoder.weight")], None),
        "DIR/model.safetensors: bad model configuration: no tensor named embedding.weight"
    );
}

#[test]
fn sizes_whose_parameter_count_overflows_are_a_named_configuration_error() {
    let config = |hidden_size, num_layers| ModelConfig {
        vocab_size: 3,
        embedding_dim: 3,
        hidden_size,
        num_layers,
        dropout: 0.2,
        side_inputs: Vec::new(),
    };
    // The fuzzer's config.json (fuzz/regressions/checkpoint/huge-hidden-size.bin):
    // 4 * hidden overflowed while the expected shapes were built.
    let err = config(10_000_000_000_000_000_000, 1)
        .validate()
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "bad model configuration: vocabulary 3, embedding 3, hidden size \
             10000000000000000000 and 1 layer(s) make more parameters than a {}-bit count holds",
            usize::BITS
        )
    );
    // Each size fits on its own; the layers multiplied out do not.
    assert!(config(1 << 20, 1 << 30).validate().is_err());
    // Within range the closed-form count agrees with the shapes, layer by layer.
    for (hidden, layers) in [(1, 1), (5, 2), (128, 3)] {
        let config = config(hidden, layers);
        config.validate().unwrap();
        let by_shapes: usize = config
            .parameter_shapes()
            .iter()
            .map(|(_, shape)| shape.iter().product::<usize>())
            .sum();
        assert_eq!(config.num_parameters(), by_shapes, "{hidden} x {layers}");
    }
}

/// The fused ops' results against the step-by-step graph's on the CPU,
/// pairwise: to 1e-12 in f64, 1e-5 in f32 (ten times that on a GPU).
fn assert_all_close(fused: &[Tensor], reference: &[Tensor], label: &str) {
    assert_eq!(fused.len(), reference.len(), "{label}");
    for (i, (a, b)) in fused.iter().zip(reference).enumerate() {
        let tolerance = on(
            a.device(),
            if a.dtype() == DType::F64 { 1e-12 } else { 1e-5 },
        );
        let widen = |t: &Tensor| {
            t.to_device(&Device::Cpu)
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
        };
        let diff = max_abs_diff(&widen(a), &widen(b));
        assert!(diff < tolerance, "{label}, tensor {i}: {diff}");
    }
}

/// Runs `run` on the model's weights on every test device, then on the CPU's
/// step-by-step graph, and compares each device's results with the graph's.
fn assert_fused_equals_step_by_step(
    model: &mut MelodyModel,
    label: &str,
    run: impl Fn(&MelodyModel) -> Vec<Tensor>,
) {
    let fused: Vec<_> = devices()
        .iter()
        .map(|device| run(&moved(model, device)))
        .collect();
    model.set_step_by_step(true);
    let reference = run(model);
    for fused in fused {
        let label = format!("{label} on {:?}", fused[0].device());
        assert_all_close(&fused, &reference, &label);
    }
}

/// The gradients of every parameter, then of every layer's initial h and c.
fn gradients(
    model: &MelodyModel,
    grads: &candle_core::backprop::GradStore,
    initial: &lstm_candle::LstmState,
) -> Vec<Tensor> {
    let mut found: Vec<Tensor> = model
        .parameters()
        .iter()
        .map(|(_, var)| grads.get(var.as_tensor()).unwrap().clone())
        .collect();
    for layer in &initial.layers {
        found.push(grads.get(&layer.h).unwrap().clone());
        found.push(grads.get(&layer.c).unwrap().clone());
    }
    found
}

/// A non-zero initial state for `rows` sequences whose tensors are variables,
/// so that gradients reach them.
fn varied_state(model: &MelodyModel, rows: usize) -> lstm_candle::LstmState {
    let mut state = model.zero_state(rows).unwrap();
    for (k, layer) in state.layers.iter_mut().enumerate() {
        let (rows, hidden) = layer.h.dims2().unwrap();
        let dtype = layer.h.dtype();
        let values = |offset: f64| {
            let v: Vec<f64> = (0..rows * hidden)
                .map(|i| ((i as f64 + offset) * 0.37).sin() * 0.5)
                .collect();
            candle_core::Var::from_tensor(
                &Tensor::from_vec(v, (rows, hidden), model.device())
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap(),
            )
            .unwrap()
        };
        layer.h = values(k as f64).as_tensor().clone();
        layer.c = values(k as f64 + 10.0).as_tensor().clone();
    }
    state
}

/// The fused training objective (fused stack, then output layer, dropout,
/// log-softmax and masked NLL as one op) against the same objective in Candle
/// operations step by step: the loss and every gradient, parameters and initial
/// state, with dropout on and a mask holding zeros and a fractional weight.
#[test]
fn fused_training_loss_equals_the_graph() {
    for dtype in [DType::F64, DType::F32] {
        for layers in [1, 2] {
            let mut model = small(layers, dtype);
            let run = |model: &MelodyModel| {
                let input = ids(
                    model,
                    &[&[0, 3, 1, 6, 2], &[5, 2, 4, 0, 0], &[1, 1, 2, 3, 5]],
                );
                let targets = ids(
                    model,
                    &[&[3, 1, 6, 2, 0], &[2, 4, 0, 0, 0], &[1, 2, 3, 5, 6]],
                );
                let mask = Tensor::new(
                    &[
                        [1f32, 1., 1., 1., 1.],
                        [1., 1., 0.5, 0., 0.],
                        [0., 1., 1., 1., 1.],
                    ],
                    model.device(),
                )
                .unwrap();
                let initial = varied_state(model, 3);
                let dropout = Dropout {
                    seed: 9,
                    first_row: 2,
                };
                let (loss, _) = model
                    .summed_nll(
                        &input,
                        &[],
                        &targets,
                        &mask,
                        Some(initial.clone()),
                        Some(dropout),
                    )
                    .unwrap();
                let grads = loss.backward().unwrap();
                let mut found = vec![loss.clone()];
                found.extend(gradients(model, &grads, &initial));
                found
            };
            assert_fused_equals_step_by_step(
                &mut model,
                &format!("{dtype:?}, {layers} layers"),
                run,
            );
        }
    }
}

/// The fused CPU recurrence against the same model run step by step in Candle
/// operations: logits, final state and every gradient (parameters and initial
/// state, with dropout on and a loss that also uses the final state).
#[test]
fn fused_recurrence_equals_step_by_step() {
    for dtype in [DType::F64, DType::F32] {
        let mut model = small(2, dtype);
        let run = |model: &MelodyModel| {
            let input = ids(
                model,
                &[&[0, 3, 1, 6, 2], &[5, 2, 4, 0, 0], &[1, 1, 2, 3, 5]],
            );
            let initial = varied_state(model, 3);
            let (logits, last) = model
                .forward(
                    &input,
                    &[],
                    Some(initial.clone()),
                    Some(Dropout {
                        seed: 5,
                        first_row: 0,
                    }),
                )
                .unwrap();
            let mut objective = logits.sqr().unwrap().sum_all().unwrap();
            for layer in &last.layers {
                objective = (objective
                    + layer.h.sum_all().unwrap()
                    + layer.c.sqr().unwrap().sum_all().unwrap())
                .unwrap();
            }
            let grads = objective.backward().unwrap();
            let mut found = vec![logits.clone()];
            for layer in &last.layers {
                found.push(layer.h.clone());
                found.push(layer.c.clone());
            }
            found.extend(gradients(model, &grads, &initial));
            found
        };
        assert_fused_equals_step_by_step(&mut model, &format!("{dtype:?}"), run);
    }
}

/// The fused recurrence at a width whose steps need more than one GPU thread block
/// (5 rows of 300 units), with side inputs, a second layer and dropout: logits,
/// final state and every gradient against the step-by-step graph on the CPU.
#[test]
fn a_wide_fused_recurrence_equals_step_by_step() {
    let config = ModelConfig {
        hidden_size: 300,
        embedding_dim: 24,
        ..with_side_inputs(DType::F64).config
    };
    let mut model = MelodyModel::new(config, &Device::Cpu, DType::F64, 11).unwrap();
    let run = |model: &MelodyModel| {
        let rows: Vec<Vec<u32>> = (0..5u32)
            .map(|r| (0..6).map(|t| (r * 3 + t) % 7).collect())
            .collect();
        let first: Vec<Vec<u32>> = (0..5u32)
            .map(|r| (0..6).map(|t| (r + t) % 3).collect())
            .collect();
        let second: Vec<Vec<u32>> = (0..5u32)
            .map(|r| (0..6).map(|t| (r * t) % 4).collect())
            .collect();
        let input = model.ids_tensor(&rows).unwrap();
        let side = model.side_tensors(&[first, second]).unwrap();
        let initial = varied_state(model, 5);
        let dropout = Dropout {
            seed: 2,
            first_row: 0,
        };
        let (logits, last) = model
            .forward(&input, &side, Some(initial.clone()), Some(dropout))
            .unwrap();
        let mut objective = logits.sqr().unwrap().mean_all().unwrap();
        for layer in &last.layers {
            objective = (objective + layer.c.sqr().unwrap().mean_all().unwrap()).unwrap();
        }
        let grads = objective.backward().unwrap();
        let mut found = vec![logits.clone()];
        found.extend(last.layers.iter().flat_map(|l| [l.h.clone(), l.c.clone()]));
        found.extend(gradients(model, &grads, &initial));
        found
    };
    assert_fused_equals_step_by_step(&mut model, "hidden 300", run);
}

/// A two-layer model reading two side inputs (of 3 and 4 values).
fn with_side_inputs(dtype: DType) -> MelodyModel {
    let config = ModelConfig {
        side_inputs: vec![
            lstm_candle::SideInput {
                name: "first".into(),
                size: 3,
            },
            lstm_candle::SideInput {
                name: "second".into(),
                size: 4,
            },
        ],
        ..small(2, dtype).config
    };
    MelodyModel::new(config, &Device::Cpu, dtype, 3).unwrap()
}

/// Side inputs: the fused recurrence against the step-by-step graph (logits and
/// every gradient, side embeddings included), one step at a time against the
/// whole sequence, and zero side embeddings against a model without them.
#[test]
fn side_inputs_run_the_same_every_way() {
    let rows: Vec<Vec<u32>> = vec![vec![0, 3, 1, 6], vec![5, 2, 4, 0]];
    let side: Vec<Vec<Vec<u32>>> = vec![
        vec![vec![0, 1, 2, 2], vec![2, 2, 0, 1]],
        vec![vec![3, 0, 1, 2], vec![1, 1, 3, 0]],
    ];
    for dtype in [DType::F64, DType::F32] {
        let mut model = with_side_inputs(dtype);
        let run = |model: &MelodyModel| {
            let input = model.ids_tensor(&rows).unwrap();
            let side = model.side_tensors(&side).unwrap();
            let initial = varied_state(model, 2);
            let dropout = Dropout {
                seed: 5,
                first_row: 0,
            };
            let (logits, _) = model
                .forward(&input, &side, Some(initial.clone()), Some(dropout))
                .unwrap();
            let grads = logits.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let mut found = vec![logits.clone()];
            found.extend(gradients(model, &grads, &initial));
            found
        };
        assert_fused_equals_step_by_step(&mut model, &format!("side inputs, {dtype:?}"), run);
    }
    let model = with_side_inputs(DType::F64);
    let input = model.ids_tensor(&rows).unwrap();
    let side_tensors = model.side_tensors(&side).unwrap();
    let (whole, _) = model.forward(&input, &side_tensors, None, None).unwrap();
    let stepper = model.stepper().unwrap();
    let mut state = model.zero_state(2).unwrap();
    for t in 0..4 {
        let column = |values: &Tensor| values.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
        let step_side: Vec<Tensor> = side_tensors.iter().map(column).collect();
        let (logits, next) = stepper.step(&column(&input), &step_side, state).unwrap();
        state = next;
        let expected = whole.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
        assert!(max_abs_diff(&logits, &expected) < 1e-12, "step {t}");
    }
    // With its side embeddings zeroed, the model is the one without them.
    let mut tensors: std::collections::HashMap<String, Tensor> =
        model.tensors().into_iter().collect();
    for name in ["first", "second"] {
        let key = lstm_candle::names::side_embedding(name);
        tensors.insert(key.clone(), tensors[&key].zeros_like().unwrap());
    }
    let zeroed = MelodyModel::from_tensors(
        model.config.clone(),
        tensors.clone(),
        &Device::Cpu,
        DType::F64,
    )
    .unwrap();
    tensors.retain(|name, _| lstm_candle::names::side_input_of(name).is_none());
    let plain = MelodyModel::from_tensors(
        ModelConfig {
            side_inputs: Vec::new(),
            ..model.config.clone()
        },
        tensors,
        &Device::Cpu,
        DType::F64,
    )
    .unwrap();
    let (with_zeros, _) = zeroed.forward(&input, &side_tensors, None, None).unwrap();
    let (without, _) = plain.forward(&input, &[], None, None).unwrap();
    assert!(max_abs_diff(&with_zeros, &without) < 1e-12);
    // Values outside a side input's range and a missing side input are refused.
    let error = model
        .side_tensors(&[vec![vec![3]], vec![vec![0]]])
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "bad model configuration: side input `first` has 3 values; 3 is not one of them"
    );
    let error = model
        .forward(&input, &[], None, None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "bad model configuration: the model reads 2 side input(s), 0 were given"
    );
    // The configuration is read back off the tensor names and shapes.
    let shapes = model
        .tensors()
        .iter()
        .map(|(name, t)| (name.clone(), t.dims().to_vec()))
        .collect();
    assert_eq!(ModelConfig::infer(&shapes, 0.2).unwrap(), model.config);
}

/// Steps with bf16 weights follow the f32 steps within bf16's rounding (the
/// weights keep 8 bits of mantissa) and are not the same numbers; a row
/// stepped alone gives the same logits, to the bit, as in its batch. Hidden 8
/// makes the gates 32 wide, so that a CPU with AMX runs them on tiles.
#[test]
fn bf16_steps_follow_the_f32_steps() {
    let config = ModelConfig {
        hidden_size: 8,
        ..with_side_inputs(DType::F32).config
    };
    let mut model = MelodyModel::new(config, &Device::Cpu, DType::F32, 3).unwrap();
    let ids = [[0u32, 3, 1, 6, 2], [5, 2, 4, 0, 1], [1, 1, 6, 3, 0]];
    let side = [
        [[0u32, 1, 2, 2, 0], [2, 2, 0, 1, 3]],
        [[1, 0, 1, 2, 2], [1, 1, 3, 0, 0]],
        [[2, 2, 1, 0, 1], [3, 0, 1, 2, 1]],
    ];
    let run = |model: &MelodyModel, rows: &[usize]| -> Vec<Vec<Vec<f32>>> {
        let stepper = model.stepper().unwrap();
        let mut state = model.zero_state(rows.len()).unwrap();
        (0..ids[0].len())
            .map(|t| {
                let column = |values: Vec<u32>| Tensor::new(values, &Device::Cpu).unwrap();
                let input = column(rows.iter().map(|&r| ids[r][t]).collect());
                let step_side: Vec<Tensor> = (0..2)
                    .map(|k| column(rows.iter().map(|&r| side[r][k][t]).collect()))
                    .collect();
                let (logits, next) = stepper.step(&input, &step_side, state.clone()).unwrap();
                state = next;
                logits.to_vec2::<f32>().unwrap()
            })
            .collect()
    };
    let f32_logits = run(&model, &[0, 1, 2]);
    model.set_step_weights(StepWeights::Bf16);
    let bf16_logits = run(&model, &[0, 1, 2]);
    let differences: Vec<f32> = f32_logits
        .iter()
        .flatten()
        .flatten()
        .zip(bf16_logits.iter().flatten().flatten())
        .map(|(a, b)| (a - b).abs())
        .collect();
    let largest = differences.iter().cloned().fold(0.0, f32::max);
    let scale = f32_logits
        .iter()
        .flatten()
        .flatten()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        largest < 0.02 * scale,
        "bf16 logits are {largest} from f32 (largest logit {scale})"
    );
    assert!(
        largest > 0.0,
        "bf16 steps gave exactly the f32 logits: nothing was rounded"
    );
    let alone = run(&model, &[1]);
    for t in 0..ids[0].len() {
        assert_eq!(alone[t][0], bf16_logits[t][1], "step {t}");
    }
    // A whole sequence read step by step, as evaluation with bf16 weights reads it.
    let input = model
        .ids_tensor(&ids.iter().map(|row| row.to_vec()).collect::<Vec<_>>())
        .unwrap();
    let side_tensors = model
        .side_tensors(
            &(0..2)
                .map(|k| side.iter().map(|row| row[k].to_vec()).collect())
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let stepped = model.stepped_logits(&input, &side_tensors).unwrap();
    for (t, expected) in bf16_logits.iter().enumerate() {
        let at = stepped.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
        assert_eq!(&at.to_vec2::<f32>().unwrap(), expected, "step {t}");
    }
    model.set_step_weights(StepWeights::F32);
    let stepped = model.stepped_logits(&input, &side_tensors).unwrap();
    let (whole, _) = model.forward(&input, &side_tensors, None, None).unwrap();
    let gap = (stepped - whole)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(gap < 1e-5, "f32 steps are {gap} from the whole sequence");
}
