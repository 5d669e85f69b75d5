//! The local composer page and its JSON API: settings in, a melody's score, sound and numbers out; requests that arrive together are generated as one batch.
//!
//! Everything the page needs is compiled in (the page, its script and the
//! vendored abcjs), so it works offline. Models are chosen by name from
//! [`catalog::Catalog::list`], never by path. Settings go through the same
//! rules as `cargo xtask sample` ([`composer::Settings`]), so the same
//! settings and seed give the same melody in both; the API is documented in
//! `docs/api.md`.

pub mod batch;
pub mod catalog;

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use candle_core::Device;
use composer::{Artifact, ComposeError, Composed, Generated, Settings};
use esac_parse::{Key, Meter, Mode};
use grid_codec::{parse_tokens, tokens_to_string};
use judge::meter::Metric;
use judge::{Song, Tonality, TrainingIndex};
use melody_formats::audio::SoundFont;
use serde_json::{Value, json};
use thiserror::Error;

use crate::batch::Batcher;
pub use crate::catalog::SongsOf;
use crate::catalog::{Catalog, Loaded};

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 16 * 1024;
/// Melodies kept for their downloads.
const CACHE_SIZE: usize = 128;

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("{message}")]
    Setting {
        field: &'static str,
        message: String,
    },
    #[error("no model named {0}; GET /api/models lists them")]
    UnknownModel(String),
    #[error(
        "model {0:?}: a model is chosen by its listed name (letters, digits, . - _ :), not by a path"
    )]
    BadModelName(String),
    #[error("{0}")]
    Model(String),
    #[error("{0}")]
    Generate(String),
    /// A body that could not be read, such as one over the size limit.
    #[error("{1}")]
    Body(StatusCode, String),
    #[error(
        "refusing to listen on {0}: it is not a loopback address, so anyone on the network could use the server; pass --allow-remote to mean it"
    )]
    RemoteHost(IpAddr),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

impl ServerError {
    fn setting(field: &'static str, message: impl Into<String>) -> Self {
        ServerError::Setting {
            field,
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ServerError::Setting { .. } | ServerError::BadModelName(_) => StatusCode::BAD_REQUEST,
            ServerError::UnknownModel(_) => StatusCode::NOT_FOUND,
            ServerError::Body(status, _) => *status,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ComposeError> for ServerError {
    fn from(error: ComposeError) -> Self {
        match (error.field(), &error) {
            (_, ComposeError::Setting { field, message }) => {
                ServerError::setting(field.api_name(), message.clone())
            }
            (Some(field), _) => ServerError::setting(field.api_name(), error.to_string()),
            (None, _) => ServerError::Generate(error.to_string()),
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.to_string() });
        if let ServerError::Setting { field, .. } = &self {
            body["field"] = json!(field);
        }
        (self.status(), axum::Json(body)).into_response()
    }
}

/// How a server is started.
pub struct Config {
    pub host: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    /// Listen on a host other than loopback.
    pub allow_remote: bool,
    /// `assets/` and `runs/`, whose model folders it lists.
    pub assets: PathBuf,
    pub runs: PathBuf,
    /// A model folder given on the command line, listed as `given`.
    pub model: Option<PathBuf>,
    /// Finds prepared songs for models that carry none of their own.
    pub songs: Option<SongsOf>,
    pub soundfont: Option<SoundFont>,
    pub device: Device,
    /// Load every model in the background from the start, so that the page's
    /// first requests need not wait for them.
    pub warm_up: bool,
}

impl Config {
    /// A server on a free loopback port over the models of `assets` and
    /// `runs`, on the CPU, loading each when first asked for, with nothing
    /// else given.
    pub fn loopback(assets: PathBuf, runs: PathBuf) -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            allow_remote: false,
            assets,
            runs,
            model: None,
            songs: None,
            soundfont: None,
            device: Device::Cpu,
            warm_up: false,
        }
    }
}

