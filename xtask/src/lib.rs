//! The esac-melody command line as a library, so that its pieces are testable:
//! [`download`] fetches and verifies collections, [`source`] reads songs from a
//! folder or zip, and [`bench`] measures the parser.

pub mod bench;
pub mod download;
pub mod source;
