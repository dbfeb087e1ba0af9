use super::*;
use crate::DecodeError;
use crate::MAX_FRAME_LEN;
use crate::TimeDelta;
use crate::crypto::PureRustProvider;
use crate::identity::record::Addresses;
use crate::identity::{Identity, IdentitySeeds};
use crate::machine::StateMachine;
use alloc::vec;
use chacha20::ChaCha8Rng;
use proptest::prelude::*;
use rand_core::SeedableRng;
use std::sync::OnceLock;

const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A peer id with no record behind it.
fn pid(n: u64) -> PeerId {
    PeerId::from_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

fn qid(n: u64) -> QueryId {
    let mut b = [0u8; QUERY_ID_LEN];
    b[..8].copy_from_slice(&n.to_le_bytes());
    QueryId::from_bytes(b)
}

/// Real signed records (pure-Rust ML-DSA), made once for all tests.
fn records() -> &'static [PeerRecord] {
    static RECORDS: OnceLock<Vec<PeerRecord>> = OnceLock::new();
    RECORDS.get_or_init(|| {
        (0..16u8)
            .map(|i| {
                let mut r = ChaCha8Rng::from_seed([i; 32]);
                let identity =
                    Identity::from_seeds(&PureRustProvider, IdentitySeeds::generate(&mut r));
                PeerRecord::issue(
                    &identity,
                    Addresses::empty(),
                    T0,
                    TimeDelta::from_secs(3600),
                )
                .unwrap()
            })
            .collect()
    })
}

fn verify_at(now: Timestamp) -> impl FnMut(&PeerRecord) -> bool {
    move |r| r.verify(&PureRustProvider, now).is_ok()
}

fn peer_query(id: QueryId, peer: PeerId, ttl: u8) -> Query {
    Query {
        id,
        target: Target::Peer(peer),
        ttl,
    }
}

/// Lends any [`Knowledge`] (a slice of records included) as the `&dyn Knowledge` of an
/// [`Input::Query`].
struct Lend<'k, K: ?Sized>(&'k K);

impl<K: Knowledge + ?Sized> Knowledge for Lend<'_, K> {
    fn lookup(&self, target: &Target, max: usize) -> Vec<PeerRecord> {
        self.0.lookup(target, max)
    }
}

/// The tests' way of driving FOAF: every input goes through [`StateMachine::handle`], every
/// output out of [`StateMachine::poll`].
trait Drive {
    fn start(
        &mut self,
        now: Timestamp,
        rng: &mut ChaCha8Rng,
        target: Target,
        ttl: Option<u8>,
        neighbours: &[PeerId],
    ) -> Result<QueryId, FoafError>;
    fn query<K: Knowledge + ?Sized>(
        &mut self,
        now: Timestamp,
        rng: &mut ChaCha8Rng,
        from: PeerId,
        query: Query,
        knowledge: &K,
        neighbours: &[PeerId],
    ) -> QueryOutcome;
    fn answer(
        &mut self,
        now: Timestamp,
        from: PeerId,
        answer: Answer,
        verify: impl FnMut(&PeerRecord) -> bool,
    ) -> AnswerOutcome;
    fn tick(&mut self, now: Timestamp);
    /// The next event, dropping the sends queued before it.
    fn next_event(&mut self) -> Option<Event>;
}

impl Drive for Foaf {
    fn start(
        &mut self,
        now: Timestamp,
        rng: &mut ChaCha8Rng,
        target: Target,
        ttl: Option<u8>,
        neighbours: &[PeerId],
    ) -> Result<QueryId, FoafError> {
        let input = Input::Find {
            target,
            ttl,
            neighbours,
        };
        match self.handle(now, input, rng) {
            Reply::Started(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn query<K: Knowledge + ?Sized>(
        &mut self,
        now: Timestamp,
        rng: &mut ChaCha8Rng,
        from: PeerId,
        query: Query,
        knowledge: &K,
        neighbours: &[PeerId],
    ) -> QueryOutcome {
        let input = Input::Query {
            from,
            query,
            knowledge: &Lend(knowledge),
            neighbours,
        };
        match self.handle(now, input, rng) {
            Reply::Query(o) => o,
            other => panic!("{other:?}"),
        }
    }

    fn answer(
        &mut self,
        now: Timestamp,
        from: PeerId,
        answer: Answer,
        mut verify: impl FnMut(&PeerRecord) -> bool,
    ) -> AnswerOutcome {
        let input = Input::Answer {
            from,
            answer,
            verify: &mut verify,
        };
        match self.handle(now, input, &mut rng(0)) {
            Reply::Answer(o) => o,
            other => panic!("{other:?}"),
        }
    }

    fn tick(&mut self, now: Timestamp) {
        StateMachine::handle_timeout(self, now, &mut rng(0));
    }

    fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Output::Event(e) = self.poll()? {
                return Some(e);
            }
        }
    }
}

/// Every send queued, in order (events are dropped).
fn drain(f: &mut Foaf) -> Vec<(PeerId, DiscoveryMessage)> {
    core::iter::from_fn(|| f.poll())
        .filter_map(|o| match o {
            Output::Send { to, message } => Some((to, message)),
            Output::Event(_) => None,
        })
        .collect()
}

// ------------------------------------------------------------------ test network

/// Foaf instances wired by a graph; the harness delivers every transmit (through the codec)
/// in FIFO order and logs it.
struct Net {
    now: Timestamp,
    ids: Vec<PeerId>,
    index: BTreeMap<PeerId, usize>,
    nodes: Vec<Foaf>,
    rngs: Vec<ChaCha8Rng>,
    adj: Vec<Vec<PeerId>>,
    know: Vec<Vec<PeerRecord>>,
    queue: VecDeque<(PeerId, PeerId, Vec<u8>)>,
    log: Vec<(PeerId, PeerId, DiscoveryMessage)>,
    events: Vec<(usize, Event)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Knows {
    /// Only its own record (if it has one).
    Itself,
    /// Its own record and its neighbours' (what a Node holds after handshakes).
    Neighbours,
    /// Nothing.
    Nothing,
}

impl Net {
    fn new(
        ids: Vec<PeerId>,
        own: Vec<Option<PeerRecord>>,
        edges: &[(usize, usize)],
        knows: Knows,
        config: Config,
        seed: u64,
    ) -> Net {
        let n = ids.len();
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in edges {
            if a != b && !adj[a].contains(&ids[b]) {
                adj[a].push(ids[b]);
                adj[b].push(ids[a]);
            }
        }
        let index = ids.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        let mut know = vec![Vec::new(); n];
        if knows != Knows::Nothing {
            for i in 0..n {
                know[i].extend(own[i].clone());
            }
        }
        if knows == Knows::Neighbours {
            for &(a, b) in edges {
                know[a].extend(own[b].clone());
                know[b].extend(own[a].clone());
            }
        }
        Net {
            now: T0,
            nodes: (0..n).map(|_| Foaf::new(config.clone()).unwrap()).collect(),
            rngs: (0..n).map(|i| rng(seed ^ (i as u64) << 16)).collect(),
            ids,
            index,
            adj,
            know,
            queue: VecDeque::new(),
            log: Vec::new(),
            events: Vec::new(),
        }
    }

