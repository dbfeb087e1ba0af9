//! The clock contract every driver must honour: the core takes a [`Timestamp`] (µs since the
//! Unix epoch) with each input and requires that it never goes backwards. [`MonotonicClock`]
//! turns the system's wall clock into such timestamps.

use hearsay_proto::{TimeDelta, Timestamp};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a [`MonotonicClock`] reads the wall time from. The system clock in production
/// ([`SystemTimeSource`]); any `Fn() -> SystemTime` closure in tests.
pub trait TimeSource {
    /// The current wall-clock time. It may jump in either direction.
    fn now(&self) -> SystemTime;
}

/// The clock a node reads: the system's wall clock by default, any `Fn() -> SystemTime` given to
/// [`NodeBuilder::clock`](crate::NodeBuilder::clock) otherwise (a simulator's virtual time).
pub(crate) type DriverClock = MonotonicClock<Box<dyn Fn() -> SystemTime + Send + Sync>>;

/// The operating system's wall clock, [`SystemTime::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemTimeSource;

impl TimeSource for SystemTimeSource {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

impl<F: Fn() -> SystemTime> TimeSource for F {
    fn now(&self) -> SystemTime {
        self()
    }
}

/// Converts a wall-clock time to a [`Timestamp`]: whole microseconds since the Unix epoch,
/// rounded down. Times before the epoch become [`Timestamp::EPOCH`]; times beyond `u64`
/// microseconds (about 584 000 years) saturate at [`Timestamp::MAX`].
pub fn timestamp_from_system_time(time: SystemTime) -> Timestamp {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since_epoch) => Timestamp::EPOCH + TimeDelta::from(since_epoch),
        Err(_) => Timestamp::EPOCH,
    }
}

/// A wall clock that never goes backwards, as [`hearsay_proto::Node`] requires.
///
/// Each [`MonotonicClock::now`] reads the source and returns the larger of that reading and the
/// largest value returned before. If the system clock steps back (an NTP correction, a manual
/// change), the clock holds still at its last value until the system clock catches up, then
/// follows it again. It is safe to share between threads.
pub struct MonotonicClock<S = SystemTimeSource> {
    source: S,
    /// The largest value returned so far, in µs since the epoch.
    last: AtomicU64,
}

impl MonotonicClock<SystemTimeSource> {
    /// A clock over the operating system's wall clock.
    pub fn system() -> Self {
        Self::new(SystemTimeSource)
    }
}

impl Default for MonotonicClock<SystemTimeSource> {
    fn default() -> Self {
        Self::system()
    }
}

impl<S: TimeSource> MonotonicClock<S> {
    /// A clock over `source`.
    pub fn new(source: S) -> Self {
        Self {
            source,
            last: AtomicU64::new(Timestamp::EPOCH.as_micros()),
        }
    }

    /// The current time, never earlier than any value this clock returned before.
    pub fn now(&self) -> Timestamp {
        let reading = timestamp_from_system_time(self.source.now()).as_micros();
        let previous = self.last.fetch_max(reading, Ordering::AcqRel);
        Timestamp::from_micros(previous.max(reading))
    }

    /// The largest value [`MonotonicClock::now`] has returned ([`Timestamp::EPOCH`] before the
    /// first call).
    pub fn last(&self) -> Timestamp {
        Timestamp::from_micros(self.last.load(Ordering::Acquire))
    }
}

impl<S> fmt::Debug for MonotonicClock<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonotonicClock")
            .field(
                "last",
                &Timestamp::from_micros(self.last.load(Ordering::Acquire)),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    fn at_micros(micros: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(micros)
    }

    /// A clock over a fake source, and a handle to set what the source reads.
    fn fake_clock(start: SystemTime) -> (MonotonicClock<impl TimeSource>, Rc<Cell<SystemTime>>) {
        let time = Rc::new(Cell::new(start));
        let source = {
            let time = Rc::clone(&time);
            move || time.get()
        };
        (MonotonicClock::new(source), time)
    }

    #[test]
    fn converts_to_whole_microseconds_since_the_epoch() {
        let t = UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_789);
        assert_eq!(
            timestamp_from_system_time(t),
            Timestamp::from_micros(1_800_000_000_123_456)
        );
        assert_eq!(timestamp_from_system_time(UNIX_EPOCH), Timestamp::EPOCH);
        let before_epoch = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(timestamp_from_system_time(before_epoch), Timestamp::EPOCH);
    }

    #[test]
    fn follows_the_source_while_it_moves_forward() {
        let (clock, time) = fake_clock(at_micros(1_000));
        assert_eq!(clock.now(), Timestamp::from_micros(1_000));
        time.set(at_micros(2_500));
        assert_eq!(clock.now(), Timestamp::from_micros(2_500));
        assert_eq!(clock.last(), Timestamp::from_micros(2_500));
    }

    #[test]
    fn holds_its_last_value_when_the_source_steps_back() {
        let (clock, time) = fake_clock(at_micros(10_000_000));
        assert_eq!(clock.now(), Timestamp::from_micros(10_000_000));

        // The system clock steps back by three seconds: the clock holds still...
        time.set(at_micros(7_000_000));
        assert_eq!(clock.now(), Timestamp::from_micros(10_000_000));
        time.set(at_micros(9_999_999));
        assert_eq!(clock.now(), Timestamp::from_micros(10_000_000));

        // ...and follows the source again once it has caught up.
        time.set(at_micros(10_000_001));
        assert_eq!(clock.now(), Timestamp::from_micros(10_000_001));

        // Even a step to before the epoch never takes it backwards.
        time.set(UNIX_EPOCH - Duration::from_secs(1));
        assert_eq!(clock.now(), Timestamp::from_micros(10_000_001));
    }

    #[test]
    fn system_clock_reads_a_plausible_present() {
        let clock = MonotonicClock::system();
        let a = clock.now();
        let b = clock.now();
        // 2020-09-13 and 2100-01-01: any sane host clock lies between.
        assert!(a > Timestamp::from_secs(1_600_000_000), "{a:?}");
        assert!(a < Timestamp::from_secs(4_102_444_800), "{a:?}");
        assert!(b >= a);
        assert!(format!("{clock:?}").starts_with("MonotonicClock"));
    }
}
