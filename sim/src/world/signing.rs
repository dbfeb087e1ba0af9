//! The contract's `signatures_per_node_per_s` (version 4): every signature an honest node makes,
//! whatever protocol asks for it, counted by the crypto provider the world hands the nodes
//! ([`crate::crypto::CountingProvider`]) and sampled once a second.

use super::World;
use crate::metrics::MeanMax;
use hearsay_proto::crypto::VerifyingKeyBytes;
use hearsay_proto::{TimeDelta, Timestamp};
use std::collections::VecDeque;

/// The window of the metric's `max`.
const WINDOW: TimeDelta = TimeDelta::from_secs(10);
/// How often counts are read.
pub(super) const SAMPLE_EVERY: TimeDelta = TimeDelta::from_secs(1);

/// Per node: its verifying key and its counts over the last [`WINDOW`].
#[derive(Debug, Default)]
pub(super) struct Signing {
    keys: Vec<VerifyingKeyBytes>,
    recent: Vec<VecDeque<(Timestamp, u64)>>,
    /// The most signatures by one honest node in any window seen so far.
    max_in_window: u64,
}

impl Signing {
    pub(super) fn new(keys: Vec<VerifyingKeyBytes>) -> Self {
        let recent = keys.iter().map(|_| VecDeque::new()).collect();
        Self {
            keys,
            recent,
            max_in_window: 0,
        }
    }
}

impl World {
    /// Reads every honest node's signature count; the window's growth is a `max` sample.
    pub(super) fn sample_signatures(&mut self, now: Timestamp) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].adversary.is_some() {
                continue;
            }
            let count = self.signing_provider.signatures(&self.signing.keys[i]);
            let recent = &mut self.signing.recent[i];
            while recent
                .front()
                .is_some_and(|(t, _)| now.saturating_since(*t) > WINDOW)
            {
                recent.pop_front();
            }
            let oldest = recent.front().map_or(0, |(_, c)| *c);
            let in_window = count.saturating_sub(oldest);
            self.signing.max_in_window = self.signing.max_in_window.max(in_window);
            recent.push_back((now, count));
        }
        if now + SAMPLE_EVERY <= self.end {
            self.scheduler
                .schedule(now + SAMPLE_EVERY, super::Ev::SampleSignatures);
        }
    }

    /// `max`: the most signatures by one honest node in any 10 s window, ÷ 10; `mean`: every
    /// honest node's signatures ÷ (honest nodes × duration).
    pub(super) fn signature_metrics(&self, seconds: f64) -> Option<MeanMax> {
        let honest: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].adversary.is_none())
            .collect();
        if honest.is_empty() || seconds <= 0.0 {
            return None;
        }
        let total: u64 = honest
            .iter()
            .map(|&i| self.signing_provider.signatures(&self.signing.keys[i]))
            .sum();
        Some(MeanMax {
            mean: total as f64 / (honest.len() as f64 * seconds),
            max: self.signing.max_in_window as f64 / WINDOW.as_micros() as f64 * 1e6,
        })
    }
}
