//! How long a lost link waits before its next attempt: 100 ms, doubling to 5 s, back to
//! the start once an attempt succeeds.

use std::time::Duration;

const FIRST_MS: u64 = 100;
const MAX_MS: u64 = 5000;

#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The wait before the next attempt, counting one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let ms = FIRST_MS
            .saturating_mul(1u64 << self.failures.min(16))
            .min(MAX_MS);
        self.failures = self.failures.saturating_add(1);
        Duration::from_millis(ms)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_a_ceiling_and_resets() {
        let mut b = Backoff::default();
        let ms: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        for _ in 0..100 {
            b.next_delay();
        }
        assert_eq!(b.next_delay().as_millis(), 5000);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
