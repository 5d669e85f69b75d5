//! The vocabulary: grid tokens <-> ids, stored as a `tokenizers` WordLevel
//! `tokenizer.json` (whitespace split), so that any Hugging Face tokenizer
//! library can read it. `.` is always id 0.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use thiserror::Error;
use tokenizers::Tokenizer;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;

use crate::token::{Token, TokenError};

#[derive(Debug, Error)]
pub enum VocabError {
    #[error("token {position} {token:?} is not in the vocabulary{}", nearest_hint(.nearest))]
    Unknown {
        /// 1-based position in the input.
        position: usize,
        token: String,
        /// Known tokens closest to it (nearest pitches for a number).
        nearest: Vec<String>,
    },
    #[error("id {0} is outside the vocabulary")]
    UnknownId(u32),
    #[error(transparent)]
    NotAToken(#[from] TokenError),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("the vocabulary must map `.` to id 0 and hold only grid tokens: {0}")]
    Invalid(String),
}

fn nearest_hint(nearest: &[String]) -> String {
    if nearest.is_empty() {
        String::new()
    } else {
        format!("; nearest known: {}", nearest.join(", "))
    }
}

/// Token <-> id mapping backed by a WordLevel tokenizer.
#[derive(Clone)]
pub struct Vocabulary {
    tokenizer: Tokenizer,
    tokens: Vec<Token>,
}

impl std::fmt::Debug for Vocabulary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vocabulary")
            .field("tokens", &self.tokens)
            .finish()
    }
}

/// The unknown-token entry WordLevel requires; it is never given an id, so an
/// unknown word is an error rather than a silent `[UNK]`.
const UNKNOWN: &str = "[UNK]";

