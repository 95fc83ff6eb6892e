//! Per-client-IP limits: unauthenticated request rate and failed
//! authentications (brute force on keys).
//!
//! The client's IP is the socket peer's, or, when the peer is one of the
//! configured `trusted_proxies`, the right-most `X-Forwarded-For` address
//! that is not a trusted proxy ([`client_ip`]); a header from any other peer
//! is ignored, so a client cannot pick the address it is counted under.
//!
//! Both limits are GCRA ([`crate::gcra`], shared with the per-key budgets: one "theoretical
//! arrival time" per IP, a token bucket without a refill timer):
//!
//! - with `auth = "none"`, `ip_requests_per_minute` requests per minute per
//!   IP, a minute's worth at once; past it, 429 until the next one conforms;
//! - with `auth = "keys"`, `ip_auth_failures_per_minute` wrong keys per
//!   minute per IP; the failure that empties the bucket locks the IP out:
//!   every request from it is refused with 429 without its key being
//!   checked, for one refill interval (a minute / the limit). Every further
//!   wrong key locks it out again for twice as long as the last time (up to
//!   `ip_lockout_max_ms`), until the IP has sent no wrong key for
//!   `ip_lockout_max_ms`. Brute force is thus slowed to a few tries, then
//!   refused for ever longer. Nothing waits: a refusal is answered at once
//!   and holds no resource.
//!
//! Memory is bounded: the table keeps at most `ip_table_size` addresses in
//! two generations (a new address goes into the current one; when it is
//! half full, the previous one is dropped and the current one becomes the
//! previous one; an address found in the previous one moves back). An
//! attacker rotating addresses thus evicts the least recently seen ones,
//! never grows the table. Entries at rest are swept at most once a minute,
//! by a failed authentication (never by a request being admitted; on an
//! open data plane, which has no failures, the generations alone bound it).
//!
//! With keys, the table is consulted only while some address may be locked
//! out: the latest lockout end written is kept in an atomic, so that, with
//! no lockout in force (failures on record or not), a request with a good
//! key costs one atomic load here (and a clock read until the first request
//! after a lockout ends notices it has ended).
//!
//! IPv4 clients are counted per address, IPv6 clients per /64 ([`bucket`]):
//! a host is typically given a whole /64, so counting per /128 would let it
//! rotate addresses and never be locked out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

use crate::config::{Cidr, IpLimitConfig};
use crate::error::ApiError;
use crate::gcra::{Denied, Gcra};

/// Why a client IP was refused (the `reason` label of
/// `lifeline_ip_rate_limited_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Locked out after too many failed authentications.
    AuthFailures,
    /// Over `ip_requests_per_minute` (`auth = "none"`).
    Requests,
}

impl Reason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::AuthFailures => "auth_failures",
            Self::Requests => "requests",
        }
    }
}

/// A refusal: why, and when to come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Which limit.
    pub reason: Reason,
    /// Until the IP may try again.
    pub retry_after: Duration,
}

impl Refused {
    /// 429 `rate_limit_exceeded` in OpenAI's shape, with `Retry-After`.
    pub fn into_error(self) -> ApiError {
        let secs = self.retry_after.as_secs_f64().ceil().max(1.0);
        let message = match self.reason {
            Reason::AuthFailures => format!("Too many requests with an incorrect API key from your address. Try again in {secs} s."),
            Reason::Requests => format!("Rate limit reached for requests from your address. Try again in {secs} s."),
        };
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message,
            kind: "requests",
            code: Some("rate_limit_exceeded"),
            param: None,
            retry_after: Some(self.retry_after.max(Duration::from_secs(1))),
            should_retry: None,
        }
    }
}

/// The client's address: the peer's, or, from a trusted proxy, the
/// right-most `X-Forwarded-For` address that is not a trusted proxy (all of
/// them trusted: the left-most; an unreadable entry: the trusted hop to its
/// right).
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = peer.ip().to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if trusted.is_empty() || !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            return client;
        };
        for hop in value.rsplit(',') {
            let hop = hop.trim();
            let parsed = hop
                .parse::<IpAddr>()
                .ok()
                .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()));
            let Some(ip) = parsed else {
                return client;
            };
            client = ip.to_canonical();
            if !is_trusted(client) {
                return client;
            }
        }
    }
    client
}

/// The address a client is counted under: an IPv4 address itself, an IPv6
/// address's /64 (its lower 64 bits cleared; IPv4-mapped addresses count as
/// IPv4).
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

/// The state of one address.
#[derive(Debug, Default)]
struct Entry {
    /// Its request budget (`auth = "none"`), in [`IpLimits::ticks`].
    requests: Gcra,
    /// Its budget of failed authentications, in [`IpLimits::ticks`].
    failures: Gcra,
    /// The last failed authentication.
    last_failure: Option<Instant>,
    /// Refused until then.
    locked_until: Option<Instant>,
    /// Lockouts since the address last calmed down.
    strikes: u32,
}

