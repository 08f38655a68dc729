//! What stands between a guesser and the accounts: rate limits and failure back-off on log-in,
//! password change and token issuance, and password verification that costs the same whether
//! or not the account exists.
//!
//! - Every log-in attempt from a client address draws on a token bucket (governor); so does
//!   every token issued, per account and per address. A request beyond the bucket is refused
//!   before any database or argon2 work.
//! - Failed log-ins back off per account (the e-mail given, whether or not an account has it,
//!   so the answer says nothing about which exist) and per client address
//!   ([`LoginBackoff`]): after the free failures, every attempt is refused for a delay that
//!   doubles with each further failure. A refusal is 429 with `Retry-After`, also for the
//!   right password.
//! - A log-in for an unknown e-mail, a disabled account or one without a password verifies the
//!   password against a dummy argon2 hash made with the same parameters, so each answer takes
//!   the time of one argon2 verification. At most one verification per core runs at once.
//!
//! The state is this process's memory: several servers behind a load balancer each keep their
//! own, and a restart forgets it. IPv6 clients are keyed by their /64, the block one
//! subscriber usually holds.

use chronicle_domain::accounts::LoginBackoff;
use chronicle_domain::sync::lock;
use chronicle_storage::credentials::{hash_password, random_secret, verify_password};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use uuid::Uuid;

const fn nonzero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => panic!("a quota needs a positive number"),
    }
}

/// Log-in attempts per client address: 30 at once, then one a second.
const LOGIN_ATTEMPTS_PER_ADDRESS: Quota = Quota::per_second(nonzero(1)).allow_burst(nonzero(30));
/// API tokens issued per account: 10 at once, then one a minute.
const TOKENS_PER_ACCOUNT: Quota = Quota::per_minute(nonzero(1)).allow_burst(nonzero(10));
/// API tokens issued per client address: 20 at once, then one every 6 seconds.
const TOKENS_PER_ADDRESS: Quota = Quota::per_minute(nonzero(10)).allow_burst(nonzero(20));

/// Past this many remembered keys, forgotten ones are dropped on the next failure.
const PRUNE_ABOVE_KEYS: usize = 10_000;

/// A client as the limits see it: its address (an IPv6 client's /64), or, when the server
/// does not know the address (a router driven without a listener), one shared key.
type ClientKey = Option<IpAddr>;

fn client_key(address: Option<IpAddr>) -> ClientKey {
    address.map(|a| match a {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
        v4 => v4,
    })
}

/// The account key of an e-mail given at log-in: compared as the database does.
fn account_key(email: &str) -> String {
    // The database compares lower(email); a very long string still names one key.
    email.chars().take(320).collect::<String>().to_lowercase()
}

/// Refused for now; try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Consecutive failures per key and the lock they earned.
struct FailureLedger<K> {
    backoff: LoginBackoff,
    entries: HashMap<K, Failures>,
}

impl<K: Hash + Eq + Clone> FailureLedger<K> {
    fn new(backoff: LoginBackoff) -> Self {
        FailureLedger {
            backoff,
            entries: HashMap::new(),
        }
    }

