//! Fixed instants: tests never read a clock.

use crate::time::{TimeDelta, Timestamp};

/// The instant every test, benchmark and fuzz target starts at: 2027-01-15T08:00:00Z (Unix
/// time 1,800,000,000 s, a boundary of 10-minute epochs).
pub const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

/// One hour: the default record lifetime, and the lifetime of test records.
pub const HOUR: TimeDelta = TimeDelta::from_secs(3600);

/// `secs` seconds after [`T0`].
///
/// ```
/// use hearsay_proto::testing::{T0, at};
/// use hearsay_proto::TimeDelta;
/// assert_eq!(at(90), T0 + TimeDelta::from_secs(90));
/// ```
pub const fn at(secs: u64) -> Timestamp {
    T0.saturating_add(TimeDelta::from_secs(secs))
}
