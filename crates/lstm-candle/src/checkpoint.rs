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
    tensors_to_safetensors_as(tensors, DType::F32)
}

/// Serialises named tensors in `dtype` (F32, F16 or BF16) with PyTorch metadata.
pub fn tensors_to_safetensors_as(
    tensors: &[(String, Tensor)],
    dtype: DType,
) -> Result<Vec<u8>, ModelError> {
    let stored = match dtype {
        DType::F32 => safetensors::Dtype::F32,
        DType::F16 => safetensors::Dtype::F16,
        DType::BF16 => safetensors::Dtype::BF16,
        other => {
            return Err(ModelError::Config(format!(
                "weights can be written as f32, f16 or bf16, not {other:?}"
            )));
        }
    };
    let mut owned = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let flat = tensor.to_dtype(dtype)?.flatten_all()?;
        let bytes: Vec<u8> = match dtype {
            DType::F16 => flat
                .to_vec1::<half::f16>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            DType::BF16 => flat
                .to_vec1::<half::bf16>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            _ => flat
                .to_vec1::<f32>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        };
        owned.push((name.clone(), tensor.dims().to_vec(), bytes));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(name, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(stored, shape.clone(), bytes)
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
    let tensors = model.tensors();
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
    safetensors_to_tensors(&bytes, device).map_err(|message| CheckpointError::Weights {
        path: path.to_owned(),
        message,
    })
}

/// Named tensors from safetensors bytes (F32, F16 or BF16; widened to F32), or
/// why the bytes are not a valid file.
pub fn safetensors_to_tensors(
    bytes: &[u8],
    device: &Device,
) -> Result<HashMap<String, Tensor>, String> {
    let parsed = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    // safetensors lists tensors in its hash map's order, which is seeded at
    // random per map: sorted, a file with several bad tensors names the same
    // one every time.
    let mut named = parsed.tensors();
    named.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
    let mut tensors = HashMap::new();
    for (name, view) in named {
        // Half-precision exports are widened on load; the model computes in f32.
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            other => {
                return Err(format!(
                    "tensor {name} is {other:?}; only F32, F16 and BF16 are read"
                ));
            }
        };
        let tensor = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), device)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| format!("tensor {name}: {e}"))?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

/// A model from checkpoint contents: safetensors bytes and, if there is one,
/// the text of `config.json` (else the configuration is read off the shapes).
/// Errors name `dir`'s files.
pub fn checkpoint_from_bytes(
    dir: &Path,
    weights: &[u8],
    config: Option<&str>,
    device: &Device,
) -> Result<MelodyModel, CheckpointError> {
    let weights_path = dir.join(WEIGHTS_FILE);
    let tensors =
        safetensors_to_tensors(weights, device).map_err(|message| CheckpointError::Weights {
            path: weights_path.clone(),
            message,
        })?;
    let config = match config {
        Some(text) => {
            serde_json::from_str::<ModelConfig>(text).map_err(|e| CheckpointError::Config {
                path: dir.join(CONFIG_FILE),
                message: e.to_string(),
            })?
        }
        None => {
            let shapes = tensors
                .iter()
                .map(|(name, t)| (name.clone(), t.dims().to_vec()))
                .collect();
            ModelConfig::infer(&shapes, 0.2).map_err(|source| CheckpointError::Model {
                path: weights_path.clone(),
                source,
            })?
        }
    };
    MelodyModel::from_tensors(config, tensors, device, DType::F32).map_err(|source| {
        CheckpointError::Model {
            path: weights_path,
            source,
        }
    })
}

/// What a safetensors file holds, read without loading it as a model.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetensorsSummary {
    pub bytes: usize,
    pub header_bytes: usize,
    /// `__metadata__`, sorted by key.
    pub metadata: Vec<(String, String)>,
    /// (name, dtype, shape), sorted by name.
    pub tensors: Vec<(String, String, Vec<usize>)>,
}

/// Reads a safetensors file's header and checks every tensor's offsets against
/// the data, refusing a malformed file with the reason.
pub fn describe_safetensors(path: &Path) -> Result<SafetensorsSummary, CheckpointError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    let weights_error = |e: safetensors::SafeTensorError| CheckpointError::Weights {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let (header_bytes, metadata) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(weights_error)?;
    let parsed = safetensors::SafeTensors::deserialize(&bytes).map_err(weights_error)?;
    let mut extra: Vec<(String, String)> = metadata
        .metadata()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    extra.sort();
    let mut tensors: Vec<(String, String, Vec<usize>)> = parsed
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, format!("{:?}", view.dtype()), view.shape().to_vec()))
        .collect();
    tensors.sort();
    Ok(SafetensorsSummary {
        bytes: bytes.len(),
        header_bytes,
        metadata: extra,
        tensors,
    })
}

/// Loads a checkpoint folder. Without `config.json` the configuration is read off
/// the tensor shapes (dropout 0.2), which is how a bare PyTorch `state_dict` loads.
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<MelodyModel, CheckpointError> {
    let weights_path = dir.join(WEIGHTS_FILE);
    let weights = fs::read(&weights_path).map_err(io_error(&weights_path))?;
    let config_path = dir.join(CONFIG_FILE);
    let config = if config_path.exists() {
        Some(fs::read_to_string(&config_path).map_err(io_error(&config_path))?)
    } else {
        None
    };
    checkpoint_from_bytes(dir, &weights, config.as_deref(), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_several_unreadable_tensors_names_the_first_by_name_every_time() {
        let eight_bytes = [0u8; 8];
        let view = || {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![1], &eight_bytes)
                .unwrap()
        };
        let names = [
            "lstm.weight_hh_l0",
            "fc.bias",
            "lstm.bias_ih_l0",
            "fc.weight",
        ];
        let bytes =
            safetensors::serialize(names.iter().map(|name| (name.to_string(), view())), None)
                .unwrap();
        // Each parse seeds safetensors' hash map anew, so an unsorted walk
        // would name a different tensor in about three runs of four.
        for _ in 0..32 {
            assert_eq!(
                safetensors_to_tensors(&bytes, &Device::Cpu).unwrap_err(),
                "tensor fc.bias is F64; only F32, F16 and BF16 are read"
            );
        }
    }
}
