//! `cargo xtask serve`: the composer page on this machine.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use melody_server::Config;
use trainer::PrepareOptions;

use crate::sample_cmd::read_soundfont;
use crate::source;
use crate::train_cmd::DeviceArg;

#[derive(Debug, Args)]
pub struct ServeArgs {
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
    /// or a folder written by `prepare` [default: a run's own data, else none].
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
    let data = args.data.clone().map(prepared_data).transpose()?;
    let server = melody_server::start(Config {
        host: args.host,
        port: args.port,
        allow_remote: args.allow_remote,
        assets: PathBuf::from("assets"),
        runs: PathBuf::from("runs"),
        model: args.model.clone(),
        data,
        soundfont,
        device: args.device.device()?,
    })?;
    println!("The composer page is at {} (Ctrl-C stops it)", server.url());
    server.wait();
    Ok(())
}

/// A prepared folder as it is; songs prepared as `train` prepares them, into
/// a scratch folder.
fn prepared_data(data: PathBuf) -> Result<PathBuf> {
    if trainer::is_prepared_folder(&data) {
        return Ok(data);
    }
    let paths = source::data_or_cached_erk(vec![data], "--data")?;
    let prepared = source::prepare_paths(&paths, &PrepareOptions::default())?;
    let dir = std::env::temp_dir().join(format!("esac-melody-serve-{}", std::process::id()));
    trainer::write_prepared(&prepared, &dir)
        .with_context(|| format!("cannot write the prepared songs into {}", dir.display()))?;
    eprintln!(
        "{} held-out songs from {} to start like",
        prepared
            .songs
            .iter()
            .filter(|s| s.split == trainer::Split::Test)
            .count(),
        source::describe(&paths)
    );
    Ok(dir)
}
