//! Real ERK songs encoded to the tokens derived by hand from their kern files
//! (see the comments), and native EsAC records giving the same tokens.

use std::path::PathBuf;

use esac_parse::{Melody, read_path};
use grid_codec::{Encoding, FilterReason, Token, encode_with, parse_tokens};

fn essen() -> PathBuf {
    let root = std::env::var_os("ESSEN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/essen")
        });
    assert!(
        root.is_dir(),
        "the Essen data is expected at {}",
        root.display()
    );
    root
}

fn kern_song(file: &str) -> Melody {
    let mut c = read_path(&essen().join("deutschl/erk").join(file)).unwrap();
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    c.songs.remove(0)
}

fn esac_song(file: &str, id: &str) -> Melody {
    let c = read_path(&essen().join("esac/erk").join(file)).unwrap();
    c.songs.into_iter().find(|s| s.id == id).unwrap()
}

fn tokens(melody: &Melody) -> Vec<Token> {
    let mut versions = encode_with(melody, &Encoding::default()).unwrap();
    assert_eq!(versions.len(), 1);
    versions.remove(0).tokens
}

fn expect(text: &str) -> Vec<Token> {
    parse_tokens(text).unwrap()
}

/// deut0567.krn = E0001, F major, 2/4, an eighth-note pickup; moved down a
/// fourth to C (F4 65 -> C4 60). Eighth = 2 steps, quarter = 4, dotted eighth = 3.
const E0001: &str = "55 _ 60 _ 60 _ 60 _ 62 _ 64 _ 62 _ 60 _ _ _ \
    64 _ 64 _ 64 _ 65 _ 67 _ _ 65 64 _ \
    60 _ 72 _ _ _ 72 71 69 _ 67 _ _ _ r _ \
    67 _ 69 _ 65 _ 62 _ 65 _ 67 _ 64 _ 60 _ \
    62 _ 64 _ 67 _ 65 _ 62 _ 60 _ _ _ r _ \
    67 _ 69 _ 65 _ 62 _ 65 _ 67 _ 64 _ 60 _ \
    62 _ 64 _ 67 _ 65 _ 62 _ 60 _ _ _ r _";

#[test]
fn deut0567_two_four_with_pickup() {
    let song = kern_song("deut0567.krn");
    assert_eq!(song.id, "E0001");
    assert_eq!(tokens(&song), expect(E0001));
}

#[test]
fn deut1680_six_eight() {
    // G major 6/8 with an eighth pickup, down a fifth to C (G4 67 -> C4 60):
    // {8dd =1 8g 8g 8a 8b 8b 8dd =2 8dd 8cc 8b 4a} {8dd =3 4g 8a 8b 8b 8dd =4 8a 8b 8a 4g}
    let song = kern_song("deut1680.krn");
    assert_eq!(
        tokens(&song),
        expect(
            "67 _ 60 _ 60 _ 62 _ 64 _ 64 _ 67 _ 67 _ 65 _ 64 _ 62 _ _ _ \
             67 _ 60 _ _ _ 62 _ 64 _ 64 _ 67 _ 62 _ 64 _ 62 _ 60 _ _ _"
        )
    );
}

#[test]
fn deut0665_minor_four_four_with_rests() {
    // G minor 4/4, quarter pickup; minor keys move to A minor (G -> A = +2):
    // {4d =1 4g 4b- 4a 4dd =2 4cc 4b- 4a 8r} {8d =3 ... 8r} {8dd =5 4dd 4cc 4dd 8b- 8a =6 4b- 4g 4r}
    let song = kern_song("deut0665.krn");
    assert_eq!(
        tokens(&song),
        expect(
            "64 _ _ _ 69 _ _ _ 72 _ _ _ 71 _ _ _ 76 _ _ _ 74 _ _ _ 72 _ _ _ 71 _ _ _ r _ \
             64 _ 69 _ _ _ 72 _ _ _ 71 _ _ _ 76 _ _ _ 74 _ _ _ 72 _ _ _ 71 _ _ _ r _ \
             76 _ 76 _ _ _ 74 _ _ _ 76 _ _ _ 72 _ 71 _ 72 _ _ _ 69 _ _ _ r _ _ _"
        )
    );
}

#[test]
fn native_esac_gives_the_same_tokens_as_kern() {
    assert_eq!(tokens(&esac_song("erk10.sm", "E0001")), expect(E0001));
    for (sm, id, krn) in [
        ("erk30.sm", "E1009", "deut1568.krn"),
        ("erk10.sm", "E0001A", "deut0568.krn"),
    ] {
        assert_eq!(tokens(&esac_song(sm, id)), tokens(&kern_song(krn)), "{id}");
    }
}

#[test]
fn tie_across_a_barline_is_one_onset() {
    // E1009 phrase 2 ends `5__.  ^_0_`: a dotted half D5 tied into a quarter, then
    // a quarter rest. In G major moved to C (-7): 67 held for 3 + 1 quarters.
    let t = tokens(&esac_song("erk30.sm", "E1009"));
    let text: String = grid_codec::tokens_to_string(&t);
    assert!(
        text.contains("67 _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ r _ _ _"),
        "{text}"
    );
}

#[test]
fn triplets_are_filtered_with_the_event() {
    // E0220 `1_1_(321)`: event 5 is an eighth-note triplet, 1/12 of a whole note.
    let song = esac_song("erk10.sm", "E0220");
    let err = encode_with(&song, &Encoding::default()).unwrap_err();
    assert_eq!(
        err,
        FilterReason::OffGrid {
            event: 5,
            duration: esac_parse::Duration::new(1, 12),
            step: esac_parse::Duration::new(1, 16),
        }
    );
    assert_eq!(
        err.to_string(),
        "event 5: duration 1/12 is not a multiple of 1/16"
    );
}
