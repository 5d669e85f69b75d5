//! Empty: cargo reads `[build-dependencies]` only for a package with a build script.
fn main() {}
