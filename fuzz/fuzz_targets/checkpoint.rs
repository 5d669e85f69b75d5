//! The safetensors/config checkpoint loader.
#![no_main]
#[path = "../entry.rs"]
mod entry;
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| entry::checkpoint(bytes));
