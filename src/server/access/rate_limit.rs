//! Rate limits with `governor`: one budget per API key, and one per client
//! address for requests without a valid key.
//!
//! Keys are few (they are configured); addresses are not, so their state is
//! held in a [`Capped`] store: at most `max_clients` addresses, and idle ones
//! are forgotten by [`Limiter::upkeep`].

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::keys::KeyId;
use super::settings::RateLimit;

/// Whom a request's budget belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// A configured API key.
    Key(KeyId),
    /// A client address (an IPv6 address stands for its /64 network).
    Address(IpAddr),
    /// Every new address while `max_clients` addresses are tracked.
    Overflow,
}

/// The address a request comes from: the peer's, or the first entry of
/// `X-Forwarded-For` when the proxy in front is trusted to set it.
pub fn client_address(peer: SocketAddr, headers: &HeaderMap, trust_forwarded_for: bool) -> IpAddr {
    let forwarded = trust_forwarded_for
        .then(|| headers.get("x-forwarded-for")?.to_str().ok())
        .flatten()
        .and_then(|value| value.split(',').next())
        .and_then(|first| first.trim().parse::<IpAddr>().ok());
    forwarded.unwrap_or(peer.ip()).to_canonical()
}

/// The unit an address is limited as: an IPv6 host usually owns a whole /64,
/// so each of its addresses would otherwise get a budget of its own.
fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !(u128::MAX >> 64);
            IpAddr::V6(bits.into())
        }
    }
}

/// A request over its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// How long until the next request would be allowed.
    pub retry_after: Duration,
}

/// The per-key and per-address limiters of one server instance.
pub struct Limiter {
    /// The limit they apply.
    limit: RateLimit,
    /// One budget per configured key.
    keys: DefaultKeyedRateLimiter<KeyId>,
    /// One budget per client address, at most `max_clients` of them.
    addresses: RateLimiter<Client, Capped, DefaultClock>,
    /// The clock both use.
    clock: DefaultClock,
}

impl Limiter {
    /// Limiters for `limit`.
    pub fn new(limit: RateLimit) -> Self {
        let quota = quota(limit);
        let clock = DefaultClock::default();
        Self {
            limit,
            keys: RateLimiter::dashmap_with_clock(quota, clock.clone()),
            addresses: RateLimiter::new(quota, Capped::new(limit.max_clients), clock.clone()),
            clock,
        }
    }

    /// The limit applied.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one request from `client`'s budget.
    pub fn check(&self, client: Client) -> Result<(), Limited> {
        let outcome = match client {
            Client::Key(id) => self.keys.check_key(&id),
            Client::Address(address) => {
                self.addresses.check_key(&Client::Address(network(address)))
            }
            Client::Overflow => self.addresses.check_key(&Client::Overflow),
        };
        outcome.map_err(|not_until| Limited {
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }

    /// Forgets the addresses whose budget is full again (they are
    /// indistinguishable from new ones) and gives the memory back.
    pub fn upkeep(&self) {
        self.addresses.retain_recent();
        self.addresses.shrink_to_fit();
    }

    /// How many client addresses are tracked (the overflow budget included).
    pub fn tracked_addresses(&self) -> usize {
        self.addresses.len()
    }
}

/// `per_minute` requests a minute, `burst` at once.
fn quota(limit: RateLimit) -> Quota {
    let per_request = Duration::from_secs(60) / limit.per_minute.get();
    Quota::with_period(per_request)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(limit.burst)
}

/// A `DashMap` state store that holds at most `cap` clients: once full, a
/// client it does not know is counted against [`Client::Overflow`] instead of
/// getting an entry, so memory stays bounded however many addresses call.
pub struct Capped {
    /// The budgets.
    map: DashMapStateStore<Client>,
    /// Most entries besides the overflow budget.
    cap: usize,
}

impl Capped {
    fn new(cap: usize) -> Self {
        Self {
            map: DashMapStateStore::default(),
            cap,
        }
    }
}

impl StateStore for Capped {
    type Key = Client;

    fn measure_and_replace<T, F, E>(&self, key: &Client, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let full = self.map.len() >= self.cap && !self.map.contains_key(key);
        let key = if full { &Client::Overflow } else { key };
        self.map.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<Client> for Capped {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&self.map, drop_below);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use axum::http::HeaderValue;

    use super::*;

    fn limit(per_minute: u32, burst: u32, max_clients: usize) -> RateLimit {
        RateLimit {
            per_minute: NonZeroU32::new(per_minute).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
            max_clients,
        }
    }

    fn address(n: u32) -> Client {
        Client::Address(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)))
    }

    #[test]
    fn a_burst_is_allowed_then_the_client_waits_about_one_period() {
        let limiter = Limiter::new(limit(60, 2, 10));
        assert!(limiter.check(address(1)).is_ok());
        assert!(limiter.check(address(1)).is_ok());
        let limited = limiter.check(address(1)).unwrap_err();
        assert!(
            limited.retry_after > Duration::ZERO && limited.retry_after <= Duration::from_secs(1),
            "{limited:?}"
        );
        assert!(limiter.check(address(2)).is_ok(), "budgets are per address");
        assert!(limiter.check(Client::Key(KeyId(0))).is_ok(), "and per key");
    }

    #[test]
    fn memory_stays_bounded_under_ten_thousand_distinct_addresses() {
        let limiter = Limiter::new(limit(1, 1, 100));
        for n in 0..10_000 {
            let _ = limiter.check(address(n));
        }
        // 100 addresses and the overflow budget the rest shared.
        assert_eq!(limiter.tracked_addresses(), 101);
        assert!(
            limiter.check(address(5)).is_err(),
            "a tracked address keeps its budget"
        );
        assert!(
            limiter.check(address(20_000)).is_err(),
            "new ones share the overflow budget"
        );
    }

    /// operations.md's memory bound: 32 bytes an entry, in tables that are at
    /// most about 2.3 times as large as their entries need, so 100,000
    /// addresses take under 8 MB.
    #[test]
    fn a_tracked_address_is_32_bytes_of_table() {
        assert_eq!(
            std::mem::size_of::<(Client, governor::state::InMemoryState)>(),
            32
        );
    }

    #[test]
    fn upkeep_forgets_addresses_whose_budget_is_full_again() {
        // 60,000 a minute: one request's budget comes back within a millisecond.
        let limiter = Limiter::new(limit(60_000, 1, 100));
        for n in 0..50 {
            limiter.check(address(n)).unwrap();
        }
        assert_eq!(limiter.tracked_addresses(), 50);
        std::thread::sleep(Duration::from_millis(5));
        limiter.upkeep();
        assert_eq!(limiter.tracked_addresses(), 0);
    }

    #[test]
    fn the_forwarded_address_counts_only_when_trusted() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.7, 10.0.0.1"),
        );
        assert_eq!(client_address(peer, &headers, false), peer.ip());
        assert_eq!(
            client_address(peer, &headers, true),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        headers.insert("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(client_address(peer, &headers, true), peer.ip());
    }

    #[test]
    fn an_ipv6_network_shares_one_budget() {
        let limiter = Limiter::new(limit(1, 1, 10));
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limiter.check(Client::Address(a)).is_ok());
        assert!(limiter.check(Client::Address(b)).is_err());
        assert!(limiter.check(Client::Address(other)).is_ok());
    }
}
