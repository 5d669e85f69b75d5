//! What a model can be told beside each token: where the step falls in its bar,
//! the song's meter, mode and style (its collection), how many bars remain,
//! and, with [`Lookback`], the song's own tokens whole bars earlier.
//!
//! Every value is a small integer, so a model reads each as a side input with
//! an embedding of its own. A song in free meter, or whose bars are unknown,
//! gets the explicit "free" value of the bar position and bars left, not a guess.

use std::collections::BTreeMap;

use esac_parse::{Duration, Key, Melody, Meter, Mode, Spelling};
use rand::SeedableRng;
use rand::distr::{Distribution, weighted::WeightedIndex};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Bar positions `0..MAX_BAR_STEPS` are steps since the downbeat; a longer bar's
/// later steps share the last one. The value `MAX_BAR_STEPS` means "no meter".
pub const MAX_BAR_STEPS: u32 = 48;
/// Bars left `0..=MAX_BARS_LEFT` (the last means "that many or more"); the value
/// after it means "no meter".
pub const MAX_BARS_LEFT: u32 = 32;
/// Meters with fewer training songs than this share the value "other".
pub const MIN_SONGS_PER_METER: usize = 20;

/// The side inputs, in the order a model reads them.
pub const INPUT_NAMES: [&str; 5] = ["bar_position", "meter", "mode", "style", "bars_left"];

const FREE: &str = "free";
const OTHER: &str = "other";
const MODES: [&str; 3] = ["unknown", "major", "minor"];

/// A song's bars on the grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarLayout {
    /// Steps of a full bar of the opening meter.
    pub bar_steps: u32,
    /// Steps missing from the first bar when the song opens with an upbeat.
    pub upbeat: u32,
    /// Steps of each bar as written, the upbeat's first.
    pub bars: Vec<u32>,
}

impl BarLayout {
    /// The bars of a melody as its source wrote them (a bar is a run of events
    /// with the same measure number; grace notes take no time), or `None` in free
    /// meter, without a meter, or when a bar or the meter is off the grid.
    pub fn of(melody: &Melody, step: Duration) -> Option<BarLayout> {
        let bar_steps = steps_of(melody.initial_meter()?.bar_length()?, step)?;
        let mut bars: Vec<u32> = Vec::new();
        let mut current: Option<u32> = None;
        let mut length = Duration::from_integer(0);
        for event in melody.events.iter().filter(|e| !e.grace) {
            if current.is_some_and(|m| m != event.measure) {
                bars.push(steps_of(length, step)?);
                length = Duration::from_integer(0);
            }
            current = Some(event.measure);
            length += event.duration;
        }
        bars.push(steps_of(length, step)?);
        let first = bars[0];
        let upbeat = if bars.len() > 1 && first < bar_steps {
            bar_steps - first
        } else {
            0
        };
        Some(BarLayout {
            bar_steps,
            upbeat,
            bars,
        })
    }

    /// A layout to generate into: an upbeat bar of `pickup` steps (when not 0),
    /// then `bars` full bars, the last shortened by the upbeat, as such songs
    /// are usually written.
    pub fn regular(bar_steps: u32, pickup: u32, bars: u32) -> BarLayout {
        let pickup = pickup % bar_steps.max(1);
        let mut lengths = Vec::new();
        if pickup > 0 {
            lengths.push(pickup);
        }
        lengths.extend(std::iter::repeat_n(bar_steps, bars as usize));
        if pickup > 0
            && let Some(last) = lengths.last_mut().filter(|_| bars > 0)
        {
            *last -= pickup;
        }
        BarLayout {
            bar_steps,
            upbeat: if pickup > 0 { bar_steps - pickup } else { 0 },
            bars: lengths,
        }
    }

    /// Bars as written, the upbeat's aside: what `--bars` asks for.
    pub fn full_bars(&self) -> u32 {
        (self.bars.len() - usize::from(self.upbeat > 0)) as u32
    }

    /// The upbeat's steps (0 for none) when every bar but an upbeat and the
    /// last is a full bar of the opening meter and the last is no longer;
    /// `None` for meter changes and irregular bars.
    pub fn regular_pickup(&self) -> Option<u32> {
        let first_full = usize::from(self.upbeat > 0);
        let (last, body) = self.bars.split_last()?;
        let middle = body.get(first_full..).unwrap_or_default();
        let regular = middle.iter().all(|&b| b == self.bar_steps) && *last <= self.bar_steps;
        regular.then(|| if self.upbeat > 0 { self.bars[0] } else { 0 })
    }

    /// For steps `0..count` of regular bars, the full bar (upbeat aside)
    /// each falls in, counted from 0; `None` in the upbeat.
    fn full_bar_of_steps(&self, count: usize) -> Vec<Option<usize>> {
        let pickup = if self.upbeat > 0 { self.bars[0] } else { 0 } as usize;
        let bar = (self.bar_steps as usize).max(1);
        (0..count)
            .map(|step| Some(step.checked_sub(pickup)? / bar))
            .collect()
    }

    /// Steps the bars take in all.
    pub fn total_steps(&self) -> u32 {
        self.bars.iter().sum()
    }

    /// For steps `0..count`: the step's place in its bar and the bars left from
    /// it to the end, its own included (0 once the bars are over). Past the
    /// written bars, full bars of the opening meter continue.
    fn walk(&self, count: usize) -> (Vec<u32>, Vec<u32>) {
        let mut positions = Vec::with_capacity(count);
        let mut bars_left = Vec::with_capacity(count);
        let mut bar = 0usize;
        let mut in_bar = 0u32;
        let mut offset = self.upbeat;
        for _ in 0..count {
            while bar < self.bars.len() && in_bar >= self.bars[bar] {
                in_bar -= self.bars[bar];
                bar += 1;
                offset = 0;
            }
            let position = if bar < self.bars.len() {
                offset + in_bar
            } else {
                // After the last bar: where the last bar ended, then bar by bar.
                let last_end = self.bars.last().map_or(0, |&len| {
                    len + if self.bars.len() == 1 { self.upbeat } else { 0 }
                });
                (last_end + in_bar) % self.bar_steps.max(1)
            };
            positions.push(position.min(MAX_BAR_STEPS - 1));
            bars_left
                .push(((self.bars.len() - bar.min(self.bars.len())) as u32).min(MAX_BARS_LEFT));
            in_bar += 1;
        }
        (positions, bars_left)
    }
}

/// Steps of `length` on the grid, if it is a whole number of them.
fn steps_of(length: Duration, step: Duration) -> Option<u32> {
    let steps = length / step;
    steps
        .is_integer()
        .then(|| u32::try_from(steps.to_integer()).ok())
        .flatten()
}

/// What is known of one song for conditioning (by default nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SongConditions {
    /// `None` when the source names no meter.
    pub meter: Option<Meter>,
    pub key: Option<Key>,
    /// The collection (empty when unknown).
    pub style: String,
    /// `None` in free meter or when the bars are unknown.
    pub layout: Option<BarLayout>,
}

