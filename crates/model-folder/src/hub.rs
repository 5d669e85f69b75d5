//! Models on a Hugging Face-compatible hub: `--model hub:OWNER/NAME[@REVISION]`
//! downloads a model into the usual hub cache with `hf-hub` (honouring
//! `HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE` and `HF_HUB_OFFLINE`) and checks it
//! before use; `publish` uploads an exported folder as one commit. The network
//! parts need the `hub` cargo feature; without it they say how to get it.

use std::path::{Path, PathBuf};
use std::str::FromStr;

#[cfg(feature = "hub")]
use crate::GENERATION_FILE;
use crate::{CARD_FILE, CONFIG_FILE, FolderError, ModelFolder, TOKENIZER_FILE, WEIGHTS_FILE};

type Result<T, E = FolderError> = std::result::Result<T, E>;

/// Fails with a hub error message.
macro_rules! bail {
    ($($message:tt)*) => {
        return Err(FolderError::Hub(format!($($message)*)))
    };
}

/// Where a model is: a local folder, or a repository on the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    Local(PathBuf),
    Hub(HubRef),
}

impl FromStr for ModelRef {
    type Err = FolderError;

    /// `hub:OWNER/NAME[@REVISION]`, or any other text as a local path.
    fn from_str(text: &str) -> Result<Self> {
        match text.strip_prefix("hub:") {
            Some(spec) => HubRef::parse(spec).map(ModelRef::Hub),
            None => Ok(ModelRef::Local(PathBuf::from(text))),
        }
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelRef::Local(path) => write!(f, "{}", path.display()),
            ModelRef::Hub(hub) => write!(f, "{hub}"),
        }
    }
}

impl ModelRef {
    /// The local folder: itself, or for a hub model the checked snapshot in
    /// the hub cache (downloaded if needed).
    pub fn local_dir(&self) -> Result<PathBuf> {
        match self {
            ModelRef::Local(path) => Ok(path.clone()),
            ModelRef::Hub(hub) => download_model(hub),
        }
    }
}

/// A model repository on the hub, with an optional branch, tag or commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRef {
    pub owner: String,
    pub name: String,
    pub revision: Option<String>,
}

impl HubRef {
    /// Parses `OWNER/NAME[@REVISION]`.
    pub fn parse(spec: &str) -> Result<Self> {
        let (repo, revision) = match spec.split_once('@') {
            Some((repo, revision)) if !revision.is_empty() => (repo, Some(revision.to_owned())),
            Some(_) => bail!("hub:{spec}: nothing after `@`; write hub:OWNER/NAME@REVISION"),
            None => (spec, None),
        };
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !part.starts_with('.')
        };
        match repo.split_once('/') {
            Some((owner, name)) if valid(owner) && valid(name) => Ok(Self {
                owner: owner.to_owned(),
                name: name.to_owned(),
                revision,
            }),
            _ => bail!(
                "hub:{spec}: write the repository as OWNER/NAME (letters, digits, `-`, `_`, `.`), e.g. hub:esac-melody/erk-lstm"
            ),
        }
    }

    pub fn repo_id(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

impl std::fmt::Display for HubRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hub:{}/{}", self.owner, self.name)?;
        if let Some(revision) = &self.revision {
            write!(f, "@{revision}")?;
        }
        Ok(())
    }
}

/// The files of a model folder: (name, required).
#[cfg(feature = "hub")]
const MODEL_FILES: [(&str, bool); 5] = [
    (CONFIG_FILE, true),
    (TOKENIZER_FILE, true),
    (GENERATION_FILE, false),
    (CARD_FILE, false),
    (WEIGHTS_FILE, true),
];

#[cfg(feature = "hub")]
fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// The Hugging Face home folder, as `huggingface_hub` resolves it.
fn hf_home() -> PathBuf {
    if let Some(home) = std::env::var_os("HF_HOME") {
        return PathBuf::from(home);
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(xdg).join("huggingface");
    }
    dirs::home_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache/huggingface")
}

