//! Properties of bars and keys over random melodies: what a conditioned model
//! is told of each step's bar agrees with the bar lines its melody is written
//! with, and moving a song to C major / A minor forgets the key it was in.

use esac_parse::{Duration, Event, Key, Melody, Meter, MeterChange, Mode, Pitch, Spelling};
use grid_codec::conditions::Asked;
use grid_codec::{
    BarLayout, Conditioning, DecodeOptions, Encoding, Lookback, Token, decode, default_step,
    encode, encode_with, transpose,
};
use proptest::prelude::*;

/// A meter whose bar is a whole number of sixteenths, at most 48 of them (a
/// longer bar's later steps share one position), with an upbeat shorter than
/// a bar and a number of bars.
fn meters() -> impl Strategy<Value = (Meter, u32, u32, u32)> {
    (1u32..=12, prop::sample::select(vec![2u32, 4, 8, 16]))
        .prop_map(|(beats, unit)| (beats, unit, beats * 16 / unit))
        .prop_filter("a bar of at most 48 sixteenths", |&(_, _, steps)| {
            steps <= 48
        })
        .prop_flat_map(|(beats, unit, bar_steps)| {
            (
                Just(Meter::Regular { beats, unit }),
                Just(bar_steps),
                0..bar_steps,
                1u32..=40,
            )
        })
}

/// `count` tokens that make a melody: a note first, then holds, notes and rests.
fn tokens(count: u32) -> impl Strategy<Value = Vec<Token>> {
    let next = prop_oneof![
        6 => Just(Token::Hold),
        3 => (40u8..90).prop_map(Token::Note),
        1 => Just(Token::Rest),
    ];
    (
        (40u8..90).prop_map(Token::Note),
        prop::collection::vec(next, count as usize - 1),
    )
        .prop_map(|(first, rest)| std::iter::once(first).chain(rest).collect())
}

/// A meter, upbeat and length, and tokens filling exactly those bars.
fn songs_in_bars() -> impl Strategy<Value = (Meter, u32, u32, u32, Vec<Token>)> {
    meters().prop_flat_map(|(meter, bar_steps, pickup, bars)| {
        let total = BarLayout::regular(bar_steps, pickup, bars).total_steps();
        (
            Just(meter),
            Just(bar_steps),
            Just(pickup),
            Just(bars),
            tokens(total),
        )
    })
}

/// The measure number of the event sounding at each grid step.
fn measure_at_each_step(melody: &Melody) -> Vec<u32> {
    let mut measures = Vec::new();
    for event in &melody.events {
        let steps = (event.duration / default_step()).to_integer();
        measures.extend(std::iter::repeat_n(event.measure, steps as usize));
    }
    measures
}

