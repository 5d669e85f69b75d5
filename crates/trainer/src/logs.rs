//! Training logs a person can read: `metrics.csv`, TensorBoard event files, a
//! Graphviz drawing of the model and a parameter summary.
//!
//! The TensorBoard writer is hand-written (TFRecord framing with masked CRC-32C,
//! and the few protobuf fields of `Event`/`Summary` that scalars need):
//! `tensorboard-rs` is unmaintained and pulls protobuf 2 with a RustSec advisory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use lstm_candle::ModelConfig;
use serde::{Deserialize, Serialize};

/// One row of `metrics.csv`, written at each evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub step: usize,
    pub epoch: usize,
    /// Mean training loss since the previous row.
    pub train_loss: f64,
    /// Whole-song validation NLL per token.
    pub val_nll: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
}

const CSV_HEADER: &str = "step,epoch,train_loss,val_nll,lr,grad_norm,tokens_per_s,elapsed_s";

/// Rewrites `metrics.csv` from the rows so far (small, and always consistent).
pub fn write_metrics_csv(path: &Path, rows: &[MetricRow]) -> io::Result<()> {
    let mut text = String::from(CSV_HEADER);
    text.push('\n');
    for r in rows {
        text.push_str(&format!(
            "{},{},{:.6},{:.6},{:.3e},{:.4},{:.0},{:.2}\n",
            r.step,
            r.epoch,
            r.train_loss,
            r.val_nll,
            r.lr,
            r.grad_norm,
            r.tokens_per_s,
            r.elapsed_s
        ));
    }
    crate::prepare::write_atomic(path, text.as_bytes())
}

/// CRC-32C (Castagnoli), as TFRecord uses.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c(bytes);
    (crc.rotate_right(15)).wrapping_add(0xA282_EAD8)
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn length_delimited(field: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push((field << 3) | 2);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Writes scalar summaries to `events.out.tfevents.*`, readable by `tensorboard --logdir`.
pub struct EventWriter {
    file: File,
    pub path: PathBuf,
}

impl EventWriter {
    /// Opens a new event file in `dir` (TensorBoard reads every file there).
    pub fn create(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!(
            "events.out.tfevents.{}.{host}.{}",
            now.as_secs(),
            std::process::id()
        ));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut writer = Self { file, path };
        let mut event = Vec::new();
        Self::header(now.as_secs_f64(), 0, &mut event);
        length_delimited(3, b"brain.Event:2", &mut event);
        writer.record(&event)?;
        Ok(writer)
    }

    fn header(wall_time: f64, step: u64, out: &mut Vec<u8>) {
        out.push(1 << 3 | 1);
        out.extend_from_slice(&wall_time.to_le_bytes());
        out.push(2 << 3);
        varint(step, out);
    }

    fn record(&mut self, data: &[u8]) -> io::Result<()> {
        let length = (data.len() as u64).to_le_bytes();
        let mut frame = Vec::with_capacity(data.len() + 16);
        frame.extend_from_slice(&length);
        frame.extend_from_slice(&masked_crc(&length).to_le_bytes());
        frame.extend_from_slice(data);
        frame.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.file.write_all(&frame)?;
        self.file.flush()
    }

    /// Writes scalars (tag, value) at a step.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> io::Result<()> {
        let mut summary = Vec::new();
        for (tag, value) in values {
            let mut entry = Vec::new();
            length_delimited(1, tag.as_bytes(), &mut entry);
            entry.push(2 << 3 | 5);
            entry.extend_from_slice(&(*value as f32).to_le_bytes());
            length_delimited(1, &entry, &mut summary);
        }
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let mut event = Vec::new();
        Self::header(wall, step, &mut event);
        length_delimited(5, &summary, &mut event);
        self.record(&event)
    }
}

