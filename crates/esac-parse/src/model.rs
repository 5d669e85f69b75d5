//! The plain melody model shared by both readers.

use std::fmt;
use std::path::PathBuf;

use num_rational::Ratio;

/// A length of time as an exact fraction of a whole note (`1/4` = a quarter note).
///
/// Readers only accept note values whose denominators have no prime factor above
/// 7 (dyadic values and 3-, 5-, 7-tuplets), which keeps sums of any real song far
/// from overflowing 64 bits.
pub type Duration = Ratio<u64>;

/// One monophonic song.
#[derive(Debug, Clone, PartialEq)]
pub struct Melody {
    /// The EsAC identifier (`E0001`, kern `!!!SCT`); the file stem when the source has none.
    pub id: String,
    /// Title or text incipit (EsAC `CUT[]`, kern `!!!OTL`).
    pub title: String,
    /// Region, from large to small (EsAC `REG[]`, kern `!!!ARE`).
    pub region: Option<String>,
    /// Name of the database the song belongs to (`ERK1`, kern `!!!ONB`).
    pub collection: Option<String>,
    /// Free-text remarks that the writers keep where each format keeps notes
    /// (a generated melody's settings); the readers leave it empty.
    pub remarks: Vec<String>,
    /// File the song was read from.
    pub file: PathBuf,
    /// 1-based line where the song starts in that file.
    pub line: usize,
    /// Key as declared (kern `*F:`) or derived (EsAC tonic plus the ekern mode guess).
    pub key: Option<Key>,
    /// Key signature in fifths: positive sharps, negative flats (kern `*k[...]`).
    pub key_signature: Option<i8>,
    /// Metronome marking in quarter notes per minute (kern `*MM`).
    pub tempo_qpm: Option<f64>,
    /// Meters in force, each from the event at `at_event` on; the first is at event 0.
    pub meters: Vec<MeterChange>,
    /// Notes and rests in order.
    pub events: Vec<Event>,
}

impl Melody {
    /// An empty melody with only its identity filled in.
    pub fn new(id: impl Into<String>, file: impl Into<PathBuf>, line: usize) -> Self {
        Self {
            id: id.into(),
            title: String::new(),
            region: None,
            collection: None,
            remarks: Vec::new(),
            file: file.into(),
            line,
            key: None,
            key_signature: None,
            tempo_qpm: None,
            meters: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Sounding length of the song: every event but grace notes.
    pub fn total_duration(&self) -> Duration {
        self.events
            .iter()
            .filter(|e| !e.grace)
            .map(|e| e.duration)
            .sum()
    }

    /// The meter in force at the start of the song, if any was declared.
    pub fn initial_meter(&self) -> Option<Meter> {
        self.meters.first().map(|m| m.meter)
    }

    /// Length of the incomplete first bar (0 when the song starts on a downbeat).
    pub fn pickup(&self) -> Duration {
        self.events
            .iter()
            .filter(|e| e.measure == 0 && !e.grace)
            .map(|e| e.duration)
            .sum()
    }
}

/// A note's pitch, or silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pitch {
    /// A sounding note as a MIDI key number (60 = middle C).
    Note(u8),
    Rest,
}

impl Pitch {
    pub fn midi(self) -> Option<u8> {
        match self {
            Pitch::Note(n) => Some(n),
            Pitch::Rest => None,
        }
    }
}

/// How an event takes part in a tie (kern `[`, `_`, `]`; EsAC `^`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tie {
    #[default]
    None,
    /// Tied to the next event.
    Start,
    /// Tied to both the previous and the next event.
    Middle,
    /// Continues the previous event.
    End,
}

impl Tie {
    /// True when this event continues the previous one rather than starting a new sound.
    pub fn continues_previous(self) -> bool {
        matches!(self, Tie::Middle | Tie::End)
    }

    /// The role after a following event has been tied onto this one.
    pub fn with_next(self) -> Tie {
        match self {
            Tie::None | Tie::Start => Tie::Start,
            Tie::Middle | Tie::End => Tie::Middle,
        }
    }
}

