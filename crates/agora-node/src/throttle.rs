//! Sign-in that withstands guessing: failures counted per account name and per client
//! address, each further attempt past the free ones made to wait twice as long as the one
//! before (from one second up to a ceiling); and password hashing on a fixed number of
//! workers with a bounded queue, so a flood of attempts costs a bounded amount of memory
//! and threads.
//!
//! Unknown account names are counted like known ones, so throttling does not tell which
//! names exist. A success clears its account's failures, not its address's: an attacker
//! with one account of its own cannot use it to reset the count of the address it guesses
//! other accounts from. IPv6 clients are counted by their /64 network, which one host
//! usually holds whole.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::settings::SignInLimits;

/// What failures are counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

/// An address as counted: IPv4 whole, IPv6 by its /64 network.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    /// No attempt is checked before this.
    blocked_until: Instant,
}

/// The most keys kept; past it, forgotten ones are pruned first and then the oldest.
const MAX_KEYS: usize = 100_000;

/// The failure counts of one node.
#[derive(Debug)]
pub(crate) struct Throttle {
    limits: SignInLimits,
    failures: Mutex<HashMap<Key, Failures>>,
}

impl Throttle {
    pub(crate) fn new(limits: SignInLimits) -> Self {
        Self {
            limits,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(account: &str, client: Option<IpAddr>) -> Vec<Key> {
        let mut keys = vec![Key::Account(account.to_owned())];
        keys.extend(client.map(|ip| Key::Address(network(ip))));
        keys
    }

    /// Admits an attempt unless recent failures for the account or from the address make
    /// it wait (returned). An admitted attempt is counted as a failure at once, so that
    /// attempts arriving together are throttled too; [`Throttle::succeeded`] takes the
    /// count back.
    pub(crate) fn begin(
        &self,
        account: &str,
        client: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut failures = self.failures.lock().expect("lock");
        let keys = Self::keys(account, client);
        let wait = keys
            .iter()
            .filter_map(|k| failures.get(k))
            .map(|f| f.blocked_until.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if !wait.is_zero() {
            return Err(wait);
        }
        if failures.len() >= MAX_KEYS {
            self.prune(&mut failures, now);
        }
        for key in keys {
            let f = failures.entry(key).or_insert(Failures {
                count: 0,
                last: now,
                blocked_until: now,
            });
            // Failures long past are forgotten: the count starts again.
            if now.saturating_duration_since(f.last) > self.limits.max_delay * 2 {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
            f.blocked_until = now + self.delay(f.count);
        }
        Ok(())
    }

    /// The attempt succeeded: the account's failures are cleared and the address's count
    /// taken back by this attempt (not cleared: an attacker with an account of its own
    /// cannot reset the count of the address it guesses other accounts from).
    pub(crate) fn succeeded(&self, account: &str, client: Option<IpAddr>, now: Instant) {
        let mut failures = self.failures.lock().expect("lock");
        failures.remove(&Key::Account(account.to_owned()));
        if let Some(ip) = client
            && let Some(f) = failures.get_mut(&Key::Address(network(ip)))
        {
            f.count = f.count.saturating_sub(1);
            f.blocked_until = f.last + self.delay(f.count);
            if f.count == 0 && f.blocked_until <= now {
                failures.remove(&Key::Address(network(ip)));
            }
        }
    }

    /// The wait after `count` failures: none for the free ones, then 1 s, 2 s, 4 s … up to
    /// the ceiling.
    fn delay(&self, count: u32) -> Duration {
        let past = count.saturating_sub(self.limits.free_attempts);
        if past == 0 {
            return Duration::ZERO;
        }
        let secs = 1u64.checked_shl(past - 1).unwrap_or(u64::MAX);
        Duration::from_secs(secs).min(self.limits.max_delay)
    }

    fn prune(&self, failures: &mut HashMap<Key, Failures>, now: Instant) {
        let forget = self.limits.max_delay * 2;
        failures.retain(|_, f| now.saturating_duration_since(f.last) <= forget);
        while failures.len() >= MAX_KEYS {
            let oldest = failures
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => failures.remove(&k),
                None => break,
            };
        }
    }
}

/// Password hashing on a fixed number of workers, with a bounded queue.
#[derive(Debug)]
pub(crate) struct Hashing {
    workers: Semaphore,
    queue: usize,
    waiting: AtomicUsize,
}

/// The hashing queue is full.
#[derive(Debug)]
pub(crate) struct Busy;

impl Hashing {
    pub(crate) fn new(limits: &SignInLimits) -> Self {
        Self {
            workers: Semaphore::new(limits.hashing_workers),
            queue: limits.hashing_queue,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Runs `f` on a hashing worker, waiting in the queue for one; `Busy` at once when the
    /// queue is full.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit = match self.workers.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
                let _leave = Leave(&self.waiting);
                if queued >= self.queue {
                    return Err(Busy);
                }
                self.workers.acquire().await.map_err(|_| Busy)?
            }
        };
        let out = tokio::task::spawn_blocking(f)
            .await
            .expect("password hashing does not panic");
        drop(permit);
        Ok(out)
    }
}

/// Leaves the queue when dropped (also when the waiting attempt is abandoned).
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(SignInLimits {
            free_attempts: 3,
            max_delay: Duration::from_secs(60),
            ..SignInLimits::default()
        })
    }

