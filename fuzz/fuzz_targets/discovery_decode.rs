//! FOAF discovery (SPEC.md §18): `DiscoveryMessage::decode` on arbitrary bytes, and a `Foaf` state
//! machine driven by queries, answers, own queries and the passage of time from a few fake
//! neighbours. Nothing may panic; every table and queue stays within its bound; `poll_timeout`
//! is never due right after `handle_timeout`; an answer only ever goes to a peer that sent a
//! query with that id (no reflection); no more than `fanout` copies of a query leave per
//! acceptance (§18.7); every record passed back or reported matches its target and verifies.
//!
//! Input: the whole input is first decoded as one message (seeds are encoded messages). Then it
//! is read again as a script: one byte picks the configuration, then records `[op, ...]`:
//!
//! | op % 8 | meaning |
//! |---|---|
//! | 0 | `[peer, len(2), bytes]`: raw message bytes from neighbour `peer % 5` (4 = not a neighbour) |
//! | 1 | `[peer, id, target, ttl]`: a query built from the fields |
//! | 2 | `[peer, id, n, choices(n)]`: an answer of `n` records picked from a pool |
//! | 3 | `[target, ttl, mask]`: start an own query to the neighbours in `mask` |
//! | 4 | `[ms(2)]`: advance time, then `handle_timeout` |
//! | 5 | `handle_timeout` now |
//! | 6 | toggle holding outputs (queues fill up to their bound while held) |
//! | 7 | `[len, bytes]`: a capability query with that tag (over-long tags are cut to 32 B) |
#![no_main]

mod common;

use chacha20::ChaCha8Rng;
use common::Input;
use hearsay_proto::testing::{T0, insecure_identity as identity, record};
use hearsay_proto::crypto::InsecureTestProvider;
use hearsay_proto::discovery::foaf::{
    Answer, Capability, Config, DiscoveryMessage, Foaf, Query, QueryId, QueryOutcome, Target,
};
use hearsay_proto::wire::BoundedVec;
use hearsay_proto::{PeerId, PeerRecord, TimeDelta, Timestamp};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

struct Fixture {
    /// Four neighbours and one peer that is not a neighbour.
    peers: [PeerId; 5],
    /// Peers queries may look for (the last has no record anywhere).
    targets: Vec<PeerId>,
    /// Records answers are made of: valid ones, an expired one, a tampered one.
    pool: Vec<PeerRecord>,
    /// What this node "knows" (answers from it): valid, expired, and a duplicate.
    known: Vec<PeerRecord>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let peers = [10, 11, 12, 13, 14].map(|s| identity(s).peer_id());
        let hour = TimeDelta::from_secs(3600);
        let ids: Vec<_> = (20..26).map(identity).collect();
        let mut pool: Vec<PeerRecord> = ids[..4].iter().map(|i| record(i, T0, hour)).collect();
        // Expired an hour before T0.
        pool.push(record(&ids[4], T0 - TimeDelta::from_secs(7200), hour));
        // A valid record with one signature bit flipped.
        let mut tampered = record(&ids[5], T0, hour);
        let mut sig = tampered.signature.as_bytes().to_vec();
        sig[7] ^= 1;
        tampered.signature = hearsay_proto::crypto::SignatureBytes::new(sig).expect("same length");
        pool.push(tampered);
        // A record that expires one minute after T0 (valid, then not).
        pool.push(record(&identity(26), T0, TimeDelta::from_secs(60)));
        let mut targets: Vec<PeerId> = pool.iter().map(|r| r.peer_id).collect();
        targets.push(identity(27).peer_id());
        let known = vec![
            pool[0].clone(),
            pool[1].clone(),
            pool[4].clone(),
            pool[0].clone(),
        ];
        Fixture {
            peers,
            targets,
            pool,
            known,
        }
    })
}

fn config(pick: u8) -> Config {
    if pick & 1 == 0 {
        return Config::default();
    }
    // Small tables so that every eviction and overflow path is reached quickly.
    Config {
        fanout: 1 + usize::from(pick >> 1) % 4,
        dedup_capacity: 6,
        dedup_ttl: TimeDelta::from_secs(6),
        query_timeout: TimeDelta::from_secs(2),
        query_rate: 3,
        max_records_per_answer: 2,
        max_records_per_query: 3,
        max_answers_per_query: 2,
        max_pending: 4,
        max_own_queries: 2,
        max_rate_buckets: 2,
        max_queued: 8,
        ..Config::default()
    }
}

