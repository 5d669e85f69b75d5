//! Training runs on a slice of erk with a tiny model: determinism, thread-count
//! independence, refusal of non-finite losses, and run-folder safety.

use std::path::{Path, PathBuf};

use candle_core::Device;
use grid_codec::{Token, Vocabulary};
use trainer::{Dataset, Objective, PrepareOptions, RunOptions, Schedule, TrainConfig, TrainError};

fn erk() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/essen/deutschl/erk");
    assert!(
        dir.is_dir(),
        "the Essen data is expected at {}",
        dir.display()
    );
    dir
}

/// The first 60 erk songs, prepared.
fn small_prepared() -> trainer::Prepared {
    let mut collection = esac_parse::Collection::default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(erk())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "krn"))
        .take(60)
    {
        esac_parse::read_bytes(file, &std::fs::read(file).unwrap(), &mut collection);
    }
    trainer::prepare(&collection, &PrepareOptions::default()).unwrap()
}

/// Prepares the first 60 erk songs into `dir`.
fn small_dataset(dir: &Path) -> Dataset {
    trainer::write_prepared(&small_prepared(), dir).unwrap();
    Dataset::load(dir).unwrap()
}

#[test]
fn songs_read_through_another_vocabulary_keep_their_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let prepared = small_prepared();
    trainer::write_prepared(&prepared, dir.path()).unwrap();
    let on_disk = Dataset::load(dir.path()).unwrap();
    let in_memory = Dataset::from_prepared(prepared.clone(), prepared.vocabulary.clone()).unwrap();
    assert_eq!(in_memory.fingerprint, on_disk.fingerprint);
    assert_eq!(
        (&in_memory.train, &in_memory.val, &in_memory.test),
        (&on_disk.train, &on_disk.val, &on_disk.test)
    );

    // The pitches' ids reversed: other ids, the same tokens.
    let mut tokens = prepared.vocabulary.tokens().to_vec();
    let pitches = tokens.len() - 2;
    tokens[1..=pitches].reverse();
    let reversed = Vocabulary::from_tokens(tokens).unwrap();
    let read = Dataset::load_in(dir.path(), reversed.clone()).unwrap();
    let decoded = |dataset: &Dataset, vocabulary: &Vocabulary| -> Vec<Vec<Token>> {
        dataset
            .test
            .iter()
            .map(|song| vocabulary.decode(&song.ids).unwrap())
            .collect()
    };
    assert_ne!(read.test[0].ids, on_disk.test[0].ids);
    assert_eq!(
        decoded(&read, &reversed),
        decoded(&on_disk, &prepared.vocabulary)
    );

    // A vocabulary without one of the songs' pitches names a song that holds it.
    let highest = *prepared.vocabulary.tokens().iter().rev().nth(2).unwrap();
    let narrower: Vec<Token> = prepared
        .vocabulary
        .tokens()
        .iter()
        .copied()
        .filter(|&t| t != highest)
        .collect();
    let error = Dataset::load_in(dir.path(), Vocabulary::from_tokens(narrower).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("song ")
            && error.contains(&format!("\"{highest}\" is not in the vocabulary")),
        "{error}"
    );
}

fn tiny() -> TrainConfig {
    TrainConfig {
        embedding_dim: Some(8),
        hidden_size: 16,
        num_layers: 1,
        dropout: 0.2,
        batch_size: 8,
        seq_len: 16,
        lr: 1e-2,
        schedule: Schedule::Cosine { min_ratio: 0.1 },
        warmup_steps: 2,
        epochs: 2,
        max_steps: Some(24),
        clip_norm: Some(1.0),
        weight_decay: 0.0,
        objective: Objective::All,
        windows: trainer::data::Windows::Lanes,
        eval_every: 8,
        patience: None,
        seed: 5,
        condition_dropout: 0.0,
    }
}

/// Trains with the run's logs attached (`metrics.csv`, TensorBoard), as the
/// CLI does.
fn train_logged(
    dataset: &Dataset,
    source: &str,
    config: &TrainConfig,
    run: &std::path::Path,
    options: &RunOptions,
) -> Result<trainer::TrainOutcome, TrainError> {
    let mut csv = trainer::observe::MetricsCsv::new(run);
    let mut events = trainer::observe::TensorBoard::new(run);
    trainer::train(
        dataset,
        source,
        config,
        run,
        options,
        &mut [&mut csv, &mut events],
    )
}

fn options(threads: usize) -> RunOptions {
    RunOptions {
        resume: false,
        init: None,
        device: Device::Cpu,
        threads,
    }
}

