//! The model card: YAML front matter for the hub, then what a user needs to
//! know to trust and use the model.

use grid_codec::{Encoding, Transposition};
use serde_json::Value;

/// How the songs became tokens, for the card.
fn encoding_text(encoding: &Encoding) -> String {
    if *encoding == Encoding::reference() {
        return "- Each song is moved to C major or A minor and written on a 1/16 grid: a MIDI pitch\n  number starts a note, `r` a rest, `_` holds the previous one for another sixteenth,\n  and `.` ends the song. Songs whose notes do not fall on the grid are left out, with\n  the reason recorded.".to_owned();
    }
    let keys = match encoding.transposition {
        Transposition::None => "kept in its written key".to_owned(),
        Transposition::ToCMajorAMinor => "moved to C major or A minor".to_owned(),
        Transposition::AllKeys { low, high } => {
            format!("written in every key whose pitches stay within MIDI {low}-{high}")
        }
    };
    format!(
        "- Each song is {keys} and written on a {step} grid: a MIDI pitch\n  number starts a note, `r` a rest, `_` holds the previous one for another {step}\n  of a whole note, and `.` ends the song. Songs whose notes do not fall on the grid\n  are left out, with the reason recorded.",
        step = encoding.step
    )
}

fn number(value: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(value, |v, key| v.get(key))?.as_f64()
}

