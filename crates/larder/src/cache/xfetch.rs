//! XFetch: probabilistic early recomputation (Vattani, Chierichetti,
//! Lowenstein, "Optimal Probabilistic Cache Stampede Prevention", VLDB 2015).
//!
//! A reader recomputes early when `now − δ·β·ln(u) ≥ expiry`, with `u`
//! uniform in (0, 1], `δ` the time the value took to compute (recorded in
//! the envelope) and `β` a tuning factor (1.0 by default; larger refreshes
//! earlier, 0 turns early refresh off). Expensive values are refreshed a
//! little before they expire, by one reader, while everyone else keeps
//! reading the current value — so there is no burst of misses at expiry.

/// Whether a reader at `now_ms` should recompute a value that expires at
/// `expires_at_ms` and took `delta_ms` to compute; `uniform` is a sample
/// from (0, 1] (injectable so tests can check the rate).
pub(crate) fn should_refresh(
    now_ms: u64,
    expires_at_ms: u64,
    delta_ms: u32,
    beta: f64,
    uniform: f64,
) -> bool {
    if beta <= 0.0 || delta_ms == 0 {
        return now_ms >= expires_at_ms;
    }
    // −ln(u) ≥ 0; the gap is how far ahead of `now` this reader "looks".
    let gap = f64::from(delta_ms) * beta * -uniform.max(f64::MIN_POSITIVE).ln();
    now_ms as f64 + gap >= expires_at_ms as f64
}

/// A uniform sample from (0, 1].
pub(crate) fn sample() -> f64 {
    1.0 - rand::random::<f64>()
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn no_early_refresh_without_delta_or_beta() {
        assert!(!should_refresh(999, 1000, 0, 1.0, 0.0001));
        assert!(!should_refresh(999, 1000, 500, 0.0, 0.0001));
        assert!(should_refresh(1000, 1000, 0, 1.0, 0.5));
    }

    /// At `x` ms before expiry, the chance of an early refresh is
    /// `P(−ln u ≥ x / (δβ)) = exp(−x / (δβ))`. The measured rate must match
    /// within a few standard deviations.
    #[test]
    fn measured_rate_matches_the_formula() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (expiry, delta, trials) = (1_000_000_u64, 200_u32, 200_000_u32);
        for beta in [0.5, 1.0, 2.0] {
            for before in [0_u64, 50, 100, 200, 400, 800] {
                let now = expiry - before;
                let hits = (0..trials)
                    .filter(|_| should_refresh(now, expiry, delta, beta, 1.0 - rng.random::<f64>()))
                    .count();
                let measured = f64::from(hits as u32) / f64::from(trials);
                let expected = (-(before as f64) / (f64::from(delta) * beta)).exp();
                let sigma = (expected * (1.0 - expected) / f64::from(trials)).sqrt();
                assert!(
                    (measured - expected).abs() <= 5.0 * sigma + 1e-4,
                    "beta {beta}, {before} ms before expiry: measured {measured:.4}, formula {expected:.4}"
                );
            }
        }
    }

    /// Steady load on one key, on a simulated clock: one reader per ms for
    /// 200 TTL windows. With XFetch the key is recomputed about once per
    /// window, early, and no reader ever misses; without it, every expiry
    /// is a burst of misses while the value is recomputed.
    #[test]
    fn steady_load_recomputes_once_per_window_without_a_miss_burst() {
        let (ttl, delta, windows) = (10_000_u64, 200_u64, 200_u64);
        let simulate = |beta: f64| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(42);
            let mut expires_at = ttl;
            let mut refreshing_until: Option<u64> = None;
            let (mut recomputes, mut misses, mut early) = (0_u64, 0_u64, 0_u64);
            for now in 0..ttl * windows {
                if let Some(done) = refreshing_until
                    && now >= done
                {
                    expires_at = done + ttl;
                    refreshing_until = None;
                }
                if now >= expires_at {
                    misses += 1; // no value to serve
                    if refreshing_until.is_none() {
                        recomputes += 1;
                        refreshing_until = Some(now + delta);
                    }
                    continue;
                }
                if refreshing_until.is_none()
                    && should_refresh(
                        now,
                        expires_at,
                        delta as u32,
                        beta,
                        1.0 - rng.random::<f64>(),
                    )
                {
                    recomputes += 1;
                    early += 1;
                    refreshing_until = Some(now + delta);
                }
            }
            (recomputes, early, misses)
        };
        let (recomputes, early, misses) = simulate(1.0);
        let (plain_recomputes, _, plain_misses) = simulate(0.0);
        println!(
            "XFetch (beta 1, delta {delta} ms, TTL {ttl} ms, 1 reader/ms, {windows} windows): \
             {recomputes} recomputes ({:.3} per window, {early} early), {misses} misses; \
             without XFetch: {plain_recomputes} recomputes, {plain_misses} misses",
            recomputes as f64 / windows as f64
        );
        assert_eq!(misses, 0, "no burst of misses at expiry");
        assert_eq!(early, recomputes, "every recompute was an early refresh");
        let per_window = recomputes as f64 / windows as f64;
        assert!(
            (0.95..=1.1).contains(&per_window),
            "{per_window} recomputes per window"
        );
        assert_eq!(
            plain_misses,
            plain_recomputes * delta,
            "without XFetch every expiry is delta ms of misses"
        );
    }
}
