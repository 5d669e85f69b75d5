//! The `**kern` reader on arbitrary bytes (any encoding, as files are read).
#![no_main]
#[path = "../entry.rs"]
#[allow(dead_code, reason = "each target calls one of the shared entry points")]
mod entry;
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| entry::read_songs("fuzz.krn", bytes));