/// The values each side input can take, read from the training songs and kept
/// with the model (`conditioning.json`), so that `sample` asks for the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conditioning {
    /// Meter values: `free`, `other`, then each meter with enough songs.
    pub meters: Vec<String>,
    /// Style values: `other`, then each collection.
    pub styles: Vec<String>,
    /// Training songs of each meter value (for drawing what a user leaves open).
    pub meter_songs: BTreeMap<String, usize>,
    /// Training songs of each style.
    pub style_songs: BTreeMap<String, usize>,
    /// Training songs of each mode value (`major`, `minor`, `unknown`).
    pub mode_songs: BTreeMap<String, usize>,
    /// Training songs with each number of full bars (upbeat bar aside), of
    /// the songs whose bars are known.
    pub bar_counts: BTreeMap<u32, usize>,
    /// Training songs of each meter, mode, style, upbeat and length together,
    /// so that what a request leaves open is drawn to go with what it asks
    /// (empty in models trained before it was kept: each is then drawn on its
    /// own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub combinations: Vec<Combination>,
    /// The song's own tokens some bars back, read after the five inputs of
    /// [`INPUT_NAMES`] (`None`: not read, as in models trained before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback: Option<Lookback>,
}

/// Side inputs that each hold the song's own token a whole number of bars
/// before the step predicted, so that a model can say a bar again as folk
/// songs do (Magenta's Lookback RNN is fed the events one and two bars back).
/// Each holds only a token already read, so nothing of the answer leaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookback {
    /// The bars each input looks back, in the order the model reads them.
    pub bars: Vec<u32>,
    /// Tokens of the vocabulary: values `0..tokens` are token ids, and
    /// `tokens` means "nothing there": before the song reaches that far back,
    /// in free meter, and in songs whose bars change length.
    pub tokens: u32,
    /// When kept, one input more tells the model at each step which of these
    /// earlier bars its bar says again (its [form](Lookback::form_of)), and
    /// these are the training songs' forms, from which `sample` draws one
    /// (`None`: no form input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forms: Option<Vec<FormCount>>,
}

/// A form that training songs of one meter, upbeat and length have, and how
/// many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormCount {
    pub meter: String,
    /// Grid steps of the upbeat (0: none).
    pub pickup: u32,
    /// Full bars, upbeat bar aside.
    pub bars: u32,
    /// One letter a full bar (see [`Lookback::letters`]).
    pub form: String,
    pub songs: usize,
}

/// Values of the form input: the step's bar is not known (free meter, bars
/// that change length), is a bar of its own (the upbeat and bars past the
/// song's end too), or says again the bar `bars[i]` back (`FORM_REPEATS + i`).
const FORM_UNKNOWN: u32 = 0;
const FORM_NEW: u32 = 1;
const FORM_REPEATS: u32 = 2;
/// The letters a form is written with, one a bar; bars that say an earlier
/// bar again share its letter.
const FORM_LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A side input that holds the melody's own token `lag` grid steps before
/// the step predicted, and `before` until the melody reaches so far back:
/// the sampler fills it in from the tokens it has drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo {
    /// Which side input, in the order the model reads them.
    pub input: usize,
    pub lag: usize,
    pub before: u32,
}

/// The side inputs of a melody to generate: every input's value at each step,
/// and which of them echo the melody's own tokens (their values here are
/// only placeholders).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    pub values: Vec<Vec<u32>>,
    pub echoes: Vec<Echo>,
}

impl Schedule {
    /// Values that no token changes.
    pub fn fixed(values: Vec<Vec<u32>>) -> Self {
        Schedule {
            values,
            echoes: Vec::new(),
        }
    }
}

impl Echo {
    /// Its value at `step` of a melody whose tokens so far are `tokens`
    /// (grid step `k`'s at `k`): the token `lag` steps before, or `before`.
    /// Training and the sampler both read the lookback through this.
    pub fn value(&self, step: usize, tokens: &[u32]) -> u32 {
        match step.checked_sub(self.lag) {
            Some(earlier) if self.lag > 0 => tokens[earlier],
            _ => self.before,
        }
    }
}

impl Lookback {
    /// One echo per input, the first being side input `first_input`, in a
    /// song laid out so; `None` without regular bars (free meter, meter
    /// changes).
    fn echoes(&self, layout: Option<&BarLayout>, first_input: usize) -> Option<Vec<Echo>> {
        let layout = layout?;
        layout.regular_pickup()?;
        Some(
            self.bars
                .iter()
                .enumerate()
                .map(|(index, &bars)| Echo {
                    input: first_input + index,
                    lag: (bars * layout.bar_steps) as usize,
                    before: self.tokens,
                })
                .collect(),
        )
    }

    /// Per input, its values at steps `0..=ids.len()` of a song of `ids`:
    /// the id that many bars before, or "nothing there"; then the form's.
    fn values(&self, ids: &[u32], layout: Option<&BarLayout>) -> Vec<Vec<u32>> {
        let count = ids.len() + 1;
        let mut values = match self.echoes(layout, 0) {
            Some(echoes) => echoes
                .iter()
                .map(|echo| (0..count).map(|t| echo.value(t, ids)).collect())
                .collect(),
            None => vec![vec![self.tokens; count]; self.bars.len()],
        };
        if self.forms.is_some() {
            let form = layout.and_then(|layout| Some((layout, self.form_of(ids, layout)?)));
            values.push(match form {
                Some((layout, lags)) => self.form_values(&lags, layout, count),
                None => vec![FORM_UNKNOWN; count],
            });
        }
        values
    }

    /// A song's form: for each full bar (the upbeat aside), how many bars
    /// back is the bar it says again token for token, the nearest of
    /// [`Lookback::bars`] that does, or 0 for a bar of its own. A last bar
    /// shortened by the upbeat says again the start of a bar. `None`
    /// without regular bars.
    pub fn form_of(&self, ids: &[u32], layout: &BarLayout) -> Option<Vec<u32>> {
        let pickup = layout.regular_pickup()? as usize;
        let bar = layout.bar_steps as usize;
        let mut lags = self.bars.clone();
        lags.sort_unstable();
        let starts = (pickup..ids.len()).step_by(bar.max(1));
        Some(
            starts
                .enumerate()
                .map(|(index, start)| {
                    let end = (start + bar).min(ids.len());
                    let says_again = |&&back: &&u32| {
                        let back = back as usize;
                        back <= index
                            && ids[start..end] == ids[start - back * bar..end - back * bar]
                    };
                    lags.iter().find(says_again).copied().unwrap_or(0)
                })
                .collect(),
        )
    }

    /// The form input's values at steps `0..count` of a song laid out so
    /// whose full bars have the form `lags`.
    fn form_values(&self, lags: &[u32], layout: &BarLayout, count: usize) -> Vec<u32> {
        layout
            .full_bar_of_steps(count)
            .into_iter()
            .map(|bar| {
                let lag = bar.and_then(|bar| lags.get(bar));
                match lag.and_then(|lag| self.bars.iter().position(|b| b == lag)) {
                    Some(input) => FORM_REPEATS + input as u32,
                    None => FORM_NEW,
                }
            })
            .collect()
    }

