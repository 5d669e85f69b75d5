//! A look inside a model folder or a safetensors file, refusing malformed
//! files with the reason.

use std::path::Path;

use candle_core::Device;
use lstm_candle::checkpoint::describe_safetensors;

use crate::{
    CONFIG_FILE, FolderError, GENERATION_FILE, WEIGHTS_FILE, invalid, load_vocabulary, read_json,
};

/// Prints what a safetensors file or a model folder holds, refusing malformed
/// files with the reason.
pub fn inspect(path: &Path) -> Result<String, FolderError> {
    let (weights, dir) = if path.is_dir() {
        (path.join(WEIGHTS_FILE), Some(path))
    } else {
        (path.to_owned(), None)
    };
    let summary = describe_safetensors(&weights).map_err(|e| FolderError::Weights(Box::new(e)))?;
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
    let name_width = summary
        .tensors
        .iter()
        .map(|(name, _, _)| name.len())
        .max()
        .unwrap_or(0)
        .max(24);
    out += &format!(
        "  {:<name_width$} {:<6} {:>12} {:>10}\n",
        "tensor", "dtype", "shape", "values"
    );
    for (name, dtype, shape) in &summary.tensors {
        let count: usize = shape.iter().product();
        parameters += count;
        out += &format!(
            "  {:<name_width$} {:<6} {:>12} {:>10}\n",
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
                    serde_json::to_string_pretty(&value).expect("JSON")
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
                if !c.side_inputs.is_empty() {
                    let inputs: Vec<String> = c
                        .side_inputs
                        .iter()
                        .map(|input| format!("{} ({} values)", input.name, input.size))
                        .collect();
                    out += &format!("side inputs: {}\n", inputs.join(", "));
                }
            }
            Err(e) => return Err(invalid(dir, format!("does not load as a model: {e}"))),
        }
        match load_vocabulary(dir) {
            Ok(v) => out += &format!("vocabulary: {} tokens\n", v.len()),
            Err(e) => out += &format!("vocabulary: {e}\n"),
        }
    }
    Ok(out)
}
