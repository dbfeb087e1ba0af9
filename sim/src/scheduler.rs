//! The discrete-event scheduler: a priority queue of `(time, sequence, event)`.
//!
//! Events run in time order; events at the same instant run in the order they were scheduled
//! (the sequence number), never in hash or allocation order. There is no wall clock anywhere.

use hearsay_proto::Timestamp;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A queue of events over virtual time.
///
/// The heap holds only `(time, sequence, slot)` (24 bytes, compared as integers); the events
/// themselves wait in a slab of reused slots, so sifting moves small keys, not events.
#[derive(Debug)]
pub struct Scheduler<E> {
    heap: BinaryHeap<Reverse<Key>>,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    next_seq: u64,
    now: Timestamp,
}

/// Heap order: time, then the order of scheduling (`seq` is unique, so `slot` never decides).
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
            heap: BinaryHeap::new(),
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
        self.heap.push(Reverse(Key {
            at: at.as_micros(),
            seq,
            slot,
        }));
    }

    /// The time of the next event, if any.
    pub fn peek_time(&self) -> Option<Timestamp> {
        self.heap
            .peek()
            .map(|Reverse(k)| Timestamp::from_micros(k.at))
    }

    /// Pops the next event if it is due at or before `until`, advancing the clock to it.
    pub fn pop_until(&mut self, until: Timestamp) -> Option<(Timestamp, E)> {
        if self.heap.peek()?.0.at > until.as_micros() {
            return None;
        }
        let Reverse(key) = self.heap.pop()?;
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