    /// A form written one letter a bar: a bar of its own takes the next
    /// letter, one that says an earlier bar again takes that bar's. `None`
    /// past 52 bars of their own.
    pub fn letters(lags: &[u32]) -> Option<String> {
        let mut fresh = FORM_LETTERS.chars();
        let mut letters: Vec<char> = Vec::with_capacity(lags.len());
        for (index, &lag) in lags.iter().enumerate() {
            let letter = match index.checked_sub(lag as usize) {
                Some(earlier) if lag > 0 => letters[earlier],
                _ => fresh.next()?,
            };
            letters.push(letter);
        }
        Some(letters.into_iter().collect())
    }

    /// The form of `bars` full bars that `text` writes, one letter a phrase
    /// of equal length (`AABA` over 8 bars: phrases of 2 bars): each bar of
    /// a phrase whose letter came before says again the same bar of the
    /// nearest such phrase this model looks back to.
    pub fn parse_form(&self, text: &str, bars: u32) -> Result<Vec<u32>, ConditionError> {
        let error = |why: String| ConditionError::Form {
            asked: text.to_owned(),
            why,
        };
        let phrases: Vec<char> = text.chars().collect();
        if phrases.is_empty() || !phrases.iter().all(char::is_ascii_alphabetic) {
            return Err(error("write one letter a phrase, such as AABA".into()));
        }
        if !(bars as usize).is_multiple_of(phrases.len()) {
            return Err(error(format!(
                "{} phrases do not divide {bars} bars evenly",
                phrases.len()
            )));
        }
        let phrase_bars = bars as usize / phrases.len();
        let mut lags = Vec::with_capacity(bars as usize);
        for (index, letter) in phrases.iter().enumerate() {
            let earlier: Vec<usize> = (0..index).filter(|&e| phrases[e] == *letter).collect();
            let back = earlier
                .iter()
                .rev()
                .map(|&e| ((index - e) * phrase_bars) as u32)
                .find(|back| self.bars.contains(back));
            let back = match (earlier.last(), back) {
                (None, _) => 0,
                (Some(_), Some(back)) => back,
                (Some(&nearest), None) => {
                    return Err(error(format!(
                        "phrase {} says again phrase {} ({} bars back), but the model looks back {} bars only",
                        index + 1,
                        nearest + 1,
                        (index - nearest) * phrase_bars,
                        join(&self.bars)
                    )));
                }
            };
            lags.extend(std::iter::repeat_n(back, phrase_bars));
        }
        Ok(lags)
    }

    /// The form `asked` was given, per full bar: every bar its own without
    /// one (more bars of their own than letters); `None` for a form this
    /// model cannot read, which [`Conditioning::draw`] never gives.
    fn asked_form(&self, asked: &Asked) -> Option<Vec<u32>> {
        match &asked.form {
            Some(form) => self.parse_form(form, asked.bars).ok(),
            None => Some(vec![0; asked.bars as usize]),
        }
    }

    /// The forms of `songs` (training songs with their ids), counted by
    /// meter, upbeat and length.
    pub fn count_forms<'a>(
        &self,
        songs: impl IntoIterator<Item = (&'a SongConditions, &'a [u32])>,
    ) -> Vec<FormCount> {
        let mut counts = BTreeMap::<(String, u32, u32, String), usize>::new();
        for (song, ids) in songs {
            let Some(layout) = &song.layout else { continue };
            let Some(form) = self
                .form_of(ids, layout)
                .and_then(|lags| Self::letters(&lags))
            else {
                continue;
            };
            if form.chars().count() != layout.full_bars() as usize {
                continue;
            }
            let pickup = layout.regular_pickup().unwrap_or(0);
            let key = (meter_text(song.meter), pickup, layout.full_bars(), form);
            *counts.entry(key).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|((meter, pickup, bars, form), songs)| FormCount {
                meter,
                pickup,
                bars,
                form,
                songs,
            })
            .collect()
    }
}

fn join(numbers: &[u32]) -> String {
    let texts: Vec<String> = numbers.iter().map(u32::to_string).collect();
    texts.join(", ")
}

/// A meter value, mode value, style, upbeat and length that training songs
/// share, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Combination {
    pub meter: String,
    pub mode: String,
    pub style: String,
    /// Grid steps of the upbeat (0: none, or bars unknown).
    #[serde(default)]
    pub pickup: u32,
    /// Full bars, upbeat bar aside (`None`: bars unknown, or a model trained
    /// before lengths were kept together with the rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bars: Option<u32>,
    pub songs: usize,
}

/// What a melody is asked to be; what is `None` is drawn from the training
/// songs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub meter: Option<Meter>,
    pub mode: Option<Mode>,
    pub style: Option<String>,
    pub bars: Option<u32>,
    /// Grid steps of the upbeat (0: start on the downbeat).
    pub pickup: Option<u32>,
    /// Which phrases say an earlier one again, one letter a phrase
    /// ([`Lookback::parse_form`]), for a model that reads the form.
    pub form: Option<String>,
}

/// A request with everything decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asked {
    pub meter: Meter,
    pub minor: bool,
    pub style: String,
    pub bars: u32,
    pub pickup: u32,
    /// One letter a full bar ([`Lookback::letters`]), for a model that
    /// reads the form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<String>,
}

impl Asked {
    /// The bars asked for, on a grid of `step`; `None` when a bar of the
    /// meter is off the grid.
    fn layout(&self, step: Duration) -> Option<BarLayout> {
        let bar_steps = steps_of(self.meter.bar_length()?, step)?;
        Some(BarLayout::regular(bar_steps, self.pickup, self.bars))
    }
}

pub const CONDITIONING_FILE: &str = "conditioning.json";

/// A conditioning value a model was not trained with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConditionError {
    #[error("the model knows no style `{asked}`; it knows {known}")]
    UnknownStyle { asked: String, known: String },
    #[error("style `{asked}` could be {matches}: write the whole name")]
    AmbiguousStyle { asked: String, matches: String },
    #[error("the model knows no meter {asked}; it knows {known}")]
    UnknownMeter { asked: String, known: String },
    /// A church mode other than ionian (major) and aeolian (minor): the model
    /// learned songs in those modes by their third, so asking for one would
    /// quietly give major or minor.
    #[error(
        "the model knows the modes major and minor (ionian and aeolian are the same), not {asked}: its training songs in {asked} were learned as {learned_as}, by their third"
    )]
    UnknownMode {
        asked: Mode,
        learned_as: &'static str,
    },
    #[error("form `{asked}`: {why}")]
    Form { asked: String, why: String },
    #[error(
        "the model was not trained with --form, so it cannot be asked for a form (train with --condition --lookback 2,4,8 --form)"
    )]
    NoForm,
}

