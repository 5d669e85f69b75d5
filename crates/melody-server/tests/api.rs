//! The JSON API over the shipped models: answers, refusals, batching and
//! downloads.

mod common;

use common::{agent, get, get_json, server};
use composer::Settings;
use melody_server::Running;
use model_folder::ModelFolder;
use proptest::prelude::*;

#[test]
fn models_are_listed_with_what_they_can_be_asked() {
    let server = server();
    let (status, body) = get_json(&server, "/api/models");
    assert_eq!(status, 200);
    let models = body["models"].as_array().unwrap();
    assert_eq!(models[0]["name"], "essen", "the default comes first");
    assert_eq!(models[0]["conditioned"], true);
    let meters = models[0]["conditions"]["meters"].as_array().unwrap();
    assert!(meters.iter().any(|m| m == "6/8"), "{meters:?}");
    assert!(
        models
            .iter()
            .any(|m| m["name"] == "erk" && m["conditioned"] == false)
    );
    let (status, health) = get_json(&server, "/api/health");
    assert_eq!((status, &health["status"]), (200, &"ok".into()));
}

#[test]
fn a_melody_is_the_one_the_composer_gives_the_command_line() {
    let server = server();
    let (status, melody) = get_json(&server, "/api/generate?seed=11&bars=8&meter=3/4&mode=minor");
    assert_eq!(status, 200, "{melody}");
    let folder = ModelFolder::load(
        &common::workspace().join("assets/essen"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let settings = Settings {
        seed: 11,
        bars: Some(8),
        meter: Some("3/4".parse().unwrap()),
        mode: Some("minor".parse().unwrap()),
        ..Settings::default()
    };
    let composed = composer::compose(&folder, &settings, 1)
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(
        melody["tokens"],
        grid_codec::tokens_to_string(&composed.generated.tokens)
    );
    assert_eq!(melody["asked"]["meter"], "3/4");
    assert_eq!(melody["asked"]["mode"], "minor");
    assert_eq!(melody["asked"]["mode_guidance"], 0.0);
    assert_eq!(melody["asked"]["bars"], 8);
    let upbeat = match melody["asked"]["pickup"].as_u64().unwrap() {
        0 => String::new(),
        steps => format!(" after an upbeat of {steps} steps"),
    };
    let description = format!(
        "8 bars of 3/4{upbeat}, minor, style {}",
        melody["asked"]["style"].as_str().unwrap()
    );
    assert_eq!(melody["asked"]["description"], description.as_str());
    // The kern download says so too.
    let (status, kern) = get(&server, melody["links"]["krn"].as_str().unwrap());
    assert_eq!(status, 200);
    let kern = String::from_utf8(kern).unwrap();
    let caution = melody["asked"]["caution"]
        .as_str()
        .map_or_else(String::new, |caution| format!("; {caution}"));
    assert!(
        kern.contains(&format!(
            "\n!! esac-melody, asked for {description}{caution}\n"
        )),
        "{kern}"
    );
    assert_eq!(melody["key"], "A minor");
    let abc = melody["abc"].as_str().unwrap();
    assert!(abc.contains("M:3/4\n") && abc.contains("K:Am\n"), "{abc}");
    // The downloads are the same melody.
    let (status, midi) = get(&server, melody["links"]["mid"].as_str().unwrap());
    assert_eq!(status, 200);
    let (_, notes) = melody_formats::midi::read_notes(&midi).unwrap();
    assert_eq!(
        notes.len(),
        melody["statistics"]["notes"].as_u64().unwrap() as usize
    );
    let (status, tokens) = get(&server, melody["links"]["txt"].as_str().unwrap());
    assert_eq!(status, 200);
    let tokens = String::from_utf8(tokens).unwrap();
    assert!(tokens.starts_with(melody["tokens"].as_str().unwrap()));
    let (status, wav) = get(&server, melody["links"]["wav"].as_str().unwrap());
    assert_eq!(status, 200);
    assert_eq!(&wav[..4], b"RIFF");
    // A POST of the same settings gives the same melody.
    let (status, body) = post(
        &server,
        "/api/generate",
        br#"{"seed": 11, "bars": 8, "meter": "3/4", "mode": "minor"}"#,
    );
    assert_eq!(status, 200);
    let posted: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(posted["tokens"], melody["tokens"]);
}

#[test]
fn a_melody_of_a_kind_the_model_never_heard_says_so() {
    // The Chinese songs of the whole collection are all major (counted from
    // the prepared collection's songs.jsonl), so a minor one is the model's
    // guess.
    let server = server();
    let (status, melody) = get_json(&server, "/api/generate?meter=2/4&mode=minor&style=china");
    assert_eq!(status, 200, "{melody}");
    let caution = "no training song is minor, in 2/4 and of style esac/china: the model has not heard such a song";
    assert_eq!(melody["asked"]["songs_alike"], 0);
    assert_eq!(melody["asked"]["caution"], caution);
    let abc = melody["abc"].as_str().unwrap();
    assert!(abc.contains(&format!("; {caution}\n")), "{abc}");
    // Chinese songs in 2/4 and major are the collection's commonest kind.
    let (_, melody) = get_json(&server, "/api/generate?meter=2/4&mode=major&style=china");
    assert!(
        melody["asked"]["songs_alike"].as_u64().unwrap() > 500,
        "{melody}"
    );
    assert_eq!(melody["asked"]["caution"], serde_json::Value::Null);
}

#[test]
fn concurrent_requests_are_each_the_melody_they_would_be_alone() {
    let server = server();
    let path = |seed: u32| format!("/api/generate?seed={seed}&bars=8&temperature=0.9");
    let alone: Vec<serde_json::Value> = (0..8)
        .map(|seed| get_json(&server, &path(seed)).1)
        .collect();
    // Other settings, so that the cache cannot answer; then the same again
    // all at once, so that they are batched.
    let together: Vec<serde_json::Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|seed| {
                let server = &server;
                scope.spawn(move || get_json(server, &format!("{}&tempo=101", path(seed))).1)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (a, b) in alone.iter().zip(&together) {
        assert_eq!(a["tokens"], b["tokens"]);
    }
}

#[test]
fn a_melody_can_start_like_a_held_out_song() {
    // ERK E0003 as `prepare` writes it: 2/4 with an eighth-note upbeat.
    let data =
        std::env::temp_dir().join(format!("melody-server-start-like-{}", std::process::id()));
    std::fs::create_dir_all(&data).unwrap();
    let test = r#"{"id":"E0003","collection":"deutschl/erk","file":"deut0585.krn","title":"ES WAR A MOL A MADEL","split":"test","transposed_by":0,"key":"C major","meter":"2/4","bars":{"bar_steps":8,"upbeat":6,"bars":[2,8,8,8,8,8,8,8,6]},"tokens":"55 _ 60 _ 59 _ 60 _ 62 _ 60 _ 59 _ 59 _ 55 _ 60 _ 59 _ 60 _ 63 _ 62 _ _ _ r _ 62 _ 63 _ 62 _ 63 _ 65 _ 63 _ 62 _ 62 _ 59 _ 60 62 63 _ 62 60 59 _ 60 _ _ _ r _"}"#;
    let train = r#"{"id":"T1","collection":"deutschl/erk","file":"t.krn","title":"T","split":"train","transposed_by":0,"tokens":"55 _ 60 _ 59 _ 60 _ 62 _ 60 _ 59 _ 59 _ 55 _ 60 _"}"#;
    std::fs::write(data.join("songs.jsonl"), format!("{test}\n{train}\n")).unwrap();
    let server = common::server_with_data(Some(data.clone()));
    let (status, songs) = get_json(&server, "/api/models/essen/songs");
    assert_eq!(status, 200);
    assert_eq!(songs["songs"][0]["id"], "E0003");
    let (status, melody) = get_json(&server, "/api/generate?start_like=E0003&seed=2&bars=8");
    assert_eq!(status, 200, "{melody}");
    let tokens = melody["tokens"].as_str().unwrap();
    assert!(tokens.starts_with("55 _ 60 _ 59 _ 60 _ 62 _"), "{tokens}");
    assert_eq!(melody["asked"]["meter"], "2/4");
    assert_eq!(melody["asked"]["pickup"], 2);
    assert_eq!(melody["asked"]["style"], "deutschl/erk");
    assert_eq!(melody["asked"]["mode"], "major");
    // The shipped model guides major melodies towards major by default.
    assert_eq!(melody["asked"]["mode_guidance"], 0.3);
    // The primer (10 grid steps) is also the opening of the training song.
    let statistics = &melody["statistics"];
    let length = statistics["longest_copy"].as_u64().unwrap() as usize;
    assert!(length >= 10, "{melody}");
    // Named, and where it says: the same tokens in the melody and the song.
    let from = &statistics["copied_from"];
    assert_eq!(from["song"], "T1 T (deutschl/erk)");
    let (in_melody, in_song) = (
        from["melody_start"].as_u64().unwrap() as usize,
        from["song_start"].as_u64().unwrap() as usize,
    );
    let song: Vec<&str> = "55 _ 60 _ 59 _ 60 _ 62 _ 60 _ 59 _ 59 _ 55 _ 60 _"
        .split(' ')
        .collect();
    let melody_tokens: Vec<&str> = tokens.split(' ').collect();
    assert_eq!(
        melody_tokens[in_melody..in_melody + length],
        song[in_song..in_song + length]
    );
    let (status, body) = get_json(&server, "/api/generate?start_like=E0003&prime=60");
    assert_eq!(status, 400);
    assert_eq!(body["field"], "start_like");
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn the_repeated_bars_are_counted_in_the_bars_the_score_writes() {
    use judge::meter::{Metric, repeated_bars};
    let server = server();
    let bar = "60 _ 62 _ 64 _ 65 _";
    // The same bar twice from the downbeat, then after an eighth upbeat:
    // either way the second bar repeats the first.
    for (upbeat, pickup) in [("", 0), ("55 _ ", 2)] {
        let prime = format!("{upbeat}{bar} {bar}").replace(' ', "+");
        let (status, melody) = get_json(
            &server,
            &format!("/api/generate?prime={prime}&meter=2/4&pickup={pickup}&bars=6&seed=1"),
        );
        assert_eq!(status, 200, "{melody}");
        let counted = &melody["statistics"]["repeated_bars"];
        let tokens = grid_codec::parse_tokens(melody["tokens"].as_str().unwrap()).unwrap();
        let metric = Metric {
            meter: "2/4".parse().unwrap(),
            bar_steps: 8,
            pickup,
        };
        let (repeated, of) = repeated_bars(&tokens, metric);
        assert!(repeated >= 1, "{melody}");
        assert_eq!(
            (counted["repeated"].as_u64(), counted["of"].as_u64()),
            (Some(repeated as u64), Some(of as u64))
        );
    }
}

#[test]
fn bad_settings_are_refused_naming_the_field() {
    let server = server();
    let cases = [
        ("bars=0", 400, Some("bars"), "from 1 to 64"),
        ("bars=65", 400, Some("bars"), "from 1 to 64"),
        ("temperature=-1", 400, Some("temperature"), "positive"),
        ("top_p=1.5", 400, Some("top_p"), "(0, 1]"),
        ("top_k=0", 400, Some("top_k"), "at least 1"),
        ("seed=x", 400, Some("seed"), "whole number"),
        ("tempo=1000", 400, Some("tempo"), "from 20 to 400"),
        ("meter=7/8", 400, Some("meter"), "it knows"),
        ("meter=free", 400, Some("meter"), "time signature"),
        ("mode=sideways", 400, Some("mode"), "mode"),
        (
            "mode=dorian",
            400,
            Some("mode"),
            "knows the modes major and minor",
        ),
        ("key=H", 400, Some("key"), "letter"),
        ("pickup=99&meter=2/4", 400, Some("pickup"), "from 0 to 7"),
        (
            "mode_guidance=2.5",
            400,
            Some("mode_guidance"),
            "from 0 (no guidance) to 2",
        ),
        (
            "mode_guidance=lots",
            400,
            Some("mode_guidance"),
            "a number from 0 to 2",
        ),
        (
            "model=erk&mode_guidance=0.3",
            400,
            Some("mode_guidance"),
            "--condition",
        ),
        ("form=AABA", 400, Some("form"), "not trained with --form"),
        ("form_bars=maybe", 400, Some("form_bars"), "copied or drawn"),
        ("prime=_", 400, Some("prime"), "cannot start with"),
        ("prime=60%20999", 400, Some("prime"), "not a grid token"),
        ("max_len=9999", 400, Some("max_len"), "4096"),
        ("bars=4&max_len=10", 400, Some("max_len"), "one length"),
        ("start_like=E0001", 400, Some("start_like"), "held-out"),
        ("colour=red", 400, Some("request"), "unknown setting"),
        ("seed=1&seed=2", 400, Some("request"), "twice"),
        ("model=nope", 404, None, "no model named nope"),
        ("model=..%2F..%2Fetc", 400, None, "not by a path"),
        ("model=%2Fetc%2Fpasswd", 400, None, "not by a path"),
        (
            "model=erk&style=esac%2Fchina",
            400,
            Some("style"),
            "--condition",
        ),
    ];
    for (query, status, field, message) in cases {
        let (got, body) = get_json(&server, &format!("/api/generate?{query}"));
        assert_eq!(got, status, "{query}: {body}");
        assert_eq!(body["field"].as_str(), field, "{query}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(message), "{query}: {error}");
    }
    let (status, _) = get(&server, "/api/melody/exe?seed=1");
    assert_eq!(status, 400);
    let (status, _) = get(&server, "/../../Cargo.toml");
    assert_eq!(status, 404);
    let (status, _) = get(&server, "/api/models/..%2F..%2Fetc/songs");
    assert_eq!(status, 400);
    let (status, body) = post(
        &server,
        "/api/generate",
        &vec![b' '; melody_server::BODY_LIMIT + 1],
    );
    assert_eq!(status, 413);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error");
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    let (status, body) = post(&server, "/api/generate", b"{\"bars\": [8]}");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn only_loopback_unless_asked() {
    let refused = melody_server::start(melody_server::Config {
        host: "0.0.0.0".parse().unwrap(),
        ..melody_server::Config::loopback(common::workspace().join("assets"), std::env::temp_dir())
    });
    let error = refused.err().expect("refused").to_string();
    assert!(error.contains("--allow-remote"), "{error}");
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("3/4")),
        Just(serde_json::Value::from("60 _ _ _")),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("seed".to_owned()),
                    Just("bars".to_owned()),
                    Just("meter".to_owned()),
                    Just("temperature".to_owned()),
                    Just("prime".to_owned()),
                    Just("pickup".to_owned()),
                    Just("max_len".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn random_bodies_never_break_the_server(
        value in json_value(),
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let server = shared_server();
        for body in [serde_json::to_vec(&value).unwrap(), bytes] {
            let (status, answer) = post(server, "/api/generate", &body);
            prop_assert!(matches!(status, 200 | 400 | 404), "{status}: {}", String::from_utf8_lossy(&answer));
            if status != 200 {
                let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
                prop_assert!(answer["error"].is_string());
            }
        }
        let (status, _) = get(server, "/api/health");
        prop_assert_eq!(status, 200);
    }
}

/// One server for all the property test's cases.
fn shared_server() -> &'static melody_server::Running {
    static SERVER: std::sync::OnceLock<melody_server::Running> = std::sync::OnceLock::new();
    SERVER.get_or_init(server)
}

/// Status and body of a POST.
fn post(server: &Running, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut response = agent()
        .post(&format!("http://{}{path}", server.addr))
        .header("Content-Type", "application/json")
        .send(body)
        .expect("the server answers");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_vec().unwrap_or_default(),
    )
}
