//! What each fuzz target does with one input, shared by the `cargo fuzz`
//! targets and the regression test that replays `fuzz/regressions` and
//! `fuzz/seeds` under `cargo test` (xtask/tests/fuzz_regressions.rs).

use std::path::Path;

/// The reader chosen by the file extension (`.krn` or `.sm`) on any bytes.
pub fn read_songs(name: &str, bytes: &[u8]) {
    let mut collection = esac_parse::Collection::default();
    esac_parse::read_bytes(Path::new(name), bytes, &mut collection);
}

/// The token/primer parser, then the vocabulary lookup and decoding of
/// whatever parses.
pub fn tokens(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(tokens) = grid_codec::parse_tokens(text) {
        let vocabulary = grid_codec::Vocabulary::build([tokens.as_slice()]);
        let _ = vocabulary.ids(&tokens);
        let _ = grid_codec::decode(&tokens, &grid_codec::DecodeOptions::default());
    }
}

/// The checkpoint loader: safetensors bytes, with a `config.json` text taken
/// from the front of the input when it starts with `{` and a NUL follows it.
///
/// Weights that begin with eight 0xFF bytes, a header length that safetensors
/// refuses at once, hold instead the header text up to a NUL and then the data,
/// and the real length is written in front here. A mutation that shortens or
/// lengthens the header then still reaches the JSON parser, where a raw file
/// stops at its now wrong length (docs/fuzzing.md, round 9: late edges in the
/// header's parsing).
///
/// Whether the input loaded as a model.
pub fn checkpoint(bytes: &[u8]) -> bool {
    let (config, weights) = split_at_nul(bytes)
        .filter(|_| bytes.first() == Some(&b'{'))
        .map_or((None, bytes), |(config, weights)| {
            (std::str::from_utf8(config).ok(), weights)
        });
    let with_length;
    let weights = match weights.strip_prefix(&[0xff; 8]) {
        Some(header_and_data) => {
            let (header, data) = split_at_nul(header_and_data).unwrap_or((header_and_data, &[]));
            with_length = [&(header.len() as u64).to_le_bytes()[..], header, data].concat();
            &with_length[..]
        }
        None => weights,
    };
    lstm_candle::checkpoint::checkpoint_from_bytes(
        Path::new("fuzz"),
        weights,
        config,
        &lstm_candle::Device::Cpu,
    )
    .is_ok()
}

/// The bytes before the first NUL and those after it.
fn split_at_nul(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = bytes.iter().position(|b| *b == 0)?;
    Some((&bytes[..nul], &bytes[nul + 1..]))
}