impl Conditioning {
    /// The value lists of a set of training songs.
    pub fn from_songs<'a>(songs: impl IntoIterator<Item = &'a SongConditions>) -> Self {
        let mut meter_counts = BTreeMap::<String, usize>::new();
        let mut style_counts = BTreeMap::<String, usize>::new();
        let mut mode_songs = BTreeMap::<String, usize>::new();
        let mut bar_counts = BTreeMap::<u32, usize>::new();
        let mut together = BTreeMap::<(String, String, String, u32, Option<u32>), usize>::new();
        let songs: Vec<&SongConditions> = songs.into_iter().collect();
        for song in &songs {
            *meter_counts.entry(meter_text(song.meter)).or_default() += 1;
            let mode = MODES[mode_value(song.key.map(|k| k.mode))];
            *mode_songs.entry(mode.to_owned()).or_default() += 1;
            if let Some(bars) = song.layout.as_ref().map(BarLayout::full_bars) {
                *bar_counts.entry(bars).or_default() += 1;
            }
            if !song.style.is_empty() {
                *style_counts.entry(song.style.clone()).or_default() += 1;
            }
        }
        let mut meters = vec![FREE.to_owned(), OTHER.to_owned()];
        let mut meter_songs = BTreeMap::new();
        for (meter, count) in meter_counts {
            let value = if meter == FREE || count >= MIN_SONGS_PER_METER {
                meter.clone()
            } else {
                OTHER.to_owned()
            };
            if !meters.contains(&value) {
                meters.push(value.clone());
            }
            *meter_songs.entry(value).or_default() += count;
        }
        let mut styles = vec![OTHER.to_owned()];
        styles.extend(style_counts.keys().cloned());
        for song in songs {
            let meter = meter_text(song.meter);
            let meter = if meters.contains(&meter) {
                meter
            } else {
                OTHER.to_owned()
            };
            let mode = MODES[mode_value(song.key.map(|k| k.mode))].to_owned();
            let style = if song.style.is_empty() {
                OTHER.to_owned()
            } else {
                song.style.clone()
            };
            let pickup = song
                .layout
                .as_ref()
                .filter(|layout| layout.upbeat > 0)
                .map_or(0, |layout| layout.bars[0]);
            let bars = song.layout.as_ref().map(BarLayout::full_bars);
            *together
                .entry((meter, mode, style, pickup, bars))
                .or_default() += 1;
        }
        Conditioning {
            meters,
            styles,
            meter_songs,
            style_songs: style_counts,
            mode_songs,
            bar_counts,
            combinations: together
                .into_iter()
                .map(|((meter, mode, style, pickup, bars), songs)| Combination {
                    meter,
                    mode,
                    style,
                    pickup,
                    bars,
                    songs,
                })
                .collect(),
            lookback: None,
        }
    }

    /// Decides what `request` leaves open, drawing each from the training
    /// songs with `seed` (a meter from those with a value of their own, a mode
    /// from major and minor songs); refuses a meter, mode or style the model
    /// does not know.
    pub fn draw(&self, request: &Request, seed: u64) -> Result<Asked, ConditionError> {
        if let Some(meter) = request.meter {
            self.check_meter(meter)?;
        }
        if let Some(mode) = request.mode
            && !matches!(
                mode,
                Mode::Major | Mode::Ionian | Mode::Minor | Mode::Aeolian
            )
        {
            return Err(ConditionError::UnknownMode {
                asked: mode,
                learned_as: MODES[mode_value(Some(mode))],
            });
        }
        let style = request
            .style
            .as_deref()
            .map(|style| self.style_named(style))
            .transpose()?;
        let request = &Request {
            style,
            ..request.clone()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut pick = |counts: Vec<(String, usize)>| -> Option<String> {
            let weights = WeightedIndex::new(counts.iter().map(|(_, n)| *n)).ok()?;
            Some(counts[weights.sample(&mut rng)].0.clone())
        };
        // A meter, mode, style, upbeat and length that training songs have
        // together, matching what is asked; each drawn alone below when none
        // does (the upbeat then none). An asked length does not steer the
        // rest: it says how long, not which songs (eight bars of 3/4 would
        // otherwise be mostly Polish).
        let asked_mode = request
            .mode
            .map(|mode| MODES[mode_value(Some(mode))].to_owned());
        let fits = |c: &Combination| {
            c.meter != FREE
                && c.meter != OTHER
                && c.mode != MODES[0]
                && request.meter.is_none_or(|m| c.meter == m.to_string())
                && asked_mode.as_ref().is_none_or(|m| c.mode == *m)
                && request.style.as_ref().is_none_or(|s| c.style == *s)
                && request.pickup.is_none_or(|p| c.pickup == p)
        };
        let fitting: Vec<(String, usize)> = self
            .combinations
            .iter()
            .enumerate()
            .filter(|(_, c)| fits(c))
            .map(|(index, c)| (index.to_string(), c.songs))
            .collect();
        let together = pick(fitting)
            .and_then(|index| index.parse::<usize>().ok())
            .map(|index| self.combinations[index].clone());
        let request = &Request {
            meter: request
                .meter
                .or_else(|| together.as_ref().and_then(|c| c.meter.parse().ok())),
            mode: request.mode.or_else(|| {
                together.as_ref().map(|c| {
                    if c.mode == MODES[2] {
                        Mode::Minor
                    } else {
                        Mode::Major
                    }
                })
            }),
            style: request
                .style
                .clone()
                .or_else(|| together.as_ref().map(|c| c.style.clone())),
            pickup: request
                .pickup
                .or_else(|| together.as_ref().map(|c| c.pickup)),
            bars: request
                .bars
                .or_else(|| together.as_ref().and_then(|c| c.bars)),
            form: request.form.clone(),
        };
        let meter = match request.meter {
            Some(meter) => meter,
            None => pick(
                self.meter_songs
                    .iter()
                    .filter(|(m, _)| *m != FREE && *m != OTHER)
                    .map(|(m, n)| (m.clone(), *n))
                    .collect(),
            )
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| ConditionError::UnknownMeter {
                asked: "any".into(),
                known: "none: no training song had a regular meter".into(),
            })?,
        };
        let minor = match request.mode {
            Some(mode) => mode.is_minor_like(),
            None => pick(
                ["major", "minor"]
                    .iter()
                    .map(|m| (m.to_string(), self.mode_songs.get(*m).copied().unwrap_or(1)))
                    .collect(),
            )
            .is_some_and(|m| m == "minor"),
        };
        let style = match &request.style {
            Some(style) => style.clone(),
            None => pick(
                self.style_songs
                    .iter()
                    .map(|(s, n)| (s.clone(), *n))
                    .collect(),
            )
            .unwrap_or_else(|| OTHER.to_owned()),
        };
        let bars = match request.bars {
            Some(bars) => bars,
            None => pick(
                self.bar_counts
                    .iter()
                    .filter(|(bars, _)| **bars > 0)
                    .map(|(b, n)| (b.to_string(), *n))
                    .collect(),
            )
            .and_then(|b| b.parse().ok())
            .unwrap_or(8),
        };
        let pickup = request.pickup.unwrap_or(0);
        let forms = self
            .lookback
            .as_ref()
            .and_then(|l| Some((l, l.forms.as_ref()?)));
        let lags = match (forms, &request.form) {
            (None, None) => None,
            (None, Some(_)) => return Err(ConditionError::NoForm),
            (Some((lookback, _)), Some(text)) => Some(lookback.parse_form(text, bars)?),
            // The form of a training song of this meter, upbeat and length;
            // bars all of their own when none has them.
            (Some((lookback, forms)), None) => {
                let meter_text = meter.to_string();
                let alike: Vec<(String, usize)> = forms
                    .iter()
                    .filter(|f| f.meter == meter_text && f.pickup == pickup && f.bars == bars)
                    .map(|f| (f.form.clone(), f.songs))
                    .collect();
                Some(match pick(alike) {
                    Some(form) => lookback.parse_form(&form, bars)?,
                    None => vec![0; bars as usize],
                })
            }
        };
        // The last bar is the melody's own, so that the model writes its
        // ending (AABA is written A A B A'): a last bar that says an earlier
        // one again, as the model had written it mid-song, ended 2/4 to 6/8
        // melodies on the tonic 20% of the time, against 48-57%.
        let form = match lags {
            Some(mut lags) => {
                if let Some(last) = lags.last_mut() {
                    *last = 0;
                }
                let letters = Lookback::letters(&lags);
                if let (None, Some(asked)) = (&letters, &request.form) {
                    return Err(ConditionError::Form {
                        asked: asked.clone(),
                        why: format!("more than {} bars of their own", FORM_LETTERS.len()),
                    });
                }
                letters
            }
            None => None,
        };
        Ok(Asked {
            meter,
            minor,
            style,
            bars,
            pickup,
            form,
        })
    }

    /// Training songs of the meter, mode and style `asked` names, whatever
    /// their length and upbeat: how much the model learned of such songs
    /// (`None` for a model trained before combinations were kept).
    pub fn songs_alike(&self, asked: &Asked) -> Option<usize> {
        if self.combinations.is_empty() {
            return None;
        }
        let meter = asked.meter.to_string();
        let mode = MODES[if asked.minor { 2 } else { 1 }];
        Some(
            self.combinations
                .iter()
                .filter(|c| c.meter == meter && c.mode == mode && c.style == asked.style)
                .map(|c| c.songs)
                .sum(),
        )
    }

    /// The side input values of a melody asked for, for `steps` grid steps of
    /// `step` and the end, with the inputs that echo its own tokens; `None`
    /// when a bar of the meter is off the grid.
    pub fn schedule(&self, asked: &Asked, step: Duration, steps: usize) -> Option<Schedule> {
        let layout = asked.layout(step)?;
        let tonic = if asked.minor { 'A' } else { 'C' };
        let song = SongConditions {
            meter: Some(asked.meter),
            key: Some(Key {
                tonic: Spelling {
                    letter: tonic,
                    alter: 0,
                },
                mode: if asked.minor {
                    Mode::Minor
                } else {
                    Mode::Major
                },
            }),
            style: asked.style.clone(),
            layout: Some(layout.clone()),
        };
        let mut values = self.fixed_values(&song, steps);
        let mut echoes = Vec::new();
        if let Some(lookback) = &self.lookback {
            echoes = lookback.echoes(Some(&layout), values.len())?;
            values.extend(echoes.iter().map(|echo| vec![echo.before]));
            if lookback.forms.is_some() {
                let lags = lookback.asked_form(asked)?;
                values.push(lookback.form_values(&lags, &layout, steps + 1));
            }
        }
        Some(Schedule { values, echoes })
    }

    /// For a model that reads the form: at each of `steps` steps and the
    /// end, how many steps back is the step its bar says again, where the
    /// form of `asked` says one (`None`: the model reads no form, or a bar
    /// is off the grid).
    pub fn form_copies(
        &self,
        asked: &Asked,
        step: Duration,
        steps: usize,
    ) -> Option<Vec<Option<usize>>> {
        let lookback = self.lookback.as_ref()?;
        lookback.forms.as_ref()?;
        let layout = asked.layout(step)?;
        let lags = lookback.asked_form(asked)?;
        // The last bar, shortened by the upbeat, ends the song: no copy
        // past it keeps the melody from ending there.
        let end = layout.total_steps() as usize;
        Some(
            layout
                .full_bar_of_steps(steps + 1)
                .into_iter()
                .enumerate()
                .map(|(at, bar)| {
                    let lag = *lags.get(bar?)?;
                    (lag > 0 && at < end).then_some((lag * layout.bar_steps) as usize)
                })
                .collect(),
        )
    }

    /// Each side input's name and number of values, in the order the model
    /// reads them: [`INPUT_NAMES`], then the lookback's (`lookback_2` looks
    /// back two bars) and its `form`.
    pub fn inputs(&self) -> Vec<(String, usize)> {
        let sizes = [
            MAX_BAR_STEPS as usize + 1,
            self.meters.len(),
            MODES.len(),
            self.styles.len(),
            MAX_BARS_LEFT as usize + 2,
        ];
        let fixed = INPUT_NAMES.into_iter().map(str::to_owned).zip(sizes);
        let lookback = self.lookback.iter().flat_map(|lookback| {
            lookback
                .bars
                .iter()
                .map(|bars| (format!("lookback_{bars}"), lookback.tokens as usize + 1))
                .chain(lookback.forms.as_ref().map(|_| {
                    let values = FORM_REPEATS as usize + lookback.bars.len();
                    ("form".to_owned(), values)
                }))
        });
        fixed.chain(lookback).collect()
    }

    /// The values of every side input for a song of `ids` (without the
    /// terminal): per input, `ids.len() + 1` values, the one at `t`
    /// describing step `t` (the step whose token the model predicts next;
    /// `ids.len()` is where the song ends).
    pub fn values(&self, song: &SongConditions, ids: &[u32]) -> Vec<Vec<u32>> {
        let mut values = self.fixed_values(song, ids.len());
        if let Some(lookback) = &self.lookback {
            values.extend(lookback.values(ids, song.layout.as_ref()));
        }
        values
    }

    /// The values of the inputs of [`INPUT_NAMES`], which the tokens do not
    /// change, for `steps` steps and the end.
    fn fixed_values(&self, song: &SongConditions, steps: usize) -> Vec<Vec<u32>> {
        let count = steps + 1;
        let (positions, bars_left) = match &song.layout {
            Some(layout) => layout.walk(count),
            None => (vec![MAX_BAR_STEPS; count], vec![MAX_BARS_LEFT + 1; count]),
        };
        let constant = |value: usize| vec![value as u32; count];
        vec![
            positions,
            constant(self.meter_value(song.meter)),
            constant(mode_value(song.key.map(|k| k.mode))),
            constant(self.style_value(&song.style)),
            bars_left,
        ]
    }

    fn meter_value(&self, meter: Option<Meter>) -> usize {
        let text = meter_text(meter);
        self.meters.iter().position(|m| *m == text).unwrap_or(1)
    }

    fn style_value(&self, style: &str) -> usize {
        self.styles.iter().position(|s| s == style).unwrap_or(0)
    }

    /// Refuses a style the model was not trained on.
    /// The style a name means: a style's whole name (`deutschl/kinder`) or,
    /// when only one style ends so, its last part (`kinder`).
    pub fn style_named(&self, style: &str) -> Result<String, ConditionError> {
        if self.style_songs.contains_key(style) {
            return Ok(style.to_owned());
        }
        let ending: Vec<&String> = self
            .style_songs
            .keys()
            .filter(|known| known.rsplit('/').next() == Some(style))
            .collect();
        match ending.as_slice() {
            [one] => return Ok((*one).clone()),
            [] => {}
            several => {
                return Err(ConditionError::AmbiguousStyle {
                    asked: style.to_owned(),
                    matches: several
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" or "),
                });
            }
        }
        Err(ConditionError::UnknownStyle {
            asked: style.to_owned(),
            known: self
                .style_songs
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Refuses a meter the model has no value of its own for.
    pub fn check_meter(&self, meter: Meter) -> Result<(), ConditionError> {
        let text = meter.to_string();
        if self.meters.iter().skip(2).any(|m| *m == text) {
            return Ok(());
        }
        Err(ConditionError::UnknownMeter {
            asked: text,
            known: self.meters[2..].join(", "),
        })
    }
}

fn meter_text(meter: Option<Meter>) -> String {
    meter.map_or_else(|| FREE.to_owned(), |m| m.to_string())
}

/// 0 unknown, 1 major-like, 2 minor-like.
fn mode_value(mode: Option<Mode>) -> usize {
    match mode {
        None => 0,
        Some(mode) if mode.is_minor_like() => 2,
        Some(_) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use esac_parse::{Event, MeterChange, Pitch};
    use std::collections::BTreeSet;

    fn sixteenth() -> Duration {
        Duration::new(1, 16)
    }

    /// A 3/4 song with a quarter-note upbeat: bars of 4, 12, 12 and 8 steps.
    fn upbeat_song() -> Melody {
        let mut melody = Melody::new("t", "t", 1);
        melody.meters.push(MeterChange {
            at_event: 0,
            meter: Meter::Regular { beats: 3, unit: 4 },
        });
        for (measure, quarters) in [(0, 1), (1, 3), (2, 3), (3, 2)] {
            for _ in 0..quarters {
                let mut event = Event::new(Pitch::Note(60), Duration::new(1, 4));
                event.measure = measure;
                melody.events.push(event);
            }
        }
        melody
    }

    #[test]
    fn an_upbeat_song_is_laid_out_as_written() {
        let layout = BarLayout::of(&upbeat_song(), sixteenth()).unwrap();
        assert_eq!(
            layout,
            BarLayout {
                bar_steps: 12,
                upbeat: 8,
                bars: vec![4, 12, 12, 8]
            }
        );
        // Worked by hand: the upbeat covers positions 8..12, then full bars; the
        // song ends (step 36) at position 8 of the last bar, with no bar left.
        let (positions, left) = layout.walk(37);
        assert_eq!(positions[..5], [8, 9, 10, 11, 0]);
        assert_eq!(positions[15..17], [11, 0]);
        assert_eq!(positions[28..], [0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(left[..5], [4, 4, 4, 4, 3]);
        assert_eq!(left[28..36], [1; 8]);
        assert_eq!(left[36], 0);
        assert_eq!(layout, BarLayout::regular(12, 4, 3));
        assert_eq!(layout.regular_pickup(), Some(4));
        let changing = BarLayout {
            bars: vec![4, 12, 8, 12, 8],
            ..layout
        };
        assert_eq!(changing.regular_pickup(), None);
    }

    #[test]
    fn past_the_last_bar_full_bars_continue() {
        let layout = BarLayout::regular(4, 0, 2);
        let (positions, left) = layout.walk(11);
        assert_eq!(positions, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2]);
        assert_eq!(left, [2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0]);
    }

    #[test]
    fn free_meter_has_no_layout_and_gets_the_free_values() {
        let mut melody = upbeat_song();
        melody.meters[0].meter = Meter::Free;
        assert_eq!(BarLayout::of(&melody, sixteenth()), None);
        let song = SongConditions {
            meter: Some(Meter::Free),
            key: None,
            style: "erk".into(),
            layout: None,
        };
        let conditioning = Conditioning::from_songs([&song]);
        let values = conditioning.values(&song, &[0; 3]);
        assert_eq!(values[0], [MAX_BAR_STEPS; 4]);
        assert_eq!(values[1], [0; 4]);
        assert_eq!(values[2], [0; 4]);
        assert_eq!(values[3], [1; 4]);
        assert_eq!(values[4], [MAX_BARS_LEFT + 1; 4]);
    }

    #[test]
    fn lookback_holds_the_token_whole_bars_back_and_nothing_without_regular_bars() {
        let song = |layout| SongConditions {
            meter: Some("1/4".parse().unwrap()),
            key: None,
            style: String::new(),
            layout,
        };
        let conditioning = Conditioning {
            lookback: Some(Lookback {
                bars: vec![1, 2],
                tokens: 20,
                forms: None,
            }),
            ..Conditioning::from_songs([&song(None)])
        };
        let ids = [10, 11, 12, 13, 14, 15, 16, 17];
        // Worked by hand: bars of 4 steps after an upbeat of 1 (bars 1, 4, 3);
        // the upbeat does not move a lag, which is a whole number of bars.
        let values = conditioning.values(&song(Some(BarLayout::regular(4, 1, 2))), &ids);
        assert_eq!(values.len(), 7);
        assert_eq!(values[5], [20, 20, 20, 20, 10, 11, 12, 13, 14]);
        assert_eq!(values[6], [20, 20, 20, 20, 20, 20, 20, 20, 10]);
        let changing = BarLayout {
            bar_steps: 4,
            upbeat: 0,
            bars: vec![4, 2, 2],
        };
        for layout in [None, Some(changing)] {
            let values = conditioning.values(&song(layout), &ids);
            assert_eq!(values[5..], [[20; 9], [20; 9]]);
        }
        let names: Vec<(String, usize)> = conditioning.inputs().into_iter().skip(5).collect();
        assert_eq!(
            names,
            [("lookback_1".to_owned(), 21), ("lookback_2".to_owned(), 21)]
        );
        // Generating 2/4 after an upbeat of 2 steps: the sampler fills the
        // inputs from the melody's own tokens, 8 and 16 steps back.
        let asked = Asked {
            meter: "2/4".parse().unwrap(),
            minor: false,
            style: OTHER.into(),
            bars: 2,
            pickup: 2,
            form: None,
        };
        let schedule = conditioning.schedule(&asked, sixteenth(), 20).unwrap();
        assert_eq!(
            schedule.echoes,
            [
                Echo {
                    input: 5,
                    lag: 8,
                    before: 20
                },
                Echo {
                    input: 6,
                    lag: 16,
                    before: 20
                }
            ]
        );
        assert_eq!(schedule.values.len(), 7);
    }

    #[test]
    fn a_form_says_which_bar_each_bar_says_again() {
        let lookback = Lookback {
            bars: vec![2, 1],
            tokens: 20,
            forms: Some(Vec::new()),
        };
        let meter: Meter = "1/4".parse().unwrap();
        // Worked by hand: an upbeat of 1 step, then bars of 4; the third bar
        // says the first again, the last (shortened by the upbeat) begins as
        // the second did, 2 bars back each, not 1.
        let upbeat = [9, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7];
        let upbeat_layout = BarLayout::regular(4, 1, 4);
        assert_eq!(
            lookback.form_of(&upbeat, &upbeat_layout),
            Some(vec![0, 0, 2, 2])
        );
        // Saying the bar before again is the nearest, 1 bar back.
        let plain = [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4];
        let plain_layout = BarLayout::regular(4, 0, 3);
        assert_eq!(lookback.form_of(&plain, &plain_layout), Some(vec![0, 1, 1]));
        assert_eq!(Lookback::letters(&[0, 0, 2, 2]).unwrap(), "ABAB");
        assert_eq!(Lookback::letters(&[0, 1, 1]).unwrap(), "AAA");
        let changing = BarLayout {
            bar_steps: 4,
            upbeat: 0,
            bars: vec![4, 2, 6],
        };
        assert_eq!(lookback.form_of(&plain, &changing), None);
        // Letters a bar or a phrase, read back.
        assert_eq!(lookback.parse_form("ABAB", 4).unwrap(), [0, 0, 2, 2]);
        assert_eq!(lookback.parse_form("AB", 4).unwrap(), [0, 0, 0, 0]);
        assert_eq!(lookback.parse_form("AA", 4).unwrap(), [0, 0, 2, 2]);
        assert_eq!(lookback.parse_form("AAA", 3).unwrap(), [0, 1, 1]);
        for (text, bars, why) in [
            (
                "AABA",
                8,
                "form `AABA`: phrase 4 says again phrase 2 (4 bars back), but the model looks back 2, 1 bars only",
            ),
            (
                "ABC",
                8,
                "form `ABC`: 3 phrases do not divide 8 bars evenly",
            ),
            (
                "A-B",
                3,
                "form `A-B`: write one letter a phrase, such as AABA",
            ),
        ] {
            let error = lookback.parse_form(text, bars).unwrap_err();
            assert_eq!(error.to_string(), why);
        }
        // The input: "a bar of its own" (1) for the upbeat and new bars, 2
        // for 2 bars back (the first lookback), 3 for 1 bar back; "not
        // known" (0) without regular bars.
        let song = |layout: BarLayout| SongConditions {
            meter: Some(meter),
            key: Some("C major".parse().unwrap()),
            style: "a".into(),
            layout: Some(layout),
        };
        let upbeat_song = song(upbeat_layout.clone());
        let plain_song = song(plain_layout);
        let mut songs = vec![upbeat_song.clone(); MIN_SONGS_PER_METER];
        songs.push(plain_song.clone());
        let mut ids: Vec<&[u32]> = vec![&upbeat; MIN_SONGS_PER_METER];
        ids.push(&plain);
        let forms = lookback.count_forms(songs.iter().zip(ids));
        assert_eq!(
            forms
                .iter()
                .map(|f| (f.pickup, f.bars, f.form.as_str(), f.songs))
                .collect::<Vec<_>>(),
            [(0, 3, "AAA", 1), (1, 4, "ABAB", MIN_SONGS_PER_METER)]
        );
        let conditioning = Conditioning {
            lookback: Some(Lookback {
                forms: Some(forms),
                ..lookback.clone()
            }),
            ..Conditioning::from_songs(&songs)
        };
        let values = conditioning.values(&upbeat_song, &upbeat);
        assert_eq!(values.len(), 8);
        let upbeat_form: Vec<u32> = [vec![1; 9], vec![2; 8]].concat();
        assert_eq!(values[7], upbeat_form);
        let plain_values = conditioning.values(&plain_song, &plain);
        assert_eq!(plain_values[7][3..10], [1, 3, 3, 3, 3, 3, 3]);
        let free = SongConditions {
            layout: None,
            ..plain_song
        };
        assert_eq!(conditioning.values(&free, &plain)[7], [0; 13]);
        assert_eq!(conditioning.inputs()[7..], [("form".to_owned(), 4)]);
        // Drawn from the training songs of the meter, upbeat and length;
        // all bars of their own where none has them; or as asked; the last
        // bar the melody's own.
        let draw = |pickup: u32, bars: u32, form: Option<&str>| {
            let request = Request {
                meter: Some(meter),
                pickup: Some(pickup),
                bars: Some(bars),
                form: form.map(str::to_owned),
                ..Request::default()
            };
            conditioning
                .draw(&request, 3)
                .map(|asked| asked.form.unwrap())
        };
        assert_eq!(draw(1, 4, None).unwrap(), "ABAC");
        assert_eq!(draw(0, 3, None).unwrap(), "AAB");
        assert_eq!(draw(0, 5, None).unwrap(), "ABCDE");
        assert_eq!(draw(0, 4, Some("AA")).unwrap(), "ABAC");
        assert_eq!(draw(0, 4, Some("ABAB")).unwrap(), "ABAC");
        assert!(draw(0, 8, Some("AABA")).is_err());
        // Past 52 bars of their own there are no letters: no form, and
        // every bar its own.
        let long = Request {
            meter: Some(meter),
            bars: Some(60),
            ..Request::default()
        };
        let long = conditioning.draw(&long, 0).unwrap();
        assert_eq!(long.form, None);
        let schedule = conditioning.schedule(&long, sixteenth(), 250).unwrap();
        assert!(
            schedule.values[7..]
                .iter()
                .flatten()
                .all(|&value| value == 1)
        );
        let asked = conditioning
            .draw(
                &Request {
                    meter: Some(meter),
                    pickup: Some(1),
                    bars: Some(4),
                    ..Request::default()
                },
                0,
            )
            .unwrap();
        let schedule = conditioning.schedule(&asked, sixteenth(), 16).unwrap();
        let drawn_form: Vec<u32> = [vec![1; 9], vec![2; 4], vec![1; 4]].concat();
        assert_eq!(schedule.values[7], drawn_form);
        // Bar 3 says bar 1, 2 bars (8 steps) back, again.
        let copies = conditioning.form_copies(&asked, sixteenth(), 20).unwrap();
        let eight_back: Vec<Option<usize>> =
            [vec![None; 9], vec![Some(8); 4], vec![None; 8]].concat();
        assert_eq!(copies, eight_back);
        // A form whose last bar says one again is copied up to the end of
        // the last bar (step 16), shortened by the upbeat.
        let asked = Asked {
            form: Some("ABAB".into()),
            ..asked
        };
        let schedule = conditioning.schedule(&asked, sixteenth(), 16).unwrap();
        assert_eq!(schedule.values[7], upbeat_form);
        let copies = conditioning.form_copies(&asked, sixteenth(), 20).unwrap();
        let eight_back: Vec<Option<usize>> =
            [vec![None; 9], vec![Some(8); 7], vec![None; 5]].concat();
        assert_eq!(copies, eight_back);
        let formless = Conditioning {
            lookback: None,
            ..conditioning
        };
        assert_eq!(formless.form_copies(&asked, sixteenth(), 16), None);
        let request = Request {
            form: Some("AB".into()),
            ..Request::default()
        };
        assert_eq!(formless.draw(&request, 0), Err(ConditionError::NoForm));
    }

    #[test]
    fn the_upbeat_and_length_are_drawn_with_the_meter() {
        let upbeat = SongConditions {
            meter: Some("3/4".parse().unwrap()),
            key: Some("C major".parse().unwrap()),
            style: "a".into(),
            layout: BarLayout::of(&upbeat_song(), sixteenth()),
        };
        let plain = SongConditions {
            meter: Some("2/4".parse().unwrap()),
            layout: Some(BarLayout::regular(8, 0, 4)),
            ..upbeat.clone()
        };
        let mut songs = vec![upbeat; MIN_SONGS_PER_METER];
        songs.extend(vec![plain; MIN_SONGS_PER_METER]);
        let conditioning = Conditioning::from_songs(&songs);
        for seed in 0..10 {
            let asked = |meter: &str| {
                conditioning
                    .draw(
                        &Request {
                            meter: Some(meter.parse().unwrap()),
                            ..Request::default()
                        },
                        seed,
                    )
                    .unwrap()
            };
            assert_eq!(asked("3/4").pickup, 4);
            assert_eq!(asked("2/4").pickup, 0);
            // The upbeat song has 3 full bars, the plain ones 4.
            assert_eq!(asked("3/4").bars, 3);
            assert_eq!(asked("2/4").bars, 4);
        }
        // An asked length leaves the meter to be drawn from all the songs.
        let meters: BTreeSet<String> = (0..20)
            .map(|seed| {
                let request = Request {
                    bars: Some(3),
                    ..Request::default()
                };
                let asked = conditioning.draw(&request, seed).unwrap();
                assert_eq!(asked.bars, 3);
                asked.meter.to_string()
            })
            .collect();
        assert_eq!(meters, BTreeSet::from(["2/4".into(), "3/4".into()]));
        // Alike whatever the length and upbeat; none in minor or another style.
        let alike = |meter: &str, minor: bool, style: &str| {
            conditioning.songs_alike(&Asked {
                meter: meter.parse().unwrap(),
                minor,
                style: style.into(),
                bars: 64,
                pickup: 1,
                form: None,
            })
        };
        assert_eq!(alike("3/4", false, "a"), Some(MIN_SONGS_PER_METER));
        assert_eq!(alike("3/4", true, "a"), Some(0));
        assert_eq!(alike("2/4", false, "b"), Some(0));
        let before_combinations = Conditioning {
            combinations: Vec::new(),
            ..conditioning.clone()
        };
        let asked = conditioning.draw(&Request::default(), 0).unwrap();
        assert_eq!(before_combinations.songs_alike(&asked), None);
    }

    #[test]
    fn only_major_and_minor_are_asked_and_church_modes_are_refused() {
        let songs: Vec<SongConditions> = ["C major", "a minor", "D dorian"]
            .into_iter()
            .map(|key| SongConditions {
                meter: Some("2/4".parse().unwrap()),
                key: Some(key.parse().unwrap()),
                style: "a".into(),
                layout: Some(BarLayout::regular(8, 0, 4)),
            })
            .flat_map(|song| std::iter::repeat_n(song, MIN_SONGS_PER_METER))
            .collect();
        let conditioning = Conditioning::from_songs(&songs);
        let draw = |mode: &str| {
            let request = Request {
                mode: Some(mode.parse().unwrap()),
                ..Request::default()
            };
            conditioning.draw(&request, 0)
        };
        for (mode, minor) in [
            ("major", false),
            ("ionian", false),
            ("minor", true),
            ("aeo", true),
        ] {
            assert_eq!(draw(mode).unwrap().minor, minor, "{mode}");
        }
        assert_eq!(
            draw("dorian").unwrap_err().to_string(),
            "the model knows the modes major and minor (ionian and aeolian are the same), \
             not dorian: its training songs in dorian were learned as minor, by their third"
        );
        let error = draw("mixolydian").unwrap_err().to_string();
        assert!(
            error.ends_with("were learned as major, by their third"),
            "{error}"
        );
    }

    #[test]
    fn a_style_is_named_whole_or_by_its_last_part() {
        let songs: Vec<SongConditions> = ["deutschl/erk", "esac/erk", "deutschl/kinder"]
            .into_iter()
            .map(|style| SongConditions {
                meter: None,
                key: None,
                style: style.into(),
                layout: None,
            })
            .collect();
        let conditioning = Conditioning::from_songs(&songs);
        assert_eq!(
            conditioning.style_named("kinder").unwrap(),
            "deutschl/kinder"
        );
        assert_eq!(conditioning.style_named("esac/erk").unwrap(), "esac/erk");
        assert_eq!(
            conditioning.style_named("erk").unwrap_err().to_string(),
            "style `erk` could be deutschl/erk or esac/erk: write the whole name"
        );
        assert_eq!(
            conditioning.style_named("china").unwrap_err().to_string(),
            "the model knows no style `china`; it knows deutschl/erk, deutschl/kinder, esac/erk"
        );
    }

    #[test]
    fn rare_meters_share_other() {
        let song = |meter: &str, style: &str| SongConditions {
            meter: Some(meter.parse().unwrap()),
            key: Some("G minor".parse().unwrap()),
            style: style.into(),
            layout: None,
        };
        let mut songs = vec![song("3/4", "a"); MIN_SONGS_PER_METER];
        songs.push(song("5/4", "b"));
        let conditioning = Conditioning::from_songs(&songs);
        assert_eq!(conditioning.meters, ["free", "other", "3/4"]);
        assert_eq!(conditioning.styles, ["other", "a", "b"]);
        assert_eq!(conditioning.meter_songs["other"], 1);
        assert_eq!(conditioning.values(&songs[0], &[])[1], [2]);
        assert_eq!(conditioning.values(&songs[20], &[])[1], [1]);
        assert_eq!(conditioning.values(&songs[20], &[])[2], [2]);
        assert!(conditioning.check_meter("3/4".parse().unwrap()).is_ok());
        assert!(conditioning.check_meter("5/4".parse().unwrap()).is_err());
        assert_eq!(conditioning.style_named("b").unwrap(), "b");
        assert!(conditioning.style_named("c").is_err());
        // What is left open is drawn with what is asked: asking for 3/4 draws
        // style a and minor, whatever the seed. Style b's only song is in a
        // rare meter, which cannot be asked for, so for b each is drawn alone
        // (3/4, the one meter there is).
        assert_eq!(
            conditioning.combinations,
            [
                Combination {
                    meter: "3/4".into(),
                    mode: "minor".into(),
                    style: "a".into(),
                    pickup: 0,
                    bars: None,
                    songs: 20
                },
                Combination {
                    meter: "other".into(),
                    mode: "minor".into(),
                    style: "b".into(),
                    pickup: 0,
                    bars: None,
                    songs: 1
                }
            ]
        );
        for seed in 0..20 {
            let asked = conditioning
                .draw(
                    &Request {
                        meter: Some("3/4".parse().unwrap()),
                        ..Request::default()
                    },
                    seed,
                )
                .unwrap();
            assert_eq!((asked.style.as_str(), asked.minor), ("a", true));
            let asked = conditioning
                .draw(
                    &Request {
                        style: Some("b".into()),
                        ..Request::default()
                    },
                    seed,
                )
                .unwrap();
            assert_eq!(asked.meter.to_string(), "3/4");
        }
        let sizes: Vec<usize> = conditioning.inputs().iter().map(|i| i.1).collect();
        assert_eq!(sizes, [49, 3, 3, 3, 34]);
    }
}
