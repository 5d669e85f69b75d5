//! `cargo xtask serve`: the composer page on this machine.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use grid_codec::Encoding;
use melody_server::{Config, SongsOf};
use model_folder::ModelFolder;
use trainer::{SongRecord, SplitSizes};

use crate::sample_cmd::read_soundfont;
use crate::source;
use crate::train_cmd::DeviceArg;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 8490)]
    pub port: u16,
    /// Address to listen on. Only loopback addresses are accepted unless
    /// --allow-remote is given too.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Listen on a --host that other machines can reach (anyone there can
    /// then use it).
    #[arg(long)]
    pub allow_remote: bool,
    /// Offer this model folder too (listed as `given`), beside the shipped
    /// models in assets/ and the runs in runs/.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Songs for models that carry none (the shipped ones): their held-out
    /// songs to start like, and their training songs for the longest copy.
    /// Songs as `train --data` takes them (a folder, zip, Essen tree or name
    /// such as `essen`, prepared as `train` does, so the split is the model's)
    /// or a folder written by `prepare` [default: a run's own data, else the
    /// songs the model's config.json says it was trained on, where it was
    /// trained or in the cache (`cargo xtask download essen` puts them there)].
    #[arg(long, value_name = "DIR|ZIP|NAME")]
    pub data: Option<PathBuf>,
    /// Render the WAV through this General MIDI SoundFont (.sf2) [default:
    /// /usr/share/sounds/sf2/TimGM6mb.sf2 when installed, else the built-in
    /// synthesizer].
    #[arg(long, value_name = "FILE.sf2")]
    pub soundfont: Option<PathBuf>,
    /// Where the models run.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
}

/// The SoundFont Debian's timgm6mb-soundfont installs.
const SYSTEM_SOUNDFONT: &str = "/usr/share/sounds/sf2/TimGM6mb.sf2";

pub fn serve(args: &ServeArgs) -> Result<()> {
    let soundfont = match &args.soundfont {
        Some(path) => Some(read_soundfont(path)?),
        None => {
            let system = PathBuf::from(SYSTEM_SOUNDFONT);
            system
                .is_file()
                .then(|| read_soundfont(&system))
                .transpose()?
        }
    };
    if !args.host.is_loopback() && args.allow_remote {
        eprintln!(
            "warning: listening on {}: anyone who can reach this machine can use the server",
            args.host
        );
    }
    let songs = songs_of(args.data.clone())?;
    let server = melody_server::start(Config {
        host: args.host,
        port: args.port,
        allow_remote: args.allow_remote,
        assets: PathBuf::from("assets"),
        runs: PathBuf::from("runs"),
        model: args.model.clone(),
        songs: Some(songs),
        soundfont,
        device: args.device.device()?,
        warm_up: true,
    })?;
    println!("The composer page is at {} (Ctrl-C stops it)", server.url());
    server.wait();
    Ok(())
}

/// Where a model that carries no songs finds them: `--data`, prepared once
/// here (a model that was not trained on its split is warned of), else the
/// songs the model's config.json says it was trained on, where they are here
/// or in the cache (a request never waits on the network), prepared as it
/// prepared them when the model is first asked for, and refused when not
/// split as they were. The songs are kept in memory only.
fn songs_of(data: Option<PathBuf>) -> Result<SongsOf> {
    let Some(data) = data else {
        return Ok(Arc::new(|folder: &ModelFolder| {
            songs_trained_on(folder).map_err(|error| format!("{error:#}"))
        }));
    };
    let given = data.display().to_string();
    let songs = given_songs(data)?;
    let split = SplitSizes::of_songs(&songs);
    Ok(Arc::new(move |folder: &ModelFolder| {
        if let Err(error) = source::check_split(source::trained_split(folder), split, &given) {
            eprintln!(
                "warning: {}: {error:#}; the songs offered as held out may be songs it learned from",
                folder.dir.display()
            );
        }
        Ok(songs.clone())
    }))
}

/// The songs `folder`'s model was trained on, prepared as they were.
fn songs_trained_on(folder: &ModelFolder) -> Result<Vec<SongRecord>> {
    let trained_on = folder.trained_on().context(
        "its config.json does not say which songs it was trained on: pass --data with them",
    )?;
    let songs = source::songs_trained_on(trained_on, source::Fetch::Never)?;
    let prepared = source::prepare_as_trained(std::slice::from_ref(&songs), folder)?;
    let split = SplitSizes::of_songs(&prepared.songs);
    source::check_split(
        source::trained_split(folder),
        split,
        &songs.display().to_string(),
    )?;
    eprintln!(
        "{}: {} held-out songs to start like, from {}",
        folder.dir.display(),
        split.test_songs,
        songs.display()
    );
    Ok(prepared.songs)
}

/// The songs of `--data`: a prepared folder's, or songs prepared as `train`
/// prepares them.
fn given_songs(data: PathBuf) -> Result<Vec<SongRecord>> {
    if trainer::is_prepared_folder(&data) {
        let path = data.join(trainer::prepare::SONGS_FILE);
        return trainer::read_songs(&path)
            .with_context(|| format!("cannot read {}", path.display()));
    }
    let paths = source::data_or_cached_erk(vec![data], "--data")?;
    let prepared = source::prepare_to_read(&paths, Encoding::default())?;
    eprintln!(
        "{} held-out songs from {} to start like",
        SplitSizes::of_songs(&prepared.songs).test_songs,
        source::describe(&paths)
    );
    Ok(prepared.songs)
}
