//! What a musician checks of a melody's meter: where in the bar its notes
//! start (the metric profile), whether its written bars each hold one bar of
//! the meter, how many notes are tied across bar lines, whether it ends at a
//! bar line, and how often a bar repeats an earlier one; and whether its key
//! finder's mode is the one asked. Generated melodies and held-out songs are
//! measured alike, per meter.

use std::collections::BTreeMap;
use std::path::Path;

use esac_parse::{Duration, Meter};
use grid_codec::{BarLayout, DecodeOptions, Token, decode};
use melody_formats::kern::to_kern;
use serde::Serialize;

use crate::significance::exact_binomial_p_value;
use crate::{Found, Song, find_key, found_count, notes, share, total_variation};

/// How a melody sits in its bars: a regular meter of `bar_steps` grid steps
/// and an upbeat of `pickup` steps (0: it starts on the downbeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub meter: Meter,
    pub bar_steps: usize,
    pub pickup: usize,
}

impl Metric {
    /// `meter` on a grid of `step`, after an upbeat of `pickup` steps; `None`
    /// in free meter or where a bar is not a whole number of steps.
    pub fn on_grid(meter: Meter, step: Duration, pickup: usize) -> Option<Self> {
        let steps = meter.bar_length()? / step;
        steps.is_integer().then(|| Metric {
            meter,
            bar_steps: steps.to_integer() as usize,
            pickup,
        })
    }
}

/// Meter measures of a set of melodies of one meter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeterMeasures {
    pub melodies: usize,
    pub notes: usize,
    /// Share of note onsets at each grid step of the bar (0 = the downbeat).
    pub onset_profile: Vec<f64>,
    /// The same for notes of `long_steps` or longer (a quarter note).
    pub long_note_profile: Vec<f64>,
    /// Notes that sound across a bar line, per 100 notes.
    pub ties_per_100_notes: f64,
    /// Notes that sound across a bar line.
    pub ties: usize,
    /// Melodies with at least one such note: ties cluster in a few songs, so
    /// a rate resting on few of them moves with the songs drawn.
    pub melodies_with_ties: usize,
    /// Share whose length is a whole number of bars, counted either from the
    /// first downbeat (the last bar full) or with the upbeat (the last bar
    /// completing the upbeat's): the two ways songs end on a bar line.
    pub ending_at_bar_end: f64,
    /// Share whose last note is the tonic, of those with a tonality: the
    /// same measure as [`crate::SetStatistics::ends_on_tonic`], per meter.
    pub ends_on_tonic: f64,
    /// Share ended by `.`.
    pub closed: f64,
    /// Of the bars of the written scores, the upbeat bar and the last aside,
    /// the share that hold exactly one bar of the meter.
    pub full_bars: f64,
    /// The bars that share is of.
    pub inner_bars: usize,
    /// Melodies whose score could not be written (a note no plain or dotted
    /// value spells), left out of [`Self::full_bars`].
    pub unwritten_scores: usize,
    /// Of the melodies' whole bars (the upbeat and a shorter last bar
    /// aside), the share that repeat an earlier bar of the same melody token
    /// for token: folk songs say their phrases again.
    pub repeated_bars: f64,
    /// The whole bars that share is of.
    pub whole_bars: usize,
}

/// The bars of `song`'s score in grid steps, upbeat bar first: its tokens
/// written as kern in `metric`'s meter and upbeat, as `sample` writes its
/// scores, and read back with the kern reader. `None` when the score cannot
/// be written or read.
pub fn written_bars(song: &Song, metric: Metric) -> Option<Vec<u32>> {
    let steps = u64::try_from(metric.bar_steps).ok()?;
    let step = metric.meter.bar_length()? / Duration::from_integer(steps);
    let melody = decode(
        &song.tokens,
        &DecodeOptions {
            step,
            meter: Some(metric.meter),
            pickup: step * Duration::from_integer(metric.pickup as u64),
            key: None,
            id: song.name.clone(),
            title: song.name.clone(),
        },
    )
    .ok()?;
    let kern = to_kern(&melody).ok()?;
    let read = esac_parse::kern::parse(&kern, Path::new(&song.name)).ok()?;
    Some(BarLayout::of(read.first()?, step)?.bars)
}

