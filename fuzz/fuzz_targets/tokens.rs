//! The token/primer parser, vocabulary lookup and decoding.
#![no_main]
#[path = "../entry.rs"]
mod entry;
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| entry::tokens(bytes));
