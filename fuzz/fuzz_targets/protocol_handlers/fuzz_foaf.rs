//! FOAF driven alone (see main.rs for the input format and what is checked).

use super::*;

/// Records queries are answered from and answers carry: four valid ones, and a fifth with a
/// flipped signature bit.
fn foaf_records() -> &'static [PeerRecord] {
    static RECORDS: OnceLock<Vec<PeerRecord>> = OnceLock::new();
    RECORDS.get_or_init(|| {
        let hour = TimeDelta::from_secs(3600);
        let mut v: Vec<PeerRecord> = people()[..5].iter().map(|p| record(p, T0, hour)).collect();
        let mut sig = v[4].signature.as_bytes().to_vec();
        sig[3] ^= 4;
        v[4].signature = SignatureBytes::new(sig).expect("same length");
        v
    })
}

fn foaf_target(input: &mut Input<'_>) -> Target {
    let b = input.u8();
    if b & 0x80 != 0 {
        Target::Capability(Capability::new(&b"relay"[..]).expect("fits"))
    } else {
        Target::Peer(people()[usize::from(b) % people().len()].peer_id())
    }
}

struct FoafCheck {
    config: foaf::Config,
    hold: bool,
    /// Ids of queries seen leaving, most recent last.
    queries: Vec<QueryId>,
    /// Neighbours of the op being run.
    neighbours: Vec<PeerId>,
    /// Every neighbour named since the transmits were last drained.
    allowed: BTreeSet<PeerId>,
}

impl FoafCheck {
    fn query_id(&self, input: &mut Input<'_>) -> QueryId {
        let recent = input.bool();
        let b = input.u8();
        match self.queries.get(usize::from(b) % self.queries.len().max(1)) {
            Some(id) if recent => *id,
            _ => QueryId::from_bytes([b; 16]),
        }
    }

    fn drain(&mut self, f: &mut Foaf, now: Timestamp) {
        let (transmits, events) = f.queued();
        assert!(transmits <= self.config.max_queued && events <= self.config.max_queued);
        assert!(
            f.remembered_ids() <= self.config.dedup_capacity,
            "dedup overflow"
        );
        assert!(
            f.pending_queries() <= self.config.max_pending,
            "pending overflow"
        );
        assert!(
            f.own_queries() <= self.config.max_own_queries,
            "own queries overflow"
        );
        assert!(
            f.rate_buckets() <= self.config.max_rate_buckets,
            "bucket overflow"
        );
        self.allowed.extend(self.neighbours.iter().copied());
        if self.hold {
            return;
        }
        while let Some((to, message)) = f.poll_transmit() {
            if let DiscoveryMessage::Query(q) = message {
                assert!(
                    (1..=self.config.max_ttl).contains(&q.ttl),
                    "a query sent with ttl {}",
                    q.ttl
                );
                assert!(self.allowed.contains(&to), "a query to a non-neighbour");
                if !self.queries.contains(&q.id) {
                    if self.queries.len() >= 16 {
                        self.queries.remove(0);
                    }
                    self.queries.push(q.id);
                }
            }
        }
        self.allowed.clear();
        while let Some(event) = f.poll_event() {
            if let foaf::Event::Found {
                target, records, ..
            } = event
            {
                let peers: BTreeSet<PeerId> = records.iter().map(|r| r.peer_id).collect();
                assert_eq!(peers.len(), records.len(), "a peer found twice at once");
                for r in &records {
                    assert!(target.admits(r), "a record that does not match its target");
                    assert!(r.verify(P, now).is_ok(), "a record that does not verify");
                }
            }
        }
    }
}