/// The token from `HF_TOKEN`, the file `HF_TOKEN_PATH` names, or `HF_HOME/token`.
pub fn find_token() -> Option<String> {
    if let Ok(token) = std::env::var("HF_TOKEN")
        && !token.trim().is_empty()
    {
        return Some(token.trim().to_owned());
    }
    let file =
        std::env::var_os("HF_TOKEN_PATH").map_or_else(|| hf_home().join("token"), PathBuf::from);
    std::fs::read_to_string(file)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Checks that a folder holds a usable model: weights that load, a config, a
/// tokenizer that matches.
pub fn check_model_folder(dir: &Path) -> Result<()> {
    ModelFolder::load(dir, &candle_core::Device::Cpu).map(|_| ())
}

/// What `publish` would upload: every file of the folder, with its size.
pub fn publish_plan(dir: &Path) -> Result<Vec<(String, u64)>> {
    for required in [WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE, CARD_FILE] {
        if !dir.join(required).is_file() {
            bail!(
                "{} has no {required}: publish a folder written by `cargo xtask export`",
                dir.display()
            );
        }
    }
    check_model_folder(dir)?;
    let mut files = Vec::new();
    let io = |source| FolderError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().map_err(io)?.is_file() && !name.starts_with('.') {
            files.push((name, entry.metadata().map_err(io)?.len()));
        }
    }
    files.sort();
    Ok(files)
}

/// Replaces the token wherever a message might repeat it.
#[cfg(feature = "hub")]
fn redact(message: String, token: Option<&str>) -> String {
    match token {
        Some(token) if token.len() >= 4 => message.replace(token, "***"),
        _ => message,
    }
}

#[cfg(not(feature = "hub"))]
const NO_HUB: &str = "this build has no hub support: run the command as `cargo xtask-hub ...` (or build xtask with `--features hub`)";

#[cfg(not(feature = "hub"))]
fn download_model(hub: &HubRef) -> Result<PathBuf> {
    bail!("{hub}: {NO_HUB}")
}

#[cfg(not(feature = "hub"))]
pub fn publish(_dir: &Path, _repo: &HubRef, _private: bool) -> Result<String> {
    bail!("{NO_HUB}")
}

#[cfg(feature = "hub")]
fn endpoint() -> String {
    std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".to_owned())
}

#[cfg(feature = "hub")]
fn client(token: Option<&str>) -> Result<hf_hub::HFClientSync> {
    let mut builder = hf_hub::HFClient::builder();
    if let Some(token) = token {
        builder = builder.token(token);
    }
    builder
        .build_sync()
        .map_err(|e| FolderError::Hub(format!("cannot start the hub client: {e}")))
}

/// A hub error as a message that says what to do.
#[cfg(feature = "hub")]
fn explain(error: hf_hub::HFError, hub: &HubRef, file: &str, token: Option<&str>) -> FolderError {
    use hf_hub::HFError;
    let message = match &error {
        HFError::AuthRequired { .. } => format!(
            "{hub}: the hub refused the request (401 unauthorized): set HF_TOKEN to a token that can read {}",
            hub.repo_id()
        ),
        HFError::Forbidden { .. } => {
            format!("{hub}: the hub refused access (403 forbidden) for this token")
        }
        HFError::RepoNotFound { .. } | HFError::EntryNotFound { .. } => format!(
            "{hub}: no {file} there on {} (check OWNER/NAME and the revision; a private repository needs HF_TOKEN)",
            endpoint()
        ),
        HFError::RevisionNotFound { .. } => format!("{hub}: no such revision on {}", endpoint()),
        HFError::LocalEntryNotFound { .. } => format!(
            "{hub}: HF_HUB_OFFLINE is set and {file} is not in the hub cache; connect once without it"
        ),
        HFError::Http { context, .. } if context.status.is_server_error() => format!(
            "{hub}: downloading {file} from {}: the hub answered {} several times; try again later",
            endpoint(),
            context.status
        ),
        HFError::Request { source, .. } => format!(
            "{hub}: downloading {file} from {}: the transfer failed or was cut off ({source}); nothing broken was kept, run the command again",
            endpoint()
        ),
        other => format!(
            "{hub}: downloading {file} from {} failed: {other}",
            endpoint()
        ),
    };
    FolderError::Hub(redact(message, token))
}

/// The look of every byte-transfer bar: hub transfers here, and downloads.
pub fn transfer_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .expect("valid template")
    .progress_chars("=> ")
}

/// A progress bar for one hub transfer, fed by hf-hub's progress events: it
/// appears when the transfer starts (a cache hit shows nothing) and goes away
/// when it completes.
#[cfg(feature = "hub")]
struct TransferBar {
    label: String,
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

#[cfg(feature = "hub")]
impl TransferBar {
    fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            bar: std::sync::Mutex::new(None),
        }
    }

    fn start(&self, total_bytes: u64) {
        let bar = indicatif::ProgressBar::new(total_bytes);
        bar.set_style(transfer_style());
        bar.set_message(self.label.clone());
        *self.bar.lock().expect("not poisoned") = Some(bar);
    }

    fn update(&self, change: impl FnOnce(&indicatif::ProgressBar)) {
        if let Some(bar) = self.bar.lock().expect("not poisoned").as_ref() {
            change(bar);
        }
    }

    /// Bytes done and in all, while the bar is up.
    #[cfg(test)]
    fn state(&self) -> Option<(u64, Option<u64>)> {
        let bar = self.bar.lock().expect("not poisoned");
        bar.as_ref().map(|b| (b.position(), b.length()))
    }
}

