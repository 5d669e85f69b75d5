//! The grid tokens and their text form.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// One grid step's symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Token {
    /// `.`: end of the song (id 0 in every vocabulary, as in the reference).
    End,
    /// A note onset as a MIDI number.
    Note(u8),
    /// `r`: a rest onset.
    Rest,
    /// `_`: the previous note or rest goes on for one more step.
    Hold,
}

impl Token {
    pub const END: &'static str = ".";
    pub const HOLD: &'static str = "_";
    pub const REST: &'static str = "r";

    /// The token as one byte, a different one for every token a text or a
    /// vocabulary can hold (a note is a MIDI number, 0-127): for the indexes
    /// that compare runs of tokens.
    pub fn byte(self) -> u8 {
        match self {
            Token::Note(pitch) => pitch,
            Token::Rest => 128,
            Token::Hold => 129,
            Token::End => 130,
        }
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::End => f.write_str(Token::END),
            Token::Note(n) => write!(f, "{n}"),
            Token::Rest => f.write_str(Token::REST),
            Token::Hold => f.write_str(Token::HOLD),
        }
    }
}

/// A word that is not a grid token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("token {position} {text:?} is not a grid token (a MIDI number 0-127, `_`, `r` or `.`)")]
pub struct TokenError {
    /// 1-based position of the word.
    pub position: usize,
    pub text: String,
}

impl FromStr for Token {
    type Err = TokenError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            Token::END => Ok(Token::End),
            Token::HOLD => Ok(Token::Hold),
            Token::REST => Ok(Token::Rest),
            _ => text
                .parse::<u8>()
                .ok()
                .filter(|n| {
                    *n <= 127 && !text.starts_with('+') && (text == "0" || !text.starts_with('0'))
                })
                .map(Token::Note)
                .ok_or_else(|| TokenError {
                    position: 1,
                    text: text.to_owned(),
                }),
        }
    }
}

/// Parses whitespace-separated tokens (`"60 _ _ r _"`).
pub fn parse_tokens(text: &str) -> Result<Vec<Token>, TokenError> {
    text.split_whitespace()
        .enumerate()
        .map(|(i, word)| {
            word.parse().map_err(|e: TokenError| TokenError {
                position: i + 1,
                ..e
            })
        })
        .collect()
}

/// Writes tokens separated by single spaces.
pub fn tokens_to_string(tokens: &[Token]) -> String {
    tokens
        .iter()
        .map(Token::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let tokens = parse_tokens("60 _ _ r _ 127 0 .").unwrap();
        assert_eq!(
            tokens,
            [
                Token::Note(60),
                Token::Hold,
                Token::Hold,
                Token::Rest,
                Token::Hold,
                Token::Note(127),
                Token::Note(0),
                Token::End
            ]
        );
        assert_eq!(tokens_to_string(&tokens), "60 _ _ r _ 127 0 .");
    }

    #[test]
    fn bad_words_are_named_with_their_position() {
        let err = parse_tokens("60 _ 128").unwrap_err();
        assert_eq!((err.position, err.text.as_str()), (3, "128"));
        assert!(parse_tokens("060").is_err());
        assert!(parse_tokens("+6").is_err());
        assert!(parse_tokens("x").is_err());
        assert_eq!(
            parse_tokens("60 _ C4").unwrap_err().to_string(),
            "token 3 \"C4\" is not a grid token (a MIDI number 0-127, `_`, `r` or `.`)"
        );
    }
}
