//! The anti-entropy `Reconciler` driven alone (see main.rs for the input format and what is
//! checked).

use super::*;

fn message_id(n: u8) -> MessageId {
    MessageId::from_bytes(*blake3::hash(&[n % 64]).as_bytes())
}

fn table_of(cells: usize, seed: [u8; 32], ids: &BTreeSet<MessageId>) -> Iblt {
    let mut t = Iblt::new(cells, seed).expect("a size in range");
    for id in ids {
        t.insert(id.as_bytes());
    }
    t
}

fn estimator_of(seed: [u8; 32], ids: &BTreeSet<MessageId>) -> StrataEstimator {
    let mut e = StrataEstimator::new(seed);
    for id in ids {
        e.insert(id.as_bytes());
    }
    e
}

/// `[n, ids...]`: a set of up to 32 ids (numbers mod 64).
fn id_set(input: &mut Input<'_>) -> BTreeSet<MessageId> {
    let n = usize::from(input.u8() % 33);
    input.bytes(n).iter().map(|&b| message_id(b)).collect()
}

struct AeCheck {
    config: antientropy::Config,
    /// Ids retained here, and ids seen here but no longer retained.
    ids: BTreeSet<MessageId>,
    seen: BTreeSet<MessageId>,
    neighbours: Vec<PeerId>,
    /// Sessions the node started: (peer, session).
    sessions: Vec<(PeerId, u64)>,
}

impl AeCheck {
    fn retained(&self) -> Vec<MessageId> {
        self.ids.iter().copied().collect()
    }

    /// Drains the outputs; `sketch` is the sender and set of a sketch of a known set just
    /// answered.
    fn drain(&mut self, r: &mut Reconciler, sketch: Option<(PeerId, &BTreeSet<MessageId>)>) {
        let max = self.config.max_transfer;
        let (mut pushed, mut wanted, mut done) = (None, None, None);
        while let Some(out) = r.poll() {
            match out {
                antientropy::Output::Send { to, message } => match message {
                    antientropy::Message::Sketch {
                        session,
                        attempt,
                        table,
                    } => {
                        assert!(
                            self.neighbours.contains(&to)
                                || self.sessions.iter().any(|(p, s)| *p == to && *s == session),
                            "a sketch to a non-neighbour"
                        );
                        assert!(
                            attempt == 0 || attempt < self.config.max_attempts,
                            "sketch attempt {attempt} of {}",
                            self.config.max_attempts
                        );
                        let t = Iblt::from_bytes(&table).expect("a sketch parses");
                        assert!(t.cells() <= max_sketch_cells());
                        assert!(
                            t == table_of(t.cells(), *t.seed(), &self.ids),
                            "a sketch that is not the table of the ids"
                        );
                        if self.sessions.len() >= 8 {
                            self.sessions.remove(0);
                        }
                        self.sessions.push((to, session));
                    }
                    antientropy::Message::Estimate { strata, .. } => {
                        let e = StrataEstimator::from_bytes(&strata).expect("an estimate parses");
                        assert!(
                            e == estimator_of(*e.seed(), &self.ids),
                            "an estimate that is not the estimator of the ids"
                        );
                    }
                    antientropy::Message::Done {
                        pushed: p,
                        wanted: w,
                        ..
                    } => done = Some((to, p, w)),
                    antientropy::Message::Digest {
                        session,
                        count,
                        hash,
                        ..
                    } => {
                        assert!(
                            self.neighbours.contains(&to),
                            "a digest to a non-neighbour"
                        );
                        assert_eq!(
                            (count, hash),
                            antientropy::digest(session, &self.retained()),
                            "a digest that is not the digest of the ids"
                        );
                        if self.sessions.len() >= 8 {
                            self.sessions.remove(0);
                        }
                        self.sessions.push((to, session));
                    }
                    // A message kind added later: nothing checked about it yet.
                    _ => {}
                },
                antientropy::Output::Push { to, ids } => {
                    assert!(
                        !ids.is_empty() && ids.len() <= max,
                        "a push of {}",
                        ids.len()
                    );
                    pushed = Some((to, ids));
                }
                antientropy::Output::Want { to, ids } => {
                    assert!(
                        !ids.is_empty() && ids.len() <= max,
                        "a want of {}",
                        ids.len()
                    );
                    wanted = Some((to, ids));
                }
            }
        }
        let Some((from, theirs)) = sketch else {
            return;
        };
        let Some((to, p, w)) = done else {
            assert!(
                pushed.is_none() && wanted.is_none(),
                "a push or want without Done"
            );
            return;
        };
        assert_eq!(to, from);
        // The exact differences, in id order, cut at max_transfer.
        let expect_push: Vec<MessageId> = self.ids.difference(theirs).take(max).copied().collect();
        let expect_want: Vec<MessageId> = theirs
            .difference(&self.ids)
            .filter(|id| !self.seen.contains(id))
            .take(max)
            .copied()
            .collect();
        let got_push = pushed.map(|(t, ids)| {
            assert_eq!(t, from);
            ids
        });
        let got_want = wanted.map(|(t, ids)| {
            assert_eq!(t, from);
            ids
        });
        assert_eq!(
            got_push.unwrap_or_default(),
            expect_push,
            "wrong ids pushed"
        );
        assert_eq!(
            got_want.unwrap_or_default(),
            expect_want,
            "wrong ids wanted"
        );
        assert_eq!(p as usize, expect_push.len());
        assert_eq!(w as usize, expect_want.len());
    }
}