fn losses(run: &Path) -> Vec<(f64, f64)> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<f64> = line.split(',').map(|f| f.parse().unwrap()).collect();
            (fields[2], fields[3])
        })
        .collect()
}

#[test]
fn same_seed_same_losses_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = small_dataset(&dir.path().join("data"));
    let a = train_logged(
        &dataset,
        "test",
        &tiny(),
        &dir.path().join("a"),
        &options(1),
    )
    .unwrap();
    let b = train_logged(
        &dataset,
        "test",
        &tiny(),
        &dir.path().join("b"),
        &options(1),
    )
    .unwrap();
    assert_eq!(losses(&dir.path().join("a")), losses(&dir.path().join("b")));
    assert_eq!(a.metrics.test, b.metrics.test);
    assert_eq!(a.metrics.steps, 24);
    let c = train_logged(
        &dataset,
        "test",
        &tiny(),
        &dir.path().join("c"),
        &options(3),
    )
    .unwrap();
    for ((la, va), (lc, vc)) in losses(&dir.path().join("a"))
        .iter()
        .zip(losses(&dir.path().join("c")))
    {
        assert!(
            (la - lc).abs() < 1e-4 && (va - vc).abs() < 1e-4,
            "{la} {lc} {va} {vc}"
        );
    }
    assert!((a.metrics.test.nll_per_token - c.metrics.test.nll_per_token).abs() < 1e-4);
    // Training moved the model away from the uniform guess.
    assert!(a.metrics.test.nll_per_token < (dataset.vocabulary.len() as f64).ln());
    // The run folder holds what it promises.
    let run = dir.path().join("a");
    for file in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "metrics.csv",
        "metrics.json",
        "model.dot",
        "state/optimizer.safetensors",
        "state/progress.json",
    ] {
        assert!(run.join(file).is_file(), "{file}");
    }
    let config: trainer::RunConfig =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config.training, tiny());
    assert_eq!(config.dataset.fingerprint, dataset.fingerprint);
    assert!(config.metrics.is_some());
    let events = std::fs::read_dir(&run)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .count();
    assert_eq!(events, 1);
}

#[test]
fn every_way_of_cutting_windows_is_deterministic_and_thread_independent() {
    use trainer::data::Windows;
    let dir = tempfile::tempdir().unwrap();
    let dataset = small_dataset(&dir.path().join("data"));
    for (name, windows, objective) in [
        ("lanes", Windows::Lanes, Objective::All),
        ("songs", Windows::Songs, Objective::All),
        ("stream", Windows::Stream, Objective::All),
        ("last", Windows::Stream, Objective::Last),
    ] {
        let config = TrainConfig {
            windows,
            objective,
            max_steps: Some(12),
            eval_every: 4,
            ..tiny()
        };
        let one = dir.path().join(format!("{name}-1"));
        let again = dir.path().join(format!("{name}-again"));
        let two = dir.path().join(format!("{name}-2"));
        train_logged(&dataset, "test", &config, &one, &options(1)).unwrap();
        train_logged(&dataset, "test", &config, &again, &options(1)).unwrap();
        train_logged(&dataset, "test", &config, &two, &options(2)).unwrap();
        assert_eq!(losses(&one), losses(&again), "{name}");
        for ((a, b), (c, d)) in losses(&one).iter().zip(losses(&two)) {
            assert!(
                (a - c).abs() < 1e-4 && (b - d).abs() < 1e-4,
                "{name}: {a} {c} {b} {d}"
            );
        }
    }
    let bad = TrainConfig {
        windows: Windows::Lanes,
        objective: Objective::Last,
        ..tiny()
    };
    let err =
        train_logged(&dataset, "test", &bad, &dir.path().join("bad"), &options(1)).unwrap_err();
    assert!(
        err.to_string()
            .contains("windows cut from the stream of songs"),
        "{err}"
    );
    let bad = TrainConfig {
        condition_dropout: 1.5,
        ..tiny()
    };
    let err =
        train_logged(&dataset, "test", &bad, &dir.path().join("bad"), &options(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad training configuration: condition dropout 1.5 must be in [0, 1)"
    );
}

/// Counts what the trainer says it withheld.
#[derive(Default)]
struct Withheld(Vec<(usize, usize)>);

impl trainer::observe::Observer for Withheld {
    fn conditions_withheld(&mut self, withheld: usize, songs: usize) {
        self.0.push((withheld, songs));
    }
}

#[test]
fn condition_dropout_withholds_in_the_trainer_and_says_how_many() {
    let dir = tempfile::tempdir().unwrap();
    let plain = small_dataset(&dir.path().join("data"));
    let config = TrainConfig {
        condition_dropout: 0.5,
        max_steps: Some(2),
        ..tiny()
    };
    let mut told = Withheld::default();
    let mut train = |dataset: &Dataset, name: &str| {
        trainer::train(
            dataset,
            "test",
            &config,
            &dir.path().join(name),
            &options(1),
            &mut [&mut told],
        )
    };
    let err = train(&plain, "plain").unwrap_err();
    assert!(
        err.to_string()
            .contains("condition dropout withholds conditions"),
        "{err}"
    );

    let mut conditioned = plain.clone();
    conditioned.condition(grid_codec::Conditioning::from_songs(
        plain.train.iter().map(|s| &s.conditions),
    ));
    let before = conditioned.train.clone();
    let expected = conditioned
        .clone()
        .withhold_conditions(config.condition_dropout, config.seed);
    assert!(expected > 0 && expected < conditioned.train.len());
    train(&conditioned, "conditioned").unwrap();
    // Told once, for the conditioned dataset only.
    assert_eq!(told.0, [(expected, conditioned.train.len())]);
    // Withheld from the songs trained on, not from the caller's dataset.
    assert_eq!(conditioned.train, before);
}

#[test]
fn a_non_finite_loss_stops_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = small_dataset(&dir.path().join("data"));
    let config = TrainConfig {
        lr: 1e300,
        clip_norm: None,
        eval_every: 1,
        warmup_steps: 0,
        schedule: Schedule::Constant,
        ..tiny()
    };
    let run = dir.path().join("run");
    let err = train_logged(&dataset, "test", &config, &run, &options(1)).unwrap_err();
    assert!(matches!(err, TrainError::NonFinite { .. }), "{err}");
    assert!(err.to_string().contains("last good checkpoint"), "{err}");
    let checkpoint = lstm_candle::load_checkpoint(&run.join("state"), &Device::Cpu).unwrap();
    let finite = checkpoint.parameters().iter().all(|(_, v)| {
        v.as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|x| x.is_finite())
    });
    assert!(finite, "the kept checkpoint has finite weights");
}

