//! A trained melody model as one folder: weights, config, tokenizer, encoding, generation defaults and card.
//!
//! [`ModelFolder`] loads one from a local folder (a run folder, an exported
//! folder, or the reference notebook's bare `model.safetensors` with its
//! `vocab.json`), or through [`ModelRef`] from the hub (`hub:OWNER/NAME`, with
//! the `hub` feature); it checks that the parts agree, and [`ModelFolder::export`]
//! writes it in the Hugging Face layout, atomically. `config.json` holds the
//! architecture (what `lstm-candle` reads), the [`Encoding`] of the tokens, and
//! whatever the training recorded (hyper-parameters, data, metrics).

mod card;
pub mod hub;
mod inspect;

use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use grid_codec::{Conditioning, Encoding, Token, VocabError, Vocabulary};
pub use lstm_candle::checkpoint::{CONFIG_FILE, WEIGHTS_FILE};
use lstm_candle::checkpoint::{tensors_to_safetensors_as, write_atomic};
use lstm_candle::{CheckpointError, MelodyModel, StepWeights};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

pub use hub::{HubRef, ModelRef};
pub use inspect::inspect;

pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const GENERATION_FILE: &str = "generation_config.json";
pub const CARD_FILE: &str = "README.md";
/// The reference notebook's vocabulary: its tokens in id order.
pub const REFERENCE_VOCAB_FILE: &str = "vocab.json";
/// The prepared data a run folder keeps beside its model.
pub const DATA_DIR: &str = "data";
/// Files of a run copied as they are when present: the card shows the loss
/// curve, and the rest is there for whoever wants to look deeper.
const EXTRA_FILES: [&str; 3] = ["metrics.json", "loss.png", "model.dot"];

#[derive(Debug, Error)]
pub enum FolderError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot load the model in {dir}: {source}")]
    Checkpoint {
        dir: PathBuf,
        source: Box<CheckpointError>,
    },
    #[error(transparent)]
    Weights(Box<CheckpointError>),
    #[error("{path}: {source}")]
    Vocabulary { path: PathBuf, source: VocabError },
    #[error("{0} has no tokenizer.json (or vocab.json): a model needs its vocabulary")]
    NoVocabulary(PathBuf),
    #[error("{dir}: the model has {model} tokens but its tokenizer has {tokenizer}")]
    Mismatch {
        dir: PathBuf,
        model: usize,
        tokenizer: usize,
    },
    #[error(
        "no model at {0} (expected model.safetensors with config.json and tokenizer.json); train one with `cargo xtask train`"
    )]
    NotAModel(PathBuf),
    #[error("{0} exists and is not a model folder; export into a new folder or an earlier export")]
    OutNotAModel(PathBuf),
    #[error("{0}")]
    Hub(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FolderError + '_ {
    move |source| FolderError::Io {
        path: path.to_owned(),
        source,
    }
}

fn invalid(path: &Path, message: impl ToString) -> FolderError {
    FolderError::Invalid {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// `generation_config.json`: the sampling settings a model is meant to be used
/// with, which `sample` takes as its defaults. Fields are in the file's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    pub end_token: String,
    pub end_token_id: Option<u32>,
    /// Never start with `_` and never end a melody that holds no note.
    pub grammar: bool,
    /// Tokens to generate at most after the primer.
    pub max_length: usize,
    pub start_token_id: Option<u32>,
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    /// For a conditioned model: how strongly each asked mode is guided (see
    /// `sampler::Contrast`); absent means not at all.
    #[serde(skip_serializing_if = "ModeGuidance::is_none")]
    pub mode_guidance: ModeGuidance,
    /// How generation holds the LSTM weights; absent means f32, as trained.
    #[serde(skip_serializing_if = "is_f32")]
    pub step_weights: StepWeights,
}

fn is_f32(weights: &StepWeights) -> bool {
    *weights == StepWeights::F32
}

/// Guidance weight towards each asked mode, measured per model: guiding
/// minor melodies away from major can push them into raised notes that sound
/// major, so the two get their own weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModeGuidance {
    pub major: f64,
    pub minor: f64,
}

impl ModeGuidance {
    fn is_none(&self) -> bool {
        *self == Self::default()
    }