/// Config `[interval, timeout, cells, attempts, transfer, rate, rng]`; ops (op % 8):
/// 0 `[n, add?]` an id added or dropped (dropped ids stay seen); 1 `[mask(2)]` the neighbours;
/// 2 `[from, session?, s, attempt, cells(2), seed, set...]` a SKETCH of a known set (its
/// session a recent one of the node's, or `s`); 3 `[pick, own?, seed, set...]` an ESTIMATE
/// for a recent session (from that session's peer if `own` is odd, else from another);
/// 4 `[pick, s]` a DONE; 5 `[from, len(2), frame]` a decoded frame; 6 `[peer]` neighbour down;
/// 7 `[jump?, ms(2)]` time passes, then `handle_timeout`.
pub(super) fn run_antientropy(input: &mut Input<'_>) {
    let config = antientropy::Config {
        interval: duration(
            input.u8(),
            &[TimeDelta::from_secs(5), TimeDelta::from_secs(1)],
        ),
        session_timeout: duration(
            input.u8(),
            &[TimeDelta::from_secs(5), TimeDelta::from_secs(1)],
        ),
        initial_cells: usize::from(input.u8() % 80),
        max_attempts: input.u8() % 4,
        max_transfer: match input.u8() {
            b @ 0..=127 => 1 + usize::from(b % 8),
            _ => 256,
        },
        responses_per_second: 1 + u32::from(input.u8() % 4),
        ..antientropy::Config::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(input.u8()));
    let mut clock = Clock { now: T0 };
    let mut r = Reconciler::new(config.clone(), T0, &mut rng);
    let mut c = AeCheck {
        config,
        ids: BTreeSet::new(),
        seen: BTreeSet::new(),
        neighbours: Vec::new(),
        sessions: Vec::new(),
    };
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let now = clock.now;
        let mut sketch = None;
        match input.u8() % 8 {
            0 => {
                let id = message_id(input.u8());
                if input.bool() {
                    c.ids.insert(id);
                    c.seen.insert(id);
                } else {
                    c.ids.remove(&id);
                }
            }
            1 => c.neighbours = subset(input.u16()),
            2 => {
                let from = other(input.u8());
                let recent = input.bool();
                let s = input.u8();
                let session = match c.sessions.last() {
                    Some((_, id)) if recent => *id,
                    _ => u64::from(s),
                };
                let attempt = input.u8();
                let cells = 4 + usize::from(input.u16() % 400);
                let seed = [input.u8(); 32];
                let theirs = id_set(input);
                let table = BoundedBytes::new(table_of(cells, seed, &theirs).to_bytes())
                    .expect("fits a sketch");
                let message = antientropy::Message::Sketch {
                    session,
                    attempt,
                    table,
                };
                let ids = c.retained();
                let seen = c.seen.clone();
                r.handle_message(now, from, message, &ids, &|id| seen.contains(id), &mut rng);
                sketch = Some((from, theirs));
            }
            3 => {
                let pick = input.u8();
                let own = input.bool();
                let seed = [input.u8(); 32];
                let theirs = id_set(input);
                let (to, session) = c
                    .sessions
                    .get(usize::from(pick) % c.sessions.len().max(1))
                    .copied()
                    .unwrap_or((other(pick), u64::from(pick)));
                let from = if own { to } else { other(pick) };
                let strata = BoundedBytes::new(estimator_of(seed, &theirs).to_bytes())
                    .expect("fits an estimate");
                let message = antientropy::Message::Estimate { session, strata };
                let ids = c.retained();
                let seen = c.seen.clone();
                r.handle_message(now, from, message, &ids, &|id| seen.contains(id), &mut rng);
            }
            4 => {
                let pick = input.u8();
                let s = input.u8();
                let (from, session) = c
                    .sessions
                    .get(usize::from(pick) % c.sessions.len().max(1))
                    .copied()
                    .unwrap_or((other(pick), u64::from(s)));
                let message = antientropy::Message::Done {
                    session,
                    pushed: u32::from(s),
                    wanted: 0,
                };
                let ids = c.retained();
                r.handle_message(now, from, message, &ids, &|_| false, &mut rng);
            }
            5 => {
                let from = other(input.u8());
                if let Some(Frame::Reconcile(ReconcileMessage { message, .. })) = frame(input) {
                    let ids = c.retained();
                    let seen = c.seen.clone();
                    r.handle_message(now, from, message, &ids, &|id| seen.contains(id), &mut rng);
                }
            }
            6 => r.neighbor_down(&other(input.u8())),
            _ => {
                clock.step(input, r.poll_timeout());
                let ids = c.retained();
                r.handle_timeout(clock.now, &c.neighbours, &ids, &mut rng);
                after_timeout(clock.now, r.poll_timeout(), "Reconciler");
            }
        }
        let sketch_ref = sketch.as_ref().map(|(p, set)| (*p, set));
        c.drain(&mut r, sketch_ref);
    }
}
