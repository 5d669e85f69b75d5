//! Arbitrary input never panics either reader; it is read or rejected.

use std::path::Path;

use esac_parse::{Collection, esac, kern, read_bytes};
use proptest::prelude::*;

/// Characters that matter to the two grammars, so that random text reaches deep.
const ALPHABET: &[char] = &[
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '+', '-', '#', 'b', '_', '.', '^', '(', ')',
    '{', '}', '[', ']', ' ', ' ', '\n', '\t', '/', 'x', 'a', 'c', 'C', 'r', 'q', 'n', '=', '*',
    '!', 'M', 'K', 'E', 'Y', 'L', '%', ':', ';', 'k', 'ÿ', 'é', '\u{1a}',
];

fn grammar_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(ALPHABET), 0..200)
        .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn kern_reader_never_panics(body in grammar_text()) {
        let _ = kern::parse(&format!("**kern\n{body}\n*-\n"), Path::new("f.krn"));
    }

    #[test]
    fn esac_reader_never_panics(body in grammar_text(), unit in "(01|02|04|08|16|32|3|x)") {
        let text = format!("F[ERK1\nKEY[E0001  {unit}  F 2/4]\nMEL[{body} //] >>\n");
        let _ = esac::parse(&text, Path::new("f.sm"));
    }

    #[test]
    fn any_bytes_are_read_or_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut collection = Collection::default();
        read_bytes(Path::new("f"), &bytes, &mut collection);
    }
}
