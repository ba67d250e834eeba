//! Attempt limits for the routes that trade a secret for a token: a password guesser or a
//! flood of signature checks gets 429 with `Retry-After` instead of unlimited tries.
//!
//! Each key (a client address, an identity) has a bucket of `per_minute` attempts that
//! refills continuously. The table is bounded: past its size, buckets that have refilled
//! (and so say nothing) are dropped first, then the whole table, which at worst gives an
//! attacker with that many addresses a fresh start, never memory without end.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

/// The most keys one limiter remembers.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Attempts per key and minute.
pub struct Throttle<K> {
    per_minute: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    /// `per_minute` attempts a minute per key; 0 switches the limit off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + elapsed * self.per_minute / 60.0).min(self.per_minute),
            updated: now,
        }
    }

    /// How long until `key` may try again, or `None` if it may now. Does not spend.
    pub fn wait(&self, key: &K) -> Option<Duration> {
        if self.per_minute == 0.0 {
            return None;
        }
        let now = Instant::now();
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = self.refilled(*buckets.get(key)?, now);
        if bucket.tokens >= 1.0 {
            return None;
        }
        let seconds = (1.0 - bucket.tokens) * 60.0 / self.per_minute;
        Some(Duration::from_secs_f64(seconds.max(0.0)))
    }

    /// Spends one attempt of `key`.
    pub fn spend(&self, key: &K) {
        if self.per_minute == 0.0 {
            return;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            let full = self.per_minute;
            buckets.retain(|_, bucket| self.refilled(*bucket, now).tokens < full);
            if buckets.len() >= MAX_KEYS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.per_minute,
            updated: now,
        });
        let mut refilled = self.refilled(*bucket, now);
        refilled.tokens = (refilled.tokens - 1.0).max(0.0);
        *bucket = refilled;
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

/// The key a client address is counted under: IPv6 clients by their /64, which one
/// subscriber usually holds whole, so that rotating addresses within it buys nothing.
pub fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            ))
        }
    }
}

/// 429 with the seconds to wait in `Retry-After`.
pub fn too_many_attempts(wait: Duration) -> Response {
    let mut response = crate::error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "too many attempts; try again later",
    );
    if let Ok(value) = HeaderValue::from_str(&retry_after(wait).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Whole seconds for `Retry-After`, never 0.
pub fn retry_after(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_attempts_then_waits() {
        let throttle = Throttle::new(3);
        for _ in 0..3 {
            assert_eq!(throttle.wait(&"a"), None);
            throttle.spend(&"a");
        }
        let wait = throttle.wait(&"a").expect("the fourth attempt waits");
        assert!(
            wait <= Duration::from_secs(20) && wait > Duration::from_secs(15),
            "{wait:?}"
        );
        assert_eq!(throttle.wait(&"b"), None, "other keys are not affected");
    }

    #[test]
    fn zero_switches_the_limit_off() {
        let throttle = Throttle::new(0);
        for _ in 0..1000 {
            throttle.spend(&"a");
        }
        assert_eq!(throttle.wait(&"a"), None);
        assert_eq!(throttle.keys(), 0);
    }

    #[test]
    fn the_table_never_grows_past_its_bound() {
        let throttle = Throttle::new(5);
        for key in 0..(MAX_KEYS + 10) {
            throttle.spend(&key);
        }
        assert!(throttle.keys() <= MAX_KEYS);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(address_key(v4), v4);
        assert_eq!(retry_after(Duration::from_millis(1)), 1);
        assert_eq!(retry_after(Duration::from_millis(2500)), 3);
    }
}
