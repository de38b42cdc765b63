//! Page submits per survey link: a sliding window of the last minute, in
//! memory (a link is answered through one server at a time in practice; a
//! limit per process is the documented bound).

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use uuid::Uuid;

use crate::{Error, Result};

const WINDOW: Duration = Duration::from_secs(60);
/// Links tracked before idle ones are swept.
const SWEEP_AT: usize = 10_000;

pub(crate) struct RateLimiter {
    per_window: usize,
    seen: Mutex<HashMap<Uuid, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub(crate) fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_window: per_minute.max(1) as usize,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one submit of `link`; refused with the seconds until the
    /// oldest submit in the window leaves it.
    pub(crate) fn check(&self, link: Uuid) -> Result<()> {
        let now = Instant::now();
        let mut seen = self.seen.lock().expect("rate limiter lock");
        if seen.len() >= SWEEP_AT {
            seen.retain(|_, times| times.back().is_some_and(|t| now - *t < WINDOW));
        }
        let times = seen.entry(link).or_default();
        while times.front().is_some_and(|t| now - *t >= WINDOW) {
            times.pop_front();
        }
        if times.len() >= self.per_window {
            let oldest = *times.front().expect("a full window");
            let wait = WINDOW.saturating_sub(now - oldest);
            return Err(Error::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_submit_after_the_limit_is_refused_with_a_wait() {
        let limiter = RateLimiter::new(3);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..3 {
            limiter.check(a).unwrap();
        }
        match limiter.check(a) {
            Err(Error::RateLimited { retry_after_secs }) => {
                assert!((1..=60).contains(&retry_after_secs))
            }
            other => panic!("{other:?}"),
        }
        // Another link is not affected.
        limiter.check(b).unwrap();
    }
}