/// One note or rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    pub pitch: Pitch,
    /// Notated length; grace notes keep their notated value but take no time.
    pub duration: Duration,
    pub tie: Tie,
    /// First event of a phrase (kern `{`, start of an EsAC `MEL[]` line).
    pub phrase_start: bool,
    /// Last event of a phrase (kern `}`, end of an EsAC `MEL[]` line).
    pub phrase_end: bool,
    /// Bar number: 0 for a pickup (anacrusis), then 1, 2, ...
    pub measure: u32,
    /// A grace note (kern `q`/`Q`): kept, flagged, and takes no time.
    pub grace: bool,
    /// Fermata (kern `;`).
    pub fermata: bool,
}

impl Event {
    /// A plain event with no marks, in bar 1.
    pub fn new(pitch: Pitch, duration: Duration) -> Self {
        Self {
            pitch,
            duration,
            tie: Tie::None,
            phrase_start: false,
            phrase_end: false,
            measure: 1,
            grace: false,
            fermata: false,
        }
    }
}

/// A time signature, or free rhythm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Meter {
    /// `beats/unit`, e.g. 6/8.
    Regular { beats: u32, unit: u32 },
    /// No meter (EsAC `FREI`, kern `*MX`).
    Free,
}

impl Meter {
    /// Reads a time signature as both sources write it: `3/4`, free rhythm as
    /// `FREI` (EsAC, also copied into some kern files) or `X` (kern). A metric
    /// grouping note glued to it (`5/8%%%2+3%`) is dropped.
    pub fn parse(text: &str) -> Option<Meter> {
        let text = text.split('%').next().unwrap_or_default();
        if text == "X" || text.to_ascii_uppercase().starts_with("FREI") {
            return Some(Meter::Free);
        }
        let (beats, unit) = text.split_once('/')?;
        let beats: u32 = beats.parse().ok()?;
        let unit: u32 = unit.parse().ok()?;
        (beats > 0 && unit > 0).then_some(Meter::Regular { beats, unit })
    }

    /// Length of one full bar, or `None` for free rhythm.
    pub fn bar_length(self) -> Option<Duration> {
        match self {
            Meter::Regular { beats, unit } => {
                Some(Duration::new(u64::from(beats), u64::from(unit)))
            }
            Meter::Free => None,
        }
    }
}

/// Why a name of a key, tonic, mode, meter or duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?}: {expected}")]
pub struct NameError {
    pub text: String,
    /// What would have been read, with examples.
    pub expected: &'static str,
}

impl NameError {
    fn new(text: &str, expected: &'static str) -> Self {
        Self {
            text: text.to_owned(),
            expected,
        }
    }
}

impl std::str::FromStr for Meter {
    type Err = NameError;

    /// A time signature such as `3/4` or `6/8` with positive numbers, or `free`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "write a time signature such as 3/4 or 6/8 (or `free`)";
        let text = text.trim();
        if text.eq_ignore_ascii_case("free") {
            return Ok(Meter::Free);
        }
        match Meter::parse(text) {
            Some(meter @ Meter::Regular { .. }) => Ok(meter),
            _ => Err(NameError::new(text, EXPECTED)),
        }
    }
}

/// Reads a positive grid step or note length written as a fraction: `1/16`, `3/8`.
pub fn parse_duration(text: &str) -> Result<Duration, NameError> {
    const EXPECTED: &str = "write a positive fraction of a whole note such as 1/16";
    let (n, d) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| NameError::new(text, EXPECTED))?;
    let n: u64 = n
        .trim()
        .parse()
        .map_err(|_| NameError::new(text, EXPECTED))?;
    let d: u64 = d
        .trim()
        .parse()
        .map_err(|_| NameError::new(text, EXPECTED))?;
    if n == 0 || d == 0 {
        return Err(NameError::new(text, EXPECTED));
    }
    Ok(Duration::new(n, d))
}

impl fmt::Display for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Meter::Regular { beats, unit } => write!(f, "{beats}/{unit}"),
            Meter::Free => f.write_str("free"),
        }
    }
}

/// A meter that takes effect at an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterChange {
    pub at_event: usize,
    pub meter: Meter,
}

/// A pitch name: a letter with a chromatic alteration (`B-` = B flat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spelling {
    /// Upper-case letter `A`..`G`.
    pub letter: char,
    /// Semitones: +1 sharp, -1 flat.
    pub alter: i8,
}

