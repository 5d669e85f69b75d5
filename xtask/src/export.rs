//! `cargo xtask export` and `cargo xtask inspect`: a trained model as a folder
//! in the Hugging Face model-repo layout, and a look inside such a folder or a
//! safetensors file.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device};
use grid_codec::{Token, Vocabulary};
use lstm_candle::checkpoint::{
    CONFIG_FILE, WEIGHTS_FILE, describe_safetensors, tensors_to_safetensors_as,
};
use serde_json::{Value, json};

pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const GENERATION_FILE: &str = "generation_config.json";
pub const CARD_FILE: &str = "README.md";
/// Files of a run copied as they are when present: the card shows the loss
/// curve, and the rest is there for whoever wants to look deeper.
const EXTRA_FILES: [&str; 3] = ["metrics.json", "loss.png", "model.dot"];
/// The longest melody `sample` writes unless told otherwise.
pub const DEFAULT_MAX_LENGTH: usize = 500;

/// Weight precision in the exported file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportDtype {
    F32,
    F16,
    Bf16,
}

impl ExportDtype {
    fn dtype(self) -> DType {
        match self {
            ExportDtype::F32 => DType::F32,
            ExportDtype::F16 => DType::F16,
            ExportDtype::Bf16 => DType::BF16,
        }
    }

    /// The name the hub's `torch_dtype` uses.
    fn torch_name(self) -> &'static str {
        match self {
            ExportDtype::F32 => "float32",
            ExportDtype::F16 => "float16",
            ExportDtype::Bf16 => "bfloat16",
        }
    }
}

/// The tokenizer of a model folder: `tokenizer.json`, or the reference
/// notebook's `vocab.json` (the tokens in id order).
pub fn load_vocabulary(dir: &Path) -> Result<Vocabulary> {
    let tokenizer = dir.join(TOKENIZER_FILE);
    if tokenizer.is_file() {
        return Vocabulary::load(&tokenizer)
            .with_context(|| format!("cannot read {}", tokenizer.display()));
    }
    let vocab = dir.join("vocab.json");
    if vocab.is_file() {
        let text = fs::read_to_string(&vocab)
            .with_context(|| format!("cannot read {}", vocab.display()))?;
        let words: Vec<String> = serde_json::from_str(&text)
            .with_context(|| format!("{}: expected a JSON list of tokens", vocab.display()))?;
        let tokens = words
            .iter()
            .map(|w| w.parse::<Token>())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("in {}", vocab.display()))?;
        return Vocabulary::from_tokens(tokens).with_context(|| format!("in {}", vocab.display()));
    }
    bail!(
        "{} has no tokenizer.json (or vocab.json): a model needs its vocabulary",
        dir.display()
    )
}

/// The model and vocabulary of a folder, checked to belong together.
pub fn load_model_folder(
    dir: &Path,
    device: &Device,
) -> Result<(lstm_candle::MelodyModel, Vocabulary)> {
    let model = lstm_candle::load_checkpoint(dir, device)
        .with_context(|| format!("cannot load the model in {}", dir.display()))?;
    let vocabulary = load_vocabulary(dir)?;
    if vocabulary.len() != model.config.vocab_size {
        bail!(
            "{}: the model has {} tokens but its tokenizer has {}",
            dir.display(),
            model.config.vocab_size,
            vocabulary.len()
        );
    }
    Ok((model, vocabulary))
}

/// Reads a JSON file into a value, naming the file on failure.
fn read_json(path: &Path) -> Result<Value> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// What `export` wrote.
pub struct Exported {
    pub files: Vec<PathBuf>,
}