/// Every parameter's name, shape and size, and the total, as a text table.
pub fn parameter_summary(config: &ModelConfig) -> String {
    let shapes = config.parameter_shapes();
    let width = shapes.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut text = format!("{:<width$} {:>12} {:>10}\n", "parameter", "shape", "count");
    for (name, shape) in shapes {
        let count: usize = shape.iter().product();
        text.push_str(&format!(
            "{name:<width$} {:>12} {count:>10}\n",
            format!("{shape:?}")
        ));
    }
    text.push_str(&format!(
        "{:<width$} {:>12} {:>10}\n",
        "total",
        "",
        config.num_parameters()
    ));
    text
}

/// A Graphviz drawing of the model, with shapes (`dot -Tpng model.dot`).
pub fn model_dot(config: &ModelConfig) -> String {
    let (v, e, h) = (config.vocab_size, config.embedding_dim, config.hidden_size);
    let mut dot = String::from(
        "digraph melody_model {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n",
    );
    dot.push_str("  ids [label=\"token ids\\n(batch, time)\", shape=ellipse];\n");
    dot.push_str(&format!(
        "  embedding [label=\"Embedding\\n{v} x {e}\"];\n  ids -> embedding;\n"
    ));
    let mut previous = "embedding".to_owned();
    if !config.side_inputs.is_empty() {
        dot.push_str("  sum [label=\"+\", shape=circle];\n  embedding -> sum;\n");
        for (index, side) in config.side_inputs.iter().enumerate() {
            dot.push_str(&format!(
                "  side{index} [label=\"{}\\n{} x {e}\"];\n  side{index} -> sum;\n",
                side.name, side.size
            ));
        }
        previous = "sum".to_owned();
    }
    for layer in 0..config.num_layers {
        let input = if layer == 0 { e } else { h };
        dot.push_str(&format!(
            "  lstm{layer} [label=\"LSTM layer {layer}\\nW_ih 4*{h} x {input}, W_hh 4*{h} x {h}\\ngates i, f, g, o\"];\n  {previous} -> lstm{layer};\n  lstm{layer} -> lstm{layer} [label=\"(h, c)\"];\n"
        ));
        previous = format!("lstm{layer}");
    }
    dot.push_str(&format!(
        "  dropout [label=\"Dropout p={}\"];\n  {previous} -> dropout;\n  fc [label=\"Linear\\n{h} -> {v}\"];\n  dropout -> fc;\n  logits [label=\"logits\\n(batch, time, {v})\", shape=ellipse];\n  fc -> logits;\n}}\n",
        config.dropout
    ));
    dot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    /// Reads TFRecord frames back, checking both CRCs.
    fn read_records(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut records = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let length = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            let length_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(length_crc, masked_crc(&bytes[at..at + 8]));
            let data = &bytes[at + 12..at + 12 + length];
            let data_crc = u32::from_le_bytes(
                bytes[at + 12 + length..at + 16 + length]
                    .try_into()
                    .unwrap(),
            );
            assert_eq!(data_crc, masked_crc(data));
            records.push(data.to_vec());
            at += 16 + length;
        }
        records
    }

    #[test]
    fn event_file_frames_and_fields() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(dir.path()).unwrap();
        writer.scalars(7, &[("train/loss", 1.5)]).unwrap();
        let records = read_records(&fs::read(&writer.path).unwrap());
        assert_eq!(records.len(), 2);
        assert!(records[0].windows(13).any(|w| w == b"brain.Event:2"));
        let event = &records[1];
        // step field (2, varint 7), the tag, and 1.5f32 as simple_value.
        assert!(event.windows(2).any(|w| w == [0x10, 7]));
        assert!(event.windows(10).any(|w| w == b"train/loss"));
        let value = [0x15, 0, 0, 0xC0, 0x3F];
        assert!(event.windows(5).any(|w| w == value));
    }

    #[test]
    fn summary_and_drawing_name_every_parameter() {
        let config = ModelConfig::reference(38);
        let summary = parameter_summary(&config);
        assert!(summary.contains("lstm.weight_hh_l0") && summary.contains("[512, 128]"));
        assert!(summary.contains(&config.num_parameters().to_string()));
        let dot = model_dot(&config);
        assert!(dot.starts_with("digraph") && dot.contains("Embedding\\n38 x 38"));
    }
}
