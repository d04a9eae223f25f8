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

    /// How long the attempt must still wait, if at all.
    pub(crate) fn wait(
        &self,
        account: &str,
        client: Option<IpAddr>,
        now: Instant,
    ) -> Option<Duration> {
        let failures = self.failures.lock().expect("lock");
        Self::keys(account, client)
            .iter()
            .filter_map(|k| failures.get(k))
            .map(|f| f.blocked_until.saturating_duration_since(now))
            .filter(|d| !d.is_zero())
            .max()
    }

    /// Counts a failed attempt; returns how long the next one must wait.
    pub(crate) fn failed(&self, account: &str, client: Option<IpAddr>, now: Instant) -> Duration {
        let mut failures = self.failures.lock().expect("lock");
        if failures.len() >= MAX_KEYS {
            self.prune(&mut failures, now);
        }
        let mut longest = Duration::ZERO;
        for key in Self::keys(account, client) {
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
            let delay = self.delay(f.count);
            f.blocked_until = now + delay;
            longest = longest.max(delay);
        }
        longest
    }

    /// Clears an account's failures after it signed in.
    pub(crate) fn succeeded(&self, account: &str) {
        self.failures
            .lock()
            .expect("lock")
            .remove(&Key::Account(account.to_owned()));
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

    #[test]
    fn waits_double_past_the_free_attempts_up_to_the_ceiling() {
        let t = throttle();
        let now = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let waits: Vec<u64> = (0..10)
            .map(|_| t.failed("alice", Some(ip), now).as_secs())
            .collect();
        assert_eq!(waits, [0, 0, 0, 1, 2, 4, 8, 16, 32, 60]);
        assert_eq!(t.wait("alice", None, now), Some(Duration::from_secs(60)));
        // Another account from the same address waits too; the same account from
        // elsewhere as well.
        assert!(t.wait("bob", Some(ip), now).is_some());
        assert!(
            t.wait("alice", Some("198.51.100.1".parse().unwrap()), now)
                .is_some()
        );
        assert_eq!(t.wait("alice", None, now + Duration::from_secs(61)), None);
    }

    #[test]
    fn a_success_clears_the_account_not_the_address() {
        let t = throttle();
        let now = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..5 {
            t.failed("mallory", Some(ip), now);
        }
        t.succeeded("mallory");
        assert_eq!(t.wait("mallory", None, now), None);
        assert!(t.wait("mallory", Some(ip), now).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_by_network() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..5u16 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, i));
            t.failed(&format!("user{i}"), Some(ip), now);
        }
        let other_host = "2001:db8:1:2::ffff".parse().unwrap();
        assert!(t.wait("someone", Some(other_host), now).is_some());
        let other_net = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(t.wait("someone", Some(other_net), now), None);
    }

    #[test]
    fn old_failures_are_forgotten() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..6 {
            t.failed("carol", None, now);
        }
        let later = now + Duration::from_secs(200);
        assert_eq!(t.failed("carol", None, later), Duration::ZERO);
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