/// A query id from a small set (so duplicates are common), or from those seen on the way out.
fn query_id(input: &mut Input<'_>, seen: &[QueryId]) -> QueryId {
    let b = input.u8();
    if b & 0x80 != 0 && !seen.is_empty() {
        seen[usize::from(b & 0x7f) % seen.len()]
    } else {
        QueryId::from_bytes([b & 0x07; 16])
    }
}

fn target(input: &mut Input<'_>, f: &Fixture) -> Target {
    let b = input.u8();
    if b & 0x80 != 0 {
        let tag = input.bytes(usize::from(b & 0x3f));
        Target::Capability(Capability::new(tag[..tag.len().min(32)].to_vec()).expect("≤ 32 B"))
    } else {
        Target::Peer(f.targets[usize::from(b) % f.targets.len()])
    }
}

struct Run {
    foaf: Foaf,
    rng: ChaCha8Rng,
    now: Timestamp,
    neighbours: Vec<PeerId>,
    /// Queries handed in, per (sender, id).
    asked: BTreeSet<(PeerId, QueryId)>,
    /// Every target named for each id (an id forgotten early may come back with another).
    targets: BTreeMap<QueryId, Vec<Target>>,
    /// Acceptances per id (own starts and served queries) and copies sent per id.
    accepted: BTreeMap<QueryId, usize>,
    sent: BTreeMap<QueryId, usize>,
    /// Ids of queries this node sent, per neighbour: answers for them are worth trying.
    out_ids: Vec<QueryId>,
    held_since: Option<Timestamp>,
}

impl Run {
    fn check_bounds(&self) {
        let c = self.foaf.config();
        assert!(
            self.foaf.remembered_ids() <= c.dedup_capacity,
            "dedup table over bound"
        );
        assert!(
            self.foaf.pending_queries() <= c.max_pending,
            "pending table over bound"
        );
        assert!(
            self.foaf.own_queries() <= c.max_own_queries,
            "own queries over bound"
        );
        assert!(
            self.foaf.rate_buckets() <= c.max_rate_buckets,
            "buckets over bound"
        );
        let (t, e) = self.foaf.queued();
        assert!(
            t <= c.max_queued && e <= c.max_queued,
            "output queue over bound"
        );
    }

    fn drain(&mut self) {
        let at = self.held_since.unwrap_or(self.now);
        let fanout = self.foaf.config().fanout;
        while let Some((to, m)) = self.foaf.poll_transmit() {
            // Own queries go to whomever the owner listed (a mask over all five peers).
            assert!(fixture().peers.contains(&to), "sent to an unknown peer");
            match m {
                DiscoveryMessage::Query(q) => {
                    assert!(
                        q.ttl >= 1 && q.ttl <= self.foaf.config().max_ttl,
                        "bad ttl out"
                    );
                    let sent = self.sent.entry(q.id).or_default();
                    *sent += 1;
                    let accepted = self.accepted.get(&q.id).copied().unwrap_or(0);
                    assert!(
                        *sent <= fanout * accepted,
                        "more than fanout copies of a query"
                    );
                    if self.out_ids.len() < 64 {
                        self.out_ids.push(q.id);
                    }
                }
                DiscoveryMessage::Answer(a) => {
                    assert!(
                        self.asked.contains(&(to, a.id)),
                        "answer to a peer that never asked"
                    );
                    let targets = self.targets.get(&a.id).expect("answered ids were asked");
                    let mut peers = BTreeSet::new();
                    for r in a.records.as_slice() {
                        assert!(targets.iter().any(|t| t.admits(r)), "record does not match");
                        assert!(peers.insert(r.peer_id), "one peer twice in an answer");
                        let v = r.verify(&InsecureTestProvider, at);
                        assert!(
                            v.is_ok(),
                            "unverified record {v:?} {r:?} at {at:?} now {:?}",
                            self.now
                        );
                    }
                }
                _ => {}
            }
        }
        while let Some(e) = self.foaf.poll_event() {
            match e {
                hearsay_proto::discovery::foaf::Event::Found {
                    target, records, ..
                } => {
                    for r in &records {
                        assert!(target.admits(r), "found record does not match");
                        assert!(
                            r.verify(&InsecureTestProvider, at).is_ok(),
                            "unverified found"
                        );
                    }
                }
                hearsay_proto::discovery::foaf::Event::QueryDone { found, .. } => {
                    assert!(found <= self.foaf.config().max_records_per_query);
                }
                _ => {}
            }
        }
    }

