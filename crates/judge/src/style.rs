//! Which collection a melody sounds like: a nearest-centroid classifier over
//! its pitch-class, interval and note-length histograms and its meter, fitted
//! on training songs, so that a melody asked for a style can be checked for it
//! the way a held-out song of that style is.

use std::collections::BTreeMap;

use esac_parse::Meter;
use grid_codec::Token;
use serde::Serialize;

use crate::{Found, Histograms, Song, notes, shares};

/// Training songs a collection needs for a centroid of its own. A few songs
/// make a noisy centroid, and Essen's small sets are mostly other renditions
/// of the big ones (`esac/erk` of `deutschl/erk`), whose songs they would
/// take: with the 27 collections of the whole collection, held-out ERK songs
/// were found in ERK 0.6% of the time.
pub const MIN_STYLE_SONGS: usize = 100;

/// Training songs a meter needs for a feature of its own; rarer meters, free
/// and unknown ones share one.
const MIN_METER_SONGS: usize = 20;

/// The least spread a feature is scaled by: 1% of a melody's notes (or of
/// its songs, for a meter), so that a feature that hardly varies within a
/// style does not outweigh the rest.
const MIN_SPREAD: f64 = 0.01;

/// A song to fit the classifier on.
#[derive(Debug, Clone, Copy)]
pub struct Labelled<'a> {
    pub style: &'a str,
    pub tokens: &'a [Token],
    pub meter: Option<Meter>,
}

/// A melody's features: its pitch-class, interval and note-length shares,
/// then one per meter of `meters` (1 for its own) and one for any other.
fn features(tokens: &[Token], meter: Option<Meter>, meters: &[Meter]) -> Vec<f64> {
    let mut histograms = Histograms::new();
    histograms.add(&notes(tokens));
    let own = meters
        .iter()
        .position(|m| Some(*m) == meter)
        .unwrap_or(meters.len());
    let meter_features = (0..=meters.len()).map(|i| f64::from(u8::from(i == own)));
    [
        shares(&histograms.pitch_classes),
        shares(&histograms.intervals),
        shares(&histograms.durations),
    ]
    .concat()
    .into_iter()
    .chain(meter_features)
    .collect()
}

/// The mean features of each style's training songs, and how far apart two
/// melodies are: the squared difference of each feature over its spread
/// within the styles (pooled standard deviation), so that the rare intervals
/// and note lengths that set a style apart count as much as the common ones.
#[derive(Debug, Clone, PartialEq)]
pub struct StyleClassifier {
    meters: Vec<Meter>,
    centroids: Vec<(String, Vec<f64>)>,
    weights: Vec<f64>,
}

