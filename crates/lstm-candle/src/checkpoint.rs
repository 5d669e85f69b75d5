//! The checkpoint format: a folder with `config.json` (the [`ModelConfig`]) and
//! `model.safetensors` (f32 tensors under PyTorch's names, `{"format": "pt"}`
//! metadata), which PyTorch's `load_state_dict(strict=True)` accepts as is.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use thiserror::Error;

use crate::model::{MelodyModel, ModelConfig, ModelError};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("{path}: bad configuration: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Model { path: PathBuf, source: ModelError },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a
/// rename, so that a crash leaves the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Serialises named tensors as f32 safetensors with PyTorch metadata.
pub fn tensors_to_safetensors(tensors: &[(String, Tensor)]) -> Result<Vec<u8>, ModelError> {
    let mut owned = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let values: Vec<f32> = tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        owned.push((name.clone(), tensor.dims().to_vec(), bytes));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(name, shape, bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .expect("shape and byte count agree");
            (name.clone(), view)
        })
        .collect();
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| ModelError::Config(format!("cannot serialise weights: {e}")))
}

/// Writes `config.json` and `model.safetensors` into `dir` (created if needed).
pub fn save_checkpoint(model: &MelodyModel, dir: &Path) -> Result<(), CheckpointError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let tensors: Vec<(String, Tensor)> = model
        .parameters()
        .into_iter()
        .map(|(name, var)| (name, var.as_tensor().clone()))
        .collect();
    let bytes = tensors_to_safetensors(&tensors).map_err(|source| CheckpointError::Model {
        path: weights_path.clone(),
        source,
    })?;
    write_atomic(&weights_path, &bytes).map_err(io_error(&weights_path))?;
    let config = serde_json::to_string_pretty(&model.config).expect("config serialises");
    let config_path = dir.join(CONFIG_FILE);
    write_atomic(&config_path, config.as_bytes()).map_err(io_error(&config_path))
}

/// Reads named tensors from a safetensors file, refusing malformed ones with a reason.
pub fn read_safetensors(
    path: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, CheckpointError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    let weights_error = |message: String| CheckpointError::Weights {
        path: path.to_owned(),
        message,
    };
    let parsed =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| weights_error(e.to_string()))?;
    let mut tensors = HashMap::new();
    for (name, view) in parsed.tensors() {
        let tensor = match view.dtype() {
            safetensors::Dtype::F32 => {
                let values: Vec<f32> = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Tensor::from_vec(values, view.shape(), device)
            }
            other => {
                return Err(weights_error(format!(
                    "tensor {name} is {other:?}; only F32 is read"
                )));
            }
        }
        .map_err(|e| weights_error(e.to_string()))?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

/// Loads a checkpoint folder. Without `config.json` the configuration is read off
/// the tensor shapes (dropout 0.2), which is how a bare PyTorch `state_dict` loads.
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<MelodyModel, CheckpointError> {
    let weights_path = dir.join(WEIGHTS_FILE);
    let tensors = read_safetensors(&weights_path, device)?;
    let config_path = dir.join(CONFIG_FILE);
    let config = if config_path.exists() {
        let text = fs::read_to_string(&config_path).map_err(io_error(&config_path))?;
        serde_json::from_str::<ModelConfig>(&text).map_err(|e| CheckpointError::Config {
            path: config_path.clone(),
            message: e.to_string(),
        })?
    } else {
        let shapes = tensors
            .iter()
            .map(|(name, t)| (name.clone(), t.dims().to_vec()))
            .collect();
        ModelConfig::infer(&shapes, 0.2).map_err(|source| CheckpointError::Model {
            path: weights_path.clone(),
            source,
        })?
    };
    MelodyModel::from_tensors(config, tensors, device, DType::F32).map_err(|source| {
        CheckpointError::Model {
            path: weights_path,
            source,
        }
    })
}