impl Vocabulary {
    /// Builds the vocabulary of a corpus: `.` (id 0), the pitches in ascending
    /// order, then `_` and `r` — the reference's order for two-digit pitches.
    pub fn build<'a>(songs: impl IntoIterator<Item = &'a [Token]>) -> Self {
        let mut seen: BTreeSet<Token> = BTreeSet::new();
        for song in songs {
            seen.extend(song.iter().copied());
        }
        let mut tokens = vec![Token::End];
        tokens.extend(seen.iter().filter(|t| matches!(t, Token::Note(_))));
        tokens.extend([Token::Hold, Token::Rest]);
        Self::from_tokens(tokens).expect("built in the required order")
    }

    /// A vocabulary with these tokens in id order; `.` must come first.
    pub fn from_tokens(tokens: Vec<Token>) -> Result<Self, VocabError> {
        if tokens.first() != Some(&Token::End) {
            return Err(VocabError::Invalid("the first token is not `.`".into()));
        }
        let unique: BTreeSet<&Token> = tokens.iter().collect();
        if unique.len() != tokens.len() {
            return Err(VocabError::Invalid("a token appears twice".into()));
        }
        let vocab: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(id, t)| (t.to_string(), id as u32))
            .collect();
        let model = WordLevel::builder()
            .vocab(vocab.into_iter().collect())
            .unk_token(UNKNOWN.into())
            .build()
            .map_err(|e| VocabError::Invalid(e.to_string()))?;
        let mut tokenizer = Tokenizer::new(model);
        tokenizer.with_pre_tokenizer(Some(WhitespaceSplit));
        Ok(Self { tokenizer, tokens })
    }

    /// Reads a `tokenizer.json`.
    pub fn load(path: &Path) -> Result<Self, VocabError> {
        let file_error = |message: String| VocabError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        Self::from_json(&text).map_err(|e| file_error(e.to_string()))
    }

    /// Reads the text of a `tokenizer.json`.
    pub fn from_json(text: &str) -> Result<Self, VocabError> {
        let tokenizer: Tokenizer = text
            .parse()
            .map_err(|e: tokenizers::Error| VocabError::Invalid(e.to_string()))?;
        let mut by_id: Vec<(u32, String)> = tokenizer
            .get_vocab(false)
            .into_iter()
            .map(|(token, id)| (id, token))
            .collect();
        by_id.sort();
        if by_id
            .iter()
            .enumerate()
            .any(|(i, (id, _))| *id as usize != i)
        {
            return Err(VocabError::Invalid("ids are not 0..n".into()));
        }
        let tokens = by_id
            .into_iter()
            .map(|(_, t)| t.parse::<Token>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| VocabError::Invalid(e.to_string()))?;
        Self::from_tokens(tokens)
    }

    /// The `tokenizer.json` text.
    pub fn to_json(&self) -> String {
        self.tokenizer
            .to_string(true)
            .expect("a WordLevel tokenizer always serialises")
    }

    /// Writes `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<(), VocabError> {
        std::fs::write(path, self.to_json()).map_err(|e| VocabError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Tokens in id order.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// The id of a token, if known.
    pub fn id(&self, token: Token) -> Option<u32> {
        self.tokenizer.token_to_id(&token.to_string())
    }

    /// Ids of tokens; an unknown one is an error naming it and its nearest neighbours.
    pub fn ids(&self, tokens: &[Token]) -> Result<Vec<u32>, VocabError> {
        tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                self.id(*t)
                    .ok_or_else(|| self.unknown(i + 1, &t.to_string()))
            })
            .collect()
    }

    /// Encodes whitespace-separated token text through the tokenizer.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, VocabError> {
        for (i, word) in text.split_whitespace().enumerate() {
            if self.tokenizer.token_to_id(word).is_none() {
                return Err(self.unknown(i + 1, word));
            }
        }
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| VocabError::Invalid(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Tokens of ids.
    pub fn decode(&self, ids: &[u32]) -> Result<Vec<Token>, VocabError> {
        ids.iter()
            .map(|&id| {
                self.tokens
                    .get(id as usize)
                    .copied()
                    .ok_or(VocabError::UnknownId(id))
            })
            .collect()
    }

    fn unknown(&self, position: usize, word: &str) -> VocabError {
        let nearest = match word.parse::<Token>() {
            Ok(Token::Note(pitch)) => {
                let mut notes: Vec<u8> = self
                    .tokens
                    .iter()
                    .filter_map(|t| match t {
                        Token::Note(n) => Some(*n),
                        _ => None,
                    })
                    .collect();
                notes.sort_by_key(|n| (n.abs_diff(pitch), *n));
                notes.iter().take(2).map(u8::to_string).collect()
            }
            _ => Vec::new(),
        };
        VocabError::Unknown {
            position,
            token: word.to_owned(),
            nearest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::parse_tokens;

    fn vocab() -> Vocabulary {
        let songs = [
            parse_tokens("60 _ 62 _ r _").unwrap(),
            parse_tokens("55 _ _ _ 67").unwrap(),
        ];
        Vocabulary::build(songs.iter().map(Vec::as_slice))
    }

    #[test]
    fn order_is_terminal_pitches_hold_rest() {
        let v = vocab();
        let words: Vec<String> = v.tokens().iter().map(Token::to_string).collect();
        assert_eq!(words, [".", "55", "60", "62", "67", "_", "r"]);
        assert_eq!(v.encode("60 _ r .").unwrap(), [2, 5, 6, 0]);
        assert_eq!(
            v.decode(&[2, 5, 0]).unwrap(),
            parse_tokens("60 _ .").unwrap()
        );
    }

    #[test]
    fn json_round_trip_is_a_wordlevel_tokenizer() {
        let v = vocab();
        let json = v.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["model"]["type"], "WordLevel");
        assert_eq!(value["pre_tokenizer"]["type"], "WhitespaceSplit");
        assert_eq!(value["model"]["vocab"]["."], 0);
        let back = Vocabulary::from_json(&json).unwrap();
        assert_eq!(back.tokens(), v.tokens());
    }

    #[test]
    fn unknown_tokens_are_named_with_neighbours() {
        let v = vocab();
        let err = v.encode("60 _ 61").unwrap_err();
        assert_eq!(
            err.to_string(),
            "token 3 \"61\" is not in the vocabulary; nearest known: 60, 62"
        );
        let err = v.encode("60 x").unwrap_err();
        assert_eq!(err.to_string(), "token 2 \"x\" is not in the vocabulary");
        assert!(matches!(v.decode(&[99]), Err(VocabError::UnknownId(99))));
        assert!(Vocabulary::from_json("{}").is_err());
    }
}
