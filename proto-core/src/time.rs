//! Time as the core sees it: a number the driver passes in, never a clock it reads.
//!
//! [`Timestamp`] is microseconds since the Unix epoch *as the driver sees them*: the driver must
//! never pass a value smaller than one it passed before (make the system clock monotonic, or in a
//! simulator start the virtual clock at a fixed epoch). Because the value is wall-clock based, it
//! can be written into records and beacons as an expiry time that other nodes understand.

use core::fmt;
use core::ops::{Add, AddAssign, Sub, SubAssign};
use minicbor::{Decode, Encode};

/// A point in time: microseconds since 1970-01-01T00:00:00Z as the driver sees them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

/// A span of time in microseconds. Arithmetic on it saturates; it never wraps or panics.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TimeDelta(u64);

impl Timestamp {
    /// The Unix epoch itself.
    pub const EPOCH: Self = Self(0);
    /// The largest representable instant (used as "never").
    pub const MAX: Self = Self(u64::MAX);

    /// A timestamp `micros` microseconds after the Unix epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// A timestamp `secs` seconds after the Unix epoch (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Timestamp) -> TimeDelta {
        TimeDelta(self.0.saturating_sub(earlier.0))
    }

    /// `self + delta`, saturating at [`Timestamp::MAX`].
    pub const fn saturating_add(self, delta: TimeDelta) -> Timestamp {
        Timestamp(self.0.saturating_add(delta.0))
    }

    /// `self - delta`, saturating at [`Timestamp::EPOCH`].
    pub const fn saturating_sub(self, delta: TimeDelta) -> Timestamp {
        Timestamp(self.0.saturating_sub(delta.0))
    }
}

impl TimeDelta {
    /// No time at all.
    pub const ZERO: Self = Self(0);
    /// The largest representable span.
    pub const MAX: Self = Self(u64::MAX);

    /// A span of `micros` microseconds.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// A span of `millis` milliseconds (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1_000))
    }

    /// A span of `secs` seconds (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1_000_000))
    }

    /// The span in microseconds.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// The span in whole milliseconds (rounded down).
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000
    }

    /// `self / n`, or zero when `n` is zero.
    pub const fn div(self, n: u64) -> TimeDelta {
        match self.0.checked_div(n) {
            Some(v) => TimeDelta(v),
            None => TimeDelta(0),
        }
    }

    /// `self * n`, saturating.
    pub const fn saturating_mul(self, n: u64) -> TimeDelta {
        TimeDelta(self.0.saturating_mul(n))
    }
}

impl Add<TimeDelta> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: TimeDelta) -> Timestamp {
        self.saturating_add(rhs)
    }
}

impl AddAssign<TimeDelta> for Timestamp {
    fn add_assign(&mut self, rhs: TimeDelta) {
        *self = self.saturating_add(rhs);
    }
}

impl Sub<Timestamp> for Timestamp {
    type Output = TimeDelta;
    fn sub(self, rhs: Timestamp) -> TimeDelta {
        self.saturating_since(rhs)
    }
}

impl Sub<TimeDelta> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: TimeDelta) -> Timestamp {
        self.saturating_sub(rhs)
    }
}

impl SubAssign<TimeDelta> for Timestamp {
    fn sub_assign(&mut self, rhs: TimeDelta) {
        *self = self.saturating_sub(rhs);
    }
}

impl Add for TimeDelta {
    type Output = TimeDelta;
    fn add(self, rhs: TimeDelta) -> TimeDelta {
        TimeDelta(self.0.saturating_add(rhs.0))
    }
}

