//! Time, as the engine sees it: real for hosts ([`SystemClock`]), virtual for tests
//! ([`ManualClock`]), and the saturating arithmetic on its instants that the engine and the
//! gates share ([`add`], [`elapsed`]). The types are also at the crate root.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// The source of time for the engine and for gates.
///
/// Core never reads the system clock or starts a timer by itself: everything time-dependent
/// goes through this trait, so tests run on [`ManualClock`] without sleeping.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
    /// A future that completes once `d` has passed on this clock.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
}

/// Wall-clock time with a runtime-agnostic timer (works under tokio, async-std, smol or a
/// plain `block_on`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(futures_timer::Delay::new(d))
    }
}

/// `at` plus the std duration `d`, saturating at the largest representable time instead of
/// panicking on overflow: a gate that waits on its [`Clock`] (an initial delay, a lookback)
/// can add a configured duration without checking its size.
///
/// ```
/// use std::time::Duration;
/// use chrono::{DateTime, Utc};
/// use promotion_core::clock::add;
///
/// let t0: DateTime<Utc> = "2026-11-26T09:00:00Z".parse()?;
/// assert_eq!(add(t0, Duration::from_secs(90)).to_rfc3339(), "2026-11-26T09:01:30+00:00");
/// assert_eq!(add(t0, Duration::MAX), DateTime::<Utc>::MAX_UTC);
/// # Ok::<(), chrono::ParseError>(())
/// ```
pub fn add(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The time from `earlier` to `later` as a std duration, zero when `later` is not after
/// `earlier`: how long to wait until an instant (a `retry_after`), never negative.
///
/// ```
/// use std::time::Duration;
/// use chrono::{DateTime, Utc};
/// use promotion_core::clock::elapsed;
///
/// let t0: DateTime<Utc> = "2026-11-26T09:00:00Z".parse()?;
/// let t1: DateTime<Utc> = "2026-11-26T09:00:05Z".parse()?;
/// assert_eq!(elapsed(t0, t1), Duration::from_secs(5));
/// assert_eq!(elapsed(t1, t0), Duration::ZERO);
/// # Ok::<(), chrono::ParseError>(())
/// ```
pub fn elapsed(earlier: DateTime<Utc>, later: DateTime<Utc>) -> Duration {
    (later - earlier).to_std().unwrap_or(Duration::ZERO)
}

/// A virtual clock for tests: time moves only when the test moves it.
///
/// [`sleep`](Clock::sleep) futures complete when [`advance`](ManualClock::advance) or
/// [`set`](ManualClock::set) reaches their deadline. In *auto-advance* mode the clock instead
/// jumps forward by itself, like tokio's paused time: a sleep registers its deadline when first
/// polled, and when polled again the clock moves to the earliest registered deadline. Sleeps
/// that run concurrently (the gates of one phase, a gate and its timeout) therefore overlap in
/// virtual time exactly as they would in real time, and a driver that sleeps until the next
/// event runs hours of virtual time in microseconds.
///
/// ```
/// use std::time::Duration;
/// use promotion_core::{Clock, ManualClock};
/// let clock = ManualClock::at("2026-11-26T09:00:00Z".parse().unwrap());
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(clock.now().to_rfc3339(), "2026-11-26T10:00:00+00:00");
/// ```
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualInner>>,
}

