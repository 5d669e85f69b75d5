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
pub fn checkpoint(bytes: &[u8]) {
    let (config, weights) = match bytes.iter().position(|b| *b == 0) {
        Some(split) if bytes.first() == Some(&b'{') => (
            std::str::from_utf8(&bytes[..split]).ok(),
            &bytes[split + 1..],
        ),
        _ => (None, bytes),
    };
    let _ = lstm_candle::checkpoint::checkpoint_from_bytes(
        Path::new("fuzz"),
        weights,
        config,
        &lstm_candle::Device::Cpu,
    );
}