    fn current(&mut self, key: &K, now: Instant) -> Option<&mut Failures> {
        let forget_after = self.backoff.forget_after;
        let stale = self.entries.get(key).is_some_and(|f| {
            now.duration_since(f.last) > forget_after && f.locked_until.is_none_or(|u| u <= now)
        });
        if stale {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    /// How much longer `key` is locked, if it is.
    fn locked_for(&mut self, key: &K, now: Instant) -> Option<Duration> {
        let until = self.current(key, now)?.locked_until?;
        (until > now).then(|| until - now)
    }

    fn fail(&mut self, key: K, now: Instant) {
        if self.entries.len() > PRUNE_ABOVE_KEYS {
            let forget_after = self.backoff.forget_after;
            self.entries.retain(|_, f| {
                now.duration_since(f.last) <= forget_after
                    || f.locked_until.is_some_and(|u| u > now)
            });
        }
        let count = self.current(&key, now).map_or(0, |f| f.count) + 1;
        let locked_until = self.backoff.delay_after(count).map(|d| now + d);
        self.entries.insert(
            key,
            Failures {
                count,
                last: now,
                locked_until,
            },
        );
    }

    fn forget(&mut self, key: &K) {
        self.entries.remove(key);
    }
}

/// The guard's counters, on `/metrics`.
#[derive(Clone, Default)]
struct GuardMetrics {
    password_verifications: Counter,
    throttled: Counter,
}

/// Rate limits, failure back-off and password verification for the account endpoints.
pub struct LoginGuard {
    attempts_per_address: DefaultKeyedRateLimiter<ClientKey>,
    tokens_per_account: DefaultKeyedRateLimiter<Uuid>,
    tokens_per_address: DefaultKeyedRateLimiter<ClientKey>,
    account_failures: Mutex<FailureLedger<String>>,
    address_failures: Mutex<FailureLedger<ClientKey>>,
    verifications: Arc<Semaphore>,
    /// The hash a log-in without a real one is verified against (made on first use).
    dummy_hash: Arc<OnceLock<String>>,
    metrics: GuardMetrics,
}

impl LoginGuard {
    /// A guard whose counters are registered in `registry`.
    pub fn new(registry: &mut Registry) -> LoginGuard {
        let metrics = GuardMetrics::default();
        registry.register(
            "chronicle_password_verifications",
            "Password verifications (argon2), real or against the dummy hash",
            metrics.password_verifications.clone(),
        );
        registry.register(
            "chronicle_authentication_throttled",
            "Log-in, password change and token requests refused by rate limit or back-off",
            metrics.throttled.clone(),
        );
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        LoginGuard {
            attempts_per_address: RateLimiter::keyed(LOGIN_ATTEMPTS_PER_ADDRESS),
            tokens_per_account: RateLimiter::keyed(TOKENS_PER_ACCOUNT),
            tokens_per_address: RateLimiter::keyed(TOKENS_PER_ADDRESS),
            account_failures: Mutex::new(FailureLedger::new(LoginBackoff::PER_ACCOUNT)),
            address_failures: Mutex::new(FailureLedger::new(LoginBackoff::PER_ADDRESS)),
            verifications: Arc::new(Semaphore::new(cores)),
            dummy_hash: Arc::new(OnceLock::new()),
            metrics,
        }
    }

    fn throttled(&self, retry_after: Duration) -> Throttled {
        self.metrics.throttled.inc();
        Throttled { retry_after }
    }

    fn check_bucket<K: Hash + Eq + Clone>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), Throttled> {
        if limiter.len() > PRUNE_ABOVE_KEYS {
            limiter.retain_recent();
        }
        limiter
            .check_key(key)
            .map_err(|not_until| self.throttled(not_until.wait_time_from(limiter.clock().now())))
    }

    /// Whether an attempt to authenticate as `email` from `address` may go ahead: it draws on
    /// the address's bucket and must find neither the account nor the address locked.
    pub fn check_attempt(&self, email: &str, address: Option<IpAddr>) -> Result<(), Throttled> {
        let client = client_key(address);
        self.check_bucket(&self.attempts_per_address, &client)?;
        let now = Instant::now();
        let locks = [
            lock(&self.account_failures).locked_for(&account_key(email), now),
            lock(&self.address_failures).locked_for(&client, now),
        ];
        match locks.into_iter().flatten().max() {
            Some(wait) => Err(self.throttled(wait)),
            None => Ok(()),
        }
    }

    /// A failed attempt: counts towards both back-offs.
    pub fn failed(&self, email: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        lock(&self.account_failures).fail(account_key(email), now);
        lock(&self.address_failures).fail(client_key(address), now);
    }

    /// A successful log-in: the account's failures are forgotten (the address's are not, so
    /// logging in to one's own account does not reset a spraying count).
    pub fn succeeded(&self, email: &str) {
        lock(&self.account_failures).forget(&account_key(email));
    }

    /// Whether `user_id` may be issued a token from `address` now.
    pub fn check_token_issue(
        &self,
        user_id: Uuid,
        address: Option<IpAddr>,
    ) -> Result<(), Throttled> {
        self.check_bucket(&self.tokens_per_address, &client_key(address))?;
        self.check_bucket(&self.tokens_per_account, &user_id)
    }

    /// Whether `password` matches `hash`; without a hash it is verified against the dummy
    /// hash, which takes the same time and never matches.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        // Closed never: the semaphore lives as long as the guard.
        let _permit = self.verifications.clone().acquire_owned().await.ok();
        self.metrics.password_verifications.inc();
        let dummy = self.dummy_hash.clone();
        tokio::task::spawn_blocking(move || match hash {
            Some(hash) => verify_password(&password, &hash),
            None => {
                let dummy = dummy.get_or_init(|| {
                    hash_password(&random_secret(32)).unwrap_or_else(|error| {
                        // Never expected; a malformed dummy would still cost no argon2 run,
                        // so say so.
                        tracing::error!(%error, "cannot make the dummy password hash");
                        String::new()
                    })
                });
                verify_password(&password, dummy);
                false
            }
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("address");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("address");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("address");
        assert_eq!(client_key(Some(a)), client_key(Some(b)));
        assert_ne!(client_key(Some(a)), client_key(Some(other)));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("address");
        assert_eq!(
            client_key(Some(mapped)),
            Some("192.0.2.7".parse().expect("address"))
        );
    }

    #[test]
    fn failures_lock_after_the_free_ones_and_are_forgotten_on_success() {
        let mut ledger = FailureLedger::new(LoginBackoff::PER_ACCOUNT);
        let now = Instant::now();
        for _ in 0..4 {
            ledger.fail("pat@example.org".to_owned(), now);
        }
        assert_eq!(ledger.locked_for(&"pat@example.org".to_owned(), now), None);
        ledger.fail("pat@example.org".to_owned(), now);
        assert_eq!(
            ledger.locked_for(&"pat@example.org".to_owned(), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            ledger.locked_for(&"pat@example.org".to_owned(), now + Duration::from_secs(31)),
            None
        );
        ledger.forget(&"pat@example.org".to_owned());
        ledger.fail("pat@example.org".to_owned(), now);
        assert_eq!(ledger.locked_for(&"pat@example.org".to_owned(), now), None);
    }

    #[test]
    fn failures_are_forgotten_an_hour_after_the_last() {
        let mut ledger = FailureLedger::new(LoginBackoff::PER_ACCOUNT);
        let start = Instant::now();
        for _ in 0..4 {
            ledger.fail("k".to_owned(), start);
        }
        let later = start + Duration::from_secs(2 * 60 * 60);
        ledger.fail("k".to_owned(), later);
        assert_eq!(
            ledger.locked_for(&"k".to_owned(), later),
            None,
            "counted afresh"
        );
    }
}
