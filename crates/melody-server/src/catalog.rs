//! The models a server offers: the shipped ones and the runs, by name only,
//! each loaded once when first asked for, with its held-out and training
//! songs where it knows its data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::Device;
use grid_codec::{Token, parse_tokens};
use judge::TrainingIndex;
use judge::style::{Labelled, StyleClassifier};
use model_folder::ModelFolder;
use serde::Serialize;
use trainer::prepare::{SONGS_FILE, SongRecord, Split};

use crate::ServerError;

/// Where a named model lives.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: String,
    /// `shipped` (under `assets/`) or `run` (under `runs/`).
    pub kind: &'static str,
    #[serde(skip)]
    pub dir: PathBuf,
}

/// A held-out song a melody can start like.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOut {
    pub id: String,
    pub title: String,
    pub collection: String,
    #[serde(skip)]
    pub tokens: Vec<Token>,
    /// Steps of its opening (pickup) bar and of a full bar, when known.
    #[serde(skip)]
    pub bars: Option<(u32, u32)>,
    #[serde(skip)]
    pub meter: Option<esac_parse::Meter>,
    #[serde(skip)]
    pub mode: Option<esac_parse::Mode>,
}

/// A loaded model with what the page needs beside it.
pub struct Loaded {
    pub name: String,
    pub folder: ModelFolder,
    pub held_out: Vec<HeldOut>,
    /// The training songs, for the longest copy; `None` when the data is unknown.
    pub training: Option<TrainingIndex>,
    /// The style classifier `judge` fits on the same training songs; `None`
    /// when they are unknown or fewer than two collections have enough.
    pub style_classifier: Option<StyleClassifier>,
}

/// True for a name that can only be a listed model's: letters, digits and
/// `.`, `-`, `_`, `:`, never a path.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
}

/// Finds the prepared songs of a model that carries none of its own, such as
/// a shipped one, or says why it has none. Asked once per model, when the
/// model is first loaded.
pub type SongsOf = Arc<dyn Fn(&ModelFolder) -> Result<Vec<SongRecord>, String> + Send + Sync>;

pub struct Catalog {
    assets: PathBuf,
    runs: PathBuf,
    /// A model given on the command line, listed first.
    extra: Option<PathBuf>,
    /// Songs to start from and find copies in, for models without their own.
    songs: Option<SongsOf>,
    device: Device,
    loaded: Mutex<BTreeMap<String, Arc<Loaded>>>,
    /// Held while a model loads: one loads at a time, so a request for a
    /// model that is loading waits for it rather than loading it again.
    loading: Mutex<()>,
}

fn is_model_dir(dir: &Path) -> bool {
    dir.join("model.safetensors").is_file()
}

impl Catalog {
    pub fn new(
        assets: PathBuf,
        runs: PathBuf,
        extra: Option<PathBuf>,
        songs: Option<SongsOf>,
        device: Device,
    ) -> Self {
        Self {
            assets,
            runs,
            extra,
            songs,
            device,
            loaded: Mutex::new(BTreeMap::new()),
            loading: Mutex::new(()),
        }
    }

    /// Loads every listed model, so that the page's first requests need not
    /// wait for them; a model that cannot be loaded is logged.
    pub fn warm(&self) {
        for listed in self.list() {
            if let Err(error) = self.get(&listed.name) {
                tracing::warn!("{error}");
            }
        }
    }

    /// Every model it offers, read afresh (a run trained meanwhile appears):
    /// the `--model` one, then `assets/` (the default `essen` first), then
    /// `runs/` as `run:NAME`.
    pub fn list(&self) -> Vec<Listed> {
        let mut listed = Vec::new();
        if let Some(dir) = &self.extra {
            listed.push(Listed {
                name: "given".into(),
                kind: "given",
                dir: dir.clone(),
            });
        }
        for (root, kind, prefix) in [(&self.assets, "shipped", ""), (&self.runs, "run", "run:")] {
            let Ok(entries) = std::fs::read_dir(root) else {
                continue;
            };
            let mut found: Vec<Listed> = entries
                .filter_map(Result::ok)
                .filter(|e| is_model_dir(&e.path()))
                .filter_map(|e| {
                    let name = format!("{prefix}{}", e.file_name().to_str()?);
                    is_plain_name(&name).then(|| Listed {
                        name,
                        kind,
                        dir: e.path(),
                    })
                })
                .collect();
            found.sort_by_key(|l| (l.name != "essen", l.name.clone()));
            listed.extend(found);
        }
        listed
    }

