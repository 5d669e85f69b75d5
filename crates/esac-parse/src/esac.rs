//! Native EsAC (Essen Associative Code) reader.
//!
//! A database file holds many records separated by blank lines; each record is a
//! header line naming the database (`ERK1` or `F[ERK1`) followed by fields
//! `NAME[content]` that may run over several lines. `KEY[E0001  16  F 2/4]`
//! gives the id, the smallest note value, the tonic (German names: `B` = B flat,
//! `H` = B) and the meter(s); `MEL[...]` holds scale degrees relative to the tonic.
//! The rules follow `shared/docs/esac-format.md` (Huron's ekern and Sapp's
//! esac2hum): MIDI = 60 + tonic + major-scale step + 12 per `+`/`-` + `#`/`b`;
//! each `_` doubles the unit, `.` adds half, `( )` scales by 2/3; two spaces are
//! a barline, each line a phrase, `^` ties to the previous note, `//` ends.

use std::path::Path;

use crate::error::{ErrorKind, ParseError};
use crate::model::{Duration, Event, Key, Melody, Meter, MeterChange, Mode, Pitch, Spelling, Tie};

/// Semitones above the tonic of the major-scale degrees 1..=7.
const MAJOR_STEPS: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];

/// Reads every record of an EsAC database text. One result per record, so that a
/// bad record costs only itself.
pub fn parse(text: &str, file: &Path) -> Vec<Result<Melody, ParseError>> {
    records(text)
        .into_iter()
        .filter(|record| {
            record
                .iter()
                .any(|(_, line)| line.contains("KEY[") || line.contains("MEL["))
        })
        .map(|record| parse_record(&record, file))
        .collect()
}

/// A record's lines with their 1-based line numbers.
type Record<'a> = Vec<(usize, &'a str)>;

fn records(text: &str) -> Vec<Record<'_>> {
    let mut all = Vec::new();
    let mut current = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end_matches(['\r', '\x1a']);
        if line.trim().is_empty() {
            if !current.is_empty() {
                all.push(std::mem::take(&mut current));
            }
        } else {
            current.push((index + 1, line));
        }
    }
    if !current.is_empty() {
        all.push(current);
    }
    all
}

/// One field's content, line by line: (line number, 1-based column of the text, text).
struct Field<'a> {
    name: &'a str,
    line: usize,
    column: usize,
    parts: Vec<(usize, usize, &'a str)>,
}

