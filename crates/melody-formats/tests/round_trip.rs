//! Round trips: melody -> tokens -> melody, transposition there and back, and
//! the written MIDI, MusicXML and kern read back (with midly, an XML parser and
//! our own kern reader).

use std::path::Path;

use esac_parse::{Duration, Event, Key, Melody, Meter, MeterChange, Mode, Pitch, Spelling, Tie};
use grid_codec::{DecodeOptions, Token, decode, encode, transpose};
use melody_formats::kern::to_kern;
use melody_formats::midi::{MidiNote, MidiOptions, read_notes, to_midi};
use melody_formats::musicxml::to_musicxml;
use proptest::prelude::*;
use quick_xml::events::Event as Xml;

const STEP: u64 = 16;

/// A random on-grid melody: (pitch or rest, length in steps, tied to the previous).
fn melodies() -> impl Strategy<Value = Melody> {
    let event = (
        prop::option::weighted(0.85, 40u8..90),
        1u64..20,
        prop::bool::weighted(0.15),
    );
    (
        prop::collection::vec(event, 1..40),
        prop::sample::select(vec![(2u32, 4u32), (3, 4), (4, 4), (6, 8), (3, 8), (3, 2)]),
        0u64..8,
        -4i8..=4,
    )
        .prop_map(|(events, (beats, unit), pickup_steps, fifths)| {
            let mut m = Melody::new("p", "p", 1);
            m.meters.push(MeterChange {
                at_event: 0,
                meter: Meter::Regular { beats, unit },
            });
            m.key_signature = Some(fifths);
            m.key = Some(Key {
                tonic: Spelling {
                    letter: 'C',
                    alter: 0,
                },
                mode: Mode::Major,
            });
            for (pitch, steps, tied) in events {
                let pitch = pitch.map_or(Pitch::Rest, Pitch::Note);
                let mut e = Event::new(pitch, Duration::new(steps, STEP));
                if let Some(last) = m.events.last_mut()
                    && tied
                    && last.pitch == pitch
                {
                    last.tie = last.tie.with_next();
                    e.tie = Tie::End;
                }
                m.events.push(e);
            }
            // The whole events that fit in a pickup form bar 0.
            let bar = Duration::new(u64::from(beats), u64::from(unit));
            let pickup = Duration::new(pickup_steps, STEP).min(bar);
            let mut end = Duration::from_integer(0);
            for e in &mut m.events {
                end += e.duration;
                if end >= pickup || e.tie != Tie::None {
                    break;
                }
                e.measure = 0;
            }
            m
        })
        .prop_filter("needs a note", |m| {
            m.events.iter().any(|e| e.pitch != Pitch::Rest)
        })
}

/// (pitch, length) of each sounding note with ties merged.
fn merged(m: &Melody) -> Vec<(Pitch, Duration)> {
    let mut out: Vec<(Pitch, Duration)> = Vec::new();
    for e in m.events.iter().filter(|e| !e.grace) {
        match out.last_mut() {
            Some((p, d)) if e.tie.continues_previous() && *p == e.pitch => *d += e.duration,
            _ => out.push((e.pitch, e.duration)),
        }
    }
    out
}

/// Like [`merged`], but with neighbouring rests joined: scores cannot tie rests,
/// so a rest cut at a bar line reads back as two.
fn silences_joined(notes: Vec<(Pitch, Duration)>) -> Vec<(Pitch, Duration)> {
    let mut out: Vec<(Pitch, Duration)> = Vec::new();
    for (pitch, length) in notes {
        match out.last_mut() {
            Some((Pitch::Rest, d)) if pitch == Pitch::Rest => *d += length,
            _ => out.push((pitch, length)),
        }
    }
    out
}

