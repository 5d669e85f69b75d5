//! Exact tests of whether generated melodies and held-out songs differ by
//! more than chance, for the counts `judge` compares: a few hundred melodies
//! against a few dozen songs leave large gaps in a share unproven.

/// The relative tolerance SciPy allows, so that outcomes exactly as likely as
/// the one seen count despite rounding.
const LIKELIHOOD_TOLERANCE: f64 = 1e-7;

/// The exact two-sided p-value from the logarithms of every outcome's
/// probability: the sum of those no likelier than outcome `seen`, which is 1
/// exactly when it is the likeliest (as in SciPy) rather than a sum of every
/// outcome that rounds below 1.
fn two_sided(ln_probabilities: &[f64], seen: usize) -> f64 {
    let bound = ln_probabilities[seen] + LIKELIHOOD_TOLERANCE.ln_1p();
    if ln_probabilities.iter().all(|&ln_p| ln_p <= bound) {
        return 1.0;
    }
    let p: f64 = ln_probabilities
        .iter()
        .filter(|&&ln_p| ln_p <= bound)
        .map(|ln_p| ln_p.exp())
        .sum();
    p.min(1.0)
}

/// The exact two-sided binomial test of `k` successes in `n` draws of chance
/// `share`: the probability of every count no likelier than `k`, as R's
/// `binom.test` and SciPy's `binomtest` give it. Computed in logarithms, so
/// that thousands of draws neither underflow nor overflow.
pub fn exact_binomial_p_value(k: usize, n: usize, share: f64) -> f64 {
    assert!(k <= n, "{k} successes in {n} draws");
    if share <= 0.0 || share >= 1.0 {
        // Only one count is possible.
        let only = if share <= 0.0 { 0 } else { n };
        return if k == only { 1.0 } else { 0.0 };
    }
    let (ln_share, ln_rest) = (share.ln(), (1.0 - share).ln());
    let mut ln_choose = 0.0;
    let ln_probabilities: Vec<f64> = (0..=n)
        .map(|i| {
            if i > 0 {
                ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
            }
            ln_choose + i as f64 * ln_share + (n - i) as f64 * ln_rest
        })
        .collect();
    two_sided(&ln_probabilities, k)
}

/// Fisher's exact two-sided test of `found_a` of `of_a` against `found_b` of
/// `of_b`: given both totals and how many were found in all, the probability
/// of every split of those found no likelier than the one seen (the
/// hypergeometric distribution), as R's `fisher.test` and SciPy's
/// `fisher_exact` give it.
pub fn fisher_exact_p_value(found_a: usize, of_a: usize, found_b: usize, of_b: usize) -> f64 {
    assert!(
        found_a <= of_a && found_b <= of_b,
        "{found_a} of {of_a} and {found_b} of {of_b}"
    );
    let (all, found) = (of_a + of_b, found_a + found_b);
    let ln_factorials: Vec<f64> = std::iter::once(0.0)
        .chain((1..=all).scan(0.0, |sum, i| {
            *sum += (i as f64).ln();
            Some(*sum)
        }))
        .collect();
    let ln_choose = |n: usize, r: usize| ln_factorials[n] - ln_factorials[r] - ln_factorials[n - r];
    // Those found in the first set can be no fewer than the first set's
    // size less all that were not found, and no more than either.
    let fewest = of_a.saturating_sub(all - found);
    let ln_probabilities: Vec<f64> = (fewest..=found.min(of_a))
        .map(|x| ln_choose(found, x) + ln_choose(all - found, of_a - x) - ln_choose(all, of_a))
        .collect();
    two_sided(&ln_probabilities, found_a - fewest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exact_binomial_test_by_hand_and_against_an_independent_sum() {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.max(1e-300);
        // Three fair draws: 1/8, 3/8, 3/8, 1/8.
        assert!(close(exact_binomial_p_value(0, 3, 0.5), 0.25));
        assert!(close(exact_binomial_p_value(3, 3, 0.5), 0.25));
        assert_eq!(exact_binomial_p_value(1, 3, 0.5), 1.0);
        // Five draws of 0.3: 0.16807, 0.36015, 0.3087, 0.1323, 0.02835,
        // 0.00243; all but the second are no likelier than two.
        assert!(close(exact_binomial_p_value(2, 5, 0.3), 0.63985));
        // The README's 3/4 ties over 1,000 melodies: 40 of 62 ties among the
        // generated melodies' 48,764 notes, beside 9,103 held-out notes; the
        // reference is a plain sum of math.comb terms in Python.
        let p = exact_binomial_p_value(40, 62, 48_764.0 / 57_867.0);
        assert!((p - 0.000_138_238_689_561_662_5).abs() < 1e-12, "{p}");
        // Large counts neither underflow nor overflow.
        let p = exact_binomial_p_value(5_000, 10_000, 0.5);
        assert!(p > 0.99 && p <= 1.0, "{p}");
        assert!(exact_binomial_p_value(0, 10_000, 0.5) < 1e-300);
        // A share of 0 or 1 allows one count.
        assert_eq!(exact_binomial_p_value(0, 4, 0.0), 1.0);
        assert_eq!(exact_binomial_p_value(1, 4, 0.0), 0.0);
        assert_eq!(exact_binomial_p_value(4, 4, 1.0), 1.0);
        assert_eq!(exact_binomial_p_value(0, 0, 0.5), 1.0);
    }

    #[test]
    fn fishers_exact_test_by_hand_and_against_scipy() {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b;
        // Fisher's tea tasting: 3 of 4 cups found against 1 of 4. With 4
        // found in all, the splits 0..=4 have probabilities 1, 16, 36, 16 and
        // 1 in 70; all but 2 are no likelier than 3.
        assert!(close(fisher_exact_p_value(3, 4, 1, 4), 34.0 / 70.0));
        assert!(close(fisher_exact_p_value(4, 4, 0, 4), 2.0 / 70.0));
        assert_eq!(fisher_exact_p_value(2, 4, 2, 4), 1.0);
        // The README's styles: melodies asked for deutschl/ballad found in it
        // 22 of 200 times, its held-out songs 12 of 65; and the validation
        // songs of deutschl/fink 8 of 55 against its test songs' 17 of 55.
        // The references are SciPy 1.17's `fisher_exact`.
        assert!(close(
            fisher_exact_p_value(22, 200, 12, 65),
            0.135_787_814_589_309_66
        ));
        assert!(close(
            fisher_exact_p_value(8, 55, 17, 55),
            0.067_432_950_939_015_77
        ));
        // Large sets neither underflow nor overflow (the logarithms of 2,000
        // factorials, summed, agree with SciPy's to 1e-11).
        let p = fisher_exact_p_value(900, 1_000, 850, 1_000);
        assert!((p / 0.000_895_087_538_690_689_4 - 1.0).abs() < 1e-10, "{p}");
        // Nothing found, or everything, is no evidence of a difference.
        assert_eq!(fisher_exact_p_value(0, 10, 0, 5), 1.0);
        assert_eq!(fisher_exact_p_value(10, 10, 5, 5), 1.0);
        assert_eq!(fisher_exact_p_value(0, 0, 3, 5), 1.0);
    }
}
