//! Plumtree driven alone (see main.rs for the input format and what is checked).

use super::*;

fn topic() -> TopicId {
    TopicId::from_name("fuzz/protocol_handlers")
}

/// `[author, seq, age, flags, len, payload...]`: a message by `people()[author % 4]`, dated
/// `age` (in units of 8 s, flag bit 0: in the future instead of the past), of our topic unless
/// flag bit 1 (and `foreign`: the node's own messages are of its topic); its payload: verifying key of another author with flag bit 2, a flipped
/// signature bit with flag bit 3, hops `flags >> 4`.
fn payload(input: &mut Input<'_>, now: Timestamp, foreign: bool) -> plumtree::Payload {
    let author = &people()[usize::from(input.u8() % 4)];
    let seq = u64::from(input.u8());
    let age = TimeDelta::from_secs(8 * u64::from(input.u8()));
    let flags = input.u8();
    let len = usize::from(input.u8() % 16);
    let body = input.bytes(len);
    let at = if flags & 1 != 0 { now + age } else { now - age };
    let t = if foreign && flags & 2 != 0 {
        TopicId::from_name("another topic")
    } else {
        topic()
    };
    let mut message = SignedMessage::publish(author, t, seq, at, body).expect("signs");
    if flags & 8 != 0 {
        let mut sig = message.signature.as_bytes().to_vec();
        sig[0] ^= 1;
        message.signature = SignatureBytes::new(sig).expect("same length");
    }
    let key = if flags & 4 != 0 {
        people()[4].verifying_key().clone()
    } else {
        author.verifying_key().clone()
    };
    plumtree::Payload {
        message,
        author_key: key,
        hops: flags >> 4,
    }
}

/// Ids: `[n, (known?, b) * n]`, a known id (from earlier messages) or a made-up one.
fn ids(input: &mut Input<'_>, known: &[MessageId], max: usize) -> Vec<MessageId> {
    let n = usize::from(input.u8()) % (max + 1);
    (0..n)
        .map(|_| {
            let is_known = input.bool();
            let b = input.u8();
            match known.get(usize::from(b) % known.len().max(1)) {
                Some(id) if is_known => *id,
                _ => MessageId::from_bytes([b; 32]),
            }
        })
        .collect()
}

struct PlumCheck {
    config: plumtree::Config,
    neighbours: BTreeSet<PeerId>,
    delivered: BTreeSet<(MessageId, Timestamp)>,
    known: Vec<MessageId>,
    /// Payloads handed out by `Output::Archive`, for `restore`.
    archived: Vec<plumtree::Payload>,
}

impl PlumCheck {
    fn learn(&mut self, id: MessageId) {
        if !self.known.contains(&id) {
            if self.known.len() >= 32 {
                self.known.remove(0);
            }
            self.known.push(id);
        }
    }

    fn drain(&mut self, pt: &mut Plumtree, served: Option<PeerId>) {
        while let Some(out) = pt.poll() {
            match out {
                plumtree::Output::Send { to, message } => {
                    assert!(
                        self.neighbours.contains(&to) || Some(to) == served,
                        "Plumtree sends to a non-neighbour: {message:?}"
                    );
                    if let plumtree::Message::Gossip(p) | plumtree::Message::Repair(p) = &message {
                        self.learn(p.message.id());
                    }
                }
                plumtree::Output::Deliver {
                    message,
                    id,
                    author_key,
                    ..
                } => {
                    assert_eq!(id, message.id());
                    assert_eq!(message.topic, topic(), "delivered from another topic");
                    assert!(
                        message.verify(P, &author_key).is_ok(),
                        "delivered a message that does not verify"
                    );
                    // Keyed by id and date: the id leaves the date out, so only the author could
                    // make a second copy (one sequence number signed twice, which an honest
                    // author never does, §15.1); dated past the first copy's retention, it is a
                    // new message to a node that has forgotten the first (found by fuzzing).
                    let fresh = self.delivered.insert((id, message.timestamp));
                    // Only a seen-cache smaller than the run can forget an id early.
                    if self.config.seen_capacity > MAX_STEPS {
                        assert!(fresh, "delivered twice");
                        assert!(pt.has_seen(&id));
                    }
                    self.learn(id);
                }
                plumtree::Output::Penalise { peer } => {
                    assert_ne!(peer, me(), "penalised itself");
                }
                plumtree::Output::Evidence { peer, .. } => {
                    assert_ne!(peer, me(), "evidence about itself");
                }
                plumtree::Output::Archive { payload, id, .. } => {
                    assert!(self.config.archive, "archived without Config::archive");
                    assert_eq!(id, payload.message.id());
                    assert_eq!(payload.message.topic, topic(), "archived another topic");
                    if self.archived.len() >= 8 {
                        self.archived.remove(0);
                    }
                    self.archived.push(payload);
                }
            }
        }
    }

    fn check(&self, pt: &Plumtree) {
        let eager: BTreeSet<PeerId> = pt.eager_peers().copied().collect();
        let lazy: BTreeSet<PeerId> = pt.lazy_peers().copied().collect();
        assert!(eager.is_disjoint(&lazy), "a peer is both eager and lazy");
        assert!(
            eager.is_subset(&self.neighbours) && lazy.is_subset(&self.neighbours),
            "an eager or lazy peer is not a neighbour"
        );
        assert!(pt.missing() <= self.config.max_missing, "missing overflow");
        assert!(
            pt.retained_ids().count() <= self.config.cache_messages.max(1),
            "cache overflow"
        );
    }
}