    /// The model of that name, loaded on first use.
    pub fn get(&self, name: &str) -> Result<Arc<Loaded>, ServerError> {
        if !is_plain_name(name) {
            return Err(ServerError::BadModelName(name.to_owned()));
        }
        let cached = || self.loaded.lock().expect("not poisoned").get(name).cloned();
        if let Some(loaded) = cached() {
            return Ok(loaded);
        }
        let _loading = self.loading.lock().expect("not poisoned");
        if let Some(loaded) = cached() {
            return Ok(loaded);
        }
        let listed = self
            .list()
            .into_iter()
            .find(|l| l.name == name)
            .ok_or_else(|| ServerError::UnknownModel(name.to_owned()))?;
        let mut folder = ModelFolder::load(&listed.dir, &self.device)
            .map_err(|e| ServerError::Model(format!("{name}: {e}")))?;
        // Served models are only sampled from: lay their weights out once
        // rather than for every batch.
        folder
            .model
            .keep_stepper()
            .map_err(|e| ServerError::Model(format!("{name}: {e}")))?;
        let songs = match (folder.data_dir(), &self.songs) {
            (Some(own), _) => Some(read_songs(&own)),
            (None, Some(songs_of)) => Some(songs_of(&folder)),
            (None, None) => None,
        };
        let (held_out, training, style_classifier) =
            match songs.map(|songs| songs.and_then(split_songs)) {
                Some(Ok((held_out, train))) => {
                    let style_classifier =
                        StyleClassifier::fit_corpus(train.iter().map(|song| Labelled {
                            style: &song.collection,
                            tokens: &song.tokens,
                            meter: song.meter,
                        }));
                    let (names, tokens): (Vec<String>, Vec<Vec<Token>>) = train
                        .into_iter()
                        .map(|song| (song.name, song.tokens))
                        .unzip();
                    (
                        held_out,
                        Some(TrainingIndex::new(&tokens).with_names(names)),
                        style_classifier,
                    )
                }
                Some(Err(error)) => {
                    tracing::warn!("{name}: no held-out songs: {error}");
                    (Vec::new(), None, None)
                }
                None => (Vec::new(), None, None),
            };
        let loaded = Arc::new(Loaded {
            name: name.to_owned(),
            folder,
            held_out,
            training,
            style_classifier,
        });
        self.loaded
            .lock()
            .expect("not poisoned")
            .insert(name.to_owned(), loaded.clone());
        Ok(loaded)
    }
}

/// The songs of a prepared folder.
fn read_songs(data: &Path) -> Result<Vec<SongRecord>, String> {
    let path = data.join(SONGS_FILE);
    trainer::read_songs(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A training song, for the longest copy and the style classifier.
struct TrainingSong {
    name: String,
    tokens: Vec<Token>,
    collection: String,
    meter: Option<esac_parse::Meter>,
}

/// The held-out songs, and the training songs.
type SplitSongs = (Vec<HeldOut>, Vec<TrainingSong>);

/// The held-out and training songs among prepared songs.
fn split_songs(records: Vec<SongRecord>) -> Result<SplitSongs, String> {
    let mut held_out = Vec::new();
    let mut train = Vec::new();
    for record in records {
        let tokens =
            parse_tokens(&record.tokens).map_err(|e| format!("song {}: {e}", record.id))?;
        match record.split {
            Split::Train => train.push(TrainingSong {
                name: record.label(),
                tokens,
                collection: record.collection,
                meter: record.meter,
            }),
            Split::Test => held_out.push(HeldOut {
                bars: record
                    .bars
                    .as_ref()
                    .and_then(|b| Some((*b.bars.first()?, b.bar_steps))),
                meter: record.meter,
                mode: record.key.map(|k| {
                    if k.mode.is_minor_like() {
                        esac_parse::Mode::Minor
                    } else {
                        esac_parse::Mode::Major
                    }
                }),
                id: record.id,
                title: record.title,
                collection: record.collection,
                tokens,
            }),
            Split::Val => {}
        }
    }
    Ok((held_out, train))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warming_loads_every_listed_model_once() {
        let assets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets");
        let catalog = Catalog::new(
            assets,
            PathBuf::from("no-runs-here"),
            None,
            None,
            Device::Cpu,
        );
        catalog.warm();
        let loaded: Vec<String> = catalog.loaded.lock().unwrap().keys().cloned().collect();
        assert_eq!(loaded, ["erk", "essen"]);
        let essen = catalog.loaded.lock().unwrap()["essen"].clone();
        assert!(Arc::ptr_eq(&catalog.get("essen").unwrap(), &essen));
    }
}