/// Config `[own, max_ttl, fanout, ttl_below, timeout, dedup, rate, per_answer, per_query,
/// answers, pending, buckets, queued, rng]` (possibly invalid: then `Foaf::new` must refuse it, and the default is used);
/// ops (op % 7): 0 `[mask(2), target, ttl]` an own query; 1 `[from, mask(2), id..., target,
/// ttl]` a query; 2 `[from, id..., n, picks(n)]` an answer; 3 `[from, mask(2), len(2), frame]` a
/// decoded one; 4-5 `[jump?, ms(2)]` time passes, then `handle_timeout`; 6 hold outputs, or
/// drain them again.
pub(super) fn run_foaf(input: &mut Input<'_>) {
    let own = 1 + usize::from(input.u8() % 4);
    let max_ttl = input.u8() % 5;
    let config = foaf::Config {
        fanout: usize::from(input.u8() % 5),
        max_ttl,
        default_ttl: max_ttl.saturating_sub(input.u8() % 2),
        query_timeout: duration(
            input.u8(),
            &[TimeDelta::from_secs(5), TimeDelta::from_secs(1)],
        ),
        dedup_capacity: usize::from(input.u8() % 9),
        query_rate: 1 + u32::from(input.u8() % 4),
        max_records_per_answer: 1 + usize::from(input.u8() % 4),
        max_records_per_query: 1 + usize::from(input.u8() % 8),
        max_answers_per_query: 1 + usize::from(input.u8() % 4),
        max_pending: own + usize::from(input.u8() % 8),
        max_own_queries: own,
        max_rate_buckets: 1 + usize::from(input.u8() % 4),
        max_queued: usize::from(input.u8() % 17),
        ..foaf::Config::default()
    };
    let valid = config.validate().is_ok();
    let config = match Foaf::new(config.clone()) {
        Ok(_) => {
            assert!(valid, "Foaf::new took a configuration validate refuses");
            config
        }
        Err(_) => {
            assert!(!valid, "Foaf::new refused a valid configuration");
            foaf::Config::default()
        }
    };
    let mut f = Foaf::new(config.clone()).expect("a valid configuration");
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(input.u8()));
    let mut clock = Clock { now: T0 };
    let mut c = FoafCheck {
        config,
        hold: false,
        queries: Vec::new(),
        neighbours: Vec::new(),
        allowed: BTreeSet::new(),
    };
    let records = foaf_records();
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let now = clock.now;
        match input.u8() % 7 {
            0 => {
                c.neighbours = subset(input.u16());
                let target = foaf_target(input);
                let ttl = match input.u8() {
                    0 => None,
                    b => Some(b % 6),
                };
                let _ = f.start_query(now, &mut rng, target, ttl, &c.neighbours);
            }
            1 => {
                let from = other(input.u8());
                c.neighbours = subset(input.u16());
                let id = c.query_id(input);
                let target = foaf_target(input);
                let ttl = input.u8() % 6;
                let query = Query { id, target, ttl };
                let outcome = f.handle_query(now, &mut rng, from, query, records, &c.neighbours);
                if let QueryOutcome::Served {
                    answered,
                    forwarded,
                } = outcome
                {
                    assert!(answered <= c.config.max_records_per_answer);
                    assert!(forwarded <= c.config.fanout);
                }
            }
            2 => {
                let from = other(input.u8());
                let id = c.query_id(input);
                let n = usize::from(input.u8() % 6);
                let picks: Vec<PeerRecord> = (0..n)
                    .map(|_| records[usize::from(input.u8()) % records.len()].clone())
                    .collect();
                let answer = Answer {
                    id,
                    records: BoundedVec::new(picks).expect("fits"),
                };
                let _ = f.handle_answer(now, from, answer, |r| r.verify(P, now).is_ok());
            }
            3 => {
                let from = other(input.u8());
                c.neighbours = subset(input.u16());
                match frame(input) {
                    Some(Frame::Discovery(DiscoveryMessage::Query(q))) => {
                        let _ = f.handle_query(now, &mut rng, from, q, records, &c.neighbours);
                    }
                    Some(Frame::Discovery(DiscoveryMessage::Answer(a))) => {
                        let _ = f.handle_answer(now, from, a, |r| r.verify(P, now).is_ok());
                    }
                    _ => {}
                }
            }
            4 | 5 => {
                clock.step(input, f.poll_timeout());
                f.handle_timeout(clock.now);
                after_timeout(clock.now, f.poll_timeout(), "FOAF");
            }
            _ => c.hold = !c.hold,
        }
        c.drain(&mut f, clock.now);
    }
}
