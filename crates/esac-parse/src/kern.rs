//! Humdrum `**kern` reader for monophonic songs such as the Essen `.krn` files.
//!
//! Reads reference records (`!!!OTL`, `!!!SCT`, `!!!ARE`, `!!!ONB`), meters
//! (also mid-song), key signatures, keys and modes, tempo, barlines, durations
//! with dots and tuplet values (`12`, `3%2`, and ekern's non-standard `1.5`),
//! pitches in every octave with accidentals, rests, ties, phrases, fermatas and
//! grace notes. A file with several spines is read from its first `**kern` spine
//! as long as no spine splits or merges; otherwise it is rejected with a reason.

use std::path::Path;

use crate::error::{ErrorKind, ParseError};
use crate::model::{
    Duration, Event, Key, Melody, Meter, MeterChange, Mode, Pitch, Spelling, Tie,
    letter_pitch_class,
};

/// Reads every song (one per `**kern` segment) in a kern text.
pub fn parse(text: &str, file: &Path) -> Result<Vec<Melody>, ParseError> {
    let mut reader = Reader::new(file);
    for (index, raw) in text.lines().enumerate() {
        reader.line(raw.trim_end_matches('\r'), index + 1)?;
    }
    reader.finish()
}

/// Metadata that reference records may give before, inside or after a segment.
#[derive(Default, Clone)]
struct Records {
    id: Option<String>,
    title: Option<String>,
    region: Option<String>,
    collection: Option<String>,
}

impl Records {
    fn apply_to(&self, melody: &mut Melody) {
        if let Some(id) = &self.id {
            melody.id.clone_from(id);
        }
        if let Some(title) = &self.title {
            melody.title.clone_from(title);
        }
        if self.region.is_some() {
            melody.region.clone_from(&self.region);
        }
        if self.collection.is_some() {
            melody.collection.clone_from(&self.collection);
        }
    }
}

/// A segment being read.
struct Segment {
    melody: Melody,
    records: Records,
    spine: usize,
    spine_count: usize,
    /// Bar number for the next event; `None` before the first barline.
    measure: Option<u32>,
    /// Events read before the first barline (their bar is fixed at that barline).
    before_first_bar: usize,
    pending_meter: Option<Meter>,
    ended: bool,
}

struct Reader<'a> {
    file: &'a Path,
    outside: Records,
    segment: Option<Segment>,
    done: Vec<Melody>,
}

impl<'a> Reader<'a> {
    fn new(file: &'a Path) -> Self {
        Self {
            file,
            outside: Records::default(),
            segment: None,
            done: Vec::new(),
        }
    }

    fn error(&self, line: usize, column: usize, token: &str, kind: ErrorKind) -> ParseError {
        ParseError::new(self.file, line, column, token, kind)
    }

    fn line(&mut self, line: &str, number: usize) -> Result<(), ParseError> {
        if line.is_empty() {
            return Ok(());
        }
        if let Some(record) = line.strip_prefix("!!!") {
            self.reference_record(record);
            return Ok(());
        }
        if line.starts_with("!!") {
            return Ok(());
        }
        if line.starts_with("**") {
            return self.start_segment(line, number);
        }
        let Some(segment) = self.segment.as_ref().filter(|s| !s.ended) else {
            return Err(self.error(
                number,
                1,
                line,
                ErrorKind::Other("data before the `**kern` exclusive interpretation".into()),
            ));
        };
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != segment.spine_count {
            return Err(self.error(
                number,
                1,
                line,
                ErrorKind::Spines(
                    fields.len(),
                    format!("expected {} tab-separated spines", segment.spine_count),
                ),
            ));
        }
        if fields.len() > 1
            && let Some((spine, manipulator)) = fields
                .iter()
                .enumerate()
                .find(|(_, f)| matches!(**f, "*^" | "*v" | "*+" | "*x"))
        {
            return Err(self.error(
                number,
                column_of(&fields, spine),
                manipulator,
                ErrorKind::Spines(
                    spine + 1,
                    "spine splits and merges are not supported".into(),
                ),
            ));
        }
        let spine = segment.spine;
        let column = column_of(&fields, spine);
        self.token(fields[spine], number, column)
    }