impl Field<'_> {
    fn joined_text(&self) -> String {
        self.parts
            .iter()
            .map(|(_, _, text)| text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Splits a record into its header (database name) and fields.
fn fields<'a>(record: &Record<'a>) -> (Option<String>, Vec<Field<'a>>) {
    let mut header = None;
    let mut lines = record.as_slice();
    if let Some((_, first)) = lines.first() {
        let first = first.trim();
        if let Some(name) = first.strip_prefix("F[").filter(|n| !n.contains(']')) {
            header = Some(name.trim().to_owned());
            lines = &lines[1..];
        } else if !first.contains('[') {
            header = Some(first.to_owned());
            lines = &lines[1..];
        }
    }
    let mut fields = Vec::new();
    let mut open: Option<Field<'a>> = None;
    for &(number, line) in lines {
        let mut rest_start = 0;
        if let Some(field) = open.as_mut() {
            match line.find(']') {
                Some(end) => {
                    field.parts.push((number, 1, &line[..end]));
                    fields.push(open.take().expect("open"));
                    rest_start = end + 1;
                }
                None => {
                    field.parts.push((number, 1, line));
                    continue;
                }
            }
        }
        while let Some((name_start, name, content_start)) = next_field_start(line, rest_start) {
            let column = line[..content_start].chars().count() + 1;
            let mut field = Field {
                name,
                line: number,
                column: line[..name_start].chars().count() + 1,
                parts: Vec::new(),
            };
            match line[content_start..].find(']') {
                Some(len) => {
                    field
                        .parts
                        .push((number, column, &line[content_start..content_start + len]));
                    fields.push(field);
                    rest_start = content_start + len + 1;
                }
                None => {
                    field.parts.push((number, column, &line[content_start..]));
                    open = Some(field);
                    break;
                }
            }
        }
    }
    fields.extend(open);
    (header, fields)
}

/// Finds `NAME[` (capital letters) at or after byte `from`; returns (name start, name, content start).
fn next_field_start(line: &str, from: usize) -> Option<(usize, &str, usize)> {
    let bytes = line.as_bytes();
    let mut search = from;
    while let Some(offset) = line[search..].find('[') {
        let bracket = search + offset;
        // The character before the name may be several bytes long (`ÿ` from
        // Latin-1): step over all of it.
        let name_start = line[..bracket]
            .char_indices()
            .rev()
            .find(|(_, c)| !c.is_ascii_uppercase())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let name = &line[name_start..bracket];
        let boundary = name_start == 0 || bytes[name_start - 1].is_ascii_whitespace();
        if !name.is_empty() && name.len() <= 4 && boundary && name_start >= from {
            return Some((name_start, name, bracket + 1));
        }
        search = bracket + 1;
    }
    None
}

fn parse_record(record: &Record<'_>, file: &Path) -> Result<Melody, ParseError> {
    let first_line = record.first().map_or(1, |(n, _)| *n);
    let (header, fields) = fields(record);
    let missing = |what| ParseError::new(file, first_line, 1, "", ErrorKind::Missing(what));
    let key_field = fields
        .iter()
        .find(|f| f.name == "KEY")
        .ok_or_else(|| missing("KEY[] field"))?;
    let key = parse_key_field(key_field, file)?;
    let melody_fields: Vec<&Field<'_>> = fields.iter().filter(|f| f.name == "MEL").collect();
    if melody_fields.is_empty() {
        return Err(missing("MEL[] field"));
    }
    let mut melody = Melody::new(&key.id, file, first_line);
    melody.collection = header;
    for field in &fields {
        match field.name {
            "CUT" => melody.title = field.joined_text(),
            "REG" => melody.region = Some(field.joined_text()),
            _ => {}
        }
    }
    let lines: Vec<(usize, usize, &str)> = melody_fields
        .iter()
        .flat_map(|f| f.parts.iter().copied())
        .collect();
    let decoded = MelodyDecoder::new(&key, file).decode(&lines)?;
    let mode = if decoded.first_phrase_is_minor {
        Mode::Minor
    } else {
        Mode::Major
    };
    let song_key = Key {
        tonic: key.tonic,
        mode,
    };
    melody.key = Some(song_key);
    melody.key_signature = i8::try_from(song_key.signature_fifths()).ok();
    melody.meters = decoded.meters;
    melody.events = decoded.events;
    Ok(melody)
}

/// The parts of `KEY[id unit tonic meter...]`.
struct KeyField {
    id: String,
    unit: u32,
    tonic: Spelling,
    meters: Vec<Meter>,
}

fn parse_key_field(field: &Field<'_>, file: &Path) -> Result<KeyField, ParseError> {
    let text = field.joined_text();
    let error =
        |kind| ParseError::new(file, field.line, field.column, format!("KEY[{text}]"), kind);
    let mut tokens: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    // Some records glue the id to the unit (`Q0155A.16`); ids are read from a 7-wide column.
    if let Some(first) = tokens.first().cloned()
        && first.len() > 7
        && first.is_char_boundary(7)
        && first[7..].chars().all(|c| c.is_ascii_digit())
    {
        tokens[0] = first[..7].to_owned();
        tokens.insert(1, first[7..].to_owned());
    }
    if tokens.len() < 3 {
        return Err(error(ErrorKind::BadKey(
            "expected an id, a unit, a tonic and a meter".into(),
        )));
    }
    let unit: u32 = tokens[1]
        .parse()
        .ok()
        .filter(|u: &u32| u.is_power_of_two() && *u <= 128)
        .ok_or_else(|| {
            error(ErrorKind::BadKey(format!(
                "unit {:?} is not 1, 2, 4 .. 128",
                tokens[1]
            )))
        })?;
    let tonic =
        parse_tonic(&tokens[2]).ok_or_else(|| error(ErrorKind::BadTonic(tokens[2].clone())))?;
    let mut meters = Vec::new();
    for token in &tokens[3..] {
        if token.starts_with('%') {
            continue; // a metric grouping note such as %2+3%
        }
        let meter = Meter::parse(token).ok_or_else(|| error(ErrorKind::BadMeter(token.clone())))?;
        meters.push(meter);
    }
    if meters.is_empty() {
        return Err(error(ErrorKind::BadKey("no meter".into())));
    }
    Ok(KeyField {
        id: tokens[0].clone(),
        unit,
        tonic,
        meters,
    })
}

/// German tonic names: `B` = B flat, `H` = B, `Es` = E flat, `Fis` = F sharp;
/// also `Bb`, `F#`. Lower case (HAYDN.sm) reads the same.
fn parse_tonic(text: &str) -> Option<Spelling> {
    let mut chars = text.chars();
    let first = chars.next()?.to_ascii_uppercase();
    let suffix: String = chars.collect();
    let (letter, mut alter) = match first {
        'H' => ('B', 0),
        'B' => ('B', -1),
        'A' | 'C' | 'D' | 'E' | 'F' | 'G' => (first, 0),
        _ => return None,
    };
    match suffix.as_str() {
        "" => {}
        "b" | "s" | "es" if letter != 'B' => alter -= 1,
        "b" | "es" => {} // `Bb`: the German B is already flat
        "#" | "is" => alter += 1,
        _ => return None,
    }
    Some(Spelling { letter, alter })
}

/// Result of decoding `MEL[]`.
struct Decoded {
    events: Vec<Event>,
    meters: Vec<MeterChange>,
    first_phrase_is_minor: bool,
}

/// A bar as written: index of its first event and its length.
struct Bar {
    start: usize,
    length: Duration,
}

struct MelodyDecoder<'a> {
    key: &'a KeyField,
    file: &'a Path,
    events: Vec<Event>,
    bars: Vec<Bar>,
    bar_start: usize,
    bar_length: Duration,
    in_tuplet: bool,
    /// Scale degrees and alterations of the first phrase, for the mode guess.
    first_phrase: Vec<(u8, i32)>,
}

