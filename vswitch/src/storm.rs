//! Storm control: how many broadcast and multicast frames per second a port
//! may send into the switch, as a switch's `storm-control broadcast level
//! pps`. Each port has a token bucket holding at most one second's worth
//! (`pps` tokens), refilled continuously from the pipeline's `now`; a
//! flooded frame takes one token or is dropped (`storm`). Unicast is never
//! limited here. Owned by the port, touched only by the thread that
//! processes its frames.

use crate::time::Timestamp;

const NANOS: u64 = 1_000_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens per second, and the most the bucket holds.
    pps: u64,
    /// In billionths of a token, so refill needs no division.
    nanotokens: u64,
    last: Timestamp,
}

impl TokenBucket {
    /// A full bucket; `None` for 0 (no limit).
    pub fn new(pps: u32) -> Option<TokenBucket> {
        let pps = u64::from(pps);
        (pps > 0).then_some(TokenBucket {
            pps,
            nanotokens: pps * NANOS,
            last: Timestamp::ZERO,
        })
    }

    /// Takes one token at `now`; false when the bucket is empty. Time that
    /// runs backwards refills nothing.
    pub fn take(&mut self, now: Timestamp) -> bool {
        let elapsed = now.since(self.last).as_nanos();
        let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
        let cap = self.pps * NANOS;
        self.nanotokens = self
            .nanotokens
            .saturating_add(elapsed.saturating_mul(self.pps))
            .min(cap);
        self.last = self.last.max(now);
        match self.nanotokens.checked_sub(NANOS) {
            Some(left) => {
                self.nanotokens = left;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Timestamp {
        Timestamp::from_nanos(n * 1_000_000)
    }

    #[test]
    fn a_second_of_burst_then_the_rate() {
        let mut b = TokenBucket::new(100).unwrap();
        let burst = (0..1000).filter(|_| b.take(ms(0))).count();
        assert_eq!(burst, 100);
        // 10 ms later: one more token.
        assert!(b.take(ms(10)));
        assert!(!b.take(ms(10)));
        // Over the next second, sending every millisecond, 100 get through.
        let passed = (11..=1010).filter(|&t| b.take(ms(t))).count();
        assert_eq!(passed, 100);
        // Idle a long while: full again, never more.
        let burst = (0..1000).filter(|_| b.take(ms(1_000_000))).count();
        assert_eq!(burst, 100);
    }

    #[test]
    fn zero_is_no_bucket_and_time_backwards_refills_nothing() {
        assert!(TokenBucket::new(0).is_none());
        let mut b = TokenBucket::new(1).unwrap();
        assert!(b.take(ms(5000)));
        assert!(!b.take(ms(1000)));
        assert!(!b.take(ms(5999)));
        assert!(b.take(ms(6000)));
    }
}