    fn reference_record(&mut self, record: &str) {
        let Some((key, value)) = record.split_once(':') else {
            return;
        };
        let value = value.trim().to_owned();
        let target = match self.segment.as_mut() {
            Some(segment) => &mut segment.records,
            None => &mut self.outside,
        };
        // Language-tagged variants (`OTL@@DE`) do not replace the main record.
        match key {
            "SCT" => target.id = Some(value),
            "OTL" => target.title = Some(value),
            "ARE" => target.region = Some(value),
            "ONB" => {
                let name = value
                    .split_once("Database:")
                    .map_or(value.as_str(), |(_, name)| name.trim());
                target.collection = Some(name.to_owned());
            }
            _ => {}
        }
    }

    fn start_segment(&mut self, line: &str, number: usize) -> Result<(), ParseError> {
        self.close_segment(number)?;
        let fields: Vec<&str> = line.split('\t').collect();
        let Some(spine) = fields.iter().position(|f| *f == "**kern") else {
            return Err(self.error(
                number,
                1,
                line,
                ErrorKind::Spines(1, "no `**kern` spine in this file".into()),
            ));
        };
        let stem = self
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let melody = Melody::new(stem, self.file, number);
        self.segment = Some(Segment {
            melody,
            records: std::mem::take(&mut self.outside),
            spine,
            spine_count: fields.len(),
            measure: None,
            before_first_bar: 0,
            pending_meter: None,
            ended: false,
        });
        Ok(())
    }

