//! Held-out songs whose tune a training song mostly holds: variants and
//! contrafacta (one tune, other words), which a collection of folk songs is
//! full of. The split keeps them where they fall, since only songs with the
//! same tokens are one song; `report.json` lists them, so that held-out
//! figures can be read with and without them.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

/// Stretches compared, in tokens: a bar of 4/4 on the 1/16 grid.
pub const VARIANT_NGRAM: usize = 16;

/// The share of a held-out song's stretches one training song must hold for
/// the held-out song to count as its variant.
pub const VARIANT_SHARE: f64 = 0.8;

/// Each stretch of `song` as one number: its 16 bytes side by side, so that
/// two stretches are equal exactly when their numbers are.
fn stretches(song: &[u8]) -> impl Iterator<Item = u128> + '_ {
    const _: () = assert!(VARIANT_NGRAM * 8 == u128::BITS as usize);
    song.iter()
        .scan(0u128, |stretch, &byte| {
            *stretch = (*stretch << 8) | u128::from(byte);
            Some(*stretch)
        })
        .skip(VARIANT_NGRAM - 1)
}

/// For each of `held_out`, the training song that holds the largest share of
/// its [`VARIANT_NGRAM`]-token stretches (counted with repeats; the first such
/// song on a tie), with that share, where it is at least [`VARIANT_SHARE`].
/// Songs are tokens as bytes ([`grid_codec::Token::byte`], or token ids),
/// without the terminal `.`.
pub fn variants_of(
    train: &[impl AsRef<[u8]>],
    held_out: &[impl AsRef<[u8]>],
) -> Vec<Option<(usize, f64)>> {
    // Which training songs hold each stretch, each song once.
    let mut holders: HashMap<u128, Vec<u32>> = HashMap::new();
    let mut distinct = HashSet::new();
    for (song, bytes) in train.iter().enumerate() {
        distinct.clear();
        distinct.extend(stretches(bytes.as_ref()));
        for &stretch in &distinct {
            holders.entry(stretch).or_default().push(song as u32);
        }
    }
    // Stretches held per training song, and which songs hold any.
    let mut held = vec![0u32; train.len()];
    let mut holding = Vec::new();
    held_out
        .iter()
        .map(|bytes| {
            let mut total = 0usize;
            for stretch in stretches(bytes.as_ref()) {
                total += 1;
                for &song in holders.get(&stretch).into_iter().flatten() {
                    if held[song as usize] == 0 {
                        holding.push(song);
                    }
                    held[song as usize] += 1;
                }
            }
            let best = holding
                .iter()
                .map(|&song| (held[song as usize], std::cmp::Reverse(song)))
                .max();
            for song in holding.drain(..) {
                held[song as usize] = 0;
            }
            let (count, std::cmp::Reverse(song)) = best?;
            let share = f64::from(count) / total as f64;
            (share >= VARIANT_SHARE).then_some((song as usize, share))
        })
        .collect()
}

/// [`variants_of`] for songs written in several versions (one per key, in an
/// augmented encoding): for each held-out song, the training version that
/// holds the largest share of any of its versions, with that share. Version
/// `v` of `held_out` belongs to song `song_of[v]`, below `songs`. A song is a
/// variant when any of its versions is, so that a variant whose range puts
/// its versions in other keys than the training song's is found.
pub fn song_variants_of(
    train: &[impl AsRef<[u8]>],
    held_out: &[impl AsRef<[u8]>],
    song_of: &[usize],
    songs: usize,
) -> Vec<Option<(usize, f64)>> {
    let mut best: Vec<Option<(usize, f64)>> = vec![None; songs];
    for (version, found) in variants_of(train, held_out).into_iter().enumerate() {
        if let Some((of, shared)) = found {
            let song = &mut best[song_of[version]];
            if song.is_none_or(|(_, best)| shared > best) {
                *song = Some((of, shared));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_codec::{Token, parse_tokens};

    fn token_bytes(tokens: &[Token]) -> Vec<u8> {
        tokens.iter().map(|token| token.byte()).collect()
    }

    /// Quarter notes of these pitches on the 1/16 grid.
    fn quarters(pitches: &[u8]) -> Vec<Token> {
        pitches
            .iter()
            .flat_map(|&p| [Token::Note(p), Token::Hold, Token::Hold, Token::Hold])
            .collect()
    }

    #[test]
    fn a_held_out_song_is_a_variant_of_the_training_song_that_holds_most_of_it() {
        // Ten quarters: 40 tokens, 25 stretches of 16.
        let tune = quarters(&[60, 62, 64, 65, 67, 65, 64, 62, 60, 60]);
        let other = quarters(&[72, 71, 69, 67, 65, 64, 62, 60, 62, 60]);
        // The last quarter changed: the stretches that reach it (the last 4 of
        // 25) are not held, so 21 of 25 are (84%).
        let mut variant = tune.clone();
        variant[36] = Token::Note(67);
        // Two quarters changed in the middle: only the 5 stretches that miss
        // both are held (20%).
        let mut far = tune.clone();
        far[16] = Token::Note(55);
        far[20] = Token::Note(55);
        let [tune, other, variant, far, short] =
            [tune, other, variant, far, parse_tokens("60 _").unwrap()].map(|t| token_bytes(&t));
        let found = variants_of(&[&other, &tune], &[&variant, &far, &tune, &short]);
        assert_eq!(found[0], Some((1, 21.0 / 25.0)));
        assert_eq!(found[1], None);
        assert_eq!(found[2], Some((1, 1.0)));
        // Shorter than one stretch: nothing to compare.
        assert_eq!(found[3], None);
    }

    #[test]
    fn repeats_count_and_ties_go_to_the_first_song() {
        let tune = token_bytes(&quarters(&[60, 62, 64, 65, 67]));
        let twice: Vec<u8> = tune.iter().chain(&tune).copied().collect();
        let train = [tune.as_slice(), tune.as_slice()];
        // 25 stretches: the 5 within each half are held twice each in the
        // tune, the 15 across the middle are not: 10 of 25.
        assert_eq!(variants_of(&train, &[&twice]), [None]);
        assert_eq!(variants_of(&train, &[&tune]), [Some((0, 1.0))]);
    }

    #[test]
    fn a_song_is_a_variant_by_its_best_version() {
        let tune = token_bytes(&quarters(&[60, 62, 64, 65, 67, 65, 64, 62, 60, 60]));
        let up: Vec<u8> = token_bytes(&quarters(&[62, 64, 66, 67, 69, 67, 66, 64, 62, 62]));
        let mut changed = tune.clone();
        changed[36] = Token::Note(67).byte();
        // Song 0 in two versions: one a tone up, held by nothing, and one with
        // its last quarter changed (21 of 25). Song 1: only the tone up.
        // Song 2: the tune itself.
        let found = song_variants_of(&[&tune], &[&up, &changed, &up, &tune], &[0, 0, 1, 2], 3);
        assert_eq!(found, [Some((0, 21.0 / 25.0)), None, Some((0, 1.0))]);
    }
}