/// Of `bars` (grid steps, upbeat bar first when `metric` has one), those
/// other than the upbeat and the last bar: how many hold exactly a bar of
/// the meter, and how many there are.
pub fn full_inner_bars(bars: &[u32], metric: Metric) -> (usize, usize) {
    let first = usize::from(metric.pickup > 0);
    let inner = bars.get(first..bars.len().saturating_sub(1)).unwrap_or(&[]);
    let full = inner
        .iter()
        .filter(|&&steps| steps as usize == metric.bar_steps)
        .count();
    (full, inner.len())
}

/// Of `tokens` cut into bars of `metric` from its upbeat on, the whole bars
/// (the upbeat and a shorter last bar aside): how many repeat an earlier one
/// token for token, and how many there are.
pub fn repeated_bars(tokens: &[Token], metric: Metric) -> (usize, usize) {
    let bar = metric.bar_steps.max(1);
    let bars: Vec<&[Token]> = tokens
        .get(metric.pickup % bar..)
        .unwrap_or_default()
        .chunks_exact(bar)
        .collect();
    let repeated = (0..bars.len())
        .filter(|&i| bars[..i].contains(&bars[i]))
        .count();
    (repeated, bars.len())
}

/// The measures of `melodies`, all of one meter, for notes of `long_steps`
/// or longer in the long-note profile.
pub fn meter_measures(melodies: &[(&Song, Metric)], long_steps: usize) -> MeterMeasures {
    let bar = melodies.first().map_or(1, |(_, m)| m.bar_steps.max(1));
    let mut onsets = vec![0f64; bar];
    let mut long = vec![0f64; bar];
    let (mut count, mut crossing, mut at_bar_end, mut closed) = (0usize, 0usize, 0usize, 0usize);
    let (mut with_tonality, mut tonic_endings) = (0usize, 0usize);
    let mut melodies_with_ties = 0usize;
    let (mut full_bars, mut inner_bars, mut unwritten_scores) = (0usize, 0usize, 0usize);
    let (mut repeated, mut whole_bars) = (0usize, 0usize);
    for (song, metric) in melodies {
        let (again, of) = repeated_bars(&song.tokens, *metric);
        repeated += again;
        whole_bars += of;
        match written_bars(song, *metric) {
            Some(bars) => {
                let (full, inner) = full_inner_bars(&bars, *metric);
                full_bars += full;
                inner_bars += inner;
            }
            None => unwritten_scores += 1,
        }
        // Where step 0 falls in its bar.
        let offset = (bar - metric.pickup % bar) % bar;
        let song_notes = notes(&song.tokens);
        if let Some(tonality) = song.tonality {
            with_tonality += 1;
            tonic_endings += usize::from(
                song_notes
                    .last()
                    .is_some_and(|last| tonality.is_tonic(last.pitch % 12)),
            );
        }
        let crossing_before = crossing;
        for note in song_notes {
            let position = (note.onset + offset) % bar;
            onsets[position] += 1.0;
            if note.length >= long_steps {
                long[position] += 1.0;
            }
            crossing += usize::from(position + note.length > bar);
            count += 1;
        }
        melodies_with_ties += usize::from(crossing > crossing_before);
        let steps = song.tokens.len();
        at_bar_end += usize::from(
            steps % bar == 0 || (steps >= metric.pickup && (steps - metric.pickup) % bar == 0),
        );
        closed += usize::from(song.closed);
    }
    let shares = |counts: Vec<f64>| {
        let total: f64 = counts.iter().sum();
        counts
            .into_iter()
            .map(|c| if total > 0.0 { c / total } else { 0.0 })
            .collect()
    };
    MeterMeasures {
        melodies: melodies.len(),
        notes: count,
        onset_profile: shares(onsets),
        long_note_profile: shares(long),
        ties_per_100_notes: 100.0 * crossing as f64 / count.max(1) as f64,
        ties: crossing,
        melodies_with_ties,
        ending_at_bar_end: share(at_bar_end, melodies.len()),
        ends_on_tonic: share(tonic_endings, with_tonality),
        closed: share(closed, melodies.len()),
        full_bars: share(full_bars, inner_bars),
        inner_bars,
        unwritten_scores,
        repeated_bars: share(repeated, whole_bars),
        whole_bars,
    }
}

