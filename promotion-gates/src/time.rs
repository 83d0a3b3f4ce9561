//! Time arithmetic for gates that wait on their clock (the metric gate's initial delay, the
//! canary gate's lookback): std durations on chrono timestamps, saturating instead of
//! panicking.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// `at` plus `d`, or the largest representable time when that overflows.
pub(crate) fn add(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Time from `earlier` to `later`, zero when `later` is not after `earlier`.
pub(crate) fn elapsed(earlier: DateTime<Utc>, later: DateTime<Utc>) -> Duration {
    (later - earlier).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_saturate_and_differences_stop_at_zero() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(add(t, Duration::from_secs(60)).timestamp(), 1_800_000_060);
        assert_eq!(add(t, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            elapsed(t, add(t, Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(elapsed(add(t, Duration::from_secs(5)), t), Duration::ZERO);
    }
}