impl<'a> MelodyDecoder<'a> {
    fn new(key: &'a KeyField, file: &'a Path) -> Self {
        Self {
            key,
            file,
            events: Vec::new(),
            bars: Vec::new(),
            bar_start: 0,
            bar_length: Duration::from_integer(0),
            in_tuplet: false,
            first_phrase: Vec::new(),
        }
    }

    fn decode(mut self, lines: &[(usize, usize, &str)]) -> Result<Decoded, ParseError> {
        let mut phrase_index = 0;
        'lines: for &(number, column, text) in lines {
            let phrase_first = self.events.len();
            let chars: Vec<char> = text.chars().collect();
            // Indentation of continuation lines (and the space after `MEL[`) is not a barline.
            let mut i = chars.iter().take_while(|c| c.is_whitespace()).count();
            while i < chars.len() {
                let c = chars[i];
                let at = |offset: usize| column + offset;
                match c {
                    ' ' | '\t' => {
                        let run = chars[i..].iter().take_while(|c| c.is_whitespace()).count();
                        if run >= 2 && i + run < chars.len() {
                            self.close_bar();
                        }
                        i += run;
                        continue;
                    }
                    '/' if chars.get(i + 1) == Some(&'/') => {
                        self.finish_phrase(phrase_first);
                        break 'lines;
                    }
                    '(' if !self.in_tuplet => self.in_tuplet = true,
                    ')' if self.in_tuplet => self.in_tuplet = false,
                    '(' | ')' => {
                        return Err(self.error(number, at(i), text, ErrorKind::UnbalancedTuplet));
                    }
                    '{' | '}' => {} // slurs in the Kolberg files; they do not change lengths
                    '+' | '-' | '0'..='7' | '^' | 'x' => {
                        let used = self.note(&chars[i..], phrase_index == 0).map_err(
                            |(offset, kind)| {
                                self.error(number, at(i + offset), &word_at(&chars, i), kind)
                            },
                        )?;
                        i += used;
                        continue;
                    }
                    _ => {
                        let token = word_at(&chars, i);
                        return Err(self.error(
                            number,
                            at(i),
                            &token,
                            ErrorKind::UnexpectedChar(c),
                        ));
                    }
                }
                i += 1;
            }
            // A line end is a barline only when the bar is full.
            if self
                .key
                .meters
                .iter()
                .any(|m| m.bar_length() == Some(self.bar_length))
            {
                self.close_bar();
            }
            if self.finish_phrase(phrase_first) {
                phrase_index += 1;
            }
        }
        let (last_line, last_column, last_text) = lines.last().copied().unwrap_or((0, 0, ""));
        if self.in_tuplet {
            return Err(self.error(
                last_line,
                last_column,
                last_text,
                ErrorKind::UnbalancedTuplet,
            ));
        }
        if self.events.is_empty() {
            return Err(self.error(last_line, last_column, last_text, ErrorKind::Empty));
        }
        self.close_bar();
        let meters = self.number_bars();
        Ok(Decoded {
            first_phrase_is_minor: guess_minor(&self.first_phrase),
            events: self.events,
            meters,
        })
    }

    fn error(&self, line: usize, column: usize, token: &str, kind: ErrorKind) -> ParseError {
        ParseError::new(self.file, line, column, token, kind)
    }

    /// Marks the phrase's first and last events; false when the line had no notes.
    fn finish_phrase(&mut self, first: usize) -> bool {
        if first >= self.events.len() {
            return false;
        }
        self.events[first].phrase_start = true;
        self.events.last_mut().expect("non-empty").phrase_end = true;
        true
    }

    fn close_bar(&mut self) {
        if self.events.len() > self.bar_start {
            self.bars.push(Bar {
                start: self.bar_start,
                length: self.bar_length,
            });
        }
        self.bar_start = self.events.len();
        self.bar_length = Duration::from_integer(0);
    }

    /// Reads one note at the start of `chars`; returns how many chars it used.
    fn note(&mut self, chars: &[char], first_phrase: bool) -> Result<usize, (usize, ErrorKind)> {
        let mut i = 0;
        let mut octave = 0i32;
        while let Some(c @ ('+' | '-')) = chars.get(i) {
            octave += if *c == '+' { 1 } else { -1 };
            i += 1;
        }
        let degree_char = *chars.get(i).ok_or((
            i,
            ErrorKind::BadPitch("octave mark without a degree".into()),
        ))?;
        i += 1;
        let mut alter = 0i32;
        while let Some(c @ ('#' | 'b')) = chars.get(i) {
            alter += if *c == '#' { 1 } else { -1 };
            i += 1;
        }
        let mut doublings = 0u32;
        while chars.get(i) == Some(&'_') {
            doublings += 1;
            i += 1;
        }
        let dotted = chars.get(i) == Some(&'.');
        if dotted {
            i += 1;
        }
        if doublings > 10 {
            return Err((i, ErrorKind::BadDuration("too many `_`".into())));
        }
        let mut duration = Duration::new(2u64.pow(doublings), u64::from(self.key.unit));
        if dotted {
            duration *= Duration::new(3, 2);
        }
        if self.in_tuplet {
            duration *= Duration::new(2, 3);
        }
        let (pitch, tie) = match degree_char {
            '0' => (Pitch::Rest, Tie::None),
            '^' => {
                let previous = self.events.last_mut().ok_or((0, ErrorKind::DanglingTie))?;
                previous.tie = previous.tie.with_next();
                (previous.pitch, Tie::End)
            }
            'x' => return Err((i - 1, ErrorKind::UnknownPitch)),
            d @ '1'..='7' => {
                let degree = d as u8 - b'0';
                if first_phrase {
                    self.first_phrase.push((degree, alter));
                }
                let midi = 60
                    + i32::from(self.key.tonic.pitch_class())
                    + MAJOR_STEPS[usize::from(degree - 1)]
                    + 12 * octave
                    + alter;
                let midi = u8::try_from(midi)
                    .ok()
                    .filter(|m| *m <= 127)
                    .ok_or((0, ErrorKind::PitchOutOfRange(midi)))?;
                (Pitch::Note(midi), Tie::None)
            }
            other => {
                return Err((
                    i - 1,
                    ErrorKind::BadPitch(format!("{other:?} is not a degree 0-7")),
                ));
            }
        };
        let mut event = Event::new(pitch, duration);
        event.tie = tie;
        self.events.push(event);
        self.bar_length += duration;
        Ok(i)
    }

    /// Sets bar numbers (0 for a pickup) and works out where multiple meters change.
    fn number_bars(&mut self) -> Vec<MeterChange> {
        let meters = &self.key.meters;
        let shortest = meters.iter().filter_map(|m| m.bar_length()).min();
        let first_is_pickup = match (self.bars.first(), shortest) {
            (Some(first), Some(shortest)) => self.bars.len() > 1 && first.length < shortest,
            _ => false,
        };
        let mut changes: Vec<MeterChange> = Vec::new();
        for (index, bar) in self.bars.iter().enumerate() {
            let number = if first_is_pickup { index } else { index + 1 } as u32;
            let end = self
                .bars
                .get(index + 1)
                .map_or(self.events.len(), |b| b.start);
            for event in &mut self.events[bar.start..end] {
                event.measure = number;
            }
            if meters.len() > 1
                && let Some(meter) = meters.iter().find(|m| m.bar_length() == Some(bar.length))
                && changes.last().is_none_or(|c| c.meter != *meter)
            {
                let at_event = if changes.is_empty() { 0 } else { bar.start };
                changes.push(MeterChange {
                    at_event,
                    meter: *meter,
                });
            }
        }
        if changes.is_empty() {
            changes.push(MeterChange {
                at_event: 0,
                meter: meters[0],
            });
        }
        changes
    }
}