fn text(value: &Value, path: &[&str]) -> Option<String> {
    let found = path.iter().try_fold(value, |v, key| v.get(key))?;
    Some(match found {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// What the card says differently of a model trained on several collections
/// and told the meter, mode, style and bars: its data (with `report`, the
/// `report.json` of its prepared data, when at hand), its side inputs, its
/// results per collection, how to ask it for a melody.
struct Conditioned {
    data: String,
    model: String,
    results: String,
    usage: String,
    limitation: String,
}

fn conditioned(config: &Value, report: Option<&Value>, repo: &str) -> Option<Conditioned> {
    let side: Vec<String> = config
        .get("side_inputs")?
        .as_array()?
        .iter()
        .filter_map(|s| {
            Some(format!(
                "`{}` ({})",
                s.get("name")?.as_str()?,
                s.get("size")?
            ))
        })
        .collect();
    let looking_back = config
        .pointer("/conditioning/lookback/bars")
        .and_then(Value::as_array)
        .map_or_else(String::new, |bars| {
            let bars: Vec<String> = bars.iter().map(Value::to_string).collect();
            let form = if config.pointer("/conditioning/lookback/forms").is_some() {
                ",\nand which of those bars its bar says again (`form`: 0 not known, 1 none, 2 on\nfor each distance in turn; `sample` draws a training song's form or takes\n`--form AABA`)"
            } else {
                ""
            };
            format!(
                ",\nand the song's own token {} bars back (`lookback_N`: its id, or \"nothing there\"\nas the last value){form}",
                bars.join(", ")
            )
        });
    let per_collection = config
        .pointer("/metrics/test_per_collection")
        .and_then(Value::as_object);
    let mut results = String::from(
        "\nThe scores are conditional: each test song is read with its own meter, mode,\ncollection, upbeat and bars, as `sample` is told them.\n",
    );
    if let Some(per_collection) = per_collection {
        results.push_str("\n| collection | test songs | NLL per token |\n|---|---:|---:|\n");
        for (name, scores) in per_collection {
            results.push_str(&format!(
                "| {name} | {} | {:.4} |\n",
                text(scores, &["songs"]).unwrap_or_default(),
                number(scores, &["nll_per_token"]).unwrap_or(f64::NAN)
            ));
        }
    }
    let collections = config
        .pointer("/conditioning/style_songs")
        .and_then(Value::as_object)
        .map_or(0, |styles| styles.len());
    if let Some(seconds) = number(config, &["metrics", "train_seconds"]) {
        results.push_str(&format!(
            "\nTraining took {seconds:.0} s on the 2 CPU cores of this project's machine.\n"
        ));
    }
    let duplicates = report
        .and_then(|r| r.get("duplicates"))
        .map_or_else(String::new, |d| {
            format!(
                " A song whose tokens an earlier collection already holds is kept once:\n  {d} were dropped as duplicates (the same song in both forms, or repeated\n  across collections)."
            )
        });
    Some(Conditioned {
        data: format!(
            "- The Essen Folk Song Collection (EsAC): {collections} collections, both the native\n  EsAC files and the Humdrum `**kern` renditions of the German sets, read with\n  `deutschl/erk` first.{duplicates} Each collection is split on its own, so\n  ERK's 168 test songs are the same as for every other model of this project."
        ),
        model: format!(
            "Beside each token it reads side inputs,\neach an embedding added to the token's: {}.\nThey tell it where the step falls in its bar and the song's meter, mode, style\n(collection) and bars left{looking_back}. So it does not load into the reference notebook's\n`LSTMModel`; `assets/erk` does.",
            side.join(", ")
        ),
        results,
        usage: format!(
            "cargo xtask-hub sample --model hub:{repo} --meter 6/8 --mode minor --style deutschl/zuccal --bars 8 --num 4"
        ),
        limitation: "- It is told the meter and the bars, and learned to end songs where their bars end;\n  a melody can still run past the bars it was asked for (`sample` stops it two\n  bars later).".to_owned(),
    })
}

/// The model card: YAML front matter for the hub, then what a user needs to
/// know to trust and use the model.
pub fn model_card(
    config: &Value,
    encoding: &Encoding,
    report: Option<&Value>,
    repo: &str,
    has_loss_curve: bool,
) -> String {
    let conditioned = conditioned(config, report, repo);
    let unknown = || "not recorded".to_owned();
    let nll = number(config, &["metrics", "test", "nll_per_token"]);
    let metric =
        |v: Option<f64>, digits: usize| v.map_or_else(unknown, |v| format!("{v:.digits$}"));
    let percent = |v: Option<f64>| v.map_or_else(unknown, |v| format!("{:.1}%", v * 100.0));
    let model_index = nll.map_or_else(String::new, |nll| {
        format!(
            "model-index:\n- name: {name}\n  results:\n  - task:\n      type: text-generation\n      name: Next-token prediction over whole songs\n    dataset:\n      type: essen-folksong-collection\n      name: Essen Folk Song Collection ({set}), test split\n    metrics:\n    - type: nll\n      name: Test NLL per token (nats)\n      value: {nll:.4}\n    - type: perplexity\n      value: {ppl:.4}\n",
            name = repo.rsplit('/').next().unwrap_or(repo),
            ppl = nll.exp(),
            set = if conditioned.is_some() { "every collection" } else { "deutschl/erk" },
        )
    });
    let hidden = text(config, &["hidden_size"]).unwrap_or_else(unknown);
    let layers = text(config, &["num_layers"]).unwrap_or_else(unknown);
    let vocab = text(config, &["vocab_size"]).unwrap_or_else(unknown);
    let embedding = text(config, &["embedding_dim"]).unwrap_or_else(unknown);
    let dropout = text(config, &["dropout"]).unwrap_or_else(unknown);
    let training = config.get("training").map_or_else(unknown, |t| {
        format!(
            "objective `{}` on `{}` windows of {} tokens, batch {}, Adam lr {} ({} schedule, {} warm-up steps), gradient clipping {}, {} epochs, early-stopping patience {}, seed {}",
            text(t, &["objective"]).unwrap_or_else(unknown),
            text(t, &["windows"]).unwrap_or_else(unknown),
            text(t, &["seq_len"]).unwrap_or_else(unknown),
            text(t, &["batch_size"]).unwrap_or_else(unknown),
            text(t, &["lr"]).unwrap_or_else(unknown),
            t.get("schedule").map_or_else(unknown, |s| match s {
                Value::Object(kind) => kind.keys().cloned().collect::<Vec<_>>().join(", "),
                other => other.as_str().map_or_else(|| other.to_string(), str::to_owned),
            }),
            text(t, &["warmup_steps"]).unwrap_or_else(unknown),
            text(t, &["clip_norm"]).unwrap_or_else(unknown),
            text(t, &["epochs"]).unwrap_or_else(unknown),
            text(t, &["patience"]).unwrap_or_else(unknown),
            text(t, &["seed"]).unwrap_or_else(unknown),
        )
    });
    let split = config.get("dataset").map_or_else(unknown, |d| {
        format!(
            "{} training, {} validation and {} test songs ({} training tokens); dataset fingerprint `{}`",
            text(d, &["train_songs"]).unwrap_or_else(unknown),
            text(d, &["val_songs"]).unwrap_or_else(unknown),
            text(d, &["test_songs"]).unwrap_or_else(unknown),
            text(d, &["train_tokens"]).unwrap_or_else(unknown),
            text(d, &["fingerprint"]).unwrap_or_else(unknown),
        )
    });
    let loss_curve = if has_loss_curve {
        "\n![Training and validation loss](loss.png)\n"
    } else {
        ""
    };
    format!(
        r#"---
license: mit
library_name: esac-melody
pipeline_tag: text-generation
tags:
- music
- symbolic-music
- folk-music
- melody-generation
- lstm
- candle
- essen-folksong-collection
{model_index}---

# {repo}

A character-level LSTM that writes German folk melodies, one sixteenth note at a
time, trained by [esac-melody](https://github.com/esac-melody/esac-melody) (Rust,
Candle). It reimplements the well-known PyTorch notebook that trains an LSTM on the
Essen collection, and trains on every position of whole songs instead of only the
last token of 64-token windows.

## Model

`Embedding({vocab}, {embedding}) -> LSTM(hidden {hidden}, {layers} layer(s)) ->
Dropout({dropout}) -> Linear({hidden}, {vocab})`. {model_text}

## Data and preprocessing

{data_text}
{encoding_text}
- Split by song, 80/10/10: {split}.

## Training

{training}.{init}

## Results

Measured over whole held-out songs, each read from its start (how generation uses
the model):

| test NLL per token | perplexity | next-token accuracy |
|---|---|---|
| {nll_text} nats | {ppl} | {accuracy} |
{results}{loss_curve}
## Use

```sh
{usage}
```

This writes each melody as tokens, MIDI, MusicXML, ABC, WAV and a piano-roll PNG.
`generation_config.json` holds the default sampling settings.{python}

## Limitations

{repertoire}
{bars}
- Sampled melodies can run on without a clear ending, or repeat phrases from the
  training songs; `cargo xtask judge` measures both.
"#,
        nll_text = metric(nll, 4),
        ppl = metric(nll.map(f64::exp), 3),
        accuracy = percent(number(config, &["metrics", "test", "accuracy"])),
        encoding_text = encoding_text(encoding),
        model_text = conditioned.as_ref().map_or(
            "The weights in `model.safetensors`\ncarry PyTorch's parameter names (`embedding.weight`, `lstm.weight_ih_l0`, ...,\n`fc.weight`, `fc.bias`), so the reference notebook's `LSTMModel` loads them with\n`load_state_dict(strict=True)`.",
            |c| c.model.as_str()
        ),
        data_text = conditioned.as_ref().map_or(
            "- The Essen Folk Song Collection (EsAC), German songs of the `deutschl/erk` set\n  (1,700 songs in Humdrum `**kern`, as distributed at kern.humdrum.org).",
            |c| c.data.as_str()
        ),
        results = conditioned.as_ref().map_or("", |c| c.results.as_str()),
        usage = conditioned.as_ref().map_or_else(
            || format!("cargo xtask-hub sample --model hub:{repo} --prime \"55 _ _ _\" --num 4 --temperature 0.9"),
            |c| c.usage.clone()
        ),
        python = if conditioned.is_some() {
            ""
        } else {
            " From Python, load the\nweights into the reference notebook's `LSTMModel` with `safetensors.torch.load_file`\nand `load_state_dict(strict=True)`; `tokenizer.json` is a `tokenizers` WordLevel\ntokenizer over the tokens above."
        },
        bars = conditioned.as_ref().map_or(
            "- It has no idea of bars: the meter and key of a score come from the sampling command.",
            |c| c.limitation.as_str()
        ),
        init = text(config, &["init_from"]).map_or_else(String::new, |from| format!(
            "\n\nIt started from the weights of `{from}` (tokens that model knows kept their\nrows, new tokens started fresh) and was then trained on the data above."
        )),
        repertoire = if conditioned.is_some() {
            "- It knows the Essen collection: German, Chinese, Polish, Luxembourgish, Lorrainian\n  and other folk songs, all moved to C major or A minor. It writes single-line\n  melodies with no lyrics, dynamics or harmony."
        } else if encoding.in_reference_keys() {
            "- It knows one small repertoire: about 1,350 German folk songs, all moved to C major or\n  A minor. It writes single-line melodies with no lyrics, dynamics or harmony."
        } else {
            "- It knows the repertoire of its training songs only. It writes single-line melodies\n  with no lyrics, dynamics or harmony."
        },
    )
}