/// Writes the model in `run` (a run folder or any model folder) to `out` in the
/// hub layout. Exporting an exported folder again gives the same bytes.
pub fn export(run: &Path, out: &Path, dtype: ExportDtype, repo: &str) -> Result<Exported> {
    let (model, vocabulary) = load_model_folder(run, &Device::Cpu)?;
    let run_config = run.join(CONFIG_FILE);
    let mut config = if run_config.is_file() {
        read_json(&run_config)?
    } else {
        json!({})
    };
    // The architecture always comes from the loaded model, so a config
    // inferred from bare PyTorch weights is written out in full.
    let architecture = serde_json::to_value(&model.config)?;
    let object = config
        .as_object_mut()
        .with_context(|| format!("{} is not a JSON object", run_config.display()))?;
    for (key, value) in architecture.as_object().expect("a struct") {
        object.insert(key.clone(), value.clone());
    }
    object.insert("model_type".into(), json!("esac-melody-lstm"));
    object.insert("architectures".into(), json!(["LSTMModel"]));
    object.insert("torch_dtype".into(), json!(dtype.torch_name()));

    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf> {
        let path = out.join(name);
        trainer::write_atomic(&path, bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    };
    let tensors: Vec<(String, candle_core::Tensor)> = model
        .parameters()
        .into_iter()
        .map(|(name, var)| (name, var.as_tensor().clone()))
        .collect();
    let mut files = vec![
        write(
            WEIGHTS_FILE,
            &tensors_to_safetensors_as(&tensors, dtype.dtype())?,
        )?,
        write(
            CONFIG_FILE,
            format!("{}\n", serde_json::to_string_pretty(&config)?).as_bytes(),
        )?,
        write(TOKENIZER_FILE, vocabulary.to_json().as_bytes())?,
    ];
    let generation = json!({
        "temperature": 1.0,
        "top_k": null,
        "top_p": null,
        "max_length": DEFAULT_MAX_LENGTH,
        "end_token": Token::END,
        "end_token_id": vocabulary.id(Token::End),
        "start_token_id": vocabulary.id(Token::End),
        "grammar": true,
    });
    files.push(write(
        GENERATION_FILE,
        format!("{}\n", serde_json::to_string_pretty(&generation)?).as_bytes(),
    )?);
    for name in EXTRA_FILES {
        let source = run.join(name);
        if source.is_file() && source != out.join(name) {
            let bytes =
                fs::read(&source).with_context(|| format!("cannot read {}", source.display()))?;
            files.push(write(name, &bytes)?);
        } else if source.is_file() {
            files.push(source);
        }
    }
    let has_loss_curve = out.join("loss.png").is_file();
    files.push(write(
        CARD_FILE,
        model_card(&config, repo, has_loss_curve).as_bytes(),
    )?);
    Ok(Exported { files })
}

fn number(value: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(value, |v, key| v.get(key))?.as_f64()
}

fn text(value: &Value, path: &[&str]) -> Option<String> {
    let found = path.iter().try_fold(value, |v, key| v.get(key))?;
    Some(match found {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The model card: YAML front matter for the hub, then what a user needs to
/// know to trust and use the model.
fn model_card(config: &Value, repo: &str, has_loss_curve: bool) -> String {
    let unknown = || "not recorded".to_owned();
    let nll = number(config, &["metrics", "test", "nll_per_token"]);
    let metric =
        |v: Option<f64>, digits: usize| v.map_or_else(unknown, |v| format!("{v:.digits$}"));
    let percent = |v: Option<f64>| v.map_or_else(unknown, |v| format!("{:.1}%", v * 100.0));
    let model_index = nll.map_or_else(String::new, |nll| {
        format!(
            "model-index:\n- name: {name}\n  results:\n  - task:\n      type: text-generation\n      name: Next-token prediction over whole songs\n    dataset:\n      type: essen-folksong-collection\n      name: Essen Folk Song Collection (deutschl/erk), test split\n    metrics:\n    - type: nll\n      name: Test NLL per token (nats)\n      value: {nll:.4}\n    - type: perplexity\n      value: {ppl:.4}\n",
            name = repo.rsplit('/').next().unwrap_or(repo),
            ppl = nll.exp(),
        )
    });
    let hidden = text(config, &["hidden_size"]).unwrap_or_else(unknown);
    let layers = text(config, &["num_layers"]).unwrap_or_else(unknown);
    let vocab = text(config, &["vocab_size"]).unwrap_or_else(unknown);
    let embedding = text(config, &["embedding_dim"]).unwrap_or_else(unknown);
    let dropout = text(config, &["dropout"]).unwrap_or_else(unknown);
    let training = config.get("training").map_or_else(unknown, |t| {
        format!(
            "objective `{}` on `{}` windows of {} tokens, batch {}, Adam lr {} ({} schedule, {} warm-up steps), gradient clipping {}, {} epochs, early-stopping patience {}, seed {}",
            text(t, &["objective"]).unwrap_or_else(unknown),
            text(t, &["windows"]).unwrap_or_else(unknown),
            text(t, &["seq_len"]).unwrap_or_else(unknown),
            text(t, &["batch_size"]).unwrap_or_else(unknown),
            text(t, &["lr"]).unwrap_or_else(unknown),
            t.get("schedule").map_or_else(unknown, |s| match s {
                Value::Object(kind) => kind.keys().cloned().collect::<Vec<_>>().join(", "),
                other => other.as_str().map_or_else(|| other.to_string(), str::to_owned),
            }),
            text(t, &["warmup_steps"]).unwrap_or_else(unknown),
            text(t, &["clip_norm"]).unwrap_or_else(unknown),
            text(t, &["epochs"]).unwrap_or_else(unknown),
            text(t, &["patience"]).unwrap_or_else(unknown),
            text(t, &["seed"]).unwrap_or_else(unknown),
        )
    });
    let split = config.get("dataset").map_or_else(unknown, |d| {
        format!(
            "{} training, {} validation and {} test songs ({} training tokens); dataset fingerprint `{}`",
            text(d, &["train_songs"]).unwrap_or_else(unknown),
            text(d, &["val_songs"]).unwrap_or_else(unknown),
            text(d, &["test_songs"]).unwrap_or_else(unknown),
            text(d, &["train_tokens"]).unwrap_or_else(unknown),
            text(d, &["fingerprint"]).unwrap_or_else(unknown),
        )
    });
    let loss_curve = if has_loss_curve {
        "\n![Training and validation loss](loss.png)\n"
    } else {
        ""
    };
    format!(
        r#"---
license: mit
library_name: esac-melody
pipeline_tag: text-generation
tags:
- music
- symbolic-music
- folk-music
- melody-generation
- lstm
- candle
- essen-folksong-collection
{model_index}---

# {repo}

A character-level LSTM that writes German folk melodies, one sixteenth note at a
time, trained by [esac-melody](https://github.com/esac-melody/esac-melody) (Rust,
Candle). It reimplements the well-known PyTorch notebook that trains an LSTM on the
Essen collection, and trains on every position of whole songs instead of only the
last token of 64-token windows.

## Model

`Embedding({vocab}, {embedding}) -> LSTM(hidden {hidden}, {layers} layer(s)) ->
Dropout({dropout}) -> Linear({hidden}, {vocab})`. The weights in `model.safetensors`
carry PyTorch's parameter names (`embedding.weight`, `lstm.weight_ih_l0`, ...,
`fc.weight`, `fc.bias`), so the reference notebook's `LSTMModel` loads them with
`load_state_dict(strict=True)`.

## Data and preprocessing

- The Essen Folk Song Collection (EsAC), German songs of the `deutschl/erk` set
  (1,700 songs in Humdrum `**kern`, as distributed at kern.humdrum.org).
- Each song is moved to C major or A minor and written on a 1/16 grid: a MIDI pitch
  number starts a note, `r` a rest, `_` holds the previous one for another sixteenth,
  and `.` ends the song. Songs whose notes do not fall on the grid are left out, with
  the reason recorded.
- Split by song, 80/10/10: {split}.

## Training

{training}.

## Results

Measured over whole held-out songs, each read from its start (how generation uses
the model):

| test NLL per token | perplexity | next-token accuracy |
|---|---|---|
| {nll_text} nats | {ppl} | {accuracy} |
{loss_curve}
## Use

```sh
cargo xtask-hub sample --model hub:{repo} --prime "55 _ _ _" --num 4 --temperature 0.9
```

This writes each melody as tokens, MIDI, MusicXML, WAV and a piano-roll PNG.
`generation_config.json` holds the default sampling settings. From Python, load the
weights into the reference notebook's `LSTMModel` with `safetensors.torch.load_file`
and `load_state_dict(strict=True)`; `tokenizer.json` is a `tokenizers` WordLevel
tokenizer over the tokens above.

## Limitations

- It knows one small repertoire: about 1,350 German folk songs, all moved to C major or
  A minor. It writes single-line melodies with no lyrics, dynamics or harmony.
- It has no idea of bars: the meter and key of a score come from the sampling command.
- Sampled melodies can run on without a clear ending, or repeat phrases from the
  training songs; `cargo xtask judge` measures both.
"#,
        nll_text = metric(nll, 4),
        ppl = metric(nll.map(f64::exp), 3),
        accuracy = percent(number(config, &["metrics", "test", "accuracy"])),
    )
}

/// Prints what a safetensors file or a model folder holds, refusing malformed
/// files with the reason.
pub fn inspect(path: &Path) -> Result<String> {
    let (weights, dir) = if path.is_dir() {
        (path.join(WEIGHTS_FILE), Some(path))
    } else {
        (path.to_owned(), None)
    };
    let summary = describe_safetensors(&weights)?;
    let mut out = format!(
        "{}: {} bytes, header {} bytes\n",
        weights.display(),
        summary.bytes,
        summary.header_bytes
    );
    for (key, value) in &summary.metadata {
        out += &format!("  metadata {key} = {value}\n");
    }
    let mut parameters = 0usize;
    out += &format!(
        "  {:<24} {:<6} {:>12} {:>10}\n",
        "tensor", "dtype", "shape", "values"
    );
    for (name, dtype, shape) in &summary.tensors {
        let count: usize = shape.iter().product();
        parameters += count;
        out += &format!(
            "  {:<24} {:<6} {:>12} {:>10}\n",
            name,
            dtype,
            format!("{shape:?}"),
            count
        );
    }
    out += &format!("  {} tensors, {parameters} values\n", summary.tensors.len());
    if let Some(dir) = dir {
        for name in [CONFIG_FILE, GENERATION_FILE] {
            let path = dir.join(name);
            if path.is_file() {
                let value = read_json(&path)?;
                out += &format!(
                    "{}:\n{}\n",
                    path.display(),
                    serde_json::to_string_pretty(&value)?
                );
            }
        }
        match lstm_candle::load_checkpoint(dir, &Device::Cpu) {
            Ok(model) => {
                let c = &model.config;
                out += &format!(
                    "loads as: vocabulary {}, embedding {}, hidden {}, {} layer(s), dropout {}\n",
                    c.vocab_size, c.embedding_dim, c.hidden_size, c.num_layers, c.dropout
                );
            }
            Err(e) => bail!("{}: does not load as a model: {e}", dir.display()),
        }
        match load_vocabulary(dir) {
            Ok(v) => out += &format!("vocabulary: {} tokens\n", v.len()),
            Err(e) => out += &format!("vocabulary: {e:#}\n"),
        }
    }
    Ok(out)
}