/// Generated melodies against held-out songs of one meter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeterComparison {
    pub meter: String,
    pub generated: MeterMeasures,
    pub test: MeterMeasures,
    /// The training songs of that meter (none where it has none): the rates
    /// the model learned, steadier than the held-out songs' where, as with
    /// ties, a measure rests on a few songs.
    pub train: Option<MeterMeasures>,
    /// Total variation distance between the onset profiles.
    pub profile_distance: f64,
    pub long_note_profile_distance: f64,
    /// Whether the two sets' ties across bar lines differ by more than
    /// chance: the exact two-sided test of how many of all their ties fall
    /// among the generated melodies' notes (1 without ties). Ties are rare, so
    /// a few hundred melodies can leave a large gap in the rates unproven.
    pub ties_p_value: f64,
}

/// Melodies with a [`Metric`], by meter.
fn by_meter(melodies: &[Song]) -> BTreeMap<String, Vec<(&Song, Metric)>> {
    let mut by: BTreeMap<String, Vec<(&Song, Metric)>> = BTreeMap::new();
    for song in melodies {
        if let Some(metric) = song.metric {
            by.entry(metric.meter.to_string())
                .or_default()
                .push((song, metric));
        }
    }
    by
}

/// Per meter that both the generated and the held-out sets have: the
/// measures of each (and of the training songs of that meter) and their
/// distance. Melodies without a [`Metric`] are left out.
pub fn compare_meters(
    generated: &[Song],
    test: &[Song],
    train: &[Song],
    long_steps: usize,
) -> Vec<MeterComparison> {
    let (generated, test, train) = (by_meter(generated), by_meter(test), by_meter(train));
    generated
        .iter()
        .filter_map(|(meter, melodies)| {
            let held_out = test.get(meter)?;
            let generated = meter_measures(melodies, long_steps);
            let test = meter_measures(held_out, long_steps);
            Some(MeterComparison {
                meter: meter.clone(),
                profile_distance: total_variation(&generated.onset_profile, &test.onset_profile),
                long_note_profile_distance: total_variation(
                    &generated.long_note_profile,
                    &test.long_note_profile,
                ),
                ties_p_value: exact_binomial_p_value(
                    generated.ties,
                    generated.ties + test.ties,
                    generated.notes as f64 / (generated.notes + test.notes).max(1) as f64,
                ),
                generated,
                test,
                train: train
                    .get(meter)
                    .map(|songs| meter_measures(songs, long_steps)),
            })
        })
        .collect()
}

/// How often the key finder finds the mode a set of melodies is in (asked of
/// the model, or recorded for a held-out song).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeComparison {
    pub mode: &'static str,
    #[serde(flatten)]
    pub found: Found,
    /// Training songs of that mode, and the share of them found in it: how
    /// plainly the songs the model learned from show their mode.
    pub train: usize,
    pub train_found: f64,
}