/// Config `[threshold, retention, cache, bytes, seen, rejected, missing, announcers, ihave,
/// archive]`; ops (op % 12): 0-1 `[peer]` neighbour up or down; 2 `[mask(2)]` set_tree;
/// 3 `[payload...]` publish (the payload's message, as ours); 4-5 `[from, payload...]` a Gossip
/// or a Repair; 6 `[from, ids..., hops]` an IHAVE; 7 `[from, kind, ids...]` a GRAFT, an IWANT
/// or a PRUNE; 8 `[from, len(2), frame]` a decoded topic frame; 9 `[to, repair?, ids...]` serve;
/// 10 `[jump?, ms(2)]` time passes, then `handle_timeout`; 11 `[archived?, pick, payload...]`
/// restore an archived payload (or, without one, a new payload).
pub(super) fn run_plumtree(input: &mut Input<'_>) {
    let config = plumtree::Config {
        optimization_threshold: input.u8() % 5,
        retention: duration(
            input.u8(),
            &[
                TimeDelta::from_secs(600),
                TimeDelta::from_secs(30),
                TimeDelta::from_secs(2),
            ],
        ),
        cache_messages: match input.u8() {
            b @ 0..=127 => 1 + usize::from(b % 8),
            _ => 4096,
        },
        cache_bytes: [64 << 20, 64, 1024][usize::from(input.u8() % 3)],
        seen_capacity: match input.u8() {
            b @ 0..=63 => 1 + usize::from(b % 16),
            _ => 65_536,
        },
        rejected_capacity: 1 + usize::from(input.u8() % 8),
        max_missing: 1 + usize::from(input.u8() % 8),
        max_announcers: 1 + usize::from(input.u8() % 4),
        max_pending_ihave: 1 + usize::from(input.u8() % 8),
        archive: input.bool(),
        ..plumtree::Config::default()
    };
    let validator = SignatureValidator(Arc::new(InsecureTestProvider));
    let mut clock = Clock { now: T0 };
    let mut pt = Plumtree::new(config.clone(), topic());
    let mut c = PlumCheck {
        config,
        neighbours: BTreeSet::new(),
        delivered: BTreeSet::new(),
        known: Vec::new(),
        archived: Vec::new(),
    };
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let now = clock.now;
        let mut served = None;
        match input.u8() % 12 {
            0 => {
                let p = other(input.u8());
                pt.neighbor_up(p);
                c.neighbours.insert(p);
            }
            1 => {
                let p = other(input.u8());
                pt.neighbor_down(&p);
                c.neighbours.remove(&p);
            }
            2 => pt.set_tree(&subset(input.u16())),
            3 => {
                let p = payload(input, now, false);
                c.learn(p.message.id());
                pt.publish(now, p.message, p.author_key);
            }
            op @ (4 | 5) => {
                let from = other(input.u8());
                let p = payload(input, now, true);
                c.learn(p.message.id());
                let message = if op == 4 {
                    plumtree::Message::Gossip(p)
                } else {
                    plumtree::Message::Repair(p)
                };
                pt.handle_message(now, from, message, &validator);
            }
            6 => {
                let from = other(input.u8());
                let list = ids(input, &c.known, 8);
                let hops = input.u8() % 8;
                let entries = list
                    .into_iter()
                    .map(|id| plumtree::Announcement { id, hops })
                    .collect();
                let message = plumtree::Message::IHave(BoundedVec::new(entries).expect("fits"));
                pt.handle_message(now, from, message, &validator);
            }
            7 => {
                let from = other(input.u8());
                let kind = input.u8() % 3;
                let list = BoundedVec::new(ids(input, &c.known, 8)).expect("fits");
                let message = match kind {
                    0 => plumtree::Message::Graft(list),
                    1 => plumtree::Message::IWant(list),
                    _ => plumtree::Message::Prune,
                };
                pt.handle_message(now, from, message, &validator);
            }
            8 => {
                let from = other(input.u8());
                if let Some(Frame::Topic(TopicMessage::Broadcast { message, .. })) = frame(input) {
                    pt.handle_message(now, from, message, &validator);
                }
            }
            9 => {
                let to = other(input.u8());
                let repair = input.bool();
                let list = ids(input, &c.known, 8);
                served = Some(to);
                pt.serve(to, &list, repair);
            }
            11 => {
                let archived = input.bool();
                let pick = usize::from(input.u8());
                let p = match c.archived.get(pick % c.archived.len().max(1)) {
                    Some(p) if archived => p.clone(),
                    _ => payload(input, now, true),
                };
                let seen_before = pt.has_seen(&p.message.id());
                if let Ok(id) = pt.restore(now, p, &validator) {
                    assert!(!seen_before, "restored a message already seen");
                    assert!(pt.has_seen(&id), "a restored message is not seen");
                    c.learn(id);
                }
                // Restoring sends and delivers nothing.
                assert!(pt.poll().is_none(), "restore produced an output");
            }
            _ => {
                clock.step(input, pt.poll_timeout());
                pt.handle_timeout(clock.now);
                after_timeout(clock.now, pt.poll_timeout(), "Plumtree");
            }
        }
        c.drain(&mut pt, served);
        c.check(&pt);
    }
}