impl Spelling {
    /// The natural, sharp or flat names of a pitch class (`1` -> C#, Db).
    pub fn of_pitch_class(pitch_class: u8) -> Vec<Spelling> {
        ['C', 'D', 'E', 'F', 'G', 'A', 'B']
            .into_iter()
            .flat_map(|letter| (-1..=1).map(move |alter| Spelling { letter, alter }))
            .filter(|s| s.pitch_class() == pitch_class % 12)
            .collect()
    }

    /// Pitch class 0..12 (C = 0).
    pub fn pitch_class(self) -> u8 {
        (letter_pitch_class(self.letter) as i32 + self.alter as i32).rem_euclid(12) as u8
    }

    /// Position on the circle of fifths (C = 0, G = 1, F = -1, B flat = -2).
    pub fn fifths(self) -> i32 {
        let natural = match self.letter {
            'F' => -1,
            'C' => 0,
            'G' => 1,
            'D' => 2,
            'A' => 3,
            'E' => 4,
            _ => 5, // B
        };
        natural + 7 * self.alter as i32
    }
}

impl fmt::Display for Spelling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter)?;
        let mark = if self.alter > 0 { "#" } else { "b" };
        for _ in 0..self.alter.unsigned_abs() {
            f.write_str(mark)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Spelling {
    type Err = NameError;

    /// A letter `A`..`G` (either case) and up to two sharps (`#`) or flats (`b`,
    /// or kern's `-`): `G`, `Bb`, `f#`, `E-`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str =
            "write a letter A-G with at most two sharps (#) or flats (b), e.g. G, Bb, F#";
        let mut chars = text.chars();
        let letter = chars
            .next()
            .map(|c| c.to_ascii_uppercase())
            .filter(|c| matches!(c, 'A'..='G'))
            .ok_or_else(|| NameError::new(text, EXPECTED))?;
        let mut alter = 0i8;
        for c in chars {
            alter += match c {
                '#' => 1,
                'b' | '-' => -1,
                _ => return Err(NameError::new(text, EXPECTED)),
            };
            // Beyond a double sharp or flat no pitch name is meant (and a long
            // run of them would overflow the i8).
            if alter.abs() > 2 {
                return Err(NameError::new(text, EXPECTED));
            }
        }
        Ok(Spelling { letter, alter })
    }
}

/// Pitch class of a natural letter `A`..`G`.
pub fn letter_pitch_class(letter: char) -> u8 {
    match letter.to_ascii_uppercase() {
        'C' => 0,
        'D' => 2,
        'E' => 4,
        'F' => 5,
        'G' => 7,
        'A' => 9,
        _ => 11,
    }
}

/// Major, minor, or a church mode named in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Major,
    Minor,
    Dorian,
    Phrygian,
    Lydian,
    Mixolydian,
    Aeolian,
    Locrian,
    Ionian,
}

impl Mode {
    /// Semitone offsets of the mode's scale from its tonic.
    pub fn scale(self) -> [u8; 7] {
        match self {
            Mode::Major | Mode::Ionian => [0, 2, 4, 5, 7, 9, 11],
            Mode::Minor | Mode::Aeolian => [0, 2, 3, 5, 7, 8, 10],
            Mode::Dorian => [0, 2, 3, 5, 7, 9, 10],
            Mode::Phrygian => [0, 1, 3, 5, 7, 8, 10],
            Mode::Lydian => [0, 2, 4, 6, 7, 9, 11],
            Mode::Mixolydian => [0, 2, 4, 5, 7, 9, 10],
            Mode::Locrian => [0, 1, 3, 5, 6, 8, 10],
        }
    }

    /// True for modes with a minor third above the tonic.
    pub fn is_minor_like(self) -> bool {
        self.scale()[2] == 3
    }

    /// Every mode, in the order names are listed.
    pub const ALL: [Mode; 9] = [
        Mode::Major,
        Mode::Minor,
        Mode::Ionian,
        Mode::Dorian,
        Mode::Phrygian,
        Mode::Lydian,
        Mode::Mixolydian,
        Mode::Aeolian,
        Mode::Locrian,
    ];