impl Entry {
    /// Whether forgetting it changes nothing.
    fn at_rest(&self, ticks: u64, now: Instant, lockout_max: Duration) -> bool {
        self.requests.full(ticks)
            && self.failures.full(ticks)
            && self.locked_until.is_none_or(|t| t <= now)
            && self.last_failure.is_none_or(|t| now >= t + lockout_max)
    }
}

#[derive(Debug, Default)]
struct Table {
    current: HashMap<IpAddr, Entry>,
    previous: HashMap<IpAddr, Entry>,
    last_sweep: Option<Instant>,
}

/// How often entries at rest are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Table {
    fn get(&mut self, ip: &IpAddr) -> Option<&mut Entry> {
        if !self.current.contains_key(ip) {
            let moved = self.previous.remove(ip)?;
            self.current.insert(*ip, moved);
        }
        self.current.get_mut(ip)
    }

    fn get_or_insert(&mut self, ip: IpAddr, cap: usize) -> &mut Entry {
        if self.get(&ip).is_none() {
            if self.current.len() >= (cap / 2).max(1) {
                self.previous = std::mem::take(&mut self.current);
            }
            self.current.insert(ip, Entry::default());
        }
        self.current.entry(ip).or_default()
    }

    fn sweep(&mut self, ticks: u64, now: Instant, lockout_max: Duration) {
        if self.last_sweep.is_some_and(|t| now < t + SWEEP_EVERY) {
            return;
        }
        self.last_sweep = Some(now);
        self.current
            .retain(|_, e| !e.at_rest(ticks, now, lockout_max));
        self.previous
            .retain(|_, e| !e.at_rest(ticks, now, lockout_max));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// The per-IP state: one table for both limits.
#[derive(Debug)]
pub struct IpLimits {
    table: Mutex<Table>,
    /// The latest lockout end written, in nanoseconds after `epoch`, plus
    /// one; 0 once no lockout may be in force (read without the lock).
    locked_until_max: AtomicU64,
    epoch: Instant,
    /// How often the table was locked (tests check the fast path takes no lock).
    #[cfg(test)]
    locks: std::sync::atomic::AtomicUsize,
}

impl Default for IpLimits {
    fn default() -> Self {
        Self {
            table: Mutex::default(),
            locked_until_max: AtomicU64::new(0),
            epoch: Instant::now(),
            #[cfg(test)]
            locks: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

/// The GCRA emission interval of `per_minute`: the first lockout's length.
fn interval(per_minute: u64) -> Duration {
    Duration::from_secs(60) / u32::try_from(per_minute.max(1)).unwrap_or(u32::MAX)
}

impl IpLimits {
    fn lock(&self) -> MutexGuard<'_, Table> {
        #[cfg(test)]
        self.locks.fetch_add(1, Ordering::Relaxed);
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `at` as a `locked_until_max` value (never 0).
    fn ticks(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1
    }

    /// Whether some address may be locked out (with keys, whether a request
    /// must be checked with [`IpLimits::admit`] at all). One atomic load
    /// while no lockout is in force; reads the clock only while one may be.
    pub fn any_locked_out(&self) -> bool {
        let until = self.locked_until_max.load(Ordering::Relaxed);
        until != 0 && self.still_locked(until, Instant::now())
    }

    /// Whether `until` (a `locked_until_max` value) is still ahead of `now`;
    /// once it is not, forgets it (unless a later lockout replaced it).
    fn still_locked(&self, until: u64, now: Instant) -> bool {
        if self.ticks(now) < until {
            return true;
        }
        let _ =
            self.locked_until_max
                .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
        false
    }

    /// Before a data-plane request is served: refused when `ip` is locked
    /// out, or, `open` (`auth = "none"`), over its request rate (which this
    /// request then counts against).
    pub fn admit(
        &self,
        cfg: &IpLimitConfig,
        ip: IpAddr,
        open: bool,
        now: Instant,
    ) -> Result<(), Refused> {
        let rate = cfg.requests_per_minute.filter(|_| open);
        if rate.is_none() {
            let until = self.locked_until_max.load(Ordering::Relaxed);
            if until == 0 || !self.still_locked(until, now) {
                return Ok(());
            }
        }
        let ip = bucket(ip);
        let mut table = self.lock();
        match rate {
            None => match table.get(&ip) {
                Some(e) => locked(e, now),
                None => Ok(()),
            },
            Some(per_minute) => {
                let e = table.get_or_insert(ip, cfg.table_size);
                locked(e, now).and_then(|()| {
                    match e.requests.take(self.ticks(now), per_minute, 1) {
                        Ok(_) => Ok(()),
                        Err(denied) => Err(Refused {
                            reason: Reason::Requests,
                            retry_after: match denied {
                                Denied::Wait { retry_after, .. } => retry_after,
                                Denied::TooLarge => interval(per_minute),
                            },
                        }),
                    }
                })
            }
        }
    }

    /// A wrong key from `ip`. Returns the lockout it starts, if this failure
    /// emptied the address's bucket.
    pub fn failed(&self, cfg: &IpLimitConfig, ip: IpAddr, now: Instant) -> Option<Duration> {
        let ip = bucket(ip);
        let ticks = self.ticks(now);
        let mut table = self.lock();
        table.sweep(ticks, now, cfg.lockout_max);
        let e = table.get_or_insert(ip, cfg.table_size);
        if e.last_failure.is_some_and(|t| now >= t + cfg.lockout_max) {
            e.strikes = 0;
        }
        e.last_failure = Some(now);
        let per_minute = cfg.auth_failures_per_minute;
        let t = interval(per_minute);
        // Every failure counts, in the budget or beyond it.
        e.failures.adjust(ticks, per_minute, 1);
        let empty = e.failures.peek(ticks, per_minute).remaining == 0;
        // Empty, or locked out before and not calm since: locked out (again).
        let lockout = (empty || e.strikes > 0).then(|| {
            let grown = t.saturating_mul(1u32 << e.strikes.min(20));
            e.strikes = e.strikes.saturating_add(1);
            let lockout = grown.min(cfg.lockout_max);
            e.locked_until = Some(now + lockout);
            lockout
        });
        if let Some(lockout) = lockout {
            self.locked_until_max
                .fetch_max(self.ticks(now + lockout), Ordering::Relaxed);
        }
        lockout
    }
}

fn locked(e: &Entry, now: Instant) -> Result<(), Refused> {
    match e.locked_until {
        Some(until) if until > now => Err(Refused {
            reason: Reason::AuthFailures,
            retry_after: until - now,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cfg() -> IpLimitConfig {
        IpLimitConfig {
            trusted_proxies: vec![
                Cidr::parse("10.0.0.0/8").unwrap(),
                Cidr::parse("127.0.0.1").unwrap(),
            ],
            requests_per_minute: Some(3),
            auth_failures_per_minute: 3,
            lockout_max: Duration::from_secs(100),
            table_size: 4,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn client_ip_believes_only_trusted_proxies() {
        let c = cfg();
        let peer = |s: &str| SocketAddr::new(ip(s), 1);
        let h = xff(&["1.1.1.1, 2.2.2.2, 10.0.0.2"]);
        // From a trusted proxy: the right-most untrusted hop.
        assert_eq!(
            client_ip(peer("127.0.0.1"), &h, &c.trusted_proxies),
            ip("2.2.2.2")
        );
        // Over several header lines, the last line's hops come first.
        let h2 = xff(&["9.9.9.9", "10.1.1.1"]);
        assert_eq!(
            client_ip(peer("10.0.0.1"), &h2, &c.trusted_proxies),
            ip("9.9.9.9")
        );
        // From anyone else the header is ignored.
        assert_eq!(
            client_ip(peer("5.5.5.5"), &h, &c.trusted_proxies),
            ip("5.5.5.5")
        );
        assert_eq!(client_ip(peer("127.0.0.1"), &h, &[]), ip("127.0.0.1"));
        // Garbage: the last trusted hop; none: the peer.
        let bad = xff(&["1.1.1.1, nonsense, 10.0.0.3"]);
        assert_eq!(
            client_ip(peer("127.0.0.1"), &bad, &c.trusted_proxies),
            ip("10.0.0.3")
        );
        assert_eq!(
            client_ip(peer("127.0.0.1"), &HeaderMap::new(), &c.trusted_proxies),
            ip("127.0.0.1")
        );
        // IPv4-mapped peers count as IPv4.
        assert_eq!(
            client_ip(peer("::ffff:127.0.0.1"), &h, &c.trusted_proxies),
            ip("2.2.2.2")
        );
        assert!(Cidr::parse("::1/129").is_none() && Cidr::parse("1.2.3.4/33").is_none());
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!Cidr::parse("10.0.0.0/8").unwrap().contains(ip("11.0.0.1")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_lock_out_with_growing_lockouts() {
        let (c, l) = (cfg(), IpLimits::default());
        let (a, b) = (ip("1.1.1.1"), ip("2.2.2.2"));
        let now = Instant::now();
        assert!(!l.any_locked_out());
        assert_eq!(l.failed(&c, a, now), None);
        assert_eq!(l.failed(&c, a, now), None);
        // Failures on record, no lockout: still nothing to check.
        assert!(!l.any_locked_out());
        // The third empties the bucket: 20 s (a minute / 3).
        assert_eq!(l.failed(&c, a, now), Some(Duration::from_secs(20)));
        assert!(l.any_locked_out());
        let refused = l.admit(&c, a, false, now).unwrap_err();
        assert_eq!(refused.reason, Reason::AuthFailures);
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        assert_eq!(refused.into_error().status, 429);
        assert_eq!(refused.into_error().code, Some("rate_limit_exceeded"));
        // Another address is not affected.
        assert!(l.admit(&c, b, false, now).is_ok());
        // After the lockout, one more wrong key locks it again, for twice as long.
        let later = now + Duration::from_secs(20);
        assert!(l.admit(&c, a, false, later).is_ok());
        assert_eq!(l.failed(&c, a, later), Some(Duration::from_secs(40)));
        let later = later + Duration::from_secs(40);
        assert_eq!(l.failed(&c, a, later), Some(Duration::from_secs(80)));
        let later = later + Duration::from_secs(80);
        // Capped by lockout_max.
        assert_eq!(l.failed(&c, a, later), Some(Duration::from_secs(100)));
        // Calm for lockout_max: back to the start.
        let later = later + Duration::from_secs(400);
        assert_eq!(l.failed(&c, a, later), None);
        // At rest, swept by the next failure (from another address).
        let later = later + Duration::from_secs(400);
        assert_eq!(l.failed(&c, b, later), None);
        assert_eq!(l.lock().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_lockout_in_force_the_table_is_not_consulted() {
        let (c, l) = (cfg(), IpLimits::default());
        let a = ip("1.1.1.1");
        let start = Instant::now();
        for _ in 0..2 {
            assert_eq!(l.failed(&c, a, start), None);
        }
        // Failures on record but nobody locked out: admit takes no lock.
        let locks = || l.locks.load(Ordering::Relaxed);
        let before = locks();
        assert!(!l.any_locked_out());
        assert!(l.admit(&c, a, false, start).is_ok());
        assert_eq!(locks(), before);
        assert!(l.failed(&c, a, start).is_some());
        assert!(l.any_locked_out());
        assert!(l.admit(&c, a, false, start).is_err());
        // Once the lockout has ended, the first check notices and resets.
        tokio::time::advance(Duration::from_secs(21)).await;
        assert!(!l.any_locked_out());
        assert_eq!(l.locked_until_max.load(Ordering::Relaxed), 0);
        let before = locks();
        assert!(l.admit(&c, a, false, Instant::now()).is_ok());
        assert_eq!(locks(), before);
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_clients_count_per_slash_64() {
        let (c, l) = (cfg(), IpLimits::default());
        let now = Instant::now();
        // Three wrong keys from three addresses of one /64: locked out.
        assert_eq!(l.failed(&c, ip("2001:db8:1:2::1"), now), None);
        assert_eq!(l.failed(&c, ip("2001:db8:1:2::2"), now), None);
        assert!(l.failed(&c, ip("2001:db8:1:2:ffff::3"), now).is_some());
        assert!(l.admit(&c, ip("2001:db8:1:2:abcd::9"), false, now).is_err());
        // The next /64 is another client.
        assert!(l.admit(&c, ip("2001:db8:1:3::1"), false, now).is_ok());
        // IPv4 counts per address.
        assert_eq!(bucket(ip("1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(bucket(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(bucket(ip("2001:db8::1:2:3:4")), ip("2001:db8::"));
        // The open data plane's rate too.
        for i in 0..3 {
            let a = IpAddr::from([0x2001, 0xdb8, 9, 9, 0, 0, 0, i]);
            assert!(l.admit(&c, a, true, now).is_ok());
        }
        assert!(l.admit(&c, ip("2001:db8:9:9::ff"), true, now).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn open_data_plane_is_rate_limited_per_ip() {
        let (c, l) = (cfg(), IpLimits::default());
        let (a, b) = (ip("1.1.1.1"), ip("2.2.2.2"));
        let now = Instant::now();
        for _ in 0..3 {
            assert!(l.admit(&c, a, true, now).is_ok());
        }
        let refused = l.admit(&c, a, true, now).unwrap_err();
        assert_eq!(refused.reason, Reason::Requests);
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        assert!(l.admit(&c, b, true, now).is_ok());
        assert!(l.admit(&c, a, true, now + Duration::from_secs(20)).is_ok());
        // With keys (not open) the request rate does not apply.
        assert!(l.admit(&c, a, false, now).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_bounded() {
        let (c, l) = (cfg(), IpLimits::default());
        let now = Instant::now();
        for i in 0..1000u32 {
            let _ = l.admit(&c, IpAddr::from(i.to_be_bytes()), true, now);
            assert!(l.lock().len() <= c.table_size);
        }
        // The most recent addresses are still known.
        let last = IpAddr::from(999u32.to_be_bytes());
        for _ in 0..2 {
            assert!(l.admit(&c, last, true, now).is_ok());
        }
        assert!(l.admit(&c, last, true, now).is_err());
    }
}