impl From<core::time::Duration> for TimeDelta {
    fn from(d: core::time::Duration) -> Self {
        TimeDelta(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

impl From<TimeDelta> for core::time::Duration {
    fn from(d: TimeDelta) -> Self {
        core::time::Duration::from_micros(d.0)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

impl fmt::Debug for TimeDelta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1_000) {
            write!(f, "{}ms", self.0 / 1_000)
        } else {
            write!(f, "{}us", self.0)
        }
    }
}

// On the wire a timestamp is a CBOR unsigned integer of microseconds.
impl<C> Encode<C> for Timestamp {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut minicbor::Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.u64(self.as_micros())?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for Timestamp {
    fn decode(d: &mut minicbor::Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        Ok(Timestamp::from_micros(d.u64()?))
    }
}

/// A token bucket: at most `rate` events per second on average, bursts of up to `rate`.
/// Used to bound how much work remote peers can ask of a node (JOINs, FIND walks, sketches).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    tokens: u64,
    at: Timestamp,
}

impl TokenBucket {
    /// A full bucket of `rate` tokens (at least 1) at `now`.
    pub fn new(rate: u32, now: Timestamp) -> Self {
        let rate = u64::from(rate.max(1));
        Self {
            rate,
            tokens: rate,
            at: now,
        }
    }

    /// Takes `n` tokens if that many are left at `now` (none are taken otherwise).
    pub fn take_n(&mut self, now: Timestamp, n: u64) -> bool {
        self.refill(now);
        if self.tokens < n {
            return false;
        }
        self.tokens -= n;
        true
    }

    fn refill(&mut self, now: Timestamp) {
        let elapsed = now.saturating_since(self.at).as_micros();
        let refill = elapsed.saturating_mul(self.rate) / 1_000_000;
        if refill > 0 {
            self.tokens = self.tokens.saturating_add(refill).min(self.rate);
            self.at = now;
        }
    }

    /// Takes a token if one is left at `now`.
    pub fn take(&mut self, now: Timestamp) -> bool {
        self.take_n(now, 1)
    }
}

/// One token bucket per source (a peer, an address group), so that no source can spend the
/// budget of others: at most `rate` events per second per source, bursts of up to `rate`.
/// At most `capacity` sources are remembered; a bucket unused for a second is full again and
/// is forgotten, and when every place is taken the least recently used source is forgotten
/// (it starts again with a full bucket, which costs at most one burst).
#[derive(Debug, Clone)]
pub struct RateLimits<K> {
    rate: u32,
    capacity: usize,
    buckets: alloc::collections::BTreeMap<K, (TokenBucket, Timestamp)>,
}

impl<K: Ord + Copy> RateLimits<K> {
    /// How long an unused bucket takes to fill again (its burst equals its rate per second).
    const REFILL: TimeDelta = TimeDelta::from_secs(1);

    /// No source yet; each gets `rate` per second (at least 1); at most `capacity` (at least 1).
    pub fn new(rate: u32, capacity: usize) -> Self {
        Self {
            rate,
            capacity: capacity.max(1),
            buckets: alloc::collections::BTreeMap::new(),
        }
    }

    /// Takes `n` of `source`'s tokens if that many are left at `now` (none are taken otherwise).
    pub fn take_n(&mut self, now: Timestamp, source: K, n: u64) -> bool {
        if !self.buckets.contains_key(&source) && self.buckets.len() >= self.capacity {
            self.forget_idle(now);
            if self.buckets.len() >= self.capacity {
                let lru = self
                    .buckets
                    .iter()
                    .min_by_key(|(k, (_, used))| (*used, **k))
                    .map(|(k, _)| *k);
                if let Some(lru) = lru {
                    self.buckets.remove(&lru);
                }
            }
        }
        let rate = self.rate;
        let (bucket, used) = self
            .buckets
            .entry(source)
            .or_insert_with(|| (TokenBucket::new(rate, now), now));
        *used = now;
        bucket.take_n(now, n)
    }

    /// Takes one of `source`'s tokens if one is left at `now`.
    pub fn take(&mut self, now: Timestamp, source: K) -> bool {
        self.take_n(now, source, 1)
    }

    /// Forgets the sources whose buckets are full again at `now`.
    pub fn forget_idle(&mut self, now: Timestamp) {
        self.buckets
            .retain(|_, (_, used)| now.saturating_since(*used) < Self::REFILL);
    }

    /// Sources remembered (at most the capacity).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no source is remembered.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// A smoothed round-trip time to one peer (RFC 6298's estimator, in microseconds): the first
/// sample sets `srtt = r` and `rttvar = r / 2`; each later one `rttvar = ¾·rttvar + ¼·|srtt − r|`,
/// then `srtt = ⅞·srtt + ⅛·r`. Samples are clamped to [`RttEstimate::MAX_SAMPLE`], so one stalled
/// answer cannot push the estimate beyond reason. Deterministic integer arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttEstimate {
    srtt: u64,
    rttvar: u64,
}

impl RttEstimate {
    /// The largest sample taken into account (longer ones count as this): 10 s.
    pub const MAX_SAMPLE: TimeDelta = TimeDelta::from_secs(10);

    /// The estimate after its first sample.
    pub fn first(sample: TimeDelta) -> Self {
        let r = sample.as_micros().min(Self::MAX_SAMPLE.as_micros());
        Self {
            srtt: r,
            rttvar: r / 2,
        }
    }

    /// Takes one more sample into account.
    pub fn sample(&mut self, sample: TimeDelta) {
        let r = sample.as_micros().min(Self::MAX_SAMPLE.as_micros());
        self.rttvar = (3 * self.rttvar + self.srtt.abs_diff(r)) / 4;
        self.srtt = (7 * self.srtt + r) / 8;
    }

    /// The smoothed round-trip time.
    pub fn srtt(&self) -> TimeDelta {
        TimeDelta(self.srtt)
    }

    /// The smoothed mean deviation of the samples.
    pub fn rttvar(&self) -> TimeDelta {
        TimeDelta(self.rttvar)
    }

    /// How long an answer may take before it is overdue: `srtt + 4·rttvar` (RFC 6298's RTO
    /// without its 1 s floor; the caller bounds it).
    pub fn timeout(&self) -> TimeDelta {
        TimeDelta(self.srtt.saturating_add(self.rttvar.saturating_mul(4)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn the_rtt_estimate_follows_rfc_6298_and_converges() {
        let ms = TimeDelta::from_millis;
        let mut e = RttEstimate::first(ms(100));
        assert_eq!(
            (e.srtt(), e.rttvar(), e.timeout()),
            (ms(100), ms(50), ms(300))
        );
        e.sample(ms(20));
        // rttvar = (3·50 + 80) / 4 = 57.5; srtt = (7·100 + 20) / 8 = 90.
        assert_eq!(e.rttvar(), TimeDelta::from_micros(57_500));
        assert_eq!(e.srtt(), ms(90));
        for _ in 0..100 {
            e.sample(ms(2));
        }
        assert!(e.srtt() < ms(3) && e.timeout() < ms(4), "{e:?}");
        // A stalled answer counts as at most MAX_SAMPLE.
        let mut e = RttEstimate::first(TimeDelta::MAX);
        assert_eq!(e.srtt(), RttEstimate::MAX_SAMPLE);
        e.sample(TimeDelta::MAX);
        assert_eq!(e.srtt(), RttEstimate::MAX_SAMPLE);
    }

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let t = Timestamp::from_micros(u64::MAX - 1);
        assert_eq!(t + TimeDelta::from_secs(1), Timestamp::MAX);
        assert_eq!(Timestamp::EPOCH - t, TimeDelta::ZERO);
        assert_eq!(t - Timestamp::EPOCH, TimeDelta::from_micros(u64::MAX - 1));
        assert_eq!(TimeDelta::from_secs(u64::MAX), TimeDelta::MAX);
    }

    #[test]
    fn converts_to_and_from_core_duration() {
        let d = core::time::Duration::from_millis(1500);
        assert_eq!(TimeDelta::from(d), TimeDelta::from_millis(1500));
        assert_eq!(core::time::Duration::from(TimeDelta::from_millis(1500)), d);
        assert_eq!(format!("{:?}", TimeDelta::from_millis(1500)), "1500ms");
        assert_eq!(
            format!("{:?}", Timestamp::from_micros(2_000_001)),
            "2.000001s"
        );
    }

    #[test]
    fn each_source_has_its_own_budget_and_the_table_stays_bounded() {
        let t0 = Timestamp::from_secs(100);
        let mut limits = RateLimits::new(3, 4);
        // One source sending ten times its budget gets its budget, and no more.
        let granted = (0..30).filter(|_| limits.take(t0, 1u32)).count();
        assert_eq!(granted, 3);
        // Another source is untouched by the first one's spending.
        assert!(limits.take(t0, 2u32));
        // A thousand sources never hold more than the capacity.
        for k in 10..1_010u32 {
            limits.take(t0, k);
            assert!(limits.len() <= 4);
        }
        // A second later every bucket is full again, and idle ones are forgotten.
        let later = t0 + TimeDelta::from_secs(1);
        limits.forget_idle(later);
        assert!(limits.is_empty());
        assert!(limits.take_n(later, 1u32, 3));
        assert!(!limits.take(later, 1u32));
    }
}
