//! Which collection a melody sounds like: a nearest-centroid classifier over
//! its pitch-class, interval and note-length histograms, fitted on training
//! songs, so that a melody asked for a style can be checked for it the way a
//! held-out song of that style is.

use std::collections::BTreeMap;

use grid_codec::Token;
use serde::Serialize;

use crate::{Found, Histograms, Song, notes, shares};

/// A melody's features: its pitch-class, interval and note-length shares, one
/// after the other.
pub fn features(tokens: &[Token]) -> Vec<f64> {
    let mut histograms = Histograms::new();
    histograms.add(&notes(tokens));
    [
        shares(&histograms.pitch_classes),
        shares(&histograms.intervals),
        shares(&histograms.durations),
    ]
    .concat()
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The mean features of each style's training songs.
#[derive(Debug, Clone, PartialEq)]
pub struct StyleClassifier {
    centroids: Vec<(String, Vec<f64>)>,
}

impl StyleClassifier {
    /// Fits on (style, tokens) pairs; `None` with fewer than two styles.
    pub fn fit<'a>(songs: impl IntoIterator<Item = (&'a str, &'a [Token])>) -> Option<Self> {
        let mut sums: BTreeMap<&str, (Vec<f64>, usize)> = BTreeMap::new();
        for (style, tokens) in songs {
            let features = features(tokens);
            let (sum, count) = sums
                .entry(style)
                .or_insert_with(|| (vec![0.0; features.len()], 0));
            for (total, value) in sum.iter_mut().zip(&features) {
                *total += value;
            }
            *count += 1;
        }
        (sums.len() >= 2).then(|| StyleClassifier {
            centroids: sums
                .into_iter()
                .map(|(style, (sum, count))| {
                    let centroid = sum.into_iter().map(|v| v / count as f64).collect();
                    (style.to_owned(), centroid)
                })
                .collect(),
        })
    }

    /// The style whose centroid is nearest (the first by name on a tie).
    pub fn classify(&self, tokens: &[Token]) -> &str {
        let features = features(tokens);
        self.centroids
            .iter()
            .min_by(|a, b| {
                squared_distance(&a.1, &features).total_cmp(&squared_distance(&b.1, &features))
            })
            .map(|(style, _)| style.as_str())
            .expect("a classifier has at least two styles")
    }

    /// The styles it knows.
    pub fn styles(&self) -> impl Iterator<Item = &str> {
        self.centroids.iter().map(|(style, _)| style.as_str())
    }
}

/// How often melodies of a style (asked of the model, or recorded for a
/// held-out song) are classified as that style.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StyleComparison {
    pub style: String,
    #[serde(flatten)]
    pub found: Found,
}

/// Per style the generated melodies were asked for.
pub fn compare_styles(
    classifier: &StyleClassifier,
    generated: &[Song],
    test: &[Song],
) -> Vec<StyleComparison> {
    classifier
        .styles()
        .filter_map(|style| {
            let found = Found::count(
                generated,
                test,
                |song| song.style.as_deref() == Some(style),
                |song| classifier.classify(&song.tokens) == style,
            )?;
            Some(StyleComparison {
                style: style.to_owned(),
                found,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_codec::parse_tokens;

    #[test]
    fn melodies_go_to_the_nearest_style() {
        // "steps": quarter notes moving by step in C; "leaps": eighths leaping
        // by fifths and octaves around A.
        let steps = [
            "60 _ _ _ 62 _ _ _ 64 _ _ _ 65 _ _ _ 64 _ _ _ 62 _ _ _ 60 _ _ _",
            "64 _ _ _ 65 _ _ _ 67 _ _ _ 65 _ _ _ 64 _ _ _ 62 _ _ _ 60 _ _ _",
        ]
        .map(|t| parse_tokens(t).unwrap());
        let leaps = [
            "69 _ 76 _ 69 _ 81 _ 69 _ 76 _ 64 _ 69 _",
            "57 _ 69 _ 64 _ 76 _ 69 _ 57 _ 64 _ 69 _",
        ]
        .map(|t| parse_tokens(t).unwrap());
        let classifier = StyleClassifier::fit(
            steps
                .iter()
                .map(|t| ("steps", t.as_slice()))
                .chain(leaps.iter().map(|t| ("leaps", t.as_slice()))),
        )
        .unwrap();
        assert_eq!(classifier.styles().collect::<Vec<_>>(), ["leaps", "steps"]);
        let new_steps = parse_tokens("62 _ _ _ 64 _ _ _ 65 _ _ _ 64 _ _ _ 62 _ _ _").unwrap();
        let new_leaps = parse_tokens("64 _ 76 _ 69 _ 81 _ 76 _ 69 _").unwrap();
        assert_eq!(classifier.classify(&new_steps), "steps");
        assert_eq!(classifier.classify(&new_leaps), "leaps");
        // One style is no classifier.
        assert!(StyleClassifier::fit(steps.iter().map(|t| ("steps", t.as_slice()))).is_none());

        let song = |tokens: &[Token], style: &str| Song {
            name: "s".into(),
            tokens: tokens.to_vec(),
            closed: true,
            tonality: None,
            metric: None,
            minor: None,
            style: Some(style.into()),
        };
        let generated = [song(&new_steps, "steps"), song(&new_leaps, "steps")];
        let test = [song(&steps[0], "steps"), song(&leaps[0], "leaps")];
        let styles = compare_styles(&classifier, &generated, &test);
        assert_eq!(
            styles,
            [StyleComparison {
                style: "steps".into(),
                found: Found {
                    generated: 2,
                    generated_found: 0.5,
                    test: 1,
                    test_found: 1.0,
                },
            }]
        );
    }
}
