//! A server over the shipped models on a free loopback port, and a client.

use std::path::PathBuf;
use std::sync::Arc;

use melody_server::{Config, Running, SongsOf};
use serde_json::Value;

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A server offering the shipped models (and no runs).
#[allow(
    dead_code,
    reason = "the browser test gives the server songs of its own"
)]
pub fn server() -> Running {
    server_with_data(None)
}

/// The same, with prepared songs for the shipped models.
pub fn server_with_data(data: Option<PathBuf>) -> Running {
    let runs = std::env::temp_dir().join("melody-server-tests-no-runs");
    let songs = data.map(|dir| -> SongsOf {
        Arc::new(move |_| {
            trainer::read_songs(&dir.join(trainer::prepare::SONGS_FILE)).map_err(|e| e.to_string())
        })
    });
    melody_server::start(Config {
        songs,
        ..Config::loopback(workspace().join("assets"), runs)
    })
    .expect("the server starts")
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Status and body of a GET.
pub fn get(server: &Running, path: &str) -> (u16, Vec<u8>) {
    let mut response = agent()
        .get(&format!("http://{}{path}", server.addr))
        .call()
        .expect("the server answers");
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    (status, body)
}

/// Status and JSON body of a GET.
pub fn get_json(server: &Running, path: &str) -> (u16, Value) {
    let (status, body) = get(server, path);
    (
        status,
        serde_json::from_slice(&body).expect("a JSON answer"),
    )
}
