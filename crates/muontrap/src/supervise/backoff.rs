//! Restart backoff: how long to wait before restarting a child (OTP has none; users ask).
//!
//! Delays grow geometrically from `initial` by `multiplier` per consecutive restart, capped at
//! `max`, with optional jitter so that many children crashing together (a shared dependency
//! went away) do not all come back in the same instant. A child that stayed up for
//! `reset_after` counts as healthy again and starts over at `initial`. Randomness comes from a
//! [`JitterSource`] the caller owns, so a schedule is reproducible from a seed.

use std::time::Duration;

/// The backoff schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first restart.
    pub initial: Duration,
    /// Upper bound of any delay, jitter included.
    pub max: Duration,
    /// Growth per consecutive restart (1.0 = constant delay; values below 1 act as 1).
    pub multiplier: f64,
    /// Relative jitter in `0.0..=1.0`: a delay `d` becomes uniform in `[d·(1−j), d·(1+j)]`,
    /// then capped at `max`.
    pub jitter: f64,
    /// Uptime after which a child's restarts count from the start again.
    pub reset_after: Duration,
}

impl Backoff {
    /// `initial` doubling up to `max`, no jitter, reset after `max` of uptime (at least 1 s).
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            multiplier: 2.0,
            jitter: 0.0,
            reset_after: max.max(Duration::from_secs(1)),
        }
    }

    /// Sets the multiplier.
    pub fn multiplier(mut self, multiplier: f64) -> Backoff {
        self.multiplier = multiplier;
        self
    }

    /// Sets the relative jitter (clamped to `0.0..=1.0`).
    pub fn jitter(mut self, jitter: f64) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// Sets the uptime after which the schedule starts over.
    pub fn reset_after(mut self, uptime: Duration) -> Backoff {
        self.reset_after = uptime;
        self
    }

    /// The delay before restart number `attempt` (1 = the first consecutive restart).
    /// Attempt 0 means "not a restart" and has no delay.
    pub fn delay(&self, attempt: u32, rng: &mut dyn JitterSource) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        let max = self.max.as_secs_f64();
        let mult = if self.multiplier.is_finite() {
            self.multiplier.max(1.0)
        } else {
            1.0
        };
        // Saturates at max long before the exponent could overflow an f64 usefully.
        let exp = (attempt - 1).min(1024) as i32;
        let base = (self.initial.as_secs_f64() * mult.powi(exp)).min(max);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let d = if jitter > 0.0 {
            let u = rng.next_unit();
            base * (1.0 - jitter + 2.0 * jitter * u)
        } else {
            base
        };
        Duration::from_secs_f64(d.clamp(0.0, max))
    }

    /// The attempt number of the next restart, given the previous one and how long the child
    /// ran this time: consecutive crashes count up, a healthy run starts over at 1.
    pub fn next_attempt(&self, previous: u32, uptime: Duration) -> u32 {
        if uptime >= self.reset_after {
            1
        } else {
            previous.saturating_add(1)
        }
    }
}

/// A source of uniform numbers in `[0, 1)` for jitter.
pub trait JitterSource: Send {
    /// The next number, uniform in `[0, 1)`.
    fn next_unit(&mut self) -> f64;
}