struct AppState {
    catalog: Catalog,
    batcher: Batcher,
    soundfont: Option<SoundFont>,
    /// Recent melodies by their canonical settings, for downloads.
    cache: Mutex<VecDeque<(String, Arc<Composed>)>>,
}

type Shared = Arc<AppState>;

/// A server listening on its own threads.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// The page's address.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Binds and starts serving on background threads.
pub fn start(config: Config) -> Result<Running, ServerError> {
    if !config.host.is_loopback() && !config.allow_remote {
        return Err(ServerError::RemoteHost(config.host));
    }
    let addr = SocketAddr::new(config.host, config.port);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServerError::Bind(addr, e))?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|e| ServerError::Bind(addr, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Bind(addr, e))?;
    let state = Arc::new(AppState {
        catalog: Catalog::new(
            config.assets,
            config.runs,
            config.model,
            config.songs,
            config.device,
        ),
        batcher: Batcher::start(),
        soundfont: config.soundfont,
        cache: Mutex::new(VecDeque::new()),
    });
    if config.warm_up {
        std::thread::Builder::new()
            .name("warm-up".into())
            .spawn({
                let state = state.clone();
                move || state.catalog.warm()
            })
            .map_err(|e| ServerError::Bind(addr, e))?;
    }
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let served = axum::serve(listener, router(state)).with_graceful_shutdown(async {
                    let _ = stop.await;
                });
                if let Err(error) = served.await {
                    tracing::error!("the server stopped: {error}");
                }
            });
        })
        .map_err(|e| ServerError::Bind(addr, e))?;
    Ok(Running {
        addr,
        shutdown: Some(shutdown),
        thread: Some(thread),
    })
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(|| page(PAGE_HTML, "text/html; charset=utf-8")))
        .route(
            "/app.js",
            get(|| page(PAGE_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/style.css",
            get(|| page(PAGE_CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/vendor/abcjs-basic-min.js",
            get(|| page(ABCJS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/vendor/abcjs-LICENSE.md",
            get(|| page(ABCJS_LICENSE, "text/plain; charset=utf-8")),
        )
        .route("/api/health", get(health))
        .route("/api/models", get(models))
        .route("/api/models/{name}/songs", get(songs))
        .route("/api/generate", get(generate_get).post(generate_post))
        .route("/api/melody/{format}", get(artifact))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(
                    json!({ "error": "no such page; the API is under /api (see docs/api.md)" }),
                ),
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

const PAGE_HTML: &str = include_str!("../page/index.html");
const PAGE_JS: &str = include_str!("../page/app.js");
const PAGE_CSS: &str = include_str!("../page/style.css");
const ABCJS: &str = include_str!("../page/vendor/abcjs-basic-min.js");
const ABCJS_LICENSE: &str = include_str!("../page/vendor/abcjs-LICENSE.md");

async fn page(body: &'static str, media_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, media_type)], body).into_response()
}

async fn health(State(state): State<Shared>) -> Response {
    axum::Json(json!({ "status": "ok", "models": state.catalog.list().len() })).into_response()
}

async fn models(State(state): State<Shared>) -> Response {
    let mut models = Vec::new();
    for entry in state.catalog.list() {
        let mut model = json!({ "name": entry.name, "kind": entry.kind });
        match load(&state, &entry.name).await {
            Ok(loaded) => {
                let described = describe(&loaded);
                let fields = described.as_object().expect("an object");
                model
                    .as_object_mut()
                    .expect("an object")
                    .extend(fields.clone());
            }
            Err(error) => model["error"] = json!(error.to_string()),
        }
        models.push(model);
    }
    axum::Json(json!({ "models": models })).into_response()
}

/// What the page's controls offer for a model: its defaults and, when it is
/// conditioned, the meters, modes and styles it knows and whether it can
/// be asked for a form.
fn describe(loaded: &Loaded) -> Value {
    let folder = &loaded.folder;
    let generation = &folder.generation;
    let conditioning = folder.conditioning.as_ref().map(|c| {
        json!({
            "meters": c.meter_songs.keys().filter(|m| m.contains('/')).collect::<Vec<_>>(),
            "modes": ["major", "minor"],
            "styles": c.style_songs.keys().collect::<Vec<_>>(),
            "form": c.lookback.as_ref().is_some_and(|l| l.forms.is_some()),
        })
    });
    json!({
        "conditioned": conditioning.is_some(),
        "conditions": conditioning,
        "encoding": folder.encoding.to_string(),
        "held_out_songs": loaded.held_out.len(),
        "defaults": {
            "temperature": generation.temperature,
            "top_k": generation.top_k,
            "top_p": generation.top_p,
            "max_len": generation.max_length,
            "mode_guidance": generation.mode_guidance,
            "tempo": Settings::default().tempo,
        },
        "limits": {
            "bars": [1, composer::MAX_BARS],
            "max_len": [1, composer::MAX_LENGTH],
            "tempo": [composer::TEMPO_RANGE.0, composer::TEMPO_RANGE.1],
        },
    })
}

async fn songs(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Response, ServerError> {
    let loaded = load(&state, &name).await?;
    Ok(axum::Json(json!({ "songs": loaded.held_out })).into_response())
}

async fn load(state: &Shared, name: &str) -> Result<Arc<Loaded>, ServerError> {
    let state = state.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || state.catalog.get(&name))
        .await
        .map_err(|e| ServerError::Model(e.to_string()))?
}

/// A generate request: the model, the settings, and a held-out song to start like.
struct Request {
    model: String,
    settings: Settings,
    start_like: Option<String>,
    /// The settings as given, sorted: the melody's identity and its links' query.
    canonical: String,
}

const KNOWN: [&str; 19] = [
    "model",
    "seed",
    "temperature",
    "top_k",
    "top_p",
    "max_len",
    "bars",
    "prime",
    "start_like",
    "meter",
    "mode",
    "style",
    "pickup",
    "form",
    "form_bars",
    "mode_guidance",
    "key",
    "tempo",
    "grammar",
];

fn parse_field<T: std::str::FromStr>(
    params: &BTreeMap<String, String>,
    field: &'static str,
    expected: &str,
) -> Result<Option<T>, ServerError> {
    params
        .get(field)
        .map(|text| {
            text.trim().parse().map_err(|_| {
                ServerError::setting(field, format!("{field} {text:?}: expected {expected}"))
            })
        })
        .transpose()
}

fn parse_request(pairs: Vec<(String, String)>) -> Result<Request, ServerError> {
    let mut params = BTreeMap::new();
    for (key, value) in pairs {
        if !KNOWN.contains(&key.as_str()) {
            return Err(ServerError::setting(
                "request",
                format!(
                    "unknown setting {key:?}; the settings are {}",
                    KNOWN.join(", ")
                ),
            ));
        }
        if value.trim().is_empty() {
            continue;
        }
        if params.insert(key.clone(), value).is_some() {
            return Err(ServerError::setting(
                "request",
                format!("{key} is given twice"),
            ));
        }
    }
    let canonical = serde_urlencoded::to_string(&params).expect("strings encode");
    let model = params
        .get("model")
        .cloned()
        .unwrap_or_else(|| "essen".to_owned());
    let name_error = |field: &'static str, error: esac_parse::NameError| {
        ServerError::setting(field, format!("{field} {error}"))
    };
    let settings = Settings {
        prime: match params.get("prime") {
            Some(text) => {
                parse_tokens(text).map_err(|e| ServerError::setting("prime", e.to_string()))?
            }
            None => Vec::new(),
        },
        temperature: parse_field(&params, "temperature", "a positive number such as 1.0")?,
        top_k: parse_field(&params, "top_k", "a whole number of at least 1")?,
        top_p: parse_field(&params, "top_p", "a number in (0, 1]")?,
        max_len: parse_field(&params, "max_len", "a whole number of grid steps")?,
        bars: parse_field(&params, "bars", "a whole number of bars")?,
        seed: parse_field(
            &params,
            "seed",
            "a whole number from 0 to 18446744073709551615",
        )?
        .unwrap_or(0),
        grammar: parse_field(&params, "grammar", "true or false")?.unwrap_or(true),
        meter: params
            .get("meter")
            .map(|m| m.parse::<Meter>().map_err(|e| name_error("meter", e)))
            .transpose()?,
        mode: params
            .get("mode")
            .map(|m| m.parse::<Mode>().map_err(|e| name_error("mode", e)))
            .transpose()?,
        style: params.get("style").cloned(),
        pickup: parse_field(&params, "pickup", "a whole number of grid steps")?,
        form: params.get("form").map(|form| form.trim().to_owned()),
        form_bars: parse_field(&params, "form_bars", "copied or drawn")?.unwrap_or_default(),
        mode_guidance: parse_field(&params, "mode_guidance", "a number from 0 to 2")?,
        key: params
            .get("key")
            .map(|k| k.parse::<Key>().map_err(|e| name_error("key", e)))
            .transpose()?,
        tempo: parse_field(&params, "tempo", "quarter notes per minute")?
            .unwrap_or(Settings::default().tempo),
    };
    if settings.prime.len() > composer::MAX_LENGTH {
        return Err(ServerError::setting(
            "prime",
            format!("is longer than {} tokens", composer::MAX_LENGTH),
        ));
    }
    Ok(Request {
        model,
        settings,
        start_like: params.get("start_like").cloned(),
        canonical,
    })
}

/// The query pairs of a URL.
fn query_pairs(query: Option<String>) -> Result<Vec<(String, String)>, ServerError> {
    serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| ServerError::setting("request", format!("cannot read the query: {e}")))
}

/// A JSON object's fields as text (numbers and booleans as written).
fn body_pairs(body: &[u8]) -> Result<Vec<(String, String)>, ServerError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ServerError::setting("request", format!("the body is not JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(ServerError::setting(
            "request",
            "the body must be a JSON object of settings",
        ));
    };
    object
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(key, value)| {
            let text = match value {
                Value::String(text) => text,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    let field = KNOWN
                        .iter()
                        .find(|k| **k == key)
                        .copied()
                        .unwrap_or("request");
                    return Err(ServerError::setting(
                        field,
                        format!("{key} must be a string, number or boolean"),
                    ));
                }
            };
            Ok((key, text))
        })
        .collect()
}