impl StyleClassifier {
    /// Fits on `songs`, one centroid per style with at least `min_songs`
    /// songs ([`MIN_STYLE_SONGS`] for a corpus); `None` with fewer than two
    /// such styles.
    pub fn fit<'a>(
        songs: impl IntoIterator<Item = Labelled<'a>>,
        min_songs: usize,
    ) -> Option<Self> {
        let mut by_style: BTreeMap<&str, Vec<Labelled>> = BTreeMap::new();
        for song in songs {
            by_style.entry(song.style).or_default().push(song);
        }
        by_style.retain(|_, songs| songs.len() >= min_songs.max(1));
        if by_style.len() < 2 {
            return None;
        }
        // In the order first met, so that a fit is the same every time.
        let mut meter_counts: Vec<(Meter, usize)> = Vec::new();
        for meter in by_style.values().flatten().filter_map(|song| song.meter) {
            match meter_counts.iter_mut().find(|(m, _)| *m == meter) {
                Some((_, count)) => *count += 1,
                None => meter_counts.push((meter, 1)),
            }
        }
        let meters: Vec<Meter> = meter_counts
            .into_iter()
            .filter(|&(_, count)| count >= MIN_METER_SONGS)
            .map(|(meter, _)| meter)
            .collect();
        let by_style: Vec<(&str, Vec<Vec<f64>>)> = by_style
            .into_iter()
            .map(|(style, songs)| {
                let features = songs
                    .iter()
                    .map(|song| features(song.tokens, song.meter, &meters))
                    .collect();
                (style, features)
            })
            .collect();
        let width = by_style[0].1[0].len();
        let mut centroids = Vec::with_capacity(by_style.len());
        let mut squares = vec![0.0; width];
        let mut count = 0usize;
        for (style, features) in &by_style {
            let mut centroid = vec![0.0; width];
            for song in features {
                for (sum, value) in centroid.iter_mut().zip(song) {
                    *sum += value;
                }
            }
            centroid
                .iter_mut()
                .for_each(|v| *v /= features.len() as f64);
            for song in features {
                for ((square, value), mean) in squares.iter_mut().zip(song).zip(&centroid) {
                    *square += (value - mean) * (value - mean);
                }
            }
            count += features.len();
            centroids.push((style.to_string(), centroid));
        }
        let weights = squares
            .into_iter()
            .map(|square| 1.0 / (square / count as f64).sqrt().max(MIN_SPREAD).powi(2))
            .collect();
        Some(StyleClassifier {
            meters,
            centroids,
            weights,
        })
    }

    fn distance(&self, a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .zip(&self.weights)
            .map(|((x, y), weight)| weight * (x - y) * (x - y))
            .sum()
    }

    /// Fits on a corpus's training songs as `judge` and the composer page do:
    /// each labelled with its collection (none where that is empty), and a
    /// centroid for each collection with at least [`MIN_STYLE_SONGS`].
    pub fn fit_corpus<'a>(songs: impl IntoIterator<Item = Labelled<'a>>) -> Option<Self> {
        Self::fit(
            songs.into_iter().filter(|song| !song.style.is_empty()),
            MIN_STYLE_SONGS,
        )
    }

    /// The style whose centroid is nearest (the first by name on a tie).
    pub fn classify(&self, tokens: &[Token], meter: Option<Meter>) -> &str {
        let features = features(tokens, meter, &self.meters);
        self.centroids
            .iter()
            .min_by(|a, b| {
                self.distance(&a.1, &features)
                    .total_cmp(&self.distance(&b.1, &features))
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
                |song| classifier.classify(&song.tokens, song.meter) == style,
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

    fn labelled<'a>(style: &'a str, tokens: &'a [Token], meter: Option<Meter>) -> Labelled<'a> {
        Labelled {
            style,
            tokens,
            meter,
        }
    }

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
        let songs = || {
            steps
                .iter()
                .map(|t| labelled("steps", t, None))
                .chain(leaps.iter().map(|t| labelled("leaps", t, None)))
        };
        let classifier = StyleClassifier::fit(songs(), 2).unwrap();
        assert_eq!(classifier.styles().collect::<Vec<_>>(), ["leaps", "steps"]);
        let new_steps = parse_tokens("62 _ _ _ 64 _ _ _ 65 _ _ _ 64 _ _ _ 62 _ _ _").unwrap();
        let new_leaps = parse_tokens("64 _ 76 _ 69 _ 81 _ 76 _ 69 _").unwrap();
        assert_eq!(classifier.classify(&new_steps, None), "steps");
        assert_eq!(classifier.classify(&new_leaps, None), "leaps");
        // One style is no classifier, nor two where one has too few songs.
        assert!(StyleClassifier::fit(songs().take(2), 1).is_none());
        assert!(StyleClassifier::fit(songs().take(3), 2).is_none());

        let song = |tokens: &[Token], style: &str| Song {
            name: "s".into(),
            tokens: tokens.to_vec(),
            closed: true,
            tonality: None,
            meter: None,
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
                    // Splits of the two found among three melodies: 1 and
                    // 1 (2 in 3) or 2 and 0 (1 in 3); none less likely.
                    p_value: 1.0,
                },
            }]
        );

        // A style it has no centroid for is named as such, not left out.
        let waltz = Song {
            style: Some("waltz".into()),
            ..generated[0].clone()
        };
        let judged = crate::judge(
            &[generated[0].clone(), waltz],
            &test,
            &[],
            Some(&classifier),
            "s",
            "d",
        );
        assert_eq!(judged.styles.len(), 1);
        assert_eq!(judged.unclassified_styles, ["waltz"]);
        // Each melody says where the classifier put it.
        let found: Vec<_> = judged
            .melodies
            .iter()
            .map(|m| m.style_found.as_deref())
            .collect();
        assert_eq!(found, [Some("steps"), Some("steps")]);
        assert!(
            crate::table(&judged).contains("\nasked style waltz: not classified"),
            "{}",
            crate::table(&judged)
        );
        let judged = crate::judge(&generated, &test, &[], None, "s", "d");
        assert_eq!(judged.unclassified_styles, ["steps"]);
    }

    #[test]
    fn features_count_by_their_spread_within_the_styles() {
        // "level": eighths on one note, C or F#; "lengthened": C eighths, the
        // last one a quarter. The first "level" song is nearer the
        // "lengthened" centroid in plain shares (0.125: note lengths 3/4 and
        // 1/4 against 1 and 0; against 0.25 + 0.25 for its pitch class, half
        // C and half F# in its own style's centroid). But pitch classes vary
        // within "level" (pooled variance 0.5 / 4 songs, weight 8) and note
        // lengths never vary (spread floored at 0.01, weight 10,000): scaled,
        // its own style is 8 x 0.5 = 4 away and "lengthened" 1,250.
        let level =
            ["60 _ 60 _ 60 _ 60 _", "66 _ 66 _ 66 _ 66 _"].map(|t| parse_tokens(t).unwrap());
        let lengthened = parse_tokens("60 _ 60 _ 60 _ 60 _ _ _").unwrap();
        let classifier = StyleClassifier::fit(
            level
                .iter()
                .map(|t| labelled("level", t, None))
                .chain([labelled("lengthened", &lengthened, None); 2]),
            2,
        )
        .unwrap();
        assert_eq!(classifier.classify(&level[0], None), "level");
        let features = features(&level[0], None, &[]);
        let [(_, lengthened_centroid), (_, level_centroid)] = &classifier.centroids[..] else {
            panic!("two styles");
        };
        assert!((classifier.distance(level_centroid, &features) - 4.0).abs() < 1e-9);
        assert!((classifier.distance(lengthened_centroid, &features) - 1250.0).abs() < 1e-9);
    }

    #[test]
    fn meters_with_enough_songs_tell_styles_apart() {
        let tune = parse_tokens("60 _ 62 _ 64 _ _ _").unwrap();
        let [three_four, two_four, six_eight] =
            ["3/4", "2/4", "6/8"].map(|m| Some(Meter::parse(m).unwrap()));
        // The same notes, in 3/4 in one style and 2/4 in the other.
        let fit = |per_meter: usize| {
            StyleClassifier::fit(
                std::iter::repeat_n(labelled("waltz", &tune, three_four), per_meter).chain(
                    std::iter::repeat_n(labelled("march", &tune, two_four), per_meter),
                ),
                1,
            )
            .unwrap()
        };
        let classifier = fit(MIN_METER_SONGS);
        assert_eq!(classifier.classify(&tune, three_four), "waltz");
        assert_eq!(classifier.classify(&tune, two_four), "march");
        // A meter it has no feature for ties: the first style by name.
        assert_eq!(classifier.classify(&tune, six_eight), "march");
        // One song fewer, and neither meter has a feature of its own.
        let classifier = fit(MIN_METER_SONGS - 1);
        assert_eq!(classifier.classify(&tune, three_four), "march");
    }
}