    fn close_segment(&mut self, number: usize) -> Result<(), ParseError> {
        if let Some(mut segment) = self.segment.take() {
            segment.records.apply_to(&mut segment.melody);
            if segment.melody.events.is_empty() {
                return Err(self.error(number, 1, "", ErrorKind::Empty));
            }
            self.done.push(segment.melody);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<Melody>, ParseError> {
        // Reference records after the last `*-` (some files put them there) belong to it.
        if let Some(segment) = self.segment.as_mut() {
            let trailing = std::mem::take(&mut self.outside);
            segment.records.apply_to(&mut segment.melody);
            trailing.apply_to(&mut segment.melody);
            segment.records = Records::default();
        }
        self.close_segment(0)?;
        if self.done.is_empty() {
            return Err(self.error(1, 1, "", ErrorKind::Missing("`**kern` spine")));
        }
        Ok(self.done)
    }

    fn token(&mut self, token: &str, line: usize, column: usize) -> Result<(), ParseError> {
        if token == "." || token.starts_with('!') {
            return Ok(());
        }
        if let Some(bar) = token.strip_prefix('=') {
            self.barline(bar);
            return Ok(());
        }
        if let Some(interpretation) = token.strip_prefix('*') {
            return self.interpretation(interpretation, line, column);
        }
        let mut parts = token.split(' ').filter(|p| !p.is_empty() && *p != ".");
        let Some(note) = parts.next() else {
            return Ok(());
        };
        if parts.next().is_some() {
            return Err(self.error(line, column, token, ErrorKind::Chord));
        }
        let event = parse_note(note)
            .map_err(|(offset, kind)| self.error(line, column + offset, token, kind))?;
        self.push_event(event);
        Ok(())
    }

    fn segment(&mut self) -> &mut Segment {
        self.segment.as_mut().expect("checked by line()")
    }

    fn barline(&mut self, text: &str) {
        let number: Option<u32> = text
            .trim_start_matches('=')
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok();
        let segment = self.segment();
        let next = match (segment.measure, number) {
            (_, Some(n)) => n,
            (Some(m), None) => m + 1,
            (None, None) => 1,
        };
        if segment.measure.is_none() {
            let first = next.saturating_sub(1);
            let count = segment.before_first_bar;
            for event in &mut segment.melody.events[..count] {
                event.measure = first;
            }
        }
        segment.measure = Some(next);
    }

    fn interpretation(&mut self, text: &str, line: usize, column: usize) -> Result<(), ParseError> {
        let file = self.file;
        let bad_interpretation =
            |kind| ParseError::new(file, line, column, format!("*{text}"), kind);
        let segment = self.segment();
        if text == "-" {
            segment.ended = true;
            return Ok(());
        }
        if let Some(tempo) = text.strip_prefix("MM") {
            segment.melody.tempo_qpm = tempo.parse().ok();
        } else if let Some(meter) = text.strip_prefix('M') {
            if let Some(meter) = Meter::parse(meter) {
                segment.pending_meter = Some(meter);
            } else if !matches!(meter, "Z" | "?") {
                return Err(bad_interpretation(ErrorKind::BadMeter(meter.into())));
            }
        } else if let Some(signature) = text.strip_prefix("k[") {
            let signature = signature.trim_end_matches(']');
            let sharps = signature.matches('#').count();
            let flats = signature.matches('-').count();
            // A signature lists each altered note once, so more than seven of a
            // kind is no signature at all (and would not fit the i8 of fifths).
            if sharps > 7 || flats > 7 {
                return Err(bad_interpretation(ErrorKind::BadKeySignature(
                    signature.into(),
                )));
            }
            segment.melody.key_signature = Some(sharps as i8 - flats as i8);
        } else if let Some((tonic, mode)) = text.split_once(':')
            && let Some(key) = parse_key(tonic, mode)
        {
            segment.melody.key = Some(key);
        }
        Ok(())
    }

    fn push_event(&mut self, mut event: Event) {
        let segment = self.segment();
        let index = segment.melody.events.len();
        if let Some(meter) = segment.pending_meter.take() {
            let meters = &mut segment.melody.meters;
            match meters.last_mut() {
                Some(last) if last.at_event == index => last.meter = meter,
                Some(last) if last.meter == meter => {}
                _ => meters.push(MeterChange {
                    at_event: index,
                    meter,
                }),
            }
        }
        match segment.measure {
            Some(m) => event.measure = m,
            None => segment.before_first_bar += 1,
        }
        segment.melody.events.push(event);
    }
}

/// 1-based character column where spine `index` starts.
fn column_of(fields: &[&str], index: usize) -> usize {
    1 + fields[..index]
        .iter()
        .map(|f| f.chars().count() + 1)
        .sum::<usize>()
}

/// `F` + `` -> F major, `f#` + `` -> F sharp minor, `D` + `dor` -> D dorian.
/// Kern writes flats as `-`; the mode is one of the 3-letter abbreviations.
fn parse_key(tonic: &str, mode: &str) -> Option<Key> {
    // `b` is a letter in kern (B minor), never a flat.
    if tonic.chars().skip(1).any(|c| c == 'b') {
        return None;
    }
    let spelling: Spelling = tonic.parse().ok()?;
    let mode = match mode {
        "" if tonic.starts_with(|c: char| c.is_ascii_lowercase()) => Mode::Minor,
        "" => Mode::Major,
        "ion" | "dor" | "phr" | "lyd" | "mix" | "aeo" | "loc" => mode.parse().ok()?,
        _ => return None,
    };
    Some(Key {
        tonic: spelling,
        mode,
    })
}

/// Signifiers that carry no information this model keeps (articulations, beams,
/// stems, ornaments, editorial and layout marks).
const IGNORED_SIGNIFIERS: &str = "()&'\"`~^/\\LJkKmMwWtTS$RoOvuUyYzZ:|HhpPiIjls,?@+<>";

/// Parses one kern note or rest token; errors carry the character offset.
fn parse_note(token: &str) -> Result<Event, (usize, ErrorKind)> {
    let chars: Vec<char> = token.chars().collect();
    let mut reciprocal: Option<Duration> = None;
    let mut dots = 0u32;
    let mut letter: Option<(char, usize)> = None;
    let mut rest = false;
    let mut alter = 0i32;
    let mut accidental_allowed = false;
    let mut event = Event::new(Pitch::Rest, Duration::from_integer(0));
    let (mut tie_start, mut tie_end, mut tie_middle) = (false, false, false);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut keeps_accidental_open = false;
        match c {
            '{' => event.phrase_start = true,
            '}' => event.phrase_end = true,
            '[' => tie_start = true,
            ']' => tie_end = true,
            '_' => tie_middle = true,
            '0'..='9' => {
                if reciprocal.is_some() || letter.is_some() || rest {
                    return Err((i, ErrorKind::BadDuration("misplaced digit".into())));
                }
                let (value, used) = parse_reciprocal(&chars[i..])
                    .map_err(|message| (i, ErrorKind::BadDuration(message)))?;
                reciprocal = Some(value);
                i += used;
                continue;
            }
            '.' => {
                if reciprocal.is_none() {
                    return Err((i, ErrorKind::BadDuration("dot without a duration".into())));
                }
                if dots == MAX_DOTS {
                    return Err((i, ErrorKind::BadDuration("more than three dots".into())));
                }
                dots += 1;
            }
            'a'..='g' | 'A'..='G' => match letter {
                None if !rest => {
                    letter = Some((c, 1));
                    keeps_accidental_open = true;
                }
                Some((l, n)) if l == c && accidental_allowed && alter == 0 => {
                    letter = Some((l, n + 1));
                    keeps_accidental_open = true;
                }
                _ => return Err((i, ErrorKind::BadPitch(format!("unexpected letter {c:?}")))),
            },
            'r' => {
                if letter.is_some() {
                    return Err((i, ErrorKind::BadPitch("a rest cannot have a pitch".into())));
                }
                rest = true;
            }
            '#' | '-' | 'n' => {
                if !accidental_allowed {
                    return Err((
                        i,
                        ErrorKind::BadPitch(format!(
                            "accidental {c:?} must follow the pitch letters"
                        )),
                    ));
                }
                alter += match c {
                    '#' => 1,
                    '-' => -1,
                    _ => 0,
                };
                keeps_accidental_open = true;
            }
            'x' | 'X' => keeps_accidental_open = accidental_allowed,
            'q' | 'Q' => event.grace = true,
            ';' => event.fermata = true,
            c if IGNORED_SIGNIFIERS.contains(c) => {}
            c => return Err((i, ErrorKind::UnexpectedChar(c))),
        }
        accidental_allowed = keeps_accidental_open;
        i += 1;
    }
    event.tie = match (tie_start, tie_middle, tie_end) {
        (true, _, true) | (false, false, false) => Tie::None,
        (_, true, _) => Tie::Middle,
        (true, false, false) => Tie::Start,
        (false, false, true) => Tie::End,
    };
    event.pitch = match letter {
        Some((l, count)) => Pitch::Note(kern_midi(l, count, alter).map_err(|k| (0, k))?),
        None if rest => Pitch::Rest,
        None => return Err((0, ErrorKind::BadPitch("no pitch letter or rest".into()))),
    };
    event.duration = match reciprocal {
        Some(r) => {
            let plain = r.recip();
            // Each dot adds half of the previous addition: 1, 3/2, 7/4, ...
            plain * Duration::new(2u64.pow(dots + 1) - 1, 2u64.pow(dots))
        }
        None if event.grace => Duration::from_integer(0),
        None => return Err((0, ErrorKind::BadDuration("no duration".into()))),
    };
    Ok(event)
}

const MAX_DOTS: u32 = 3;

/// Largest reciprocal accepted (a 1024th note), and the largest prime factor.
const MAX_RECIPROCAL: u64 = 1024;

/// True for 1..=1024 with no prime factor above 7: the note values and tuplets
/// music uses, and a bound that keeps every sum of durations within 64 bits.
fn is_plausible_reciprocal(value: u64) -> bool {
    let mut rest = value;
    for p in [2, 3, 5, 7] {
        while rest > 1 && rest.is_multiple_of(p) {
            rest /= p;
        }
    }
    (1..=MAX_RECIPROCAL).contains(&value) && rest == 1
}

/// Reads a kern reciprocal duration at the start of `chars`: `4`, `12`, `0` (breve),
/// `00`, `3%2` (rational), or `1.5` (ekern's decimal). Returns it and the chars used.
fn parse_reciprocal(chars: &[char]) -> Result<(Duration, usize), String> {
    let digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    let text: String = chars[..digits].iter().collect();
    if text.chars().all(|c| c == '0') {
        // 0 = breve, 00 = longa, 000 = maxima.
        if digits > 3 {
            return Err(format!("{text:?} is longer than a maxima"));
        }
        let wholes = 2u64.pow(digits as u32);
        return Ok((Duration::new(1, wholes), digits));
    }
    let value: u64 = text
        .parse()
        .ok()
        .filter(|v| is_plausible_reciprocal(*v))
        .ok_or_else(|| format!("{text:?} is not a note value (1..=1024, tuplets of 3, 5, 7)"))?;
    let mut used = digits;
    let mut reciprocal = Duration::from_integer(value);
    if chars.get(used) == Some(&'%') {
        let denominator_digits = chars[used + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let denominator: String = chars[used + 1..used + 1 + denominator_digits]
            .iter()
            .collect();
        let denominator: u64 = denominator
            .parse()
            .ok()
            .filter(|d| is_plausible_reciprocal(*d))
            .ok_or_else(|| format!("bad rational duration {text}%{denominator}"))?;
        reciprocal = Duration::new(value, denominator);
        used += 1 + denominator_digits;
    } else if chars.get(used) == Some(&'.') && chars.get(used + 1).is_some_and(char::is_ascii_digit)
    {
        let fraction_digits = chars[used + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let fraction: String = chars[used + 1..used + 1 + fraction_digits].iter().collect();
        if fraction_digits > 2 {
            return Err(format!("decimal duration {text}.{fraction} is too precise"));
        }
        let scale = 10u64.pow(fraction_digits as u32);
        let fraction: u64 = fraction.parse().map_err(|_| "bad decimal".to_string())?;
        reciprocal = Duration::new(value * scale + fraction, scale);
        used += 1 + fraction_digits;
    }
    Ok((reciprocal, used))
}

/// MIDI number of a kern pitch: `c` = 60, `cc` = 72, `C` = 48, `CC` = 36.
fn kern_midi(letter: char, count: usize, alter: i32) -> Result<u8, ErrorKind> {
    let count = count as i32;
    let octave = if letter.is_ascii_lowercase() {
        4 + count - 1
    } else {
        3 - (count - 1)
    };
    let midi = (octave + 1) * 12 + letter_pitch_class(letter) as i32 + alter;
    u8::try_from(midi)
        .ok()
        .filter(|m| *m <= 127)
        .ok_or(ErrorKind::PitchOutOfRange(midi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(token: &str) -> Event {
        parse_note(token).unwrap_or_else(|e| panic!("{token}: {e:?}"))
    }

    fn d(n: u64, m: u64) -> Duration {
        Duration::new(n, m)
    }

    #[test]
    fn pitches_in_every_octave() {
        assert_eq!(note("4c").pitch, Pitch::Note(60));
        assert_eq!(note("4cc").pitch, Pitch::Note(72));
        assert_eq!(note("4ccc").pitch, Pitch::Note(84));
        assert_eq!(note("4C").pitch, Pitch::Note(48));
        assert_eq!(note("4CC").pitch, Pitch::Note(36));
        assert_eq!(note("4b-").pitch, Pitch::Note(70));
        assert_eq!(note("4f#").pitch, Pitch::Note(66));
        assert_eq!(note("4BB-").pitch, Pitch::Note(46));
        assert_eq!(note("4en").pitch, Pitch::Note(64));
        assert_eq!(note("4ffx#").pitch, Pitch::Note(78));
        assert_eq!(note("8r}").pitch, Pitch::Rest);
    }

    #[test]
    fn durations_dots_and_tuplets() {
        assert_eq!(note("4c").duration, d(1, 4));
        assert_eq!(note("8.cc").duration, d(3, 16));
        assert_eq!(note("2..c").duration, d(7, 8));
        assert_eq!(note("12b").duration, d(1, 12));
        assert_eq!(note("6a").duration, d(1, 6));
        assert_eq!(note("3g").duration, d(1, 3));
        assert_eq!(note("24g").duration, d(1, 24));
        assert_eq!(note("0f").duration, d(2, 1));
        assert_eq!(note("00f").duration, d(4, 1));
        assert_eq!(note("3%2f").duration, d(2, 3));
        assert_eq!(note("1.5dd").duration, d(2, 3));
    }

    #[test]
    fn marks() {
        let e = note("{[4.d");
        assert!(e.phrase_start && e.tie == Tie::Start && e.duration == d(3, 8));
        let e = note("4dd]}");
        assert!(e.phrase_end && e.tie == Tie::End);
        assert_eq!(note("4d_").tie, Tie::Middle);
        let e = note("8gq");
        assert!(e.grace);
        assert_eq!(note("gq").duration, d(0, 1));
        assert!(note("4c;").fermata);
    }

    #[test]
    fn junk_is_rejected() {
        // ALTDEU A0627's kern file carries these conversion leftovers.
        assert!(matches!(
            parse_note("0gg//#"),
            Err((5, ErrorKind::BadPitch(_)))
        ));
        assert!(parse_note("2gg>>#").is_err());
        assert!(parse_note("4cd").is_err());
        assert!(parse_note("c").is_err());
        assert!(matches!(
            parse_note("4c%"),
            Err((2, ErrorKind::UnexpectedChar('%')))
        ));
        assert!(parse_note("11c").is_err());
        assert!(parse_note("2048c").is_err());
        assert!(parse_note("4....c").is_err());
        assert!(parse_note("0000c").is_err());
    }

    fn parse_str(text: &str) -> Result<Vec<Melody>, ParseError> {
        parse(text, Path::new("t.krn"))
    }

    #[test]
    fn a_small_song_with_pickup_meter_change_and_metadata() {
        let text = "!!!OTL: TITLE\n!!!SCT: E0001\n**kern\n*M2/4\n*k[b-]\n*F:\n*MM96\n{8c\n=1\n8f\n8f\n4g}\n=2\n*M3/4\n[2.a\n=3\n4a]\n2r\n==\n!!!ONB: ESAC (Essen Associative Code) Database: ERK1\n*-\n";
        let songs = parse_str(text).unwrap();
        assert_eq!(songs.len(), 1);
        let m = &songs[0];
        assert_eq!(m.id, "E0001");
        assert_eq!(m.title, "TITLE");
        assert_eq!(m.collection.as_deref(), Some("ERK1"));
        assert_eq!(m.key_signature, Some(-1));
        assert_eq!(m.tempo_qpm, Some(96.0));
        assert_eq!(
            m.key,
            Some(Key {
                tonic: Spelling {
                    letter: 'F',
                    alter: 0
                },
                mode: Mode::Major
            })
        );
        let measures: Vec<u32> = m.events.iter().map(|e| e.measure).collect();
        assert_eq!(measures, [0, 1, 1, 1, 2, 3, 3]);
        assert_eq!(
            m.meters,
            [
                MeterChange {
                    at_event: 0,
                    meter: Meter::Regular { beats: 2, unit: 4 }
                },
                MeterChange {
                    at_event: 4,
                    meter: Meter::Regular { beats: 3, unit: 4 }
                },
            ]
        );
        assert_eq!(m.pickup(), d(1, 8));
        assert_eq!(m.total_duration(), d(1, 8) + d(2, 4) + d(3, 4) + d(3, 4));
    }

    #[test]
    fn second_spine_is_ignored_but_manipulators_rejected() {
        let text = "**kern\t**text\n*M2/4\t*\n4c\tla\n4d\tle\n*-\t*-\n";
        let songs = parse_str(text).unwrap();
        assert_eq!(songs[0].events.len(), 2);
        let text = "**kern\t**kern\n4c\t4e\n*^\t*\n4c\t4e\t4g\n*-\t*-\t*-\n";
        let err = parse_str(text).unwrap_err();
        assert_eq!(err.location.line, 3);
        assert!(matches!(err.kind, ErrorKind::Spines(1, _)), "{err}");
    }

    #[test]
    fn errors_name_line_column_and_token() {
        let text = "**kern\n*M2/4\n4c\n4c\t4d\n";
        let err = parse_str(text).unwrap_err();
        assert_eq!(err.location.line, 4);
        let text = "**kern\n*M2/4\n4c\n4c 4e\n*-\n";
        let err = parse_str(text).unwrap_err();
        assert_eq!((err.location.line, err.kind.clone()), (4, ErrorKind::Chord));
        let text = "**kern\n*M2/4\n4c\n4cZ%\n*-\n";
        let err = parse_str(text).unwrap_err();
        assert_eq!((err.location.line, err.location.column), (4, 4));
        assert_eq!(err.token, "4cZ%");
        assert_eq!(
            err.to_string(),
            "t.krn:4:4: unexpected character '%' in `4cZ%`"
        );
    }

    #[test]
    fn a_key_signature_with_more_than_seven_accidentals_is_an_error() {
        let flats = "-".repeat(128);
        let text = format!("**kern\n*k[f#{flats}]\n4c\n*-\n");
        let err = parse_str(&text).unwrap_err();
        assert_eq!(err.location.line, 2);
        assert_eq!(err.kind, ErrorKind::BadKeySignature(format!("f#{flats}")));
        assert!(err.to_string().contains("at most seven sharps or flats"));
        let seven = parse_str("**kern\n*k[b-e-a-d-g-c-f-]\n4c\n*-\n").unwrap();
        assert_eq!(seven[0].key_signature, Some(-7));
    }

    #[test]
    fn a_tonic_with_more_than_a_double_accidental_names_no_key() {
        let key = |tonic: &str| {
            let text = format!("**kern\n*{tonic}:\n4c\n*-\n");
            parse_str(&text).unwrap()[0].key
        };
        assert_eq!(key(&format!("c{}", "#".repeat(128))), None);
        assert_eq!(key("g---"), None);
        let double_sharp = key("f##").unwrap();
        assert_eq!(
            (double_sharp.tonic.alter, double_sharp.mode),
            (2, Mode::Minor)
        );
        // Not keys: a letter that takes two bytes (found by the property test),
        // a flat written `b`, a mode word that is not kern's.
        assert_eq!(key("ÿ"), None);
        assert_eq!(key("eb"), None);
        assert_eq!(key("G maj"), None);
        let dorian = parse_str("**kern\n*D:dor\n4d\n*-\n").unwrap()[0]
            .key
            .unwrap();
        assert_eq!(dorian.to_string(), "D dorian");
    }

    #[test]
    fn empty_or_missing_spine() {
        assert!(parse_str("!!!OTL: x\n").is_err());
        assert!(parse_str("**kern\n*M2/4\n*-\n").is_err());
        assert!(parse_str("**text\nla\n*-\n").is_err());
    }
}