fn pitches(tokens: &[Token]) -> Vec<i32> {
    tokens
        .iter()
        .filter_map(|t| match t {
            Token::Note(p) => Some(i32::from(*p)),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The sampler asks for bars through `Conditioning::schedule`, and the score
    /// takes its bar lines from `decode`: two separate walks over the same
    /// bars. For any meter, upbeat and length they agree step by step: the
    /// model is told a downbeat (position 0) exactly where the score starts a
    /// bar, the bars left count the score's bars from there to its end, and 0
    /// bars are left exactly where the melody is to end. Reading the written
    /// bars back gives the layout asked for, and the tokens come back.
    #[test]
    fn the_bars_a_model_is_told_are_the_bars_its_melody_is_written_in(
        (meter, bar_steps, pickup, bars, tokens) in songs_in_bars(),
    ) {
        let total = tokens.len();
        let melody = decode(&tokens, &DecodeOptions {
            meter: Some(meter),
            pickup: default_step() * Duration::from_integer(u64::from(pickup)),
            ..Default::default()
        }).unwrap();
        prop_assert_eq!(melody.pickup(), default_step() * Duration::from_integer(u64::from(pickup)));
        let asked_layout = BarLayout::regular(bar_steps, pickup, bars);
        prop_assert_eq!(BarLayout::of(&melody, default_step()), Some(asked_layout.clone()));
        prop_assert_eq!(asked_layout.full_bars(), bars);
        prop_assert_eq!(encode(&melody).unwrap().tokens, tokens);

        let asked = Asked { meter, minor: false, style: "other".into(), bars, pickup, form: None };
        let beyond = 2 * bar_steps as usize;
        let values = Conditioning::from_songs([])
            .schedule(&asked, default_step(), total + beyond)
            .unwrap()
            .values;
        let (positions, bars_left) = (&values[0], &values[4]);
        let measures = measure_at_each_step(&melody);
        let last_measure = *measures.last().unwrap();
        let upbeat = if pickup > 0 { bar_steps - pickup } else { 0 };
        for step in 0..total {
            let starts_a_bar = match step {
                0 => pickup == 0,
                _ => measures[step] != measures[step - 1],
            };
            prop_assert_eq!(positions[step] == 0, starts_a_bar, "step {}", step);
            prop_assert_eq!(positions[step], (step as u32 + upbeat) % bar_steps, "step {}", step);
            prop_assert_eq!(bars_left[step], (last_measure - measures[step] + 1).min(32), "step {}", step);
        }
        // Past the end, nothing is left and full bars of the meter go on.
        for step in total..=total + beyond {
            prop_assert_eq!(bars_left[step], 0);
            prop_assert_eq!(positions[step], (step as u32 + upbeat) % bar_steps);
        }
    }

    /// Moving a song to C major / A minor forgets which key it was in: the same
    /// song moved to any other key first gives the same tokens, an octave
    /// apart at most (majors move down by the tonic's pitch class, so C major
    /// moved to B major comes back an octave lower).
    #[test]
    fn the_reference_keys_forget_the_key_a_song_was_in(
        tokens in tokens(24),
        tonic_pitch_class in 0u8..12,
        mode in prop::sample::select(vec![Mode::Major, Mode::Minor, Mode::Dorian, Mode::Mixolydian]),
        by in -11i32..=11,
    ) {
        let mut melody = decode(&tokens, &DecodeOptions::default()).unwrap();
        melody.key = Some(Key { tonic: Spelling::of_pitch_class(tonic_pitch_class)[0], mode });
        let reference = Encoding::reference();
        let home = &encode_with(&melody, &reference).unwrap()[0];
        let moved = transpose(&melody, by).unwrap();
        let from_afar = &encode_with(&moved, &reference).unwrap()[0];
        let octaves = from_afar.transposed_by + by - home.transposed_by;
        prop_assert!([-12, 0, 12].contains(&octaves), "{} semitones apart", octaves);
        let home_pitches = pitches(&home.tokens);
        let expected: Vec<i32> = home_pitches.iter().map(|p| p + octaves).collect();
        prop_assert_eq!(pitches(&from_afar.tokens), expected);
        prop_assert_eq!(from_afar.tokens.len(), home.tokens.len());
    }

    /// A song's form written in letters, one a bar, reads back as the same
    /// form: the letters keep which earlier bar each bar says again.
    #[test]
    fn a_form_in_letters_reads_back_as_the_same_form(
        bar_steps in 1u32..8,
        pickup in 0u32..8,
        choices in prop::collection::vec(0u32..3, 1..20),
        bars_back in prop::sample::subsequence(vec![1u32, 2, 3, 4, 6, 8], 1..4),
    ) {
        let pickup = pickup % bar_steps;
        let bars = choices.len() as u32;
        let layout = BarLayout::regular(bar_steps, pickup, bars);
        // Each bar one of three, which differ from their first token on.
        let mut ids = vec![99; pickup as usize];
        for choice in &choices {
            ids.extend((0..bar_steps).map(|step| choice * 10 + step));
        }
        ids.truncate(layout.total_steps() as usize);
        let lookback = Lookback { bars: bars_back, tokens: 100, forms: Some(Vec::new()) };
        let lags = lookback.form_of(&ids, &layout).unwrap();
        prop_assert_eq!(lags.len(), bars as usize);
        let letters = Lookback::letters(&lags).unwrap();
        prop_assert_eq!(lookback.parse_form(&letters, bars).unwrap(), lags);
    }
}

/// The strategies' own check: a hand-worked layout of 6/8 with a 2-step upbeat.
#[test]
fn a_six_eight_upbeat_song_by_hand() {
    let mut melody = Melody::new("t", "t", 1);
    melody.meters.push(MeterChange {
        at_event: 0,
        meter: Meter::Regular { beats: 6, unit: 8 },
    });
    for (measure, eighths) in [(0, 1), (1, 6), (2, 5)] {
        for _ in 0..eighths {
            let mut event = Event::new(Pitch::Note(60), Duration::new(1, 8));
            event.measure = measure;
            melody.events.push(event);
        }
    }
    assert_eq!(
        BarLayout::of(&melody, default_step()),
        Some(BarLayout::regular(12, 2, 2))
    );
    assert_eq!(measure_at_each_step(&melody)[..4], [0, 0, 1, 1]);
}
