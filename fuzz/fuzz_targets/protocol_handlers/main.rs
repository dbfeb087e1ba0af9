//! Each protocol state machine of the core driven on its own, through its public API, by a
//! script of (peer, message, time advance) steps: HyParView, SWIM, Plumtree, the anti-entropy
//! `Reconciler` and FOAF, one module of this folder each (`fuzz_hyparview.rs` ...). Messages are
//! built from the input's fields, or decoded from raw frame bytes. Insecure test provider
//! throughout.
//!
//! Checked for every machine: nothing panics; right after `handle_timeout(now)`,
//! `poll_timeout()` is `None` or later than `now`; every view, table and queue stays within the
//! bound its `Config` (or module constant) sets. And per machine:
//! - HyParView: the active and passive views are disjoint and never hold the node itself, and
//!   the `NeighborUp` / `NeighborDown` outputs track the active view exactly;
//! - SWIM: local health stays within `max_health`, suspects are members, a `Dead` verdict names
//!   a member, refutations raise the incarnation, nothing is sent to the node itself;
//! - Plumtree: eager and lazy peers are disjoint neighbours, everything sent goes to a
//!   neighbour (or to whom `serve` was asked to send), a delivered message verifies, is of the
//!   topic and is delivered once;
//! - Reconciler: a sketch it sends is exactly the table of its ids and goes to a neighbour; an
//!   estimate it sends is exactly the estimator of its ids; answering a sketch of a known set
//!   pushes exactly the ids the other side lacks and asks for exactly those it lacks and has not
//!   seen (both cut at `max_transfer`), and `Done` counts them;
//! - FOAF: queries leave with a hop budget in range, to neighbours only; found records match
//!   their target, verify and are distinct; outcomes respect `fanout` and
//!   `max_records_per_answer`; an invalid configuration is refused by `Foaf::new`.
//!
//! Input: `[machine, config bytes..., rng seed]`, then records `[op, ...]` until the input
//! ends (at most 256); each machine's ops are listed on its `run_*` function. Past the end of
//! the input every read is zero. Raw-frame ops take `[len(2), bytes]`, decoded with
//! `Frame::decode`; a frame of another protocol is ignored.
#![no_main]

#[path = "../common/mod.rs"]
mod common;
mod fuzz_antientropy;
mod fuzz_foaf;
mod fuzz_hyparview;
mod fuzz_plumtree;
mod fuzz_swim;

use fuzz_antientropy::run_antientropy;
use fuzz_foaf::run_foaf;
use fuzz_hyparview::run_hyparview;
use fuzz_plumtree::run_plumtree;
use fuzz_swim::run_swim;

// What the machines' modules use too: each takes these with `use super::*`.
use chacha20::ChaCha8Rng;
use common::Input;
use hearsay_proto::antientropy::iblt::{Iblt, StrataEstimator};
use hearsay_proto::antientropy::{self, Reconciler, max_sketch_cells};
use hearsay_proto::broadcast::message::SignedMessage;
use hearsay_proto::broadcast::plumtree::{self, Plumtree, SignatureValidator};
use hearsay_proto::broadcast::topic::{ReconcileMessage, TopicMessage};
use hearsay_proto::crypto::{CryptoProvider, InsecureTestProvider, SIGNATURE_LEN, SignatureBytes};
use hearsay_proto::discovery::foaf::{
    self, Answer, Capability, DiscoveryMessage, Foaf, Query, QueryId, QueryOutcome, Target,
};
use hearsay_proto::identity::record::Addresses;
use hearsay_proto::membership::hyparview::{self, HyParView, PeerInfo};
use hearsay_proto::membership::swim::{self, Gossip, Swim, Update};
use hearsay_proto::testing::{T0, insecure_identity as identity, record};
use hearsay_proto::wire::{BoundedBytes, BoundedVec};
use hearsay_proto::{
    Frame, Identity, MessageId, PeerId, PeerRecord, TimeDelta, Timestamp, TopicId,
};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

const P: &dyn CryptoProvider = &InsecureTestProvider;

/// Peers by number: 0 is the node itself, 1..PEERS-1 others.
const PEERS: u8 = 12;
const MAX_STEPS: usize = 256;

fn peer(b: u8) -> PeerId {
    PeerId::from_bytes([b % PEERS; 32])
}

/// A peer other than the node itself.
fn other(b: u8) -> PeerId {
    peer(1 + b % (PEERS - 1))
}

fn me() -> PeerId {
    peer(0)
}

/// The peers whose bit is set in `mask` (bit i: `other(i)`).
fn subset(mask: u16) -> Vec<PeerId> {
    (0..PEERS - 1)
        .filter(|i| mask & (1 << i) != 0)
        .map(other)
        .collect()
}

/// Authors of Plumtree messages, and subjects of FOAF records.
fn people() -> &'static [Identity] {
    static PEOPLE: OnceLock<Vec<Identity>> = OnceLock::new();
    PEOPLE.get_or_init(|| (1..=6).map(identity).collect())
}

/// The virtual clock.
struct Clock {
    now: Timestamp,
}

impl Clock {
    /// `[ms(2)]`: moves the clock forward by up to 65 s.
    fn advance(&mut self, input: &mut Input<'_>) {
        self.now += TimeDelta::from_millis(u64::from(input.u16()));
    }

    /// Moves the clock to `wake` (what `poll_timeout` said), but never back and at most an
    /// hour ahead; to one second ahead without a wake-up.
    fn jump(&mut self, wake: Option<Timestamp>) {
        let target = wake.unwrap_or(self.now + TimeDelta::from_secs(1));
        self.now = target
            .max(self.now)
            .min(self.now + TimeDelta::from_secs(3600));
    }

    /// `[jump?, ms(2)]`: a jump to the machine's wake-up, or an advance.
    fn step(&mut self, input: &mut Input<'_>, wake: Option<Timestamp>) {
        if input.bool() {
            self.jump(wake);
        } else {
            self.advance(input);
        }
    }
}

fn after_timeout(now: Timestamp, wake: Option<Timestamp>, what: &str) {
    if let Some(t) = wake {
        assert!(
            t > now,
            "{what}: poll_timeout {t:?} is not after handle_timeout({now:?})"
        );
    }
}

/// A raw frame from the input, decoded.
fn frame(input: &mut Input<'_>) -> Option<Frame> {
    Frame::decode(input.chunk()).ok()
}

fn duration(b: u8, choices: &[TimeDelta]) -> TimeDelta {
    choices[usize::from(b) % choices.len()]
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.u8() % 5 {
        0 => run_hyparview(&mut input),
        1 => run_swim(&mut input),
        2 => run_plumtree(&mut input),
        3 => run_antientropy(&mut input),
        _ => run_foaf(&mut input),
    }
});