#[cfg(feature = "hub")]
impl hf_hub::progress::ProgressHandler for TransferBar {
    fn on_progress(&self, event: &hf_hub::progress::ProgressEvent) {
        use hf_hub::progress::{DownloadEvent, ProgressEvent, UploadEvent};
        match event {
            ProgressEvent::Download(DownloadEvent::Start { total_bytes, .. })
            | ProgressEvent::Upload(UploadEvent::Start { total_bytes, .. }) => {
                self.start(*total_bytes);
            }
            // One file per download: its delta carries its running total.
            ProgressEvent::Download(DownloadEvent::Progress { files }) => {
                let done = files.iter().map(|f| f.bytes_completed).max();
                self.update(|bar| bar.set_position(done.unwrap_or(bar.position())));
            }
            ProgressEvent::Download(DownloadEvent::AggregateProgress {
                bytes_completed, ..
            })
            | ProgressEvent::Upload(UploadEvent::Progress {
                bytes_completed, ..
            }) => self.update(|bar| bar.set_position(*bytes_completed)),
            ProgressEvent::Upload(UploadEvent::Committing) => {
                self.update(|bar| bar.set_message(format!("{}: committing", self.label)));
            }
            ProgressEvent::Download(DownloadEvent::Complete)
            | ProgressEvent::Upload(UploadEvent::Complete) => {
                if let Some(bar) = self.bar.lock().expect("not poisoned").take() {
                    bar.finish_and_clear();
                }
            }
        }
    }
}

/// The hub cache entries of a snapshot file: the link and the blob it points at.
#[cfg(feature = "hub")]
fn forget_cached(path: &Path) {
    if let Ok(blob) = std::fs::canonicalize(path) {
        let _ = std::fs::remove_file(blob);
    }
    let _ = std::fs::remove_file(path);
}

/// Downloads (or finds in the cache) the model files and checks them; a set of
/// files that does not make a model is removed from the cache, so that the next
/// try downloads it again rather than failing the same way.
#[cfg(feature = "hub")]
fn download_model(hub: &HubRef) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let token = find_token();
    let client = client(token.as_deref())?;
    let repo = client.model(&hub.owner, &hub.name);
    let offline = offline();
    let mut paths = Vec::new();
    for (file, required) in MODEL_FILES {
        let result = repo
            .download_file()
            .filename(file)
            .maybe_revision(hub.revision.clone())
            .local_files_only(offline)
            .progress(TransferBar::new(format!("{hub} {file}")))
            .send();
        match result {
            Ok(path) => paths.push(path),
            Err(
                hf_hub::HFError::EntryNotFound { .. } | hf_hub::HFError::LocalEntryNotFound { .. },
            ) if !required => {}
            Err(error) => return Err(explain(error, hub, file, token.as_deref())),
        }
    }
    let Some(dir) = paths.first().and_then(|p| p.parent()).map(Path::to_owned) else {
        bail!("{hub}: the hub returned no files");
    };
    // Large files are stored by their SHA-256, which the hub sends as the ETag
    // and the cache uses as the blob's name: the bytes must hash to it.
    let weights = dir.join(WEIGHTS_FILE);
    let blob = std::fs::canonicalize(&weights).map_err(|source| FolderError::Io {
        path: weights.clone(),
        source,
    })?;
    let blob_name = blob
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if blob_name.len() == 64 && blob_name.chars().all(|c| c.is_ascii_hexdigit()) {
        let bytes = std::fs::read(&blob).map_err(|source| FolderError::Io {
            path: blob.clone(),
            source,
        })?;
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if digest != blob_name {
            forget_cached(&weights);
            bail!(
                "{hub}: {WEIGHTS_FILE} arrived corrupted (SHA-256 {digest}, the hub says {blob_name}); removed it from the cache, try again"
            );
        }
    }
    if let Err(error) = check_model_folder(&dir) {
        for path in &paths {
            forget_cached(path);
        }
        bail!(
            "{hub}: the downloaded files do not make a model; removed them from the cache: {error}"
        );
    }
    Ok(dir)
}