/// The space-delimited word around position `i`, to show in an error.
fn word_at(chars: &[char], i: usize) -> String {
    let start = chars[..i]
        .iter()
        .rposition(|c| c.is_whitespace())
        .map_or(0, |p| p + 1);
    let end = chars[i..]
        .iter()
        .position(|c| c.is_whitespace())
        .map_or(chars.len(), |p| i + p);
    chars[start..end].iter().collect()
}

/// ekern's mode guess: minor if the first phrase has a lowered third, or a lowered
/// sixth and no natural third.
fn guess_minor(first_phrase: &[(u8, i32)]) -> bool {
    let has = |degree: u8, alter: i32| first_phrase.contains(&(degree, alter));
    has(3, -1) || (has(6, -1) && !has(3, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u64, m: u64) -> Duration {
        Duration::new(n, m)
    }

    fn one(text: &str) -> Melody {
        let mut songs = parse(text, Path::new("t.sm"));
        assert_eq!(songs.len(), 1);
        songs.remove(0).unwrap_or_else(|e| panic!("{e}"))
    }

    fn notes(m: &Melody) -> Vec<(Option<u8>, Duration)> {
        m.events
            .iter()
            .map(|e| (e.pitch.midi(), e.duration))
            .collect()
    }

    #[test]
    fn tonic_names() {
        let s = |letter, alter| Some(Spelling { letter, alter });
        assert_eq!(parse_tonic("B"), s('B', -1));
        assert_eq!(parse_tonic("Bb"), s('B', -1));
        assert_eq!(parse_tonic("H"), s('B', 0));
        assert_eq!(parse_tonic("Es"), s('E', -1));
        assert_eq!(parse_tonic("Eb"), s('E', -1));
        assert_eq!(parse_tonic("F#"), s('F', 1));
        assert_eq!(parse_tonic("g"), s('G', 0));
        assert_eq!(parse_tonic("Q"), None);
    }

    #[test]
    fn worked_example_e0220_triplets_and_accidentals() {
        let text = "F[ERK1\r\nCUT[X]\r\nKEY[E0220  08  G 3/4]\r\nMEL[-5-5  1_1_(321)  -712_\r\n    -71  2_2_34#  5__ //] >>\r\n";
        let m = one(text);
        let expect = [
            (62, d(1, 8)),
            (62, d(1, 8)),
            (67, d(1, 4)),
            (67, d(1, 4)),
            (71, d(1, 12)),
            (69, d(1, 12)),
            (67, d(1, 12)),
            (66, d(1, 8)),
            (67, d(1, 8)),
            (69, d(1, 4)),
            (66, d(1, 8)),
            (67, d(1, 8)),
            (69, d(1, 4)),
            (69, d(1, 4)),
            (71, d(1, 8)),
            (73, d(1, 8)),
            (74, d(1, 2)),
        ];
        let expect: Vec<_> = expect.iter().map(|&(p, d)| (Some(p), d)).collect();
        assert_eq!(notes(&m), expect);
        let measures: Vec<u32> = m.events.iter().map(|e| e.measure).collect();
        assert_eq!(
            measures,
            [0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4]
        );
        assert!(m.events[0].phrase_start && m.events[9].phrase_end && m.events[10].phrase_start);
        assert_eq!(m.collection.as_deref(), Some("ERK1"));
        assert_eq!(m.key.unwrap().mode, Mode::Major);
        assert_eq!(m.key_signature, Some(1));
    }

    #[test]
    fn tie_across_barline_and_minor_guess() {
        let text = "KEY[E1009  08  G 3/4]\nMEL[-5_  5_.3b3_  5__.  ^_0_ //]\n";
        let m = one(text);
        assert_eq!(m.events[4].tie, Tie::Start);
        assert_eq!(m.events[5].tie, Tie::End);
        assert_eq!(m.events[5].pitch, Pitch::Note(74));
        assert_eq!(m.events[5].duration, d(1, 4));
        assert_eq!(m.key.unwrap().mode, Mode::Minor);
        assert_eq!(m.key_signature, Some(-2));
    }

    #[test]
    fn multiple_meters_are_placed_by_bar_length() {
        let text = "KEY[E0002  08  C 3/4 2/4]\nMEL[  1_1_1_  2_2_  3_3_3_  1__ //]\n";
        let m = one(text);
        let three = Meter::Regular { beats: 3, unit: 4 };
        let two = Meter::Regular { beats: 2, unit: 4 };
        assert_eq!(
            m.meters,
            [
                MeterChange {
                    at_event: 0,
                    meter: three
                },
                MeterChange {
                    at_event: 3,
                    meter: two
                },
                MeterChange {
                    at_event: 5,
                    meter: three
                },
                MeterChange {
                    at_event: 8,
                    meter: two
                },
            ]
        );
        assert_eq!(m.events[0].measure, 1);
    }

    #[test]
    fn bad_records_are_errors_with_place_and_the_rest_still_read() {
        let text = "F[ERK1\nKEY[E0001  16  F 2/4]\nMEL[1_  2_9_ //]\n\nF[ERK1\nKEY[E0002  16  F 2/4]\nMEL[1_1_ //]\n";
        let songs = parse(text, Path::new("t.sm"));
        assert_eq!(songs.len(), 2);
        let err = songs[0].as_ref().unwrap_err();
        assert_eq!((err.location.line, err.location.column), (3, 11));
        assert_eq!(err.token, "2_9_");
        assert!(matches!(err.kind, ErrorKind::UnexpectedChar('9')), "{err}");
        assert!(songs[1].is_ok());
    }

    #[test]
    fn dangling_tie_and_missing_fields() {
        let songs = parse("KEY[E1  16  F 2/4]\nMEL[^_ //]\n", Path::new("t.sm"));
        assert!(matches!(
            songs[0].as_ref().unwrap_err().kind,
            ErrorKind::DanglingTie
        ));
        let songs = parse("F[X\nKEY[E1  16  F 2/4]\n", Path::new("t.sm"));
        assert!(matches!(
            songs[0].as_ref().unwrap_err().kind,
            ErrorKind::Missing(_)
        ));
        let songs = parse("KEY[E1  16  F]\nMEL[1 //]\n", Path::new("t.sm"));
        assert!(matches!(
            songs[0].as_ref().unwrap_err().kind,
            ErrorKind::BadKey(_)
        ));
        let songs = parse("KEY[E1  16  F 2/4]\nMEL[(12 //]\n", Path::new("t.sm"));
        assert!(matches!(
            songs[0].as_ref().unwrap_err().kind,
            ErrorKind::UnbalancedTuplet
        ));
    }

    #[test]
    fn glued_id_and_two_melody_fields() {
        let text = "KEY[Q0155A.16  G 2/4]\nMEL[1_1_  2__\n    3__]\nMEL[    4__ //] >>\n";
        let m = one(text);
        assert_eq!(m.id, "Q0155A.");
        assert_eq!(m.events.len(), 5);
        assert_eq!(m.events[4].pitch, Pitch::Note(72));
    }
}