fn decode_like(m: &Melody) -> Melody {
    let tokens = encode(m).unwrap().tokens;
    decode(
        &tokens,
        &DecodeOptions {
            meter: m.initial_meter(),
            pickup: m.pickup(),
            key: m.key,
            ..Default::default()
        },
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Moving by k then by -k gives the melody back; the tokens of the moved
    /// melody are the original tokens with every pitch shifted by k; and a move
    /// out of the MIDI range is refused, not wrapped.
    #[test]
    fn transposition_shifts_every_pitch_and_undoes(m in melodies(), by in -40i32..=40) {
        let plain = encode(&m).unwrap().tokens;
        match transpose(&m, by) {
            Ok(moved) => {
                prop_assert_eq!(&transpose(&moved, -by).unwrap().events, &m.events);
                let shifted: Vec<Token> = plain
                    .iter()
                    .map(|t| match t {
                        Token::Note(p) => Token::Note((i32::from(*p) + by) as u8),
                        other => *other,
                    })
                    .collect();
                prop_assert_eq!(encode(&moved).unwrap().tokens, shifted);
            }
            Err(_) => {
                let out_of_range = m.events.iter().any(|e| match e.pitch {
                    Pitch::Note(p) => !(0..=127).contains(&(i32::from(p) + by)),
                    Pitch::Rest => false,
                });
                prop_assert!(out_of_range);
            }
        }
    }

    #[test]
    fn melody_tokens_melody(m in melodies()) {
        let tokens = encode(&m).unwrap().tokens;
        let back = decode_like(&m);
        prop_assert_eq!(merged(&back), merged(&m));
        prop_assert_eq!(back.pickup(), m.pickup());
        prop_assert_eq!(encode(&back).unwrap().tokens, tokens);
    }

    #[test]
    fn midi_reads_back_with_midly(m in melodies()) {
        let song = decode_like(&m);
        let bytes = to_midi(&song, &MidiOptions::default()).unwrap();
        let (tpq, notes) = read_notes(&bytes).unwrap();
        prop_assert_eq!(tpq, 480);
        let mut expected = Vec::new();
        let mut onset = Duration::from_integer(0);
        let ticks = |d: Duration| (d * Duration::from_integer(4 * 480)).to_integer();
        for (pitch, length) in merged(&song) {
            if let Pitch::Note(p) = pitch {
                expected.push(MidiNote { pitch: p, start: ticks(onset), length: ticks(length) });
            }
            onset += length;
        }
        prop_assert_eq!(notes, expected);
    }

    #[test]
    fn kern_writer_reads_back(m in melodies()) {
        let song = decode_like(&m);
        let text = to_kern(&song).unwrap();
        let read = esac_parse::kern::parse(&text, Path::new("w.krn")).unwrap();
        prop_assert_eq!(read.len(), 1);
        prop_assert_eq!(silences_joined(merged(&read[0])), silences_joined(merged(&song)));
        prop_assert_eq!(read[0].pickup(), song.pickup());
        prop_assert_eq!(read[0].key_signature, song.key_signature);
        prop_assert_eq!(&read[0].meters[..1], &song.meters[..1]);
    }

    #[test]
    fn musicxml_reads_back(m in melodies()) {
        let song = decode_like(&m);
        let xml = to_musicxml(&song).unwrap();
        let (divisions, notes, measures) = read_musicxml(&xml);
        let quarter = Duration::new(1, 4);
        let got: Vec<(Pitch, Duration)> = notes
            .into_iter()
            .map(|(p, d)| (p, Duration::from_integer(d) / Duration::from_integer(divisions) * quarter))
            .collect();
        prop_assert_eq!(silences_joined(got), silences_joined(merged(&song)));
        let (beats, unit) = match song.initial_meter() {
            Some(Meter::Regular { beats, unit }) => (beats, unit),
            _ => unreachable!(),
        };
        let bar = Duration::new(u64::from(beats), u64::from(unit));
        let after_pickup = song.total_duration() - song.pickup();
        let full_bars = (after_pickup / bar).ceil().to_integer() as usize;
        let pickup_bar = usize::from(song.pickup() > Duration::from_integer(0));
        prop_assert_eq!(measures, full_bars + pickup_bar);
    }
}

/// Reads (pitch, duration in divisions) of each note with ties merged, the
/// divisions, and the number of measures.
fn read_musicxml(xml: &str) -> (u64, Vec<(Pitch, u64)>, usize) {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut divisions = 0;
    let mut measures = 0;
    let mut notes: Vec<(Pitch, u64)> = Vec::new();
    let (mut step, mut alter, mut octave, mut duration) = (' ', 0i32, 0i32, 0u64);
    let (mut rest, mut tie_stop) = (false, false);
    loop {
        match reader.read_event().expect("well-formed XML") {
            Xml::Start(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                if name == "note" {
                    (step, alter, octave, duration, rest, tie_stop) = (' ', 0, 0, 0, false, false);
                }
                if name == "measure" {
                    measures += 1;
                }
                path.push(name);
            }
            Xml::Empty(e) => match e.name().as_ref() {
                b"rest" => rest = true,
                b"tie" => {
                    let kind = e.try_get_attribute("type").unwrap().unwrap();
                    if kind.value.as_ref() == b"stop" {
                        tie_stop = true;
                    }
                }
                _ => {}
            },
            Xml::Text(t) => {
                let text = t.decode().unwrap().into_owned();
                match path.last().map(String::as_str) {
                    Some("divisions") => divisions = text.parse().unwrap(),
                    Some("step") => step = text.chars().next().unwrap(),
                    Some("alter") => alter = text.parse().unwrap(),
                    Some("octave") => octave = text.parse().unwrap(),
                    Some("duration") => duration = text.parse().unwrap(),
                    _ => {}
                }
            }
            Xml::End(e) => {
                path.pop();
                if e.name().as_ref() == b"note" {
                    let pitch = if rest {
                        Pitch::Rest
                    } else {
                        let class = esac_parse::model::letter_pitch_class(step) as i32;
                        Pitch::Note(((octave + 1) * 12 + class + alter) as u8)
                    };
                    match notes.last_mut() {
                        Some((p, d)) if tie_stop && *p == pitch => *d += duration,
                        _ => notes.push((pitch, duration)),
                    }
                }
            }
            Xml::Eof => break,
            _ => {}
        }
    }
    (divisions, notes, measures)
}

#[test]
fn musicxml_has_header_meter_key_and_tied_bar_crossing() {
    let tokens = grid_codec::parse_tokens("60 _ 65 _ _ _ _ _ _ _ 67 _ .").unwrap();
    let song = decode(
        &tokens,
        &DecodeOptions {
            meter: Some(Meter::Regular { beats: 2, unit: 4 }),
            pickup: Duration::new(1, 8),
            key: Some(Key {
                tonic: Spelling {
                    letter: 'F',
                    alter: 0,
                },
                mode: Mode::Major,
            }),
            title: "A & B".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let xml = to_musicxml(&song).unwrap();
    assert!(xml.contains("<work-title>A &amp; B</work-title>"));
    assert!(xml.contains("<measure number=\"0\" implicit=\"yes\">"));
    assert!(xml.contains("<divisions>2</divisions><key><fifths>-1</fifths><mode>major</mode></key><time><beats>2</beats><beat-type>4</beat-type></time>"));
    // 65 lasts 8 sixteenths from the end of the pickup: a half note in bar 1 tied
    // to an eighth in bar 2 would be wrong; it fills bar 1 (a half) and 67 starts bar 2...
    // 1/8 + 1/2 = bar 1 complete, so no tie is needed here:
    assert!(!xml.contains("<tie "));
    let kern = to_kern(&song).unwrap();
    assert_eq!(
        kern,
        "!!!OTL: A & B\n!!!SCT: generated\n**kern\n*M2/4\n*k[b-]\n*F:\n8c\n=1\n2f\n=2\n8g\n==\n*-\n"
    );
}

#[test]
fn remarks_are_kept_where_each_format_keeps_notes() {
    let tokens = grid_codec::parse_tokens("60 _ _ _ 64 _ _ _ 67 _ _ _ 72 _ _ _ .").unwrap();
    let mut song = decode(
        &tokens,
        &DecodeOptions {
            meter: Some(Meter::Regular { beats: 4, unit: 4 }),
            title: "T".into(),
            ..Default::default()
        },
    )
    .unwrap();
    song.remarks = vec!["asked for 1 bar & <more>".into(), "second\nat 100%".into()];

    let xml = to_musicxml(&song).unwrap();
    assert!(
        xml.contains("<source>generated</source><miscellaneous><miscellaneous-field name=\"remark\">asked for 1 bar &amp; &lt;more&gt;</miscellaneous-field><miscellaneous-field name=\"remark\">second\nat 100%</miscellaneous-field></miscellaneous></identification>"),
        "{xml}"
    );
    // ABC and kern keep each remark on one line, and ABC escapes the `%`
    // that would start a comment.
    let abc = melody_formats::abc::to_abc(&song).unwrap();
    assert!(
        abc.starts_with("X:1\nT:T\nN:asked for 1 bar & <more>\nN:second at 100\\%\nM:4/4\n"),
        "{abc}"
    );
    let kern = to_kern(&song).unwrap();
    assert!(
        kern.starts_with(
            "!!!OTL: T\n!!!SCT: generated\n!! asked for 1 bar & <more>\n!! second at 100%\n**kern\n"
        ),
        "{kern}"
    );
    // The kern reader takes the remarks for the comments they are.
    let read = esac_parse::kern::parse(&kern, Path::new("remarks.krn")).unwrap();
    assert_eq!(read[0].events, song.events);

    let midi = to_midi(&song, &MidiOptions::default()).unwrap();
    let smf = midly::Smf::parse(&midi).unwrap();
    let texts: Vec<&[u8]> = smf.tracks[0]
        .iter()
        .filter_map(|event| match event.kind {
            midly::TrackEventKind::Meta(midly::MetaMessage::Text(text)) => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        [
            b"asked for 1 bar & <more>".as_slice(),
            b"second\nat 100%".as_slice()
        ]
    );
    // Melodies without remarks are written as before.
    song.remarks.clear();
    assert!(!to_musicxml(&song).unwrap().contains("miscellaneous"));
}