    fn query(&mut self, from: PeerId, q: Query) {
        let f = fixture();
        self.asked.insert((from, q.id));
        self.targets.entry(q.id).or_default().push(q.target.clone());
        let known: &[PeerRecord] = &f.known;
        // A capability lookup answers with every known record (duplicates and an expired one
        // included): the state machine must filter them.
        let knowledge = |t: &Target, max: usize| -> Vec<PeerRecord> {
            match t {
                Target::Peer(_) => known
                    .iter()
                    .filter(|r| t.admits(r))
                    .take(max)
                    .cloned()
                    .collect(),
                _ => known.to_vec(),
            }
        };
        let id = q.id;
        let out = self.foaf.handle_query(
            self.now,
            &mut self.rng,
            from,
            q,
            &knowledge,
            &self.neighbours,
        );
        if matches!(out, QueryOutcome::Served { .. }) {
            *self.accepted.entry(id).or_default() += 1;
        }
    }

    fn answer(&mut self, from: PeerId, a: Answer) {
        let now = self.now;
        self.foaf.handle_answer(now, from, a, |r| {
            r.verify(&InsecureTestProvider, now).is_ok()
        });
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = DiscoveryMessage::decode(data) {
        let bytes = m.encode().expect("a decoded message re-encodes");
        assert_eq!(DiscoveryMessage::decode(&bytes).expect("re-decodes"), m);
    }

    let f = fixture();
    let mut input = Input::new(data);
    let Ok(foaf) = Foaf::new(config(input.u8())) else {
        return;
    };
    let mut run = Run {
        foaf,
        rng: ChaCha8Rng::seed_from_u64(7),
        now: T0,
        neighbours: f.peers[..4].to_vec(),
        asked: BTreeSet::new(),
        targets: BTreeMap::new(),
        accepted: BTreeMap::new(),
        sent: BTreeMap::new(),
        out_ids: Vec::new(),
        held_since: None,
    };
    let mut steps = 0;
    while !input.is_empty() && steps < 4096 {
        steps += 1;
        let op = input.u8();
        match op % 8 {
            0 => {
                let from = f.peers[usize::from(input.u8()) % 5];
                let bytes = input.chunk();
                match DiscoveryMessage::decode(bytes) {
                    Ok(DiscoveryMessage::Query(q)) => run.query(from, q),
                    Ok(DiscoveryMessage::Answer(a)) => run.answer(from, a),
                    _ => {}
                }
            }
            1 => {
                let from = f.peers[usize::from(input.u8()) % 5];
                let id = query_id(&mut input, &run.out_ids);
                let target = target(&mut input, f);
                let ttl = input.u8() % 7;
                run.query(from, Query { id, target, ttl });
            }
            2 => {
                let from = f.peers[usize::from(input.u8()) % 5];
                let id = query_id(&mut input, &run.out_ids);
                let n = usize::from(input.u8()) % 34;
                let records: Vec<PeerRecord> = (0..n)
                    .map(|_| f.pool[usize::from(input.u8()) % f.pool.len()].clone())
                    .collect();
                if let Ok(records) = BoundedVec::new(records) {
                    run.answer(from, Answer { id, records });
                }
            }
            3 => {
                let target = target(&mut input, f);
                let ttl = match input.u8() {
                    0 => None,
                    t => Some(t % 7),
                };
                let mask = input.u8();
                let to: Vec<PeerId> = (0..5)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| f.peers[i])
                    .collect();
                let now = run.now;
                if let Ok(id) = run
                    .foaf
                    .start_query(now, &mut run.rng, target.clone(), ttl, &to)
                {
                    *run.accepted.entry(id).or_default() += 1;
                    run.targets.entry(id).or_default().push(target);
                }
            }
            4 => {
                run.now += TimeDelta::from_millis(u64::from(input.u16()) * 4);
                run.foaf.handle_timeout(run.now);
                assert!(
                    run.foaf.poll_timeout().is_none_or(|t| t > run.now),
                    "timer still due"
                );
            }
            5 => {
                run.foaf.handle_timeout(run.now);
                assert!(
                    run.foaf.poll_timeout().is_none_or(|t| t > run.now),
                    "timer still due"
                );
            }
            6 => {
                if run.held_since.is_some() {
                    // Outputs made while held are checked against the time the hold began.
                    run.drain();
                    run.held_since = None;
                } else {
                    run.held_since = Some(run.now);
                }
            }
            _ => {
                let from = f.peers[usize::from(input.u8()) % 5];
                let id = query_id(&mut input, &run.out_ids);
                let n = usize::from(input.u8());
                let tag = input.bytes(n);
                let target = Target::Capability(
                    Capability::new(tag[..tag.len().min(32)].to_vec()).expect("fits"),
                );
                run.query(
                    from,
                    Query {
                        id,
                        target,
                        ttl: 1 + n as u8 % 4,
                    },
                );
            }
        }
        run.check_bounds();
        if run.held_since.is_none() {
            run.drain();
        }
    }
    run.drain();
});
