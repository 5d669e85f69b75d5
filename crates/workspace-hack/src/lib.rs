//! Gives the default build the dependency features that the hub build turns on (see Cargo.toml).