/// Creates the repository if needed and uploads every file of `dir` as one
/// commit. Returns the commit's address or id.
#[cfg(feature = "hub")]
pub fn publish(dir: &Path, hub: &HubRef, private: bool) -> Result<String> {
    let Some(token) = find_token() else {
        bail!(
            "no Hugging Face token: set HF_TOKEN, or log in with `huggingface-cli login` (it writes {})",
            hf_home().join("token").display()
        );
    };
    let token = Some(token.as_str());
    let client = client(token)?;
    let fail = |what: &str, error: hf_hub::HFError| {
        let detail = match &error {
            hf_hub::HFError::AuthRequired { .. } => {
                "401 unauthorized: the token was refused (check HF_TOKEN)".to_owned()
            }
            hf_hub::HFError::Forbidden { .. } => {
                "403 forbidden: the token may not write there".to_owned()
            }
            other => other.to_string(),
        };
        FolderError::Hub(redact(
            format!(
                "publishing to {} on {}: {what} failed: {detail}",
                hub.repo_id(),
                endpoint()
            ),
            token,
        ))
    };
    client
        .create_repository()
        .repo_id(&hub.repo_id())
        .repo_type(hf_hub::RepoTypeModel)
        .private(private)
        .exist_ok(true)
        .send()
        .map_err(|e| fail("creating the repository", e))?;
    let commit = client
        .model(&hub.owner, &hub.name)
        .upload_folder()
        .folder_path(dir.to_owned())
        .maybe_revision(hub.revision.clone())
        .commit_message(format!("Upload esac-melody model from {}", dir.display()))
        .ignore_patterns(vec![".*".to_owned()])
        .progress(TransferBar::new(format!("uploading to {}", hub.repo_id())))
        .send()
        .map_err(|e| fail("uploading the folder", e))?;
    Ok(commit
        .commit_url
        .or(commit.commit_oid)
        .unwrap_or_else(|| format!("{}/{}", endpoint(), hub.repo_id())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "hub")]
    #[test]
    fn transfer_bars_follow_the_hub_events() {
        use hf_hub::progress::{
            DownloadEvent, FileProgress, FileStatus, ProgressEvent, ProgressHandler, UploadEvent,
        };
        let bar = TransferBar::new("esac-melody/erk-lstm model.safetensors");
        // A cache hit: only Complete, and no bar.
        bar.on_progress(&ProgressEvent::Download(DownloadEvent::Complete));
        assert_eq!(bar.state(), None);
        bar.on_progress(&ProgressEvent::Download(DownloadEvent::Start {
            total_files: 1,
            total_bytes: 1000,
        }));
        assert_eq!(bar.state(), Some((0, Some(1000))));
        bar.on_progress(&ProgressEvent::Download(DownloadEvent::Progress {
            files: vec![FileProgress {
                filename: "model.safetensors".into(),
                bytes_completed: 400,
                total_bytes: 1000,
                status: FileStatus::InProgress,
            }],
        }));
        assert_eq!(bar.state(), Some((400, Some(1000))));
        bar.on_progress(&ProgressEvent::Download(DownloadEvent::Complete));
        assert_eq!(bar.state(), None);
        bar.on_progress(&ProgressEvent::Upload(UploadEvent::Start {
            total_files: 5,
            total_bytes: 2000,
        }));
        bar.on_progress(&ProgressEvent::Upload(UploadEvent::Progress {
            bytes_completed: 1500,
            total_bytes: 2000,
            bytes_per_sec: None,
            transfer_bytes_completed: 1500,
            transfer_bytes: 2000,
            transfer_bytes_per_sec: None,
            files: Vec::new(),
        }));
        assert_eq!(bar.state(), Some((1500, Some(2000))));
        bar.on_progress(&ProgressEvent::Upload(UploadEvent::Committing));
        bar.on_progress(&ProgressEvent::Upload(UploadEvent::Complete));
        assert_eq!(bar.state(), None);
    }

    #[test]
    fn hub_references_parse_or_explain() {
        assert_eq!(
            HubRef::parse("esac-melody/erk-lstm@v1").unwrap(),
            HubRef {
                owner: "esac-melody".into(),
                name: "erk-lstm".into(),
                revision: Some("v1".into())
            }
        );
        assert_eq!(HubRef::parse("a/b").unwrap().revision, None);
        for bad in ["a", "a/", "/b", "a/b/c", "a/b@", "a b/c", "../x"] {
            assert!(HubRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[cfg(feature = "hub")]
    #[test]
    fn tokens_never_reach_messages() {
        assert_eq!(
            redact("Bearer hf_secret123 refused".into(), Some("hf_secret123")),
            "Bearer *** refused"
        );
    }
}
