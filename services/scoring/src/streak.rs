//! Back-off and throttled logging for loops that retry forever.

/// Failures in a row of a service loop: they slow the loop down (doubling
/// up to 5 s) and are logged once, then every 20th, instead of at every
/// turn.
#[derive(Default)]
pub struct Streak {
    failures: u32,
}

impl Streak {
    /// A turn succeeded.
    pub fn ok(&mut self) {
        self.failures = 0;
    }

    /// A turn failed with `error`; logged as `what` once, then every 20th.
    pub fn failed(&mut self, what: &str, error: &dyn std::fmt::Display) {
        self.failures += 1;
        if self.failures % 20 == 1 {
            tracing::warn!(%error, failures = self.failures, "{what}");
        }
    }

    /// The pause before the next turn: `every`, doubled per failure, at most 5 s.
    pub fn pause(&self, every: std::time::Duration) -> std::time::Duration {
        (every * 2u32.pow(self.failures.min(5))).min(std::time::Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn failures_double_the_pause_up_to_five_seconds_and_success_resets_it() {
        let mut s = Streak::default();
        let every = Duration::from_millis(250);
        assert_eq!(s.pause(every), every);
        let error = clickhouse::error::Error::Custom("down".into());
        s.failed("test", &error);
        assert_eq!(s.pause(every), Duration::from_millis(500));
        for _ in 0..10 {
            s.failed("test", &error);
        }
        assert_eq!(s.pause(every), Duration::from_secs(5));
        s.ok();
        assert_eq!(s.pause(every), every);
    }
}