    /// The mode's name in lower case (`major`, `dorian`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Major => "major",
            Mode::Minor => "minor",
            Mode::Dorian => "dorian",
            Mode::Phrygian => "phrygian",
            Mode::Lydian => "lydian",
            Mode::Mixolydian => "mixolydian",
            Mode::Aeolian => "aeolian",
            Mode::Locrian => "locrian",
            Mode::Ionian => "ionian",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Mode {
    type Err = NameError;

    /// A mode's name or its first three letters, in any case (`minor`, `dor`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "write major, minor, ionian, dorian, phrygian, lydian, mixolydian, aeolian or locrian (or their first three letters)";
        let lower = text.trim().to_ascii_lowercase();
        Mode::ALL
            .into_iter()
            .find(|mode| {
                lower == mode.name() || (lower.len() == 3 && mode.name().starts_with(&lower))
            })
            .ok_or_else(|| NameError::new(text, EXPECTED))
    }
}

/// Tonic and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub tonic: Spelling,
    pub mode: Mode,
}

impl Key {
    /// The usual key signature in fifths for this key (F major = -1, E minor = +1).
    pub fn signature_fifths(self) -> i32 {
        let shift = match self.mode {
            Mode::Major | Mode::Ionian => 0,
            Mode::Lydian => 1,
            Mode::Mixolydian => -1,
            Mode::Dorian => -2,
            Mode::Minor | Mode::Aeolian => -3,
            Mode::Phrygian => -4,
            Mode::Locrian => -5,
        };
        self.tonic.fifths() + shift
    }
}

/// `G major`, `F# minor`, `D dorian`: what [`Key`]'s `FromStr` reads back.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.tonic, self.mode)
    }
}

impl std::str::FromStr for Key {
    type Err = NameError;

    /// A tonic with an optional mode: `G`, `Bb major`, `D dorian`. Without a
    /// mode an upper-case letter is major and a lower-case one minor (`e`,
    /// `f#`), as in kern and ABC.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (tonic_text, mode_text) = match text.split_once(char::is_whitespace) {
            Some((tonic, mode)) => (tonic, Some(mode.trim())),
            None => (text, None),
        };
        let tonic: Spelling = tonic_text.parse()?;
        let mode = match mode_text {
            Some(mode) => mode.parse()?,
            None if tonic_text.starts_with(|c: char| c.is_ascii_lowercase()) => Mode::Minor,
            None => Mode::Major,
        };
        Ok(Key { tonic, mode })
    }
}

/// Serde through the type's text (`Display` and `FromStr`).
macro_rules! serde_as_text {
    ($type:ty) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

// Keys and meters travel in JSON as their text (`"G major"`, `"6/8"`, `"free"`).
serde_as_text!(Key);
serde_as_text!(Meter);

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> String {
        text.parse::<Key>()
            .map_or_else(|e| e.to_string(), |k| k.to_string())
    }

    #[test]
    fn keys_read_and_print_back() {
        assert_eq!(key("G"), "G major");
        assert_eq!(key("e"), "E minor");
        assert_eq!(key("f#"), "F# minor");
        assert_eq!(key("Bb"), "Bb major");
        assert_eq!(key("E-"), "Eb major");
        assert_eq!(key("D dorian"), "D dorian");
        assert_eq!(key("d Dor"), "D dorian");
        assert_eq!(key("c major"), "C major");
        for printed in ["G major", "F# minor", "Bb mixolydian", "C## lydian"] {
            assert_eq!(key(printed), printed, "what Display writes, FromStr reads");
        }
        assert_eq!(
            key("H"),
            "\"H\": write a letter A-G with at most two sharps (#) or flats (b), e.g. G, Bb, F#"
        );
        assert!(key("C###").contains("at most two"));
        assert!(key("G blues").starts_with("\"blues\": write major, minor"));
        let json = serde_json::to_string(&"a".parse::<Key>().unwrap());
        assert_eq!(json.unwrap(), "\"A minor\"");
    }

    #[test]
    fn meters_and_durations_read_or_say_what_is_expected() {
        assert_eq!(
            "6/8".parse::<Meter>(),
            Ok(Meter::Regular { beats: 6, unit: 8 })
        );
        assert_eq!("free".parse::<Meter>(), Ok(Meter::Free));
        assert_eq!(
            "7/0".parse::<Meter>().unwrap_err().to_string(),
            "\"7/0\": write a time signature such as 3/4 or 6/8 (or `free`)"
        );
        assert_eq!(parse_duration("1/16"), Ok(Duration::new(1, 16)));
        assert_eq!(parse_duration(" 3/8 "), Ok(Duration::new(3, 8)));
        for bad in ["1/0", "0/4", "1", "a/b"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
