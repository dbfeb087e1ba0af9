//! The discrete-event scheduler: a priority queue of `(time, sequence, event)`.
//!
//! Events run in time order; events at the same instant run in the order they were scheduled
//! (the sequence number), never in hash or allocation order. There is no wall clock anywhere.
//!
//! A timing wheel in front of a heap: almost every event (a frame in flight, a node's next
//! wake) falls within seconds of now, so keys wait unsorted in 1 ms buckets and are only
//! ordered, in a small heap, once their millisecond comes. Later events wait in a second heap
//! until the wheel reaches them. The order is exactly the one a single heap of `(time,
//! sequence)` gives, so traces do not depend on this structure.

use hearsay_proto::Timestamp;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Width of a wheel bucket in microseconds.
const BUCKET_US: u64 = 1_000;
/// Buckets on the wheel (a power of two): 8.192 s ahead of the current bucket.
const BUCKETS: u64 = 8_192;

/// A queue of events over virtual time.
///
/// The queues hold only `(time, sequence, slot)` (24 bytes, compared as integers); the events
/// themselves wait in a slab of reused slots, so sorting moves small keys, not events.
#[derive(Debug)]
pub struct Scheduler<E> {
    /// Every key whose bucket is the current one or earlier, in order.
    current: BinaryHeap<Reverse<Key>>,
    /// Keys of the next `BUCKETS - 1` buckets, bucket `b` at `b % BUCKETS`, unsorted.
    wheel: Vec<Vec<Key>>,
    /// Keys on the wheel.
    on_wheel: usize,
    /// Keys beyond the wheel.
    far: BinaryHeap<Reverse<Key>>,
    /// The current bucket (absolute: time / `BUCKET_US`).
    cursor: u64,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    next_seq: u64,
    now: Timestamp,
}

/// Queue order: time, then the order of scheduling (`seq` is unique, so `slot` never decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    at: u64,
    seq: u64,
    slot: u32,
}