    /// The weight for a melody asked to be minor (or major).
    pub fn weight(&self, minor: bool) -> f64 {
        if minor { self.minor } else { self.major }
    }
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            end_token: Token::END.to_owned(),
            end_token_id: Some(0),
            grammar: true,
            max_length: 500,
            start_token_id: Some(0),
            temperature: 1.0,
            top_k: None,
            top_p: None,
            mode_guidance: ModeGuidance::default(),
            step_weights: StepWeights::F32,
        }
    }
}

impl GenerationConfig {
    fn to_json(&self) -> String {
        format!(
            "{}\n",
            serde_json::to_string_pretty(self).expect("a generation config serialises")
        )
    }
}

/// A trained model with everything needed to use it.
pub struct ModelFolder {
    /// Where it was loaded from (for a hub model, its snapshot in the hub cache).
    pub dir: PathBuf,
    pub model: MelodyModel,
    pub vocabulary: Vocabulary,
    /// How its tokens were encoded.
    pub encoding: Encoding,
    /// False when the folder does not say (written before encodings were
    /// stored, or the reference notebook's weights): `encoding` is then the
    /// reference's, which is how all of those were made.
    pub encoding_stated: bool,
    pub generation: GenerationConfig,
    /// The values of its side inputs, when the model reads them.
    pub conditioning: Option<Conditioning>,
    /// `config.json` as written (an empty object for bare weights).
    pub config: Value,
}

impl std::fmt::Debug for ModelFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFolder")
            .field("dir", &self.dir)
            .field("model", &self.model.config)
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

/// The vocabulary of a model folder: `tokenizer.json`, or the reference
/// notebook's `vocab.json` (the tokens in id order).
pub fn load_vocabulary(dir: &Path) -> Result<Vocabulary, FolderError> {
    let tokenizer = dir.join(TOKENIZER_FILE);
    if tokenizer.is_file() {
        return Vocabulary::load(&tokenizer).map_err(|source| FolderError::Vocabulary {
            path: tokenizer,
            source,
        });
    }
    let vocab = dir.join(REFERENCE_VOCAB_FILE);
    if vocab.is_file() {
        let text = fs::read_to_string(&vocab).map_err(io(&vocab))?;
        let words: Vec<String> = serde_json::from_str(&text)
            .map_err(|e| invalid(&vocab, format!("expected a JSON list of tokens: {e}")))?;
        let tokens = words
            .iter()
            .map(|w| w.parse::<Token>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&vocab, e))?;
        return Vocabulary::from_tokens(tokens).map_err(|source| FolderError::Vocabulary {
            path: vocab,
            source,
        });
    }
    Err(FolderError::NoVocabulary(dir.to_owned()))
}

fn read_json(path: &Path) -> Result<Value, FolderError> {
    let text = fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| invalid(path, format!("not valid JSON: {e}")))
}

