//! What the PNG pictures share: a font for their text, and the error of drawing
//! one. Text needs a font file: a common system sans-serif font is registered
//! with plotters when one is found, otherwise pictures are drawn without labels
//! (and a warning is logged).

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::drawing::DrawingAreaErrorKind;
use plotters::style::FontStyle;
use thiserror::Error;

/// Why a picture was not written.
#[derive(Debug, Error)]
pub enum PictureError {
    #[error("{path}: nothing to draw: {what}")]
    Empty { path: PathBuf, what: &'static str },
    #[error("cannot draw {path}: {reason}")]
    Draw { path: PathBuf, reason: String },
}

/// Turns plotters' error, which holds its backend's, into a [`PictureError`]
/// naming the file.
pub fn drawing_failed<E: StdError + Send + Sync>(
    path: &Path,
) -> impl Fn(DrawingAreaErrorKind<E>) -> PictureError + '_ {
    move |error| PictureError::Draw {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a system font once; false when none could be found.
pub fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        for path in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        tracing::warn!("no system font found; pictures are drawn without labels");
        false
    })
}