struct ManualInner {
    now: DateTime<Utc>,
    auto_advance: bool,
    wakers: Vec<Waker>,
    /// Deadlines of registered auto-advance sleeps, by sleep id.
    deadlines: std::collections::BTreeMap<u64, DateTime<Utc>>,
    next_id: u64,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("ManualClock")
            .field("now", &inner.now)
            .field("auto_advance", &inner.auto_advance)
            .finish()
    }
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn at(start: DateTime<Utc>) -> Self {
        ManualClock {
            inner: Arc::new(Mutex::new(ManualInner {
                now: start,
                auto_advance: false,
                wakers: Vec::new(),
                deadlines: std::collections::BTreeMap::new(),
                next_id: 0,
            })),
        }
    }

    /// A clock whose sleeps move it forward to their deadline immediately.
    pub fn auto_advancing(start: DateTime<Utc>) -> Self {
        let clock = Self::at(start);
        clock.lock().auto_advance = true;
        clock
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves time forward by `d` and wakes every sleeper whose deadline has come.
    pub fn advance(&self, d: Duration) {
        let wakers = {
            let mut inner = self.lock();
            inner.now = add(inner.now, d);
            std::mem::take(&mut inner.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Sets the time to `at` if it is later than now (time never goes backwards).
    pub fn set(&self, at: DateTime<Utc>) {
        let wakers = {
            let mut inner = self.lock();
            if at > inner.now {
                inner.now = at;
            }
            std::mem::take(&mut inner.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        let deadline = add(self.now(), d);
        Box::pin(ManualSleep {
            clock: self.clone(),
            deadline,
            registered: None,
        })
    }
}

struct ManualSleep {
    clock: ManualClock,
    deadline: DateTime<Utc>,
    registered: Option<u64>,
}

impl Future for ManualSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let clock = self.clock.clone();
        let mut inner = clock.lock();
        if inner.now >= self.deadline {
            if let Some(id) = self.registered.take() {
                inner.deadlines.remove(&id);
            }
            return Poll::Ready(());
        }
        if !inner.auto_advance {
            inner.wakers.push(cx.waker().clone());
            return Poll::Pending;
        }
        match self.registered {
            None => {
                // First poll: register, and let every other concurrent sleep register too
                // before time moves.
                let id = inner.next_id;
                inner.next_id += 1;
                inner.deadlines.insert(id, self.deadline);
                self.registered = Some(id);
            }
            Some(_) => {
                if let Some(&earliest) = inner.deadlines.values().min() {
                    if earliest > inner.now {
                        inner.now = earliest;
                    }
                }
                if inner.now >= self.deadline {
                    if let Some(id) = self.registered.take() {
                        inner.deadlines.remove(&id);
                    }
                    let wakers = std::mem::take(&mut inner.wakers);
                    drop(inner);
                    wakers.into_iter().for_each(Waker::wake);
                    return Poll::Ready(());
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        if let Some(id) = self.registered.take() {
            self.clock.lock().deadlines.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn manual_sleep_completes_only_when_time_is_moved() {
        let clock = ManualClock::at(DateTime::<Utc>::UNIX_EPOCH);
        let mut sleep = clock.sleep(Duration::from_secs(10));
        assert!((&mut sleep).now_or_never().is_none());
        clock.advance(Duration::from_secs(9));
        assert!((&mut sleep).now_or_never().is_none());
        clock.advance(Duration::from_secs(1));
        assert!(sleep.now_or_never().is_some());
    }

    #[test]
    fn auto_advance_jumps_to_the_deadline() {
        let clock = ManualClock::auto_advancing(DateTime::<Utc>::UNIX_EPOCH);
        futures::executor::block_on(clock.sleep(Duration::from_secs(3600 * 5)));
        assert_eq!(clock.now().timestamp(), 3600 * 5);
    }

    #[test]
    fn auto_advance_overlaps_concurrent_sleeps() {
        let clock = ManualClock::auto_advancing(DateTime::<Utc>::UNIX_EPOCH);
        let sleeps = (0..10).map(|_| clock.sleep(Duration::from_millis(100)));
        futures::executor::block_on(futures::future::join_all(sleeps));
        assert_eq!(clock.now().timestamp_millis(), 100);
        // The shorter of two racing sleeps wins, and time stops there.
        let long = clock.sleep(Duration::from_secs(120));
        let short = clock.sleep(Duration::from_secs(30));
        let won = futures::executor::block_on(futures::future::select(long, short));
        assert!(matches!(won, futures::future::Either::Right(_)));
        assert_eq!(clock.now().timestamp_millis(), 30_100);
    }

    #[test]
    fn elapsed_stops_at_zero_and_round_trips_add() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(add(t, Duration::from_secs(60)).timestamp(), 1_800_000_060);
        assert_eq!(
            elapsed(t, add(t, Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(elapsed(add(t, Duration::from_secs(5)), t), Duration::ZERO);
    }

    #[test]
    fn add_saturates() {
        assert_eq!(
            add(DateTime::<Utc>::MAX_UTC, Duration::from_secs(1)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            add(DateTime::<Utc>::UNIX_EPOCH, Duration::MAX),
            DateTime::<Utc>::MAX_UTC
        );
    }
}