/// SplitMix64: tiny, fast, good enough for jitter, and reproducible from a seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// A generator seeded from the clock and the process id (for production use).
    pub fn from_entropy() -> SplitMix64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        SplitMix64(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl JitterSource for SplitMix64 {
    fn next_unit(&mut self) -> f64 {
        // 53 random bits: every value is exactly representable and < 1.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A fixed sequence of "random" numbers.
    struct Fixed(Vec<f64>, usize);
    impl JitterSource for Fixed {
        fn next_unit(&mut self) -> f64 {
            let v = self.0[self.1 % self.0.len()];
            self.1 += 1;
            v
        }
    }

    #[test]
    fn delays_double_from_initial_up_to_max() {
        let b = Backoff::new(ms(100), ms(1000));
        let mut rng = SplitMix64::new(1);
        let got: Vec<Duration> = (1..=7).map(|a| b.delay(a, &mut rng)).collect();
        assert_eq!(
            got,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000),
                ms(1000)
            ]
        );
    }

    #[test]
    fn attempt_zero_has_no_delay() {
        let b = Backoff::new(ms(100), ms(1000));
        assert_eq!(b.delay(0, &mut SplitMix64::new(1)), Duration::ZERO);
    }

    #[test]
    fn a_multiplier_of_one_is_a_constant_delay_and_below_one_acts_as_one() {
        for m in [1.0, 0.5, 0.0, -3.0, f64::NAN] {
            let b = Backoff::new(ms(250), ms(1000)).multiplier(m);
            for a in 1..10 {
                assert_eq!(b.delay(a, &mut SplitMix64::new(1)), ms(250), "m={m} a={a}");
            }
        }
    }

    #[test]
    fn huge_attempts_saturate_at_max_without_overflow() {
        let b = Backoff::new(ms(1), Duration::from_secs(30)).multiplier(10.0);
        let mut rng = SplitMix64::new(7);
        assert_eq!(b.delay(u32::MAX, &mut rng), Duration::from_secs(30));
        assert_eq!(b.delay(2000, &mut rng), Duration::from_secs(30));
    }

    #[test]
    fn jitter_spans_the_documented_range() {
        let b = Backoff::new(ms(1000), ms(10_000)).jitter(0.5);
        let low = b.delay(1, &mut Fixed(vec![0.0], 0));
        let mid = b.delay(1, &mut Fixed(vec![0.5], 0));
        let high = b.delay(1, &mut Fixed(vec![0.999_999], 0));
        assert_eq!(low, ms(500));
        assert_eq!(mid, ms(1000));
        assert!(high > ms(1499) && high <= ms(1500), "{high:?}");
    }

    #[test]
    fn jitter_never_exceeds_max() {
        let b = Backoff::new(ms(800), ms(1000)).jitter(1.0);
        let mut rng = SplitMix64::new(42);
        for a in 1..200 {
            assert!(b.delay(a, &mut rng) <= ms(1000));
        }
    }

    #[test]
    fn out_of_range_jitter_is_clamped() {
        let b = Backoff::new(ms(100), ms(1000)).jitter(5.0);
        assert_eq!(b.delay(1, &mut Fixed(vec![0.0], 0)), Duration::ZERO);
        let b = Backoff::new(ms(100), ms(1000)).jitter(-1.0);
        assert_eq!(b.delay(1, &mut Fixed(vec![0.0], 0)), ms(100));
    }

    #[test]
    fn a_seed_reproduces_the_schedule() {
        let b = Backoff::new(ms(100), ms(5000)).jitter(0.3);
        let run = |seed| {
            let mut rng = SplitMix64::new(seed);
            (1..20).map(|a| b.delay(a, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn split_mix_is_uniform_enough_for_jitter() {
        let mut rng = SplitMix64::new(0);
        let mut buckets = [0u32; 10];
        for _ in 0..100_000 {
            let u = rng.next_unit();
            assert!((0.0..1.0).contains(&u));
            buckets[(u * 10.0) as usize] += 1;
        }
        for b in buckets {
            assert!((9_000..11_000).contains(&b), "{buckets:?}");
        }
    }

    #[test]
    fn consecutive_crashes_count_up_and_a_healthy_run_resets() {
        let b = Backoff::new(ms(100), ms(2000)).reset_after(ms(5000));
        assert_eq!(b.next_attempt(0, ms(10)), 1);
        assert_eq!(b.next_attempt(1, ms(10)), 2);
        assert_eq!(b.next_attempt(7, ms(4999)), 8);
        assert_eq!(b.next_attempt(7, ms(5000)), 1);
        assert_eq!(b.next_attempt(u32::MAX, ms(0)), u32::MAX);
    }

    #[test]
    fn new_defaults_reset_to_max_but_at_least_a_second() {
        assert_eq!(Backoff::new(ms(10), ms(100)).reset_after, ms(1000));
        assert_eq!(Backoff::new(ms(10), ms(8000)).reset_after, ms(8000));
        assert_eq!(Backoff::new(ms(500), ms(100)).max, ms(500));
    }
}