impl ModelFolder {
    /// Loads a local model folder and checks that its parts agree.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, FolderError> {
        if !dir.join(WEIGHTS_FILE).is_file() {
            return Err(FolderError::NotAModel(dir.to_owned()));
        }
        let mut model = lstm_candle::load_checkpoint(dir, device).map_err(|source| {
            FolderError::Checkpoint {
                dir: dir.to_owned(),
                source: Box::new(source),
            }
        })?;
        let vocabulary = load_vocabulary(dir)?;
        if vocabulary.len() != model.config.vocab_size {
            return Err(FolderError::Mismatch {
                dir: dir.to_owned(),
                model: model.config.vocab_size,
                tokenizer: vocabulary.len(),
            });
        }
        let config_path = dir.join(CONFIG_FILE);
        let config = if config_path.is_file() {
            read_json(&config_path)?
        } else {
            json!({})
        };
        if !config.is_object() {
            return Err(invalid(&config_path, "not a JSON object"));
        }
        let (encoding, encoding_stated) = match config.get("encoding") {
            Some(value) => (
                Encoding::deserialize(value)
                    .map_err(|e| invalid(&config_path, format!("bad \"encoding\": {e}")))?,
                true,
            ),
            None => (Encoding::reference(), false),
        };
        let conditioning = match config.get("conditioning") {
            Some(value) => Some(
                Conditioning::deserialize(value)
                    .map_err(|e| invalid(&config_path, format!("bad \"conditioning\": {e}")))?,
            ),
            None => None,
        };
        let reads: Vec<(String, usize)> = model
            .config
            .side_inputs
            .iter()
            .map(|side| (side.name.clone(), side.size))
            .collect();
        let told = conditioning
            .as_ref()
            .map(Conditioning::inputs)
            .unwrap_or_default();
        if reads != told {
            return Err(invalid(
                &config_path,
                format!(
                    "the weights read the side inputs {reads:?}, but \"conditioning\" gives {told:?}; they do not belong together"
                ),
            ));
        }
        if let Some(lookback) = conditioning.as_ref().and_then(|c| c.lookback.as_ref())
            && lookback.tokens as usize != vocabulary.len()
        {
            return Err(invalid(
                &config_path,
                format!(
                    "\"conditioning\" looks back over {} tokens, but the vocabulary has {}; they do not belong together",
                    lookback.tokens,
                    vocabulary.len()
                ),
            ));
        }
        let generation_path = dir.join(GENERATION_FILE);
        let generation = if generation_path.is_file() {
            GenerationConfig::deserialize(read_json(&generation_path)?)
                .map_err(|e| invalid(&generation_path, e))?
        } else {
            GenerationConfig::default()
        };
        let end = vocabulary.id(Token::End);
        for (name, id) in [
            ("end_token_id", generation.end_token_id),
            ("start_token_id", generation.start_token_id),
        ] {
            if id.is_some() && id != end {
                return Err(invalid(
                    &generation_path,
                    format!(
                        "{name} is {id:?} but the tokenizer gives `.` the id {end:?}; they do not belong together"
                    ),
                ));
            }
        }
        model.set_step_weights(generation.step_weights);
        Ok(Self {
            dir: dir.to_owned(),
            model,
            vocabulary,
            encoding,
            encoding_stated,
            generation,
            conditioning,
            config,
        })
    }

    /// Loads the model a `--model` argument names: a local folder, or a hub
    /// model downloaded (and checked) into the hub cache.
    pub fn open(model: &ModelRef, device: &Device) -> Result<Self, FolderError> {
        Self::load(&model.local_dir()?, device)
    }

    /// The prepared data beside the model, when it is a run folder.
    pub fn data_dir(&self) -> Option<PathBuf> {
        let data = self.dir.join(DATA_DIR);
        data.join("songs.jsonl").is_file().then_some(data)
    }

    /// The songs the model was trained on, as `train` was given them
    /// (`config.json`'s `dataset.source`: paths relative to where it ran, or
    /// several joined by ", "), when its config says.
    pub fn trained_on(&self) -> Option<&str> {
        self.config.get("dataset")?.get("source")?.as_str()
    }

    /// The configuration an export writes: the folder's own, with the
    /// architecture from the loaded model (so a config inferred from bare
    /// weights is written out in full) and the hub's fields.
    fn export_config(&self, dtype: DType) -> Value {
        let mut config = self.config.clone();
        let object = config.as_object_mut().expect("checked on load");
        let architecture = serde_json::to_value(&self.model.config).expect("a config serialises");
        for (key, value) in architecture.as_object().expect("a struct") {
            object.insert(key.clone(), value.clone());
        }
        object.insert("model_type".into(), json!("esac-melody-lstm"));
        object.insert("architectures".into(), json!(["LSTMModel"]));
        object.insert("torch_dtype".into(), json!(torch_name(dtype)));
        config
    }

    /// Writes the model to `out` in the hub layout: `model.safetensors` in
    /// `dtype`, `config.json`, `tokenizer.json`, `generation_config.json`, the
    /// run's `metrics.json`, `loss.png` and `model.dot` when it has them, and a
    /// model card naming `repo`. The folder is written beside `out` and moved
    /// into place whole, so `out` is the old export or the new one, never half
    /// of each; exporting an exported folder gives the same bytes.
    pub fn export(
        &self,
        out: &Path,
        dtype: DType,
        repo: &str,
    ) -> Result<Vec<PathBuf>, FolderError> {
        if out.exists() && !out.join(WEIGHTS_FILE).is_file() && !is_empty_dir(out) {
            return Err(FolderError::OutNotAModel(out.to_owned()));
        }
        let name = out
            .file_name()
            .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(io(parent))?;
        let staging = parent.join(format!(".{name}.export-{}", std::process::id()));
        let result = self.write_export(&staging, dtype, repo);
        if let Err(error) = result {
            let _ = fs::remove_dir_all(&staging);
            return Err(error);
        }
        let written = result.expect("checked above");
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        if out.exists() {
            fs::rename(out, &old).map_err(io(out))?;
        }
        if let Err(source) = fs::rename(&staging, out) {
            // Put the old export back rather than leave nothing.
            let _ = fs::rename(&old, out);
            let _ = fs::remove_dir_all(&staging);
            return Err(FolderError::Io {
                path: out.to_owned(),
                source,
            });
        }
        let _ = fs::remove_dir_all(&old);
        Ok(written.into_iter().map(|name| out.join(name)).collect())
    }

    /// Writes every file of an export into `dir`; returns their names.
    fn write_export(
        &self,
        dir: &Path,
        dtype: DType,
        repo: &str,
    ) -> Result<Vec<String>, FolderError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut names = Vec::new();
        let mut write = |name: &str, bytes: &[u8]| -> Result<(), FolderError> {
            let path = dir.join(name);
            write_atomic(&path, bytes).map_err(io(&path))?;
            names.push(name.to_owned());
            Ok(())
        };
        let tensors = self.model.tensors();
        let weights = tensors_to_safetensors_as(&tensors, dtype)
            .map_err(|e| invalid(&dir.join(WEIGHTS_FILE), e))?;
        write(WEIGHTS_FILE, &weights)?;
        let config = self.export_config(dtype);
        write(
            CONFIG_FILE,
            format!("{}\n", serde_json::to_string_pretty(&config).expect("JSON")).as_bytes(),
        )?;
        write(TOKENIZER_FILE, self.vocabulary.to_json().as_bytes())?;
        let generation = GenerationConfig {
            end_token_id: self.vocabulary.id(Token::End),
            start_token_id: self.vocabulary.id(Token::End),
            ..self.generation.clone()
        };
        write(GENERATION_FILE, generation.to_json().as_bytes())?;
        let mut has_loss_curve = false;
        for name in EXTRA_FILES {
            let source = self.dir.join(name);
            if source.is_file() {
                let bytes = fs::read(&source).map_err(io(&source))?;
                write(name, &bytes)?;
                has_loss_curve |= name == "loss.png";
            }
        }
        // The prepared data's report, beside a run, tells the card what was dropped.
        let report = fs::read_to_string(self.dir.join("data").join("report.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok());
        let card = card::model_card(
            &config,
            &self.encoding,
            report.as_ref(),
            repo,
            has_loss_curve,
        );
        write(CARD_FILE, card.as_bytes())?;
        Ok(names)
    }
}