    /// A network of the first `n` record holders.
    fn with_records(n: usize, edges: &[(usize, usize)], knows: Knows, seed: u64) -> Net {
        let recs = &records()[..n];
        Net::new(
            recs.iter().map(|r| r.peer_id).collect(),
            recs.iter().cloned().map(Some).collect(),
            edges,
            knows,
            Config::default(),
            seed,
        )
    }

    fn drain(&mut self, i: usize) {
        while let Some(out) = self.nodes[i].poll() {
            match out {
                Output::Send { to, message } => {
                    self.queue
                        .push_back((self.ids[i], to, message.encode().unwrap()))
                }
                Output::Event(e) => self.events.push((i, e)),
            }
        }
    }

    fn run(&mut self) {
        while let Some((from, to, bytes)) = self.queue.pop_front() {
            let msg = DiscoveryMessage::decode(&bytes).unwrap();
            self.log.push((from, to, msg.clone()));
            let i = self.index[&to];
            let now = self.now;
            match msg {
                DiscoveryMessage::Query(q) => {
                    self.nodes[i].query(
                        now,
                        &mut self.rngs[i],
                        from,
                        q,
                        self.know[i].as_slice(),
                        &self.adj[i],
                    );
                }
                DiscoveryMessage::Answer(a) => {
                    self.nodes[i].answer(now, from, a, verify_at(now));
                }
            }
            self.drain(i);
        }
    }

    fn start(&mut self, origin: usize, target: Target, ttl: Option<u8>) -> QueryId {
        let id = self.nodes[origin]
            .start(
                self.now,
                &mut self.rngs[origin],
                target,
                ttl,
                &self.adj[origin],
            )
            .unwrap();
        self.drain(origin);
        self.run();
        id
    }

    /// Lets every query time out.
    fn finish(&mut self) {
        self.now += TimeDelta::from_secs(60);
        for i in 0..self.nodes.len() {
            self.nodes[i].tick(self.now);
            self.drain(i);
        }
    }

    fn found(&self, origin: usize, query: QueryId) -> Vec<PeerId> {
        let mut out = Vec::new();
        for (i, e) in &self.events {
            if let Event::Found {
                query: q, records, ..
            } = e
                && *i == origin
                && *q == query
            {
                out.extend(records.iter().map(|r| r.peer_id));
            }
        }
        out
    }

    fn queries(&self, id: QueryId) -> Vec<(usize, usize, u8)> {
        self.log
            .iter()
            .filter_map(|(f, t, m)| match m {
                DiscoveryMessage::Query(q) if q.id == id => {
                    Some((self.index[f], self.index[t], q.ttl))
                }
                _ => None,
            })
            .collect()
    }

    fn answers(&self, id: QueryId) -> Vec<(usize, usize)> {
        self.log
            .iter()
            .filter_map(|(f, t, m)| match m {
                DiscoveryMessage::Answer(a) if a.id == id => Some((self.index[f], self.index[t])),
                _ => None,
            })
            .collect()
    }

