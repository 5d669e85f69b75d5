//! The `**kern` reader on arbitrary bytes (any encoding, as files are read).
#![no_main]
#[path = "../entry.rs"]
mod entry;
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| entry::read_songs("fuzz.krn", bytes));
