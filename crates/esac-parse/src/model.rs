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

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.tonic, self.mode)
    }
}