    /// Attempts until one is told to wait: how many were admitted.
    fn admitted(t: &Throttle, account: &str, ip: Option<IpAddr>, now: Instant) -> usize {
        (0..100)
            .take_while(|_| t.begin(account, ip, now).is_ok())
            .count()
    }

    #[test]
    fn waits_double_past_the_free_attempts_up_to_the_ceiling() {
        let t = throttle();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mut now = Instant::now();
        // Three free attempts and a fourth that sets the first wait, all at once.
        assert_eq!(admitted(&t, "alice", Some(ip), now), 4);
        let mut waits = Vec::new();
        for _ in 0..8 {
            let wait = t.begin("alice", Some(ip), now).unwrap_err();
            waits.push(wait.as_secs());
            now += wait;
            t.begin("alice", Some(ip), now).unwrap();
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        // Another account from the same address waits too; the same account from
        // elsewhere as well.
        assert!(t.begin("bob", Some(ip), now).is_err());
        assert!(
            t.begin("alice", Some("198.51.100.1".parse().unwrap()), now)
                .is_err()
        );
        assert!(
            t.begin("alice", None, now + Duration::from_secs(61))
                .is_ok()
        );
    }

    #[test]
    fn a_success_clears_the_account_and_takes_back_only_its_own_count() {
        let t = throttle();
        let now = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        // Many people signing in from one office address: successes never add up.
        for i in 0..20 {
            t.begin(&format!("user{i}"), Some(ip), now).unwrap();
            t.succeeded(&format!("user{i}"), Some(ip), now);
        }
        // Guesses from it do, and a success of the guesser's own account does not
        // reset them.
        assert_eq!(admitted(&t, "victim", Some(ip), now), 4);
        assert!(t.begin("mallory", Some(ip), now).is_err());
        let later = now + Duration::from_secs(1);
        t.begin("mallory", Some(ip), later).unwrap();
        t.succeeded("mallory", Some(ip), later);
        assert!(t.begin("victim", Some(ip), later).is_err());
        // The account signed in to is cleared.
        assert!(t.begin("mallory", None, later).is_ok());
    }

    #[test]
    fn ipv6_clients_are_counted_by_network() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..5u16 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, i));
            let _ = t.begin(&format!("user{i}"), Some(ip), now);
        }
        let other_host = "2001:db8:1:2::ffff".parse().unwrap();
        assert!(t.begin("someone", Some(other_host), now).is_err());
        let other_net = "2001:db8:1:3::1".parse().unwrap();
        assert!(t.begin("someone", Some(other_net), now).is_ok());
    }

    #[test]
    fn old_failures_are_forgotten() {
        let t = throttle();
        let now = Instant::now();
        assert_eq!(admitted(&t, "carol", None, now), 4);
        let later = now + Duration::from_secs(200);
        assert_eq!(admitted(&t, "carol", None, later), 4);
    }

    #[tokio::test]
    async fn a_full_hashing_queue_refuses_at_once() {
        let h = std::sync::Arc::new(Hashing::new(&SignInLimits {
            hashing_workers: 1,
            hashing_queue: 1,
            ..SignInLimits::default()
        }));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let first = {
            let h = h.clone();
            tokio::spawn(async move { h.run(move || rx.recv().ok()).await.is_ok() })
        };
        while h.workers.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let second = {
            let h = h.clone();
            tokio::spawn(async move { h.run(|| ()).await.is_ok() })
        };
        while h.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(
            h.run(|| ()).await.is_err(),
            "the third waits beyond the queue"
        );
        tx.send(()).unwrap();
        assert!(first.await.unwrap());
        assert!(second.await.unwrap());
        assert_eq!(h.waiting.load(Ordering::Acquire), 0);
    }
}
