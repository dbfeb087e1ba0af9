//! The discrete-event scheduler: a priority queue of `(time, sequence, event)`.
//!
//! Events run in time order; events at the same instant run in the order they were scheduled
//! (the sequence number), never in hash or allocation order. There is no wall clock anywhere.

use hearsay_proto::Timestamp;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A queue of events over virtual time.
#[derive(Debug)]
pub struct Scheduler<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    next_seq: u64,
    now: Timestamp,
}

#[derive(Debug)]
struct Entry<E> {
    at: Timestamp,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl<E> Scheduler<E> {
    /// An empty queue whose clock reads `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            heap: BinaryHeap::new(),
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
        self.heap.push(Reverse(Entry { at, seq, event }));
    }

    /// The time of the next event, if any.
    pub fn peek_time(&self) -> Option<Timestamp> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Pops the next event if it is due at or before `until`, advancing the clock to it.
    pub fn pop_until(&mut self, until: Timestamp) -> Option<(Timestamp, E)> {
        if self.peek_time()? > until {
            return None;
        }
        let Reverse(entry) = self.heap.pop()?;
        self.now = entry.at;
        Some((entry.at, entry.event))
    }

    /// Moves the clock to `t` (if later) without running anything.
    pub fn advance_to(&mut self, t: Timestamp) {
        self.now = self.now.max(t);
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
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
}