    /// Every answer X → Y follows a query Y → X with the same id, sent earlier.
    fn assert_reverse_path_only(&self) {
        for (n, (from, to, m)) in self.log.iter().enumerate() {
            if let DiscoveryMessage::Answer(a) = m {
                let asked = self.log[..n].iter().any(|(f, t, m)| {
                    f == to && t == from && matches!(m, DiscoveryMessage::Query(q) if q.id == a.id)
                });
                assert!(
                    asked,
                    "answer {from:?} -> {to:?} without a query {to:?} -> {from:?}"
                );
            }
        }
    }
}

fn line(n: usize) -> Vec<(usize, usize)> {
    (1..n).map(|i| (i - 1, i)).collect()
}

/// A random graph where every node links to `degree` random others (links are symmetric).
fn random_graph(n: usize, degree: usize, seed: u64) -> Vec<(usize, usize)> {
    let mut r = rng(seed);
    let mut edges = Vec::new();
    for a in 0..n {
        for _ in 0..degree {
            let b = (r.next_u64() % n as u64) as usize;
            if a != b {
                edges.push((a, b));
            }
        }
    }
    edges
}

fn dense_net(n: usize, seed: u64) -> Net {
    let ids: Vec<PeerId> = (0..n as u64).map(pid).collect();
    Net::new(
        ids,
        vec![None; n],
        &random_graph(n, 6, seed),
        Knows::Nothing,
        Config::default(),
        seed,
    )
}

// ------------------------------------------------------------------ wire

#[test]
fn messages_round_trip_with_the_specified_layout() {
    let id = QueryId::from_bytes([7; 16]);
    let peer = PeerId::from_bytes([9; 32]);
    let q = DiscoveryMessage::Query(peer_query(id, peer, 3));
    let bytes = q.encode().unwrap();
    // [0, [[id, [0, [peer]], 3]]]
    let mut expected = vec![0x82, 0x00, 0x81, 0x83, 0x50];
    expected.extend_from_slice(&[7; 16]);
    expected.extend_from_slice(&[0x82, 0x00, 0x81, 0x58, 0x20]);
    expected.extend_from_slice(&[9; 32]);
    expected.push(0x03);
    assert_eq!(bytes, expected);
    assert_eq!(DiscoveryMessage::decode(&bytes).unwrap(), q);

    let cap = DiscoveryMessage::Query(Query {
        id,
        target: Target::Capability(Capability::new(&b"relay"[..]).unwrap()),
        ttl: 4,
    });
    let bytes = cap.encode().unwrap();
    // [0, [[id, [1, ["relay"]], 4]]]
    assert_eq!(
        &bytes[21..],
        &[0x82, 0x01, 0x81, 0x45, b'r', b'e', b'l', b'a', b'y', 4]
    );
    assert_eq!(DiscoveryMessage::decode(&bytes).unwrap(), cap);

    let a = DiscoveryMessage::Answer(Answer {
        id,
        records: BoundedVec::new(records()[..2].to_vec()).unwrap(),
    });
    let bytes = a.encode().unwrap();
    // [1, [[id, [record, record]]]]
    assert_eq!(&bytes[..5], &[0x82, 0x01, 0x81, 0x82, 0x50]);
    assert_eq!(bytes[21], 0x82);
    assert_eq!(DiscoveryMessage::decode(&bytes).unwrap(), a);
}

#[test]
fn bad_input_is_a_typed_error() {
    let id = QueryId::from_bytes([1; 16]);
    // Oversize: refused before parsing.
    assert_eq!(
        DiscoveryMessage::decode(&vec![0u8; MAX_FRAME_LEN + 1]),
        Err(DecodeError::FrameTooLarge {
            len: MAX_FRAME_LEN + 1,
            max: MAX_FRAME_LEN
        })
    );
    // Garbage and an unknown variant.
    assert!(matches!(
        DiscoveryMessage::decode(&[0xff, 0x00, 0x13]),
        Err(DecodeError::Malformed { .. })
    ));
    assert!(matches!(
        DiscoveryMessage::decode(&[0x82, 0x07, 0x80]),
        Err(DecodeError::Malformed { .. })
    ));
    // An answer declaring 33 records: refused on the array header.
    let mut too_many = vec![0x82, 0x01, 0x81, 0x82, 0x50];
    too_many.extend_from_slice(&[1; 16]);
    too_many.extend_from_slice(&[0x98, 33]);
    assert_eq!(
        DiscoveryMessage::decode(&too_many),
        Err(DecodeError::ListTooLong {
            max: MAX_ANSWER_RECORDS
        })
    );
    // A 15-byte query id.
    let mut short_id = vec![0x82, 0x00, 0x81, 0x83, 0x4f];
    short_id.extend_from_slice(&[1; 15]);
    assert_eq!(
        DiscoveryMessage::decode(&short_id),
        Err(DecodeError::WrongLength {
            expected: 16,
            got: 15
        })
    );
    // A 33-byte capability.
    let mut long_cap = vec![0x82, 0x00, 0x81, 0x83, 0x50];
    long_cap.extend_from_slice(&[1; 16]);
    long_cap.extend_from_slice(&[0x82, 0x01, 0x81, 0x58, 33]);
    long_cap.extend_from_slice(&[0; 33]);
    long_cap.push(3);
    assert_eq!(
        DiscoveryMessage::decode(&long_cap),
        Err(DecodeError::BytesTooLong {
            max: MAX_CAPABILITY_LEN
        })
    );
    // A ttl that does not fit a byte.
    let mut big_ttl = DiscoveryMessage::Query(peer_query(id, pid(1), 1))
        .encode()
        .unwrap();
    big_ttl.pop();
    big_ttl.extend_from_slice(&[0x19, 0x01, 0x00]);
    assert!(matches!(
        DiscoveryMessage::decode(&big_ttl),
        Err(DecodeError::Malformed { .. })
    ));
    // Trailing bytes.
    let mut trailing = DiscoveryMessage::Query(peer_query(id, pid(1), 1))
        .encode()
        .unwrap();
    trailing.push(0);
    assert_eq!(
        DiscoveryMessage::decode(&trailing),
        Err(DecodeError::TrailingBytes { extra: 1 })
    );
    // More records than the wire allows cannot even be built.
    assert!(
        BoundedVec::<PeerRecord, MAX_ANSWER_RECORDS>::new(vec![
            records()[0].clone();
            MAX_ANSWER_RECORDS + 1
        ])
        .is_err()
    );
}

#[test]
fn truncated_and_corrupted_messages_never_panic() {
    let answer = DiscoveryMessage::Answer(Answer {
        id: qid(5),
        records: BoundedVec::new(records()[..1].to_vec()).unwrap(),
    })
    .encode()
    .unwrap();
    for cut in 0..answer.len() {
        assert!(
            DiscoveryMessage::decode(&answer[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let query = DiscoveryMessage::Query(peer_query(qid(5), pid(5), 3))
        .encode()
        .unwrap();
    let mut r = rng(77);
    for _ in 0..20_000 {
        let mut m = if r.next_u32().is_multiple_of(2) {
            query.clone()
        } else {
            answer[..64].to_vec()
        };
        let at = (r.next_u64() % m.len() as u64) as usize;
        m[at] = r.next_u32() as u8;
        let _ = DiscoveryMessage::decode(&m);
    }
    for len in 0..64 {
        let mut m = vec![0u8; len];
        r.fill_bytes(&mut m);
        let _ = DiscoveryMessage::decode(&m);
    }
}

#[test]
fn an_answer_of_the_largest_records_fits_a_frame() {
    use crate::crypto::{EncapsulationKeyBytes, SignatureBytes, VerifyingKeyBytes};
    let address =
        crate::identity::record::Address::new(vec![0xaa; crate::identity::record::MAX_ADDRESS_LEN]);
    let largest = PeerRecord {
        peer_id: pid(1),
        verifying_key: VerifyingKeyBytes::from_array([1; crate::crypto::SIG_VERIFYING_KEY_LEN]),
        encapsulation_key: EncapsulationKeyBytes::from_array(
            [2; crate::crypto::KEM_ENCAPSULATION_KEY_LEN],
        ),
        addresses: Addresses::new(vec![
            address.unwrap();
            crate::identity::record::MAX_ADDRESSES
        ])
        .unwrap(),
        issued_at: Timestamp::MAX,
        expires_at: Timestamp::MAX,
        signature: SignatureBytes::from_array([3; crate::crypto::SIGNATURE_LEN]),
    };
    assert_eq!(largest.to_bytes().unwrap().len(), 7_548);
    let answer = DiscoveryMessage::Answer(Answer {
        id: qid(1),
        records: BoundedVec::new(vec![largest; MAX_ANSWER_RECORDS]).unwrap(),
    });
    let len = answer.encode().unwrap().len();
    // The frame adds `[5, body]`: 2 bytes.
    assert!(len + 2 <= MAX_FRAME_LEN, "{len}");
    assert_eq!(
        DiscoveryMessage::decode(&answer.encode().unwrap()).unwrap(),
        answer
    );
}

// ------------------------------------------------------------------ finding peers

#[test]
fn finds_peers_two_and_three_hops_away_along_the_reverse_path() {
    // 0 - 1 - 2 - 3 - 4 - 5, each node knowing only itself.
    let mut net = Net::with_records(6, &line(6), Knows::Itself, 1);
    for hops in [2usize, 3] {
        let target = net.ids[hops];
        let q = net.start(0, Target::Peer(target), None);
        assert_eq!(net.found(0, q), vec![target], "{hops} hops");
        // The answer came back hop by hop: hops → hops−1 → … → 0.
        let expected: Vec<(usize, usize)> = (1..=hops).rev().map(|i| (i, i - 1)).collect();
        assert_eq!(net.answers(q), expected);
        // The hop budget shrank by one per hop and the target did not pass the query on.
        let ttls: Vec<(usize, usize, u8)> = (0..hops).map(|i| (i, i + 1, 3 - i as u8)).collect();
        assert_eq!(net.queries(q), ttls);
    }
    net.assert_reverse_path_only();
    net.finish();
    let done: Vec<usize> = net
        .events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::QueryDone { found, sent, .. } if *i == 0 => {
                assert_eq!(*sent, 1);
                Some(*found)
            }
            _ => None,
        })
        .collect();
    assert_eq!(done, vec![1, 1]);
    assert_eq!(net.nodes[0].counters().queries_succeeded, 2);
}

#[test]
fn nothing_is_found_or_asked_beyond_the_ttl() {
    let mut net = Net::with_records(6, &line(6), Knows::Itself, 2);
    let far = net.ids[4];
    let q = net.start(0, Target::Peer(far), Some(3));
    assert!(net.found(0, q).is_empty());
    assert!(net.answers(q).is_empty());
    // Hops 1..3 got the query, node 4 never did.
    assert_eq!(
        net.queries(q)
            .iter()
            .map(|(_, t, _)| *t)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    net.finish();
    assert!(
        net.events.iter().any(|(i, e)| *i == 0
            && matches!(e, Event::QueryDone { query, found: 0, .. } if *query == q))
    );
    assert_eq!(net.nodes[0].counters().queries_succeeded, 0);

    // With the maximum budget the same peer is found.
    let q4 = net.start(0, Target::Peer(far), Some(4));
    assert_eq!(net.found(0, q4), vec![far]);
    assert!(!net.queries(q4).iter().any(|(_, t, _)| *t == 5));
    net.assert_reverse_path_only();
}

#[test]
fn relays_answer_from_what_they_know() {
    // Each node knows its neighbours' records (as a Node does after handshakes): node 3
    // answers for node 4, which lies beyond the budget and is never asked.
    let mut net = Net::with_records(6, &line(6), Knows::Neighbours, 3);
    let target = net.ids[4];
    let q = net.start(0, Target::Peer(target), Some(3));
    assert_eq!(net.found(0, q), vec![target]);
    assert_eq!(net.answers(q), vec![(3, 2), (2, 1), (1, 0)]);
    assert!(!net.queries(q).iter().any(|(_, t, _)| *t == 4));
    assert_eq!(net.nodes[3].counters().answers_sent, 1);
    // Node 2 knew node 3, not node 4: it relayed, it did not answer itself.
    assert_eq!(net.nodes[2].counters().answers_sent, 0);
    assert_eq!(net.nodes[2].counters().answers_relayed, 1);
    // Node 1 knows node 2: a query for it stops at node 1, which does not pass it on.
    let q2 = net.start(0, Target::Peer(net.ids[2]), None);
    assert_eq!(net.queries(q2), vec![(0, 1, 3)]);
    assert_eq!(net.answers(q2), vec![(1, 0)]);
    net.assert_reverse_path_only();
}

#[test]
fn in_a_tree_answers_travel_only_the_reverse_path() {
    // A binary tree of depth 3: node i's parent is (i − 1) / 2; node 14 is a leaf.
    let edges: Vec<(usize, usize)> = (1..15).map(|i| ((i - 1) / 2, i)).collect();
    let mut net = Net::with_records(15, &edges, Knows::Itself, 4);
    let q = net.start(0, Target::Peer(net.ids[14]), None);
    assert_eq!(net.found(0, q), vec![net.ids[14]]);
    assert_eq!(net.answers(q), vec![(14, 6), (6, 2), (2, 0)]);
    // The query reached every node of depth ≤ 3 exactly once.
    let mut reached: Vec<usize> = net.queries(q).iter().map(|(_, t, _)| *t).collect();
    reached.sort();
    assert_eq!(reached, (1..15).collect::<Vec<_>>());
    net.assert_reverse_path_only();
    // A capability query: nobody has capability knowledge, so nothing is found, but every
    // node asked forwards it (capability queries are not stopped by an answer).
    let cap = Target::Capability(Capability::new(&b"storage"[..]).unwrap());
    let qc = net.start(0, cap, None);
    assert_eq!(net.queries(qc).len(), 14);
    assert!(net.answers(qc).is_empty());
}

#[test]
fn the_origin_reports_each_peer_once() {
    // 0 links to 1 and 2, both of which link to 3 and know its record.
    let edges = [(0, 1), (0, 2), (1, 3), (2, 3)];
    let mut net = Net::with_records(4, &edges, Knows::Neighbours, 5);
    let q = net.start(0, Target::Peer(net.ids[3]), None);
    assert_eq!(net.answers(q).len(), 2);
    assert_eq!(net.found(0, q), vec![net.ids[3]]);
    assert_eq!(net.nodes[0].counters().records_duplicate, 1);
    assert_eq!(net.nodes[0].counters().records_found, 1);
}

#[test]
fn capability_answers_come_from_the_knowledge_callback() {
    let recs = records();
    let tag = Capability::new(&b"relay"[..]).unwrap();
    let wanted = tag.clone();
    let knowledge = move |t: &Target, max: usize| -> Vec<PeerRecord> {
        match t {
            Target::Capability(c) if *c == wanted => recs[3..6].iter().take(max).cloned().collect(),
            _ => Vec::new(),
        }
    };
    let mut f = Foaf::new(Config::default()).unwrap();
    let (a, b) = (pid(1), pid(2));
    let out = f.query(
        T0,
        &mut rng(1),
        a,
        Query {
            id: qid(1),
            target: Target::Capability(tag),
            ttl: 2,
        },
        &knowledge,
        &[a, b],
    );
    assert_eq!(
        out,
        QueryOutcome::Served {
            answered: 3,
            forwarded: 1
        }
    );
    let sent = drain(&mut f);
    assert!(
        matches!(&sent[0], (to, DiscoveryMessage::Answer(ans)) if *to == a && ans.records.len() == 3)
    );
    assert!(matches!(&sent[1], (to, DiscoveryMessage::Query(q)) if *to == b && q.ttl == 1));
}

// ------------------------------------------------------------------ bounds

#[test]
fn a_query_id_is_served_once() {
    let mut f = Foaf::new(Config::default()).unwrap();
    let me = &records()[0];
    let neighbours = [pid(1), pid(2), pid(3), pid(4), pid(5)];
    let q = peer_query(qid(1), pid(99), 3);
    let first = f.query(
        T0,
        &mut rng(1),
        pid(1),
        q.clone(),
        &[me.clone()][..],
        &neighbours,
    );
    assert_eq!(
        first,
        QueryOutcome::Served {
            answered: 0,
            forwarded: 3
        }
    );
    let sent = drain(&mut f);
    assert_eq!(sent.len(), 3);
    assert!(
        sent.iter()
            .all(|(to, m)| *to != pid(1) && matches!(m, DiscoveryMessage::Query(q) if q.ttl == 2))
    );
    let again = f.query(
        T0,
        &mut rng(1),
        pid(2),
        q.clone(),
        &[me.clone()][..],
        &neighbours,
    );
    assert_eq!(again, QueryOutcome::Duplicate);
    assert!(drain(&mut f).is_empty());
    assert_eq!(f.counters().duplicates, 1);
    assert_eq!(f.counters().queries_sent, 3);

    // Also for a query this node answers: one answer, whoever asks again.
    let mine = peer_query(qid(2), me.peer_id, 2);
    f.query(
        T0,
        &mut rng(1),
        pid(1),
        mine.clone(),
        &[me.clone()][..],
        &neighbours,
    );
    f.query(
        T0,
        &mut rng(1),
        pid(2),
        mine,
        &[me.clone()][..],
        &neighbours,
    );
    let sent = drain(&mut f);
    assert_eq!(sent.len(), 1);
    assert!(matches!(&sent[0], (to, DiscoveryMessage::Answer(_)) if *to == pid(1)));
    assert_eq!(f.counters().answers_sent, 1);
}

fn check_forward_bound(ttl: u8, seed: u64) {
    let bound: usize = (1..=u32::from(ttl)).map(|k| 3usize.pow(k)).sum();
    let mut net = dense_net(60, seed);
    let mut deepest = 0;
    for origin in 0..20 {
        let q = net.start(origin, Target::Peer(pid(1_000_000)), Some(ttl));
        let sends = net.queries(q);
        assert!(sends.len() <= bound, "ttl {ttl}: {} > {bound}", sends.len());
        // No node sent the query more than fanout times (it forwarded once at most).
        for node in 0..60 {
            assert!(sends.iter().filter(|(f, _, _)| *f == node).count() <= 3);
        }
        // Budgets only shrink: a copy at hop h carries ttl − h + 1.
        assert!(sends.iter().all(|(_, _, t)| *t >= 1 && *t <= ttl));
        deepest = deepest.max(sends.iter().filter(|(_, _, t)| *t == 1).count());
    }
    // Forwarding did reach the last hop, and dedup was exercised on this dense graph.
    assert!(deepest > 3, "{deepest}");
    let dups: u64 = net.nodes.iter().map(|n| n.counters().duplicates).sum();
    assert!(dups > 0);
    let sent: u64 = net.nodes.iter().map(|n| n.counters().queries_sent).sum();
    assert_eq!(sent as usize, net.log.len());
}

#[test]
fn forwards_per_query_are_bounded_at_ttl_3() {
    check_forward_bound(3, 11);
}

#[test]
fn forwards_per_query_are_bounded_at_ttl_4() {
    check_forward_bound(4, 12);
}

#[test]
fn a_ttl_above_the_maximum_is_refused_and_counted() {
    let mut f = Foaf::new(Config::default()).unwrap();
    let n = [pid(1), pid(2), pid(3)];
    let none: &[PeerRecord] = &[];
    let q = peer_query(qid(1), pid(9), MAX_TTL + 1);
    assert_eq!(
        f.query(T0, &mut rng(1), pid(1), q, none, &n),
        QueryOutcome::TtlTooHigh
    );
    let zero = peer_query(qid(1), pid(9), 0);
    assert_eq!(
        f.query(T0, &mut rng(1), pid(1), zero, none, &n),
        QueryOutcome::TtlZero
    );
    assert!(drain(&mut f).is_empty());
    assert_eq!((f.counters().ttl_too_high, f.counters().ttl_zero), (1, 1));
    // The refused copies did not mark the id as seen.
    let ok = peer_query(qid(1), pid(9), MAX_TTL);
    assert!(matches!(
        f.query(T0, &mut rng(1), pid(1), ok, none, &n),
        QueryOutcome::Served { forwarded: 2, .. }
    ));
    // A lower configured maximum is enforced too, for queries and for the origin.
    let mut low = Foaf::new(Config {
        max_ttl: 3,
        ..Config::default()
    })
    .unwrap();
    assert_eq!(
        low.query(
            T0,
            &mut rng(1),
            pid(1),
            peer_query(qid(2), pid(9), 4),
            none,
            &n
        ),
        QueryOutcome::TtlTooHigh
    );
    assert_eq!(
        low.start(T0, &mut rng(1), Target::Peer(pid(9)), Some(4), &n),
        Err(FoafError::BadTtl { ttl: 4, max: 3 })
    );
    assert_eq!(
        low.start(T0, &mut rng(1), Target::Peer(pid(9)), Some(0), &n),
        Err(FoafError::BadTtl { ttl: 0, max: 3 })
    );
}

#[test]
fn queries_from_non_neighbours_are_refused() {
    let mut f = Foaf::new(Config::default()).unwrap();
    let none: &[PeerRecord] = &[];
    let out = f.query(
        T0,
        &mut rng(1),
        pid(7),
        peer_query(qid(1), pid(9), 2),
        none,
        &[pid(1)],
    );
    assert_eq!(out, QueryOutcome::NotNeighbour);
    assert_eq!(f.counters().not_neighbour, 1);
    assert!(drain(&mut f).is_empty());
}

#[test]
fn a_flooding_neighbour_is_rate_limited_while_others_are_served() {
    let mut f = Foaf::new(Config::default()).unwrap();
    let (a, b) = (pid(1), pid(2));
    let n = [a, b, pid(3), pid(4)];
    let none: &[PeerRecord] = &[];
    let mut r = rng(1);
    let mut served = 0;
    for i in 0..50 {
        match f.query(T0, &mut r, a, peer_query(qid(i), pid(9), 2), none, &n) {
            QueryOutcome::Served { .. } => served += 1,
            QueryOutcome::RateLimited => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(served, 10);
    assert_eq!(f.counters().rate_limited, 40);
    drain(&mut f);
    // Another neighbour is still served at the same instant.
    assert!(matches!(
        f.query(T0, &mut r, b, peer_query(qid(100), pid(9), 2), none, &n),
        QueryOutcome::Served { forwarded: 3, .. }
    ));
    // A rate-limited id was not remembered: it is served when it comes again later.
    let later = T0 + TimeDelta::from_secs(1);
    assert!(matches!(
        f.query(later, &mut r, a, peer_query(qid(49), pid(9), 2), none, &n),
        QueryOutcome::Served { .. }
    ));
}

#[test]
fn unsolicited_answers_are_dropped_and_counted() {
    let mut f = Foaf::new(Config::default()).unwrap();
    let n = [pid(1), pid(2), pid(3), pid(4), pid(5)];
    let target = &records()[1];
    let q = f
        .start(T0, &mut rng(3), Target::Peer(target.peer_id), None, &n)
        .unwrap();
    let sent_to: Vec<PeerId> = drain(&mut f).into_iter().map(|(p, _)| p).collect();
    assert_eq!(sent_to.len(), 3);
    let outsider = *n.iter().find(|p| !sent_to.contains(p)).unwrap();
    let answer = |id| Answer {
        id,
        records: BoundedVec::new(vec![target.clone()]).unwrap(),
    };
    // An id never sent.
    assert_eq!(
        f.answer(T0, sent_to[0], answer(qid(42)), verify_at(T0)),
        AnswerOutcome::UnknownQuery
    );
    // A neighbour the query was not sent to.
    assert_eq!(
        f.answer(T0, outsider, answer(q), verify_at(T0)),
        AnswerOutcome::WrongPeer
    );
    assert!(f.next_event().is_none());
    // The real answer is accepted...
    assert_eq!(
        f.answer(T0, sent_to[0], answer(q), verify_at(T0)),
        AnswerOutcome::Accepted {
            new_records: 1,
            rejected: false
        }
    );
    assert!(matches!(f.next_event(), Some(Event::Found { via, .. }) if via == sent_to[0]));
    // ...and once the query timed out, a late one is unknown.
    let late = T0 + f.config().query_timeout;
    assert_eq!(f.poll_timeout(), Some(late));
    assert_eq!(
        f.answer(late, sent_to[1], answer(q), verify_at(late)),
        AnswerOutcome::UnknownQuery
    );
    assert!(matches!(
        f.next_event(),
        Some(Event::QueryDone {
            found: 1,
            sent: 3,
            ..
        })
    ));
    let c = f.counters();
    assert_eq!((c.answers_unknown_query, c.answers_wrong_peer), (2, 1));
    assert!(
        drain(&mut f).is_empty(),
        "nothing is sent in reply to an answer at the origin"
    );
}

#[test]
fn bad_records_are_dropped_and_counted() {
    let recs = records();
    let mut f = Foaf::new(Config::default()).unwrap();
    let (a, b, c, d) = (pid(1), pid(2), pid(3), pid(4));
    // A relay: the query came from `a` and went to b, c, d.
    let target = recs[2].clone();
    let none: &[PeerRecord] = &[];
    f.query(
        T0,
        &mut rng(1),
        a,
        peer_query(qid(1), target.peer_id, 3),
        none,
        &[a, b, c, d],
    );
    assert_eq!(drain(&mut f).len(), 3);
    let answer = |records: Vec<PeerRecord>| Answer {
        id: qid(1),
        records: BoundedVec::new(records).unwrap(),
    };
    // A forged record (changed after signing) fails verification; the rest of the answer
    // is discarded and `b` may not answer this query again.
    let mut forged = target.clone();
    forged.issued_at += TimeDelta::from_micros(1);
    assert_eq!(
        f.answer(T0, b, answer(vec![forged, target.clone()]), verify_at(T0)),
        AnswerOutcome::Accepted {
            new_records: 0,
            rejected: true
        }
    );
    assert_eq!(
        f.answer(T0, b, answer(vec![target.clone()]), verify_at(T0)),
        AnswerOutcome::WrongPeer
    );
    // A valid record of another peer does not answer a peer query.
    assert_eq!(
        f.answer(T0, c, answer(vec![recs[3].clone()]), verify_at(T0)),
        AnswerOutcome::Accepted {
            new_records: 0,
            rejected: true
        }
    );
    // An expired record fails verification too.
    let expired = T0 + TimeDelta::from_secs(3600);
    assert!(!verify_at(expired)(&target));
    assert!(drain(&mut f).is_empty(), "nothing bad was relayed");
    // The real record is relayed back to `a` only, once.
    assert_eq!(
        f.answer(
            T0,
            d,
            answer(vec![target.clone(), target.clone()]),
            verify_at(T0)
        ),
        AnswerOutcome::Accepted {
            new_records: 1,
            rejected: false
        }
    );
    let sent = drain(&mut f);
    assert_eq!(sent.len(), 1);
    assert!(
        matches!(&sent[0], (to, DiscoveryMessage::Answer(ans)) if *to == a && ans.records.len() == 1)
    );
    let k = f.counters();
    assert_eq!(
        (
            k.records_invalid,
            k.records_mismatched,
            k.records_duplicate,
            k.answers_relayed
        ),
        (1, 1, 1, 1)
    );
}

#[test]
fn answers_and_records_per_query_are_capped() {
    let recs = records();
    let mut f = Foaf::new(Config {
        max_answers_per_query: 3,
        max_records_per_query: 4,
        ..Config::default()
    })
    .unwrap();
    let (a, b) = (pid(1), pid(2));
    let cap = Target::Capability(Capability::new(&b"x"[..]).unwrap());
    let q = f.start(T0, &mut rng(1), cap, Some(2), &[a]).unwrap();
    drain(&mut f);
    let answer = |r: &[PeerRecord]| Answer {
        id: q,
        records: BoundedVec::new(r.to_vec()).unwrap(),
    };
    let mut verified = 0;
    let mut count = |r: &PeerRecord| {
        verified += 1;
        r.verify(&PureRustProvider, T0).is_ok()
    };
    assert_eq!(
        f.answer(T0, a, answer(&recs[0..6]), &mut count),
        AnswerOutcome::Accepted {
            new_records: 4,
            rejected: false
        }
    );
    f.answer(T0, a, answer(&recs[6..8]), &mut count);
    f.answer(T0, a, answer(&recs[8..9]), &mut count);
    assert_eq!(
        f.answer(T0, a, answer(&recs[9..10]), &mut count),
        AnswerOutcome::TooManyAnswers
    );
    // Records over the per-query limit were dropped before any verification.
    assert_eq!(verified, 4);
    assert_eq!(f.counters().records_over_limit, 5);
    assert_eq!(f.counters().answers_over_limit, 1);
    let _ = b;
}

#[test]
fn tables_stay_bounded_under_a_flood_of_distinct_ids() {
    let config = Config {
        dedup_capacity: 64,
        max_pending: 16,
        max_own_queries: 4,
        max_rate_buckets: 32,
        max_queued: 100,
        query_rate: 1_000,
        ..Config::default()
    };
    let mut f = Foaf::new(config).unwrap();
    let neighbours: Vec<PeerId> = (0..300).map(pid).collect();
    let none: &[PeerRecord] = &[];
    let mut r = rng(9);
    let mut now = T0;
    for i in 0..5_000u64 {
        now += TimeDelta::from_micros(100);
        let from = neighbours[(i % 300) as usize];
        f.query(
            now,
            &mut r,
            from,
            peer_query(qid(i), pid(9), 3),
            none,
            &neighbours,
        );
        if i % 7 == 0 {
            let _ = f.start(now, &mut r, Target::Peer(pid(9)), None, &neighbours);
        }
        assert!(f.remembered_ids() <= 64);
        assert!(f.pending_queries() <= 16);
        assert!(f.own_queries() <= 4);
        assert!(f.rate_buckets() <= 32);
        let (tx, ev) = f.queued();
        assert!(tx <= 100 && ev <= 100);
        if i % 1_000 == 999 {
            while f.poll().is_some() {}
        }
    }
    let c = f.counters();
    assert!(c.dedup_evicted > 0 && c.pending_evicted > 0 && c.queue_dropped > 0);
    assert_eq!(
        f.start(now, &mut r, Target::Peer(pid(9)), None, &neighbours),
        Err(FoafError::TooManyQueries { max: 4 })
    );
    // Everything drains away with time.
    let end = now + TimeDelta::from_secs(60);
    assert!(f.poll_timeout().is_some_and(|t| t <= end));
    f.tick(end);
    assert_eq!(
        (
            f.remembered_ids(),
            f.pending_queries(),
            f.own_queries(),
            f.rate_buckets()
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(f.poll_timeout(), None);
}

#[test]
fn the_same_seed_gives_the_same_choices() {
    // Returns the whole log and, separately, only who sent to whom (ids aside).
    let run = |seed: u64| {
        let mut net = dense_net(40, 21);
        net.rngs = (0..40).map(|i| rng(seed + i)).collect();
        for origin in 0..5 {
            net.start(origin, Target::Peer(pid(555)), Some(4));
        }
        let routes: Vec<(PeerId, PeerId)> = net.log.iter().map(|(f, t, _)| (*f, *t)).collect();
        (net.log, routes)
    };
    let (log, routes) = run(1);
    assert_eq!((log.clone(), routes.clone()), run(1));
    assert_ne!(
        routes,
        run(2).1,
        "the choice of neighbours depends on the RNG"
    );
    // Every neighbour gets picked: the choice is random, not the first `fanout`.
    let n: Vec<PeerId> = (0..10).map(pid).collect();
    let mut f = Foaf::new(Config::default()).unwrap();
    let mut picked = BTreeMap::<PeerId, usize>::new();
    let mut r = rng(8);
    for i in 0..300 {
        let now = T0 + TimeDelta::from_secs(i);
        f.query(
            now,
            &mut r,
            n[0],
            peer_query(qid(i), pid(99), 2),
            &[][..],
            &n,
        );
        for (to, _) in drain(&mut f) {
            *picked.entry(to).or_default() += 1;
        }
    }
    assert_eq!(picked.len(), 9);
    assert!(
        picked.values().all(|c| (60..=140).contains(c)),
        "{picked:?}"
    );
    // The caller's neighbour order does not matter either.
    let n: Vec<PeerId> = (0..10).map(pid).collect();
    let mut rev = n.clone();
    rev.reverse();
    let pick = |list: &[PeerId]| {
        let mut f = Foaf::new(Config::default()).unwrap();
        f.start(T0, &mut rng(5), Target::Peer(pid(99)), None, list)
            .unwrap();
        drain(&mut f)
    };
    assert_eq!(pick(&n), pick(&rev));
}

#[test]
fn start_query_needs_neighbours_and_a_valid_config() {
    let mut f = Foaf::new(Config::default()).unwrap();
    assert_eq!(
        f.start(T0, &mut rng(1), Target::Peer(pid(1)), None, &[]),
        Err(FoafError::NoNeighbours)
    );
    assert_eq!(f.own_queries(), 0);
    for bad in [
        Config {
            fanout: 0,
            ..Config::default()
        },
        Config {
            max_ttl: 5,
            ..Config::default()
        },
        Config {
            default_ttl: 4,
            max_ttl: 3,
            ..Config::default()
        },
        Config {
            max_records_per_answer: MAX_ANSWER_RECORDS + 1,
            ..Config::default()
        },
        Config {
            max_own_queries: 256,
            ..Config::default()
        },
        Config {
            dedup_ttl: TimeDelta::from_secs(1),
            ..Config::default()
        },
    ] {
        assert!(matches!(Foaf::new(bad), Err(FoafError::InvalidConfig(_))));
    }
}

// ------------------------------------------------------------------ timers

/// One thing that happens to a FOAF machine in [`timers_move_forward`].
#[derive(Debug, Clone)]
enum Op {
    /// The node starts a query with `neighbours` of the six peers.
    Find { ttl: u8, neighbours: usize },
    /// A query from peer `from`, with one of a few ids.
    Query {
        from: u64,
        id: u64,
        ttl: u8,
        capability: bool,
        knows: bool,
    },
    /// An answer from peer `from` to one of a few ids or to the latest own query, whose
    /// records pass `verify` or not.
    Answer {
        from: u64,
        id: Option<u64>,
        records: usize,
        verify: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..=5, 0usize..=6).prop_map(|(ttl, neighbours)| Op::Find { ttl, neighbours }),
        (0u64..7, 0u64..6, 0u8..=5, any::<bool>(), any::<bool>()).prop_map(
            |(from, id, ttl, capability, knows)| Op::Query {
                from,
                id,
                ttl,
                capability,
                knows,
            }
        ),
        (
            0u64..7,
            proptest::option::of(0u64..6),
            0usize..=3,
            any::<bool>()
        )
            .prop_map(|(from, id, records, verify)| Op::Answer {
                from,
                id,
                records,
                verify,
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// After `handle_timeout(t)`, `poll_timeout()` is never at or before `t`, whatever came
    /// before (queries, answers, own queries, waits of any length, late wake-ups), and once the
    /// inputs stop every timer runs out.
    #[test]
    fn timers_move_forward(
        ops in proptest::collection::vec((0u64..8_000, op()), 1..60),
        small in any::<bool>(),
    ) {
        let config = if small {
            Config {
                dedup_capacity: 3,
                max_pending: 4,
                max_own_queries: 2,
                max_queued: 4,
                query_rate: 2,
                ..Config::default()
            }
        } else {
            Config::default()
        };
        let mut f = Foaf::new(config).unwrap();
        let mut r = rng(3);
        let peers: Vec<PeerId> = (0..6).map(pid).collect();
        let mut own = None;
        let mut now = T0;
        for (wait_ms, op) in ops {
            now += TimeDelta::from_millis(wait_ms);
            // A driver wakes at `poll_timeout`, or later.
            if f.poll_timeout().is_some_and(|t| t <= now) {
                StateMachine::handle_timeout(&mut f, now, &mut r);
                prop_assert!(f.poll_timeout().is_none_or(|t| t > now));
            }
            match op {
                Op::Find { ttl, neighbours } => {
                    let input = Input::Find {
                        target: Target::Peer(pid(99)),
                        ttl: Some(ttl),
                        neighbours: &peers[..neighbours],
                    };
                    if let Reply::Started(Ok(id)) = f.handle(now, input, &mut r) {
                        own = Some(id);
                    }
                }
                Op::Query { from, id, ttl, capability, knows } => {
                    let target = if capability {
                        Target::Capability(Capability::new(&b"x"[..]).unwrap())
                    } else {
                        Target::Peer(records()[0].peer_id)
                    };
                    let knowledge = move |_: &Target, _: usize| -> Vec<PeerRecord> {
                        if knows { records()[..1].to_vec() } else { Vec::new() }
                    };
                    let input = Input::Query {
                        from: pid(from),
                        query: Query { id: qid(id), target, ttl },
                        knowledge: &knowledge,
                        neighbours: &peers,
                    };
                    f.handle(now, input, &mut r);
                }
                Op::Answer { from, id, records: n, verify } => {
                    let id = id.map(qid).or(own).unwrap_or(qid(0));
                    let answer = Answer {
                        id,
                        records: BoundedVec::new(records()[..n].to_vec()).unwrap(),
                    };
                    let mut check = |_: &PeerRecord| verify;
                    let input = Input::Answer { from: pid(from), answer, verify: &mut check };
                    f.handle(now, input, &mut r);
                }
            }
            prop_assert!(f.poll_timeout().is_none_or(|t| t > now));
            while f.poll().is_some() {}
        }
        let end = now + TimeDelta::from_secs(120);
        crate::machine::check::timers_move_forward(&mut f, &mut r, now, end, 1_000, |_, _, _| {});
        prop_assert_eq!(f.poll_timeout(), None);
        prop_assert_eq!((f.remembered_ids(), f.pending_queries(), f.own_queries()), (0, 0, 0));
    }
}