#[test]
fn a_run_is_never_overwritten_and_resume_checks_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = small_dataset(&dir.path().join("data"));
    let run = dir.path().join("run");
    let config = TrainConfig {
        max_steps: Some(8),
        ..tiny()
    };
    train_logged(&dataset, "test", &config, &run, &options(1)).unwrap();
    let again = train_logged(&dataset, "test", &config, &run, &options(1)).unwrap_err();
    assert!(matches!(again, TrainError::RunExists(_)), "{again}");
    let resume = RunOptions {
        resume: true,
        ..options(1)
    };
    let other = TrainConfig {
        hidden_size: 32,
        ..config.clone()
    };
    let err = train_logged(&dataset, "test", &other, &run, &resume).unwrap_err();
    assert!(err.to_string().contains("hyper-parameters differ"), "{err}");
    // More steps on the same settings continue the run.
    let longer = TrainConfig {
        max_steps: Some(16),
        ..config
    };
    let outcome = train_logged(&dataset, "test", &longer, &run, &resume).unwrap();
    assert_eq!(outcome.metrics.steps, 16);
    assert_eq!(losses(&run).len(), 2);
}

#[test]
fn init_keeps_the_rows_of_known_tokens_and_trains_new_ones() {
    use lstm_candle::{MelodyModel, names};

    let dir = tempfile::tempdir().unwrap();
    let small = small_dataset(&dir.path().join("small"));
    let first = dir.path().join("first");
    train_logged(&small, "small", &tiny(), &first, &options(1)).unwrap();
    let model = lstm_candle::load_checkpoint(&first, &Device::Cpu).unwrap();
    let init = trainer::Init::from_model(&model, &small.vocabulary, None, "first".into());

    // The same songs and three more, in every split, with a pitch the first
    // model never saw (MIDI 95).
    let grown = dir.path().join("grown");
    std::fs::create_dir_all(&grown).unwrap();
    let mut songs = trainer::read_songs(&dir.path().join("small/songs.jsonl")).unwrap();
    for (i, split) in [
        trainer::Split::Train,
        trainer::Split::Val,
        trainer::Split::Test,
    ]
    .into_iter()
    .enumerate()
    {
        songs.push(trainer::SongRecord {
            id: format!("NEW{i}"),
            collection: String::new(),
            file: "new.krn".into(),
            title: String::new(),
            split,
            transposed_by: 0,
            key: None,
            meter: None,
            bars: None,
            tokens: "60 _ 95 _ _ _ 64 _ 95 _".into(),
        });
    }
    std::fs::write(
        grown.join("songs.jsonl"),
        trainer::songs_jsonl(&songs).unwrap(),
    )
    .unwrap();
    let tokens: Vec<Vec<Token>> = songs
        .iter()
        .map(|s| grid_codec::parse_tokens(&s.tokens).unwrap())
        .collect();
    let vocabulary = Vocabulary::build(tokens.iter().map(Vec::as_slice));
    vocabulary.save(&grown.join("tokenizer.json")).unwrap();
    let grown = Dataset::load(&grown).unwrap();
    assert_eq!(grown.vocabulary.len(), small.vocabulary.len() + 1);
    let new_id = grown.vocabulary.id(Token::Note(95)).unwrap() as usize;

    // Applied to a fresh model: every known token's rows are the first
    // model's, the new token's are the fresh ones, the LSTM is taken whole.
    let config = tiny().model_config(grown.vocabulary.len(), None);
    let fresh = MelodyModel::new(config.clone(), &Device::Cpu, candle_core::DType::F32, 5).unwrap();
    let before = |m: &MelodyModel, name: &str| -> Vec<Vec<f32>> {
        let data = m.varmap().data().lock().unwrap();
        let t = data[name].as_tensor();
        if t.rank() == 1 {
            t.unsqueeze(1).unwrap().to_vec2().unwrap()
        } else {
            t.to_vec2().unwrap()
        }
    };
    let fresh_rows = before(&fresh, names::EMBEDDING);
    assert_eq!(init.apply(&fresh, &grown.vocabulary).unwrap(), 1);
    for name in [names::EMBEDDING, names::FC_WEIGHT, names::FC_BIAS] {
        let old = before(&model, name);
        let now = before(&fresh, name);
        for (id, token) in grown.vocabulary.tokens().iter().enumerate() {
            match small.vocabulary.id(*token) {
                Some(old_id) => assert_eq!(now[id], old[old_id as usize], "{name} {token:?}"),
                None => assert_eq!(id, new_id),
            }
        }
    }
    assert_eq!(before(&fresh, names::EMBEDDING)[new_id], fresh_rows[new_id]);
    assert_eq!(
        before(&fresh, &names::weight_hh(0)),
        before(&model, &names::weight_hh(0))
    );

    // Trained from there, the new token's row moves.
    let second = dir.path().join("second");
    let with_init = RunOptions {
        init: Some(init.clone()),
        ..options(1)
    };
    let outcome = train_logged(&grown, "grown", &tiny(), &second, &with_init).unwrap();
    assert!(outcome.metrics.test.nll_per_token.is_finite());
    let trained = lstm_candle::load_checkpoint(&second, &Device::Cpu).unwrap();
    assert_ne!(
        before(&trained, names::EMBEDDING)[new_id],
        fresh_rows[new_id]
    );
    let config: trainer::RunConfig =
        serde_json::from_str(&std::fs::read_to_string(second.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config.init_from.as_deref(), Some("first"));

    // Another architecture is refused by name.
    let wider = TrainConfig {
        hidden_size: 32,
        ..tiny()
    };
    let err = train_logged(
        &grown,
        "grown",
        &wider,
        &dir.path().join("wider"),
        &with_init,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("first has embedding 8, hidden size 16"),
        "{err}"
    );

    // A model that looks back over its tokens by id needs the same tokens.
    let looking = trainer::Init {
        conditioning: Some(grid_codec::Conditioning {
            lookback: Some(grid_codec::Lookback {
                bars: vec![2],
                tokens: small.vocabulary.len() as u32,
                forms: None,
            }),
            ..grid_codec::Conditioning::from_songs([])
        }),
        ..init
    };
    let err = looking
        .apply(&fresh, &grown.vocabulary)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("first looks back over its own tokens by id")
            && err.contains(&format!(
                "these have {} tokens, of which 1 it does not know",
                grown.vocabulary.len()
            )),
        "{err}"
    );
    let same_tokens = MelodyModel::new(
        tiny().model_config(small.vocabulary.len(), None),
        &Device::Cpu,
        candle_core::DType::F32,
        6,
    )
    .unwrap();
    assert_eq!(looking.apply(&same_tokens, &small.vocabulary).unwrap(), 0);
}