/// Per mode (major, minor): the share of each set found in it.
pub fn compare_modes(generated: &[Song], test: &[Song], train: &[Song]) -> Vec<ModeComparison> {
    [("major", false), ("minor", true)]
        .into_iter()
        .filter_map(|(mode, minor)| {
            let of_mode = |song: &Song| song.minor == Some(minor);
            let found_in_mode = |song: &Song| {
                find_key(&song.tokens).is_some_and(|k| k.key.mode.is_minor_like() == minor)
            };
            let found = Found::count(generated, test, of_mode, found_in_mode)?;
            let (train, train_hits) = found_count(train, of_mode, found_in_mode);
            let train_found = share(train_hits, train);
            Some(ModeComparison {
                mode,
                found,
                train,
                train_found,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tonality;
    use grid_codec::parse_tokens;

    fn song(text: &str, closed: bool) -> Song {
        Song {
            name: "t".into(),
            tokens: parse_tokens(text).unwrap(),
            closed,
            tonality: None,
            meter: None,
            metric: None,
            minor: None,
            style: None,
        }
    }

    #[test]
    fn a_hand_worked_upbeat_melody() {
        // 3/4 on the 1/16 grid (12 steps), a quarter upbeat (4 steps), so step
        // 0 is at position 8. Notes (onset step, position, length): 60 (0, 8,
        // 4), 62 (4, 0, 8), 64 (12, 8, 8: across the bar line), a rest, 65 (24,
        // 8, 4), 67 (28, 0, 4), 69 (32, 4, 4). 36 steps: the upbeat, two bars
        // and eight steps that complete the upbeat's bar, a bar line.
        let melody = song(
            "60 _ _ _ 62 _ _ _ _ _ _ _ 64 _ _ _ _ _ _ _ r _ _ _ 65 _ _ _ 67 _ _ _ 69 _ _ _",
            true,
        );
        assert_eq!(melody.tokens.len(), 36);
        let metric = Metric {
            meter: "3/4".parse().unwrap(),
            bar_steps: 12,
            pickup: 4,
        };
        let measures = meter_measures(&[(&melody, metric)], 8);
        assert_eq!(measures.notes, 6);
        // Without a tonality no ending is counted; in C major (or the
        // reference keys, C or A) its last note, A, is not the tonic.
        assert_eq!(measures.ends_on_tonic, 0.0);
        let in_c = |tonality| Song {
            tonality: Some(tonality),
            ..melody.clone()
        };
        let c_major: esac_parse::Key = "C major".parse().unwrap();
        let found = |songs: &[Song]| {
            let pairs: Vec<_> = songs.iter().map(|s| (s, metric)).collect();
            meter_measures(&pairs, 8).ends_on_tonic
        };
        assert_eq!(found(&[in_c(Tonality::Key(c_major))]), 0.0);
        assert_eq!(found(&[in_c(Tonality::ReferenceKeys)]), 1.0);
        // Two of three with a tonality end on it; the one without is left out.
        assert_eq!(
            found(&[
                in_c(Tonality::ReferenceKeys),
                in_c(Tonality::Key(c_major)),
                in_c(Tonality::ReferenceKeys),
                melody.clone()
            ]),
            2.0 / 3.0
        );
        let mut profile = vec![0.0; 12];
        profile[0] = 2.0 / 6.0;
        profile[4] = 1.0 / 6.0;
        profile[8] = 3.0 / 6.0;
        // Rests are not notes: the rest at position 8 is not counted.
        assert_eq!(measures.onset_profile, profile);
        // Half notes (8 steps) or longer: 62 at 0 and 64 at 8.
        let mut long = vec![0.0; 12];
        long[0] = 0.5;
        long[8] = 0.5;
        assert_eq!(measures.long_note_profile, long);
        assert_eq!(measures.ties_per_100_notes, 100.0 / 6.0);
        assert_eq!(measures.ties, 1);
        assert_eq!((measures.ending_at_bar_end, measures.closed), (1.0, 1.0));
        // Written, its bars are the upbeat, two full bars (the 64 tied across
        // the second bar line) and the eight steps that complete the upbeat's.
        assert_eq!(written_bars(&melody, metric), Some(vec![4, 12, 12, 8]));
        assert_eq!(
            (
                measures.full_bars,
                measures.inner_bars,
                measures.unwritten_scores
            ),
            (1.0, 2, 0)
        );
        // Bars a score might have put wrong: of the three between the upbeat
        // and the last, only one holds a bar of 3/4.
        assert_eq!(full_inner_bars(&[4, 12, 16, 8, 8], metric), (1, 3));
        let on_the_downbeat = Metric {
            pickup: 0,
            ..metric
        };
        assert_eq!(full_inner_bars(&[12, 12, 4], on_the_downbeat), (2, 2));
        assert_eq!(full_inner_bars(&[12], on_the_downbeat), (0, 0));
        // Its two whole bars differ: none repeats.
        assert_eq!((measures.repeated_bars, measures.whole_bars), (0.0, 2));
        // Four steps shorter it ends in the middle of a bar.
        let short = song(
            "60 _ _ _ 62 _ _ _ _ _ _ _ 64 _ _ _ _ _ _ _ r _ _ _ 65 _ _ _ 67 _ _ _",
            false,
        );
        let measures = meter_measures(&[(&short, metric)], 8);
        assert_eq!((measures.ending_at_bar_end, measures.closed), (0.0, 0.0));
    }

    #[test]
    fn bars_that_say_an_earlier_one_again() {
        // 2/4 (8 steps) after an eighth upbeat (2 steps): bars A B A A' A,
        // A' differing from A in its last step only, then 3 steps of a last
        // bar. Bars 3 and 5 repeat bar 1; bar 4 repeats none.
        let a = "60 _ 62 _ 64 _ _ _";
        let b = "67 _ _ _ 65 _ 64 _";
        let a_dash = "60 _ 62 _ 64 _ _ r";
        let text = format!("55 _ {a} {b} {a} {a_dash} {a} 60 _ _");
        let tokens = parse_tokens(&text).unwrap();
        let metric = Metric {
            meter: "2/4".parse().unwrap(),
            bar_steps: 8,
            pickup: 2,
        };
        assert_eq!(repeated_bars(&tokens, metric), (2, 5));
        // Read from the downbeat instead, every bar straddles two of the
        // above: "60 _ 62 _ 64 _ _ _" is never a bar, and no bar repeats.
        let on_the_downbeat = Metric {
            pickup: 0,
            ..metric
        };
        assert_eq!(repeated_bars(&tokens, on_the_downbeat), (0, 5));
        // A bar of 6/8 (12 steps) said three times, with no upbeat.
        let three = parse_tokens(&format!("{a} 67 _ _ _ {a} 67 _ _ _ {a} 67 _ _ _")).unwrap();
        let six_eight = Metric {
            meter: "6/8".parse().unwrap(),
            bar_steps: 12,
            pickup: 0,
        };
        assert_eq!(repeated_bars(&three, six_eight), (2, 3));
        assert_eq!(repeated_bars(&[], six_eight), (0, 0));
    }

    #[test]
    fn meters_and_modes_are_compared_where_both_sets_have_them() {
        let two_four = Some(Metric {
            meter: "2/4".parse().unwrap(),
            bar_steps: 8,
            pickup: 0,
        });
        let three_four = Some(Metric {
            meter: "3/4".parse().unwrap(),
            bar_steps: 12,
            pickup: 0,
        });
        let with = |text: &str, metric, minor| Song {
            metric,
            minor: Some(minor),
            ..song(text, true)
        };
        let c_major = "60 _ _ _ 64 _ _ _ 67 _ _ _ 72 _ _ _ 67 _ _ _ 64 _ _ _ 60 _ _ _";
        let a_minor = "69 _ _ _ 72 _ _ _ 76 _ _ _ 69 _ _ _ 64 _ _ _ 69 _ _ _ _ _ _ _";
        let a = with(c_major, two_four, false);
        let b = with(a_minor, two_four, true);
        let meters = compare_meters(
            std::slice::from_ref(&a),
            &[b.clone(), with(c_major, three_four, false)],
            &[
                a.clone(),
                b.clone(),
                b.clone(),
                with(c_major, three_four, false),
            ],
            4,
        );
        assert_eq!(meters.len(), 1);
        assert_eq!(meters[0].meter, "2/4");
        // Quarters in 2/4: a has 4 onsets at 0 and 3 at 4, b 3 and 3, so the
        // distance is (|4/7 - 1/2| + |3/7 - 1/2|) / 2 = 1/14.
        assert!((meters[0].profile_distance - 1.0 / 14.0).abs() < 1e-12);
        // b's last note (onset 20, 8 steps) crosses the bar line at 24: one
        // tie in 13 notes, 7 of them a's. a having none has chance 6/13, and
        // the one other count, 7/13, is likelier: p = 6/13.
        let (g, t) = (&meters[0].generated, &meters[0].test);
        assert_eq!((g.ties, g.notes, t.ties, t.notes), (0, 7, 1, 6));
        assert_eq!((g.melodies_with_ties, t.melodies_with_ties), (0, 1));
        assert!((meters[0].ties_p_value - 6.0 / 13.0).abs() < 1e-12);
        // The training songs of 2/4 only: a, and b twice (2 ties in 19 notes).
        let train = meters[0].train.as_ref().unwrap();
        assert_eq!((train.melodies, train.notes, train.ties), (3, 19, 2));
        assert_eq!(train.melodies_with_ties, 2);
        assert!((train.ties_per_100_notes - 200.0 / 19.0).abs() < 1e-12);
        let train_songs = [a.clone(), b.clone(), b.clone()];
        let modes = compare_modes(&[a, b.clone()], std::slice::from_ref(&b), &train_songs);
        assert_eq!(modes.len(), 2);
        assert_eq!(
            (modes[0].mode, modes[0].found.generated_found),
            ("major", 1.0)
        );
        assert_eq!(
            (modes[1].mode, modes[1].found.generated_found),
            ("minor", 1.0)
        );
        assert_eq!((modes[1].found.test, modes[1].found.test_found), (1, 1.0));
        assert_eq!((modes[0].train, modes[0].train_found), (1, 1.0));
        assert_eq!((modes[1].train, modes[1].train_found), (2, 1.0));
    }
}