impl<E> Scheduler<E> {
    /// An empty queue whose clock reads `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            current: BinaryHeap::new(),
            wheel: (0..BUCKETS).map(|_| Vec::new()).collect(),
            on_wheel: 0,
            far: BinaryHeap::new(),
            cursor: start.as_micros() / BUCKET_US,
            slots: Vec::new(),
            free: Vec::new(),
            next_seq: 0,
            now: start,
        }
    }

    /// The current virtual time: the time of the last event popped.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Schedules `event` at `at` (clamped to now: the past cannot be scheduled).
    pub fn schedule(&mut self, at: Timestamp, event: E) {
        let at = at.max(self.now);
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 pending events")
            }
        };
        self.place(Key {
            at: at.as_micros(),
            seq,
            slot,
        });
    }

    fn place(&mut self, key: Key) {
        let bucket = key.at / BUCKET_US;
        if bucket <= self.cursor {
            self.current.push(Reverse(key));
        } else if bucket < self.cursor + BUCKETS {
            self.wheel[(bucket % BUCKETS) as usize].push(key);
            self.on_wheel += 1;
        } else {
            self.far.push(Reverse(key));
        }
    }

    /// Moves the cursor to the next bucket holding keys, bringing them (and far keys that come
    /// within the wheel's reach) in. False when nothing is waiting anywhere.
    fn turn(&mut self) -> bool {
        if self.on_wheel == 0 {
            // Skip the empty wheel at once.
            let Some(Reverse(next)) = self.far.peek() else {
                return false;
            };
            self.cursor = self.cursor.max(next.at / BUCKET_US - 1);
        }
        loop {
            self.cursor += 1;
            while let Some(Reverse(k)) = self.far.peek()
                && k.at / BUCKET_US < self.cursor + BUCKETS
            {
                let Some(Reverse(k)) = self.far.pop() else {
                    break;
                };
                self.place(k);
            }
            let bucket = &mut self.wheel[(self.cursor % BUCKETS) as usize];
            if !bucket.is_empty() {
                self.on_wheel -= bucket.len();
                self.current.extend(bucket.drain(..).map(Reverse));
            }
            if !self.current.is_empty() {
                return true;
            }
        }
    }

    /// Pops the next event if it is due at or before `until`, advancing the clock to it.
    pub fn pop_until(&mut self, until: Timestamp) -> Option<(Timestamp, E)> {
        if self.current.is_empty() {
            // Only turn while the next bucket can hold something due by `until`.
            if (self.cursor + 1) * BUCKET_US > until.as_micros() || !self.turn() {
                return None;
            }
        }
        if self.current.peek()?.0.at > until.as_micros() {
            return None;
        }
        let Reverse(key) = self.current.pop()?;
        let event = self.slots[key.slot as usize].take()?;
        self.free.push(key.slot);
        let at = Timestamp::from_micros(key.at);
        self.now = at;
        Some((at, event))
    }

    /// Moves the clock to `t` (if later) without running anything.
    pub fn advance_to(&mut self, t: Timestamp) {
        self.now = self.now.max(t);
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.current.len() + self.on_wheel + self.far.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearsay_proto::TimeDelta;

    #[test]
    fn time_order_then_insertion_order() {
        let t0 = Timestamp::from_secs(100);
        let mut s = Scheduler::new(t0);
        s.schedule(t0 + TimeDelta::from_millis(5), "late");
        s.schedule(t0 + TimeDelta::from_millis(1), "first-at-1ms");
        s.schedule(t0 + TimeDelta::from_millis(1), "second-at-1ms");
        s.schedule(t0 - TimeDelta::from_millis(1), "past-clamped-to-now");
        let mut order = vec![];
        while let Some((_, e)) = s.pop_until(t0 + TimeDelta::from_millis(3)) {
            order.push(e);
        }
        assert_eq!(
            order,
            ["past-clamped-to-now", "first-at-1ms", "second-at-1ms"]
        );
        assert_eq!(s.now(), t0 + TimeDelta::from_millis(1));
        assert_eq!(s.len(), 1);
        assert_eq!(
            s.pop_until(Timestamp::MAX),
            Some((t0 + TimeDelta::from_millis(5), "late"))
        );
        assert!(s.is_empty());
    }

    proptest::proptest! {
        /// The wheel pops exactly what one heap of `(time, sequence)` would, whatever mix of
        /// near, far (beyond the wheel) and same-instant events is scheduled, including events
        /// scheduled while it drains and pops bounded by `until`.
        #[test]
        fn same_order_as_one_heap(
            steps in proptest::collection::vec((0u64..20_000_000, 0u8..4, 1u64..3_000_000), 1..300),
        ) {
            let t0 = Timestamp::from_secs(100);
            let mut wheel = Scheduler::new(t0);
            let mut heap = BinaryHeap::new();
            let (mut got, mut want) = (Vec::new(), Vec::new());
            for (i, (offset, pops, window)) in steps.into_iter().enumerate() {
                let seq = i as u64;
                // Far offsets (beyond the 8 s wheel) and exact repeats both occur.
                let at = (wheel.now() + TimeDelta::from_micros(offset % 12_000_000 * (offset % 3))).max(wheel.now());
                wheel.schedule(at, i);
                heap.push(Reverse((at.as_micros(), seq, i)));
                let until = wheel.now() + TimeDelta::from_micros(window);
                for _ in 0..pops {
                    let w = wheel.pop_until(until);
                    let h = match heap.peek() {
                        Some(Reverse((t, _, _))) if *t <= until.as_micros() => heap.pop().map(|Reverse((t, _, e))| (Timestamp::from_micros(t), e)),
                        _ => None,
                    };
                    got.push(w);
                    want.push(h);
                }
            }
            while let Some(w) = wheel.pop_until(Timestamp::MAX) {
                got.push(Some(w));
            }
            while let Some(Reverse((t, _, e))) = heap.pop() {
                want.push(Some((Timestamp::from_micros(t), e)));
            }
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert!(wheel.is_empty());
        }
    }
}