/// Writes a model's own files into `dir`: `model.safetensors` (f32, PyTorch's
/// names), `config.json` (`config`, which holds the architecture and may hold
/// more, such as a training run's settings) and `tokenizer.json`, each through a
/// temporary file and a rename. What a training run writes for its best model.
pub fn write_model(
    dir: &Path,
    model: &MelodyModel,
    vocabulary: &Vocabulary,
    config: &impl Serialize,
) -> Result<(), FolderError> {
    if vocabulary.len() != model.config.vocab_size {
        return Err(FolderError::Mismatch {
            dir: dir.to_owned(),
            model: model.config.vocab_size,
            tokenizer: vocabulary.len(),
        });
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tensors = model.tensors();
    let weights_path = dir.join(WEIGHTS_FILE);
    let weights =
        tensors_to_safetensors_as(&tensors, DType::F32).map_err(|e| invalid(&weights_path, e))?;
    write_atomic(&weights_path, &weights).map_err(io(&weights_path))?;
    let config_path = dir.join(CONFIG_FILE);
    let text = serde_json::to_string_pretty(config).map_err(|e| invalid(&config_path, e))?;
    write_atomic(&config_path, text.as_bytes()).map_err(io(&config_path))?;
    let tokenizer_path = dir.join(TOKENIZER_FILE);
    write_atomic(&tokenizer_path, vocabulary.to_json().as_bytes()).map_err(io(&tokenizer_path))
}

fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

/// The name the hub's `torch_dtype` uses.
fn torch_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        _ => "float32",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lstm_candle::ModelConfig;

    fn tiny(dir: &Path, config: Value) -> Vocabulary {
        let vocabulary =
            Vocabulary::build([grid_codec::parse_tokens("60 _ 62 r").unwrap().as_slice()]);
        let model_config = ModelConfig {
            vocab_size: vocabulary.len(),
            embedding_dim: 3,
            hidden_size: 4,
            num_layers: 1,
            dropout: 0.0,
            side_inputs: Vec::new(),
        };
        let model = MelodyModel::new(model_config, &Device::Cpu, DType::F32, 1).unwrap();
        lstm_candle::save_checkpoint(&model, dir).unwrap();
        let mut full = serde_json::to_value(&model.config).unwrap();
        for (k, v) in config.as_object().unwrap() {
            full[k] = v.clone();
        }
        fs::write(dir.join(CONFIG_FILE), full.to_string()).unwrap();
        vocabulary.save(&dir.join(TOKENIZER_FILE)).unwrap();
        vocabulary
    }

    #[test]
    fn a_folder_without_an_encoding_is_read_as_the_references_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        tiny(dir.path(), json!({}));
        let folder = ModelFolder::load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(folder.encoding, Encoding::reference());
        assert!(!folder.encoding_stated);
        assert_eq!(folder.generation, GenerationConfig::default());
        assert_eq!(folder.data_dir(), None);
    }

    #[test]
    fn the_encoding_and_generation_defaults_are_read_and_exported() {
        let dir = tempfile::tempdir().unwrap();
        let none = Encoding {
            transposition: grid_codec::Transposition::None,
            ..Encoding::reference()
        };
        tiny(dir.path(), json!({ "encoding": none }));
        fs::write(
            dir.path().join(GENERATION_FILE),
            r#"{"temperature": 0.8, "top_p": 0.9, "max_length": 64, "step_weights": "bf16"}"#,
        )
        .unwrap();
        let folder = ModelFolder::load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(folder.encoding, none);
        assert!(folder.encoding_stated);
        assert_eq!(folder.generation.temperature, 0.8);
        assert_eq!(folder.generation.top_p, Some(0.9));
        assert_eq!(folder.generation.max_length, 64);
        assert_eq!(folder.model.step_weights(), StepWeights::Bf16);
        assert!(
            folder.generation.grammar,
            "unnamed settings keep their defaults"
        );
        let out = dir.path().join("export");
        folder.export(&out, DType::F32, "me/tiny").unwrap();
        let again = ModelFolder::load(&out, &Device::Cpu).unwrap();
        assert_eq!(again.encoding, none);
        assert_eq!(again.generation, folder.generation);
        assert_eq!(again.model.step_weights(), StepWeights::Bf16);
        // Exporting the export gives the same bytes.
        let twice = dir.path().join("twice");
        again.export(&twice, DType::F32, "me/tiny").unwrap();
        for name in [
            WEIGHTS_FILE,
            CONFIG_FILE,
            TOKENIZER_FILE,
            GENERATION_FILE,
            CARD_FILE,
        ] {
            assert_eq!(
                fs::read(out.join(name)).unwrap(),
                fs::read(twice.join(name)).unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn parts_that_do_not_agree_are_refused_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        tiny(dir.path(), json!({ "encoding": {"step": 3} }));
        let error = ModelFolder::load(dir.path(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(error.contains("config.json: bad \"encoding\""), "{error}");
        tiny(dir.path(), json!({}));
        fs::write(dir.path().join(GENERATION_FILE), r#"{"end_token_id": 3}"#).unwrap();
        let error = ModelFolder::load(dir.path(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(error.contains("end_token_id is Some(3)"), "{error}");
        fs::write(
            dir.path().join(GENERATION_FILE),
            r#"{"step_weights": "int8"}"#,
        )
        .unwrap();
        let error = ModelFolder::load(dir.path(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("generation_config.json") && error.contains("`f32` or `bf16`"),
            "{error}"
        );
        fs::remove_file(dir.path().join(GENERATION_FILE)).unwrap();
        Vocabulary::build([grid_codec::parse_tokens("60 61 62").unwrap().as_slice()])
            .save(&dir.path().join(TOKENIZER_FILE))
            .unwrap();
        let error = ModelFolder::load(dir.path(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("the model has 5 tokens but its tokenizer has 6"),
            "{error}"
        );
        let error = ModelFolder::load(&dir.path().join("nothing"), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("no model at"), "{error}");
    }

    #[test]
    fn export_refuses_to_replace_a_folder_that_is_not_a_model() {
        let dir = tempfile::tempdir().unwrap();
        tiny(dir.path(), json!({}));
        let folder = ModelFolder::load(dir.path(), &Device::Cpu).unwrap();
        let out = dir.path().join("mine");
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("notes.txt"), "keep me").unwrap();
        let error = folder.export(&out, DType::F32, "me/tiny").unwrap_err();
        assert!(matches!(error, FolderError::OutNotAModel(_)), "{error}");
        assert_eq!(
            fs::read_to_string(out.join("notes.txt")).unwrap(),
            "keep me"
        );
    }
}
