//! The composer page in a real browser: Debian's Chromium driven through
//! chromedriver (WebDriver), over the songs the shipped model was trained on.
//! Open the page, ask for a seed and 8 bars of 3/4, generate, check the drawn
//! score and the numbers against the API's melody, play it and see
//! a note highlighted, download the MIDI and read it back, and keep a
//! screenshot (`UPDATE_SCREENSHOT=1` writes it to docs/composer.png).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver { child, port }
}

/// True where the browser is installed; where it is not, says why the test
/// does not run (and fails under CI, which installs it).
fn browser_installed() -> bool {
    let found = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the browser test: install chromium and chromium-driver"
        );
        eprintln!(
            "skipped: no {CHROMIUM} or {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        );
    }
    found
}

/// The text of the element with that id.
async fn text_of(client: &fantoccini::Client, id: &str) -> String {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn wait_until(client: &fantoccini::Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = client.execute(script, vec![]).await.unwrap();
        if !value.is_null() && value != json!(false) {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn the_page_draws_plays_and_downloads_a_melody() {
    if !browser_installed() {
        return;
    }
    // The songs the shipped model was trained on, prepared as `serve`
    // prepares them, so that the page names a real copy and style (and the
    // screenshot shows what a user sees).
    let songs = tempfile_dir("browser-songs");
    let essen = common::workspace().join("../shared/data/essen");
    let named = trainer::source::read_sources(&[essen]).expect("../shared/data/essen");
    let options = trainer::PrepareOptions {
        find_variants: false,
        ..trainer::PrepareOptions::default()
    };
    let prepared = trainer::prepare_named(&named, &options).unwrap();
    trainer::prepare::write_prepared(&prepared, &songs).unwrap();
    // The server runs its own runtime, so it starts outside the test's.
    let server = common::server_with_data(Some(songs));
    let driver = start_driver();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(drive(&server, &driver));
}

async fn drive(server: &melody_server::Running, driver: &Driver) {
    let scratch = tempfile_dir("browser");
    let downloads = scratch.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--autoplay-policy=no-user-gesture-required",
                "--window-size=1400,1000",
                format!("--user-data-dir={}", scratch.join("profile").display()),
            ],
            "prefs": {
                "download.default_directory": downloads.to_str().unwrap(),
                "download.prompt_for_download": false,
            },
        }),
    );
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session");
    client.goto(&server.url()).await.unwrap();
    wait_until(
        &client,
        "the page",
        "return document.body.dataset.ready === 'true';",
    )
    .await;
    // A first visit shows a melody of the form's defaults at once.
    let first = client
        .execute(
            "return [Boolean(document.querySelector('#score svg')), document.getElementById('play').disabled, location.search, document.getElementById('error').textContent];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(first[0], true, "no score on the first visit: {first}");
    assert_eq!(first[1], false, "{first}");
    assert!(first[2].as_str().unwrap().contains("seed=0"), "{first}");
    assert_eq!(first[3], "", "{first}");

    // Seed 5, 8 bars of 3/4, then Generate.
    let seed = client.find(Locator::Id("seed")).await.unwrap();
    seed.clear().await.unwrap();
    seed.send_keys("5").await.unwrap();
    client
        .find(Locator::Id("bars"))
        .await
        .unwrap()
        .send_keys("8")
        .await
        .unwrap();
    client
        .find(Locator::Css("#meter option[value='3/4']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .find(Locator::Id("mode_guidance"))
        .await
        .unwrap()
        .send_keys("0.5")
        .await
        .unwrap();
    client
        .find(Locator::Id("generate"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let query = wait_until(
        &client,
        "the score",
        "return document.querySelector('#score svg') && !document.getElementById('play').disabled && location.search.includes('seed=5') && location.search.slice(1);",
    )
    .await;
    let query = query.as_str().unwrap();
    assert!(
        query.contains("seed=5") && query.contains("bars=8") && query.contains("mode_guidance=0.5"),
        "{query}"
    );

    // The drawn score is the API's melody: notes, rests and bars.
    let (status, melody) = common::get_json(server, &format!("/api/generate?{query}"));
    assert_eq!(status, 200);
    assert_eq!(melody["asked"]["meter"], "3/4");
    assert_eq!(melody["asked"]["bars"], 8);
    assert_eq!(melody["asked"]["mode_guidance"], 0.5);
    let asked = text_of(&client, "asked").await;
    assert!(asked.contains("(guided, weight 0.5)"), "{asked}");
    // The statistics name the training song that holds the longest copy, and
    // the collection the style classifier finds nearest.
    let stats = text_of(&client, "stats").await;
    let statistics = &melody["statistics"];
    let from = &statistics["copied_from"];
    let copy = format!(
        "{} grid steps: steps {}-",
        statistics["longest_copy"],
        from["melody_start"].as_u64().unwrap() + 1
    );
    let song = from["song"].as_str().unwrap();
    assert!(
        stats.contains(&copy) && stats.contains(&format!("of {song}")),
        "{stats}"
    );
    let style = statistics["style_found"].as_str().unwrap();
    assert!(
        stats.contains(&format!("(judge's style classifier) {style}")),
        "{stats}"
    );
    let drawn = client
        .execute(
            "const s = document.getElementById('score');
             return [s.querySelectorAll('.abcjs-note').length,
                     s.querySelectorAll('.abcjs-rest').length,
                     s.querySelectorAll('.abcjs-bar').length,
                     document.getElementById('tokens').textContent];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(drawn[3], melody["tokens"]);
    assert_eq!(drawn[0], melody["score"]["notes"], "notes drawn");
    assert_eq!(drawn[1], melody["score"]["rests"], "rests drawn");
    assert_eq!(drawn[2], melody["score"]["bars"], "bar lines drawn");

    // Play: the audio runs and a note is highlighted.
    client
        .find(Locator::Id("play"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &client,
        "the audio to play",
        "const a = document.getElementById('audio'); return !a.paused && a.currentTime > 0;",
    )
    .await;
    wait_until(
        &client,
        "a highlighted note",
        "return document.querySelectorAll('#score .playing').length > 0;",
    )
    .await;
    let screenshot = client.screenshot().await.unwrap();

    // Download the MIDI through the page's link and read it back.
    client
        .find(Locator::Id("download-mid"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let midi = loop {
        let done = std::fs::read_dir(&downloads)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "mid"));
        if let Some(path) = done {
            break std::fs::read(path).unwrap();
        }
        assert!(Instant::now() < deadline, "no MIDI downloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let smf = midly::Smf::parse(&midi).expect("a MIDI file");
    let note_ons = smf
        .tracks
        .iter()
        .flatten()
        .filter(|e| {
            matches!(e.kind, midly::TrackEventKind::Midi { message: midly::MidiMessage::NoteOn { vel, .. }, .. } if vel > 0)
        })
        .count();
    assert_eq!(
        note_ons as u64,
        melody["statistics"]["notes"].as_u64().unwrap()
    );

    // On a phone-sized screen the page is one column that fits: nothing is
    // wider than the window, and the score is drawn within its box.
    client.set_window_size(420, 900).await.unwrap();
    client
        .goto(&format!("{}?seed=4&meter=6/8&bars=8", server.url()))
        .await
        .unwrap();
    wait_until(
        &client,
        "the narrow page",
        "return document.body.dataset.ready === 'true';",
    )
    .await;
    let widths = client
        .execute(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth,
                     Math.max(...[...document.querySelectorAll('#score svg *')].map((e) => e.getBoundingClientRect().right)),
                     document.getElementById('score').getBoundingClientRect().right];",
            vec![],
        )
        .await
        .unwrap();
    let [page, window, drawing, score_box] = [0, 1, 2, 3].map(|i| widths[i].as_f64().unwrap());
    assert!(page <= window && drawing <= score_box, "{widths}");
    client.close().await.unwrap();

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("composer.png");
    std::fs::write(&shot, &screenshot).unwrap();
    eprintln!("screenshot: {}", shot.display());
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        std::fs::write(common::workspace().join("docs/composer.png"), &screenshot).unwrap();
    }
}

/// A fresh folder under the target's scratch space.
fn tempfile_dir(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