async fn generate_get(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
) -> Result<Response, ServerError> {
    let request = parse_request(query_pairs(query)?)?;
    generate(&state, request).await
}

async fn generate_post(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServerError> {
    let body =
        body.map_err(|rejection| ServerError::Body(rejection.status(), rejection.body_text()))?;
    let request = parse_request(body_pairs(&body)?)?;
    generate(&state, request).await
}

async fn generate(state: &Shared, request: Request) -> Result<Response, ServerError> {
    let (loaded, composed) = compose(state, &request).await?;
    Ok(axum::Json(describe_melody(&loaded, &composed, &request)?).into_response())
}

/// The melody of a request: from the cache, or generated in the next batch.
async fn compose(
    state: &Shared,
    request: &Request,
) -> Result<(Arc<Loaded>, Arc<Composed>), ServerError> {
    let loaded = load(state, &request.model).await?;
    let key = format!("{}|{}", loaded.name, request.canonical);
    if let Some((_, composed)) = state
        .cache
        .lock()
        .expect("not poisoned")
        .iter()
        .find(|(k, _)| *k == key)
    {
        return Ok((loaded, composed.clone()));
    }
    let mut settings = request.settings.clone();
    if let Some(id) = &request.start_like {
        start_like(&loaded, id, &mut settings)?;
    }
    let plan = composer::plan(&loaded.folder, &settings, 0)?;
    let primer = settings.primer();
    let (generated, closed) = state
        .batcher
        .generate(loaded.clone(), primer.clone(), plan.sampling)
        .await
        .map_err(ServerError::Generate)?;
    let mut tokens = primer;
    tokens.extend(generated);
    let generated = Generated {
        name: format!("{} seed {}", loaded.name, settings.seed),
        tokens,
        closed,
        asking: plan.asking,
    };
    let composed = Arc::new(
        composer::notate(&loaded.folder.encoding, &settings, generated)
            .map_err(|unnotated| unnotated.error)?,
    );
    let mut cache = state.cache.lock().expect("not poisoned");
    cache.push_back((key, composed.clone()));
    if cache.len() > CACHE_SIZE {
        cache.pop_front();
    }
    Ok((loaded, composed))
}

/// Starts like a held-out song: its opening bar (and the bar after an
/// upbeat) becomes the primer, and its upbeat (and, of a conditioned model,
/// its meter, mode and collection) are asked for unless given.
fn start_like(loaded: &Loaded, id: &str, settings: &mut Settings) -> Result<(), ServerError> {
    let song = loaded.held_out.iter().find(|s| s.id == id).ok_or_else(|| {
        ServerError::setting(
            "start_like",
            format!(
                "{id} is not one of the {} held-out songs of {} (GET /api/models/{}/songs)",
                loaded.held_out.len(),
                loaded.name,
                loaded.name
            ),
        )
    })?;
    if !settings.prime.is_empty() {
        return Err(ServerError::setting(
            "start_like",
            "cannot be given with prime: give one start",
        ));
    }
    let (opening, bar) = song.bars.unwrap_or((16, 16));
    let pickup = if opening < bar { opening } else { 0 };
    let steps = (pickup + bar) as usize;
    settings.prime = song.tokens[..steps.min(song.tokens.len())].to_vec();
    if loaded.folder.conditioning.is_some() {
        settings.meter = settings.meter.or(song.meter);
        settings.mode = settings.mode.or(song.mode);
        if settings.style.is_none() && !song.collection.is_empty() {
            settings.style = Some(song.collection.clone());
        }
    }
    settings.pickup.get_or_insert(pickup);
    Ok(())
}

/// The generate answer: tokens, scores, what it was asked, numbers, links.
fn describe_melody(
    loaded: &Loaded,
    composed: &Composed,
    request: &Request,
) -> Result<Value, ServerError> {
    let abc = composer::render(composed, Artifact::Abc, None)?;
    let musicxml = composer::render(composed, Artifact::MusicXml, None)?;
    let bars = melody_formats::notation::bars(&composed.melody)
        .map_err(|e| ServerError::Generate(e.to_string()))?;
    let pieces = bars.iter().flat_map(|b| &b.pieces);
    let rests = pieces
        .clone()
        .filter(|p| p.pitch == esac_parse::Pitch::Rest)
        .count();
    let written = pieces.count();
    let links: BTreeMap<&str, String> = Artifact::ALL
        .iter()
        .map(|a| {
            (
                a.extension(),
                format!("/api/melody/{}?{}", a.extension(), request.canonical),
            )
        })
        .collect();
    Ok(json!({
        "model": loaded.name,
        "query": request.canonical,
        "seed": request.settings.seed,
        "tokens": tokens_to_string(&composed.generated.tokens),
        "closed": composed.generated.closed,
        "asked": composed.generated.asking.as_ref().map(|asking| {
            let a = &asking.asked;
            json!({
                "meter": a.meter.to_string(),
                "mode": asking.mode_name(),
                "style": a.style,
                "bars": a.bars,
                "pickup": a.pickup,
                "form": a.form,
                "mode_guidance": asking.mode_guidance,
                "description": asking.description(),
                "songs_alike": asking.songs_alike,
                "caution": asking.caution(),
            })
        }),
        "key": composed.key.to_string(),
        "meter": composed.meter.to_string(),
        "tempo": composed.melody.tempo_qpm,
        "score": { "bars": bars.len(), "notes": written - rests, "rests": rests },
        "statistics": statistics(loaded, composed),
        "abc": String::from_utf8_lossy(&abc),
        "musicxml": String::from_utf8_lossy(&musicxml),
        "links": links,
    }))
}

/// `judge`'s numbers for one melody.
fn statistics(loaded: &Loaded, composed: &Composed) -> Value {
    let encoding = &loaded.folder.encoding;
    let generated = &composed.generated;
    let song = Song {
        name: generated.name.clone(),
        tokens: generated.tokens.clone(),
        closed: generated.closed,
        tonality: Tonality::of(encoding, None, &generated.tokens),
        // The asked meter, as `judge` reads a generated melody's.
        meter: generated.asking.as_ref().map(|asking| asking.asked.meter),
        metric: None,
        minor: None,
        style: None,
    };
    let empty;
    let index = match &loaded.training {
        Some(index) => index,
        None => {
            empty = TrainingIndex::new::<Vec<grid_codec::Token>>(&[]);
            &empty
        }
    };
    let (set, melodies) = judge::statistics(std::slice::from_ref(&song), index);
    let judged = &melodies[0];
    let pitches: Vec<u8> = composed
        .melody
        .events
        .iter()
        .filter_map(|e| match e.pitch {
            esac_parse::Pitch::Note(p) => Some(p),
            esac_parse::Pitch::Rest => None,
        })
        .collect();
    let (lowest, highest) = (pitches.iter().min(), pitches.iter().max());
    // In the bars the score is written in: its meter and upbeat.
    let step = encoding.step;
    let repeated_bars = Metric::on_grid(
        composed.meter,
        step,
        (composed.melody.pickup() / step).to_integer() as usize,
    )
    .map(|metric| {
        let (repeated, of) = judge::meter::repeated_bars(&generated.tokens, metric);
        json!({ "repeated": repeated, "of": of })
    });
    json!({
        "notes": judged.notes,
        "grid_steps": judged.tokens,
        "in_scale": set.in_scale,
        "ends_on_tonic": set.ends_on_tonic > 0.5,
        "lowest": lowest,
        "highest": highest,
        "range_semitones": lowest.zip(highest).map(|(l, h)| h - l),
        "longest_copy": loaded.training.as_ref().map(|_| judged.longest_copy),
        "copied_from": judged.copied_from,
        "key_found": judged.key_found.map(|key| key.to_string()),
        "repeated_bars": repeated_bars,
        "style_found": loaded
            .style_classifier
            .as_ref()
            .map(|classifier| classifier.classify(&song.tokens, song.meter)),
    })
}

async fn artifact(
    State(state): State<Shared>,
    Path(format): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ServerError> {
    let artifact = Artifact::from_extension(&format).ok_or_else(|| {
        ServerError::setting(
            "format",
            format!(
                "no format {format:?}; the formats are {}",
                Artifact::ALL
                    .iter()
                    .map(|a| a.extension())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let request = parse_request(query_pairs(query)?)?;
    let (_, composed) = compose(&state, &request).await?;
    let soundfont = state.soundfont.clone();
    let bytes = tokio::task::spawn_blocking({
        let composed = composed.clone();
        move || composer::render(&composed, artifact, soundfont.as_ref())
    })
    .await
    .map_err(|e| ServerError::Generate(e.to_string()))??;
    let file = format!(
        "{}.{}",
        composed.generated.name.replace([' ', ':'], "-"),
        artifact.extension()
    );
    Ok((
        [
            (header::CONTENT_TYPE, artifact.media_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
