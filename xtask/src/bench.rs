//! `cargo xtask bench parse`: songs per second for parse + encode of a collection.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use grid_codec::{EncodeOptions, encode_with};
use serde::Serialize;

use crate::source;

/// One benchmark result, printed as a JSON line.
#[derive(Debug, Serialize)]
pub struct ParseBench {
    pub bench: &'static str,
    pub data: String,
    pub files: usize,
    pub songs: usize,
    pub on_grid: usize,
    pub iterations: usize,
    /// Best (smallest) wall time of one full parse + encode, in milliseconds.
    pub best_ms: f64,
    pub median_ms: f64,
    pub songs_per_s: f64,
}

/// Parses and encodes every song under `data`, `iterations` times (after one
/// warm-up that also fills the OS file cache), and reports the best and median.
pub fn parse(data: &Path, iterations: usize) -> Result<ParseBench> {
    let run = || -> Result<(usize, usize, usize)> {
        let collection = source::load(data)?;
        let options = EncodeOptions::default();
        let on_grid = collection
            .songs
            .iter()
            .filter(|s| encode_with(s, &options).is_ok())
            .count();
        Ok((collection.music_files, collection.songs.len(), on_grid))
    };
    let (files, songs, on_grid) = run()?;
    let mut times: Vec<Duration> = Vec::with_capacity(iterations);
    for _ in 0..iterations.max(1) {
        let start = Instant::now();
        run()?;
        times.push(start.elapsed());
    }
    times.sort();
    let best = times[0].as_secs_f64();
    let median = times[times.len() / 2].as_secs_f64();
    Ok(ParseBench {
        bench: "parse+encode",
        data: data.display().to_string(),
        files,
        songs,
        on_grid,
        iterations: times.len(),
        best_ms: best * 1e3,
        median_ms: median * 1e3,
        songs_per_s: songs as f64 / median,
    })
}
