//! How a corpus was turned into tokens, stored beside the tokens and with every
//! model trained on them (`encoding.json` in a prepared folder, `"encoding"` in
//! a model's `config.json`), so that whoever reads the tokens back (sampling,
//! judging, evaluation) knows the grid and the keys instead of assuming them.

use std::fs;
use std::path::Path;

use esac_parse::Duration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::codec::Transposition;

/// The file a prepared folder keeps its encoding in.
pub const ENCODING_FILE: &str = "encoding.json";

#[derive(Debug, Error)]
pub enum EncodingError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// Every setting that changes the tokens of a song.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encoding {
    /// Grid step as a fraction of a whole note.
    #[serde(with = "fraction")]
    pub step: Duration,
    pub transposition: Transposition,
}

impl Default for Encoding {
    fn default() -> Self {
        Self::reference()
    }
}

impl Encoding {
    /// The reference notebook's encoding: a sixteenth-note grid, every song moved
    /// to C major or A minor. Folders and models written before the encoding was
    /// stored were all made this way, so it is what a missing encoding means.
    pub fn reference() -> Self {
        Self {
            step: crate::default_step(),
            transposition: Transposition::ToCMajorAMinor,
        }
    }

    /// True when every song's tokens are in C major or A minor, so that the
    /// keys of tokens are known without looking at the notes.
    pub fn in_reference_keys(&self) -> bool {
        self.transposition == Transposition::ToCMajorAMinor
    }

    /// Reads `encoding.json` from a prepared folder; `Ok(None)` when the folder
    /// has none (written before encodings were stored).
    pub fn load(dir: &Path) -> Result<Option<Self>, EncodingError> {
        let path = dir.join(ENCODING_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let error = |message: String| EncodingError::File {
            path: path.display().to_string(),
            message,
        };
        let text = fs::read_to_string(&path).map_err(|e| error(e.to_string()))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| error(e.to_string()))
    }

    /// The JSON `encoding.json` holds.
    pub fn to_json(&self) -> String {
        format!(
            "{}\n",
            serde_json::to_string_pretty(self).expect("an encoding serialises")
        )
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} grid, ", self.step)?;
        match self.transposition {
            Transposition::None => f.write_str("written keys"),
            Transposition::ToCMajorAMinor => f.write_str("moved to C major / A minor"),
            Transposition::AllKeys { low, high } => {
                write!(f, "every key within MIDI {low}-{high}")
            }
        }
    }
}

/// A duration as `{"numerator": 1, "denominator": 16}`.
mod fraction {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Fraction {
        numerator: u64,
        denominator: u64,
    }

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        Fraction {
            numerator: *value.numer(),
            denominator: *value.denom(),
        }
        .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let Fraction {
            numerator,
            denominator,
        } = Fraction::deserialize(deserializer)?;
        if numerator == 0 || denominator == 0 {
            return Err(serde::de::Error::custom(format!(
                "the step {numerator}/{denominator} must be positive"
            )));
        }
        Ok(Duration::new(numerator, denominator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip_through_json_in_a_typed_form() {
        let reference = Encoding::reference();
        let json: serde_json::Value = serde_json::from_str(&reference.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "step": {"numerator": 1, "denominator": 16},
                "transposition": {"mode": "to-c-major-a-minor"}
            })
        );
        for encoding in [
            reference,
            Encoding {
                step: Duration::new(1, 8),
                transposition: Transposition::None,
            },
            Encoding {
                step: Duration::new(1, 16),
                transposition: Transposition::AllKeys { low: 45, high: 84 },
            },
        ] {
            let back: Encoding = serde_json::from_str(&encoding.to_json()).unwrap();
            assert_eq!(back, encoding);
        }
        let zero = r#"{"step":{"numerator":0,"denominator":16},"transposition":{"mode":"none"}}"#;
        assert!(
            serde_json::from_str::<Encoding>(zero)
                .unwrap_err()
                .to_string()
                .contains("must be positive")
        );
    }

    #[test]
    fn a_folder_without_an_encoding_says_so() {
        let dir = std::env::temp_dir().join(format!("encoding-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(Encoding::load(&dir).unwrap(), None);
        fs::write(dir.join(ENCODING_FILE), "{").unwrap();
        assert!(
            Encoding::load(&dir)
                .unwrap_err()
                .to_string()
                .contains("encoding.json")
        );
        fs::write(dir.join(ENCODING_FILE), Encoding::reference().to_json()).unwrap();
        assert_eq!(Encoding::load(&dir).unwrap(), Some(Encoding::reference()));
        fs::remove_dir_all(dir).unwrap();
    }
}
