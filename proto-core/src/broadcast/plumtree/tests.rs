//! Plumtree driven through the [`StateMachine`] calls: timers move forward, and the timer
//! structure agrees with the tables it times.

use super::*;
use crate::broadcast::message::MessageError;
use crate::broadcast::message::Payload as Bytes;
use crate::crypto::{SIG_VERIFYING_KEY_LEN, SIGNATURE_LEN, SignatureBytes};
use crate::machine::Rng;
use crate::machine::check::timers_move_forward;
use proptest::prelude::*;
use rand_core::SeedableRng;
use std::vec;

const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

/// Accepts a message iff the first byte of its signature is 0 (no crypto needed).
struct FirstByte;

impl Validator for FirstByte {
    fn validate(&self, m: &SignedMessage, _: &VerifyingKeyBytes) -> Result<(), MessageError> {
        if m.signature.as_bytes().first() == Some(&0) {
            Ok(())
        } else {
            Err(MessageError::BadSignature)
        }
    }
}

fn topic() -> TopicId {
    TopicId::from_name("t")
}

fn peer(n: u8) -> PeerId {
    PeerId::from_bytes([n + 1; 32])
}

fn message(n: u8, valid: bool, at: Timestamp) -> SignedMessage {
    let mut sig = alloc::vec![0u8; SIGNATURE_LEN];
    sig[0] = u8::from(!valid);
    SignedMessage {
        author: PeerId::from_bytes([200; 32]),
        topic: topic(),
        sequence: u64::from(n),
        timestamp: at,
        payload: Bytes::new(alloc::vec![n; 8]).unwrap(),
        signature: SignatureBytes::new(sig).unwrap(),
        kind: Default::default(),
    }
}

fn payload(n: u8, valid: bool, hops: u8) -> Payload {
    Payload {
        message: message(n, valid, T0),
        author_key: VerifyingKeyBytes::new(alloc::vec![0u8; SIG_VERIFYING_KEY_LEN]).unwrap(),
        hops,
    }
}

fn id(n: u8) -> MessageId {
    message(n, true, T0).id()
}

fn rng() -> Rng {
    Rng::from_seed([9; 32])
}

fn drain(p: &mut Plumtree) -> Vec<Output> {
    core::iter::from_fn(|| StateMachine::poll(p)).collect()
}

/// Every missing message has a timer and every timer a missing message; the retention timer
/// is the end of the oldest retained message's window.
fn assert_timers_match(p: &Plumtree) {
    let missing: BTreeSet<MessageId> = p.missing.keys().copied().collect();
    let timed: BTreeSet<MessageId> = keys(&p.deadlines)
        .into_iter()
        .filter_map(|t| match t {
            Timer::Missing(id) => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(missing, timed);
    assert_eq!(
        p.deadlines.get(&Timer::Retention),
        p.cache_order.front().map(|&(t, _)| t)
    );
}

/// The keys of `d`, in key order.
fn keys(d: &Deadlines<Timer>) -> Vec<Timer> {
    let mut d = d.clone();
    let mut keys = Vec::new();
    while let Some((_, k)) = d.pop_due(Timestamp::MAX) {
        keys.push(k);
    }
    keys.sort_unstable();
    keys
}

#[test]
fn batches_go_out_before_grafts_due_at_the_same_wake_whatever_their_deadlines() {
    let mut r = rng();
    let mut p = Plumtree::new(Config::default(), topic());
    let v = &FirstByte;
    for n in [1, 2] {
        p.handle(T0, Input::NeighborUp(peer(n)), &mut r);
    }
    let prune = Input::Message {
        from: peer(2),
        message: Message::Prune,
        validator: v,
    };
    p.handle(T0, prune, &mut r);
    // Message 7 is announced by peer 1: missing until T0 + 500 ms.
    let ihave =
        Message::IHave(BoundedVec::new(alloc::vec![Announcement { id: id(7), hops: 2 }]).unwrap());
    let input = Input::Message {
        from: peer(1),
        message: ihave,
        validator: v,
    };
    p.handle(T0, input, &mut r);
    // Message 8 arrives from peer 1 at T0 + 460 ms: its IHAVE to lazy peer 2 waits until
    // T0 + 510 ms, after the missing message's deadline.
    let later = T0 + TimeDelta::from_millis(460);
    let input = Input::Message {
        from: peer(1),
        message: Message::Gossip(payload(8, true, 1)),
        validator: v,
    };
    p.handle(later, input, &mut r);
    drain(&mut p);
    assert_eq!(
        p.poll_timeout(),
        Some(T0 + TimeDelta::from_millis(500)),
        "the earliest timer"
    );
    let wake = T0 + TimeDelta::from_millis(600);
    StateMachine::handle_timeout(&mut p, wake, &mut r);
    let sent: Vec<(PeerId, &'static str)> = drain(&mut p)
        .into_iter()
        .filter_map(|o| match o {
            Output::Send { to, message } => Some((
                to,
                match message {
                    Message::IHave(_) => "ihave",
                    Message::Graft(_) => "graft",
                    _ => "other",
                },
            )),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [(peer(2), "ihave"), (peer(1), "graft")]);
    assert_eq!(
        p.poll_timeout(),
        Some(wake + Config::default().graft_timeout)
    );
    assert_timers_match(&p);
}

#[derive(Debug, Clone)]
enum Op {
    Up(u8),
    Down(u8),
    Tree(Vec<u8>),
    Gossip {
        from: u8,
        msg: u8,
        valid: bool,
        repair: bool,
        hops: u8,
    },
    IHave {
        from: u8,
        msgs: Vec<(u8, u8)>,
    },
    Graft {
        from: u8,
        msgs: Vec<u8>,
    },
    IWant {
        from: u8,
        msgs: Vec<u8>,
    },
    Prune(u8),
    Publish(u8),
    Serve {
        to: u8,
        msgs: Vec<u8>,
        repair: bool,
    },
    Restore(u8),
    Rtt(u8, u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..5).prop_map(Op::Up),
        (0u8..5).prop_map(Op::Down),
        prop::collection::vec(0u8..5, 0..3).prop_map(Op::Tree),
        (0u8..5, 0u8..16, any::<bool>(), any::<bool>(), 1u8..12).prop_map(
            |(from, msg, valid, repair, hops)| Op::Gossip {
                from,
                msg,
                valid,
                repair,
                hops
            }
        ),
        (0u8..5, prop::collection::vec((0u8..24, 1u8..12), 0..8))
            .prop_map(|(from, msgs)| Op::IHave { from, msgs }),
        (0u8..5, prop::collection::vec(0u8..24, 0..4))
            .prop_map(|(from, msgs)| Op::Graft { from, msgs }),
        (0u8..5, prop::collection::vec(0u8..24, 0..4))
            .prop_map(|(from, msgs)| Op::IWant { from, msgs }),
        (0u8..5).prop_map(Op::Prune),
        (100u8..104).prop_map(Op::Publish),
        (0u8..5, prop::collection::vec(0u8..24, 0..4), any::<bool>())
            .prop_map(|(to, msgs, repair)| Op::Serve { to, msgs, repair }),
        (0u8..24).prop_map(Op::Restore),
        (0u8..5, 0u16..1000).prop_map(|(n, ms)| Op::Rtt(n, ms)),
    ]
}

fn apply(p: &mut Plumtree, now: Timestamp, op: Op, r: &mut Rng) {
    let v = &FirstByte;
    let ids = |msgs: &[u8]| msgs.iter().map(|m| id(*m)).collect::<Vec<_>>();
    let from_msg = |from: u8, message: Message| (peer(from), message);
    let (from, message) = match op {
        Op::Up(n) => {
            p.handle(now, Input::NeighborUp(peer(n)), r);
            return;
        }
        Op::Down(n) => {
            p.handle(now, Input::NeighborDown(peer(n)), r);
            return;
        }
        Op::Rtt(n, ms) => {
            let rtt = RttEstimate::first(TimeDelta::from_millis(u64::from(ms)));
            p.handle(now, Input::Rtt { peer: peer(n), rtt }, r);
            return;
        }
        Op::Tree(links) => {
            let links: Vec<PeerId> = links.into_iter().map(peer).collect();
            p.handle(now, Input::SetTree(&links), r);
            return;
        }
        Op::Publish(n) => {
            let pl = payload(n, true, 1);
            let input = Input::Publish {
                message: message(n, true, now),
                author_key: pl.author_key,
            };
            p.handle(now, input, r);
            return;
        }
        Op::Serve { to, msgs, repair } => {
            let ids = ids(&msgs);
            let input = Input::Serve {
                to: peer(to),
                ids: &ids,
                repair,
            };
            p.handle(now, input, r);
            return;
        }
        Op::Restore(n) => {
            let input = Input::Restore {
                payload: payload(n, true, 1),
                validator: v,
            };
            p.handle(now, input, r);
            return;
        }
        Op::Gossip {
            from,
            msg,
            valid,
            repair,
            hops,
        } => {
            let pl = payload(msg, valid, hops);
            let m = if repair {
                Message::Repair(pl)
            } else {
                Message::Gossip(pl)
            };
            from_msg(from, m)
        }
        Op::IHave { from, msgs } => {
            let entries = msgs
                .iter()
                .map(|(m, h)| Announcement {
                    id: id(*m),
                    hops: *h,
                })
                .collect();
            from_msg(from, Message::IHave(BoundedVec::new(entries).unwrap()))
        }
        Op::Graft { from, msgs } => {
            from_msg(from, Message::Graft(BoundedVec::new(ids(&msgs)).unwrap()))
        }
        Op::IWant { from, msgs } => {
            from_msg(from, Message::IWant(BoundedVec::new(ids(&msgs)).unwrap()))
        }
        Op::Prune(n) => from_msg(n, Message::Prune),
    };
    let input = Input::Message {
        from,
        message,
        validator: v,
    };
    p.handle(now, input, r);
}

fn ihave(from: u8, n: u8) -> Input<'static> {
    let entries = alloc::vec![Announcement { id: id(n), hops: 2 }];
    Input::Message {
        from: peer(from),
        message: Message::IHave(BoundedVec::new(entries).unwrap()),
        validator: &FirstByte,
    }
}

/// When `p` sends its next GRAFT, from `start` on, driving its timers; and to whom.
fn next_graft(p: &mut Plumtree, r: &mut Rng, start: Timestamp) -> (Timestamp, PeerId) {
    let mut now = start;
    loop {
        for out in drain(p) {
            if let Output::Send {
                to,
                message: Message::Graft(ids),
            } = out
                && !ids.is_empty()
            {
                return (now, to);
            }
        }
        now = p
            .poll_timeout()
            .expect("a timer while a message is missing");
        StateMachine::handle_timeout(p, now, r);
    }
}

/// A topic with eager peer 0 and lazy peers 1 and 2, and `rtt` for each of them (if any).
fn tree_with_rtts(rtt: Option<TimeDelta>) -> (Plumtree, Rng) {
    let mut r = rng();
    let mut p = Plumtree::new(Config::default(), topic());
    for n in 0..3 {
        p.handle(T0, Input::NeighborUp(peer(n)), &mut r);
        if let Some(rtt) = rtt {
            let rtt = RttEstimate::first(rtt);
            p.handle(T0, Input::Rtt { peer: peer(n), rtt }, &mut r);
        }
    }
    p.handle(T0, Input::SetTree(&[peer(0)]), &mut r);
    (p, r)
}

#[test]
fn the_repair_waits_follow_the_measured_round_trip_times_within_their_bounds() {
    let ms = TimeDelta::from_millis;
    // Without estimates: the fixed upper bounds, 500 ms then 250 ms.
    let (mut p, mut r) = tree_with_rtts(None);
    p.handle(T0, ihave(1, 7), &mut r);
    p.handle(T0 + ms(1), ihave(2, 7), &mut r);
    assert_eq!(next_graft(&mut p, &mut r, T0), (T0 + ms(500), peer(1)));
    assert_eq!(
        next_graft(&mut p, &mut r, T0 + ms(500)),
        (T0 + ms(750), peer(2))
    );

    // Loopback: 1 ms round trips (rto 3 ms): both waits are 2 rto = 6 ms, so a message its
    // eager parent never sends arrives ~10 ms late instead of ~500 ms.
    let (mut p, mut r) = tree_with_rtts(Some(ms(1)));
    p.handle(T0, ihave(1, 7), &mut r);
    p.handle(T0, ihave(2, 7), &mut r);
    assert_eq!(next_graft(&mut p, &mut r, T0), (T0 + ms(6), peer(1)));
    assert_eq!(
        next_graft(&mut p, &mut r, T0 + ms(6)),
        (T0 + ms(12), peer(2))
    );
    // 0.2 ms round trips (rto 0.6 ms): each at its floor (2 ms and 5 ms).
    let (mut p, mut r) = tree_with_rtts(Some(TimeDelta::from_micros(200)));
    p.handle(T0, ihave(1, 7), &mut r);
    p.handle(T0, ihave(2, 7), &mut r);
    assert_eq!(next_graft(&mut p, &mut r, T0), (T0 + ms(2), peer(1)));
    assert_eq!(
        next_graft(&mut p, &mut r, T0 + ms(2)),
        (T0 + ms(7), peer(2))
    );

    // 40 ms round trips (rto 120 ms): 2 rto = 240 ms, then 240 ms (under the 250 ms cap).
    let (mut p, mut r) = tree_with_rtts(Some(ms(40)));
    p.handle(T0, ihave(1, 7), &mut r);
    p.handle(T0, ihave(2, 7), &mut r);
    assert_eq!(next_graft(&mut p, &mut r, T0), (T0 + ms(240), peer(1)));
    assert_eq!(
        next_graft(&mut p, &mut r, T0 + ms(240)),
        (T0 + ms(480), peer(2))
    );

    // The slowest of the announcer and the eager peers sets timeout 1: a slow parent (rto
    // 150 ms) is waited for 300 ms even when the announcer is fast.
    let (mut p, mut r) = tree_with_rtts(Some(ms(1)));
    let rtt = RttEstimate::first(ms(50));
    p.handle(T0, Input::Rtt { peer: peer(0), rtt }, &mut r);
    p.handle(T0, ihave(1, 7), &mut r);
    assert_eq!(next_graft(&mut p, &mut r, T0), (T0 + ms(300), peer(1)));
    // Estimates of peers that are not neighbours are not kept.
    p.handle(T0, Input::Rtt { peer: peer(9), rtt }, &mut r);
    assert!(!p.rtts.contains_key(&peer(9)));
    p.handle(T0, Input::NeighborDown(peer(0)), &mut r);
    assert!(!p.rtts.contains_key(&peer(0)));
}

#[test]
fn announcements_are_batched_for_the_peer_s_round_trip_time_within_bounds() {
    let ms = TimeDelta::from_millis;
    let us = TimeDelta::from_micros;
    for (rtt, wait) in [
        (None, ms(50)),
        (Some(us(300)), ms(1)),
        (Some(ms(2)), ms(2)),
        (Some(ms(20)), ms(20)),
    ] {
        let (mut p, mut r) = tree_with_rtts(rtt);
        let input = Input::Publish {
            message: message(3, true, T0),
            author_key: payload(3, true, 1).author_key,
        };
        p.handle(T0, input, &mut r);
        drain(&mut p);
        assert_eq!(p.poll_timeout(), Some(T0 + wait), "rtt {rtt:?}");
        StateMachine::handle_timeout(&mut p, T0 + wait, &mut r);
        let ihaves = drain(&mut p)
            .into_iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Send {
                        message: Message::IHave(_),
                        ..
                    }
                )
            })
            .count();
        assert_eq!(ihaves, 2, "one IHAVE to each lazy peer");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// After `handle_timeout(t)`, `poll_timeout()` is never at or before `t`, however inputs
    /// and time interleave; the timers stay in step with the missing table and the cache.
    #[test]
    fn timers_move_forward_under_random_inputs(
        steps in prop::collection::vec((op(), 0u16..3000), 1..80),
        late in 0u16..400,
    ) {
        let config = Config {
            max_missing: 6,
            max_announcers: 2,
            cache_messages: 10,
            retention: TimeDelta::from_secs(20),
            ..Config::default()
        };
        let mut p = Plumtree::new(config, topic());
        let mut r = rng();
        let mut now = T0;
        for (op, wait) in steps {
            apply(&mut p, now, op, &mut r);
            assert_timers_match(&p);
            let until = now + TimeDelta::from_millis(u64::from(wait));
            timers_move_forward(&mut p, &mut r, now, until, 1000, |_, _, _| {});
            // A driver may also wake late, or for another machine's timer.
            now = until + TimeDelta::from_millis(u64::from(late));
            StateMachine::handle_timeout(&mut p, now, &mut r);
            prop_assert!(p.poll_timeout().is_none_or(|t| t > now));
            drain(&mut p);
            assert_timers_match(&p);
        }
    }
}

/// Runs `p`'s timers due up to `until`; returns what it output on the way.
fn run_until(p: &mut Plumtree, r: &mut Rng, now: &mut Timestamp, until: Timestamp) -> Vec<Output> {
    let mut out = drain(p);
    while let Some(at) = p.poll_timeout().filter(|t| *t <= until) {
        *now = at.max(*now);
        StateMachine::handle_timeout(p, *now, r);
        out.extend(drain(p));
    }
    *now = until;
    out
}

fn gossip(from: u8, m: u8, hops: u8) -> Input<'static> {
    Input::Message {
        from: peer(from),
        message: Message::Gossip(payload(m, true, hops)),
        validator: &FirstByte,
    }
}

/// Whether `out` sends `to` a message `is` accepts.
fn sends(out: &[Output], to: u8, is: fn(&Message) -> bool) -> bool {
    out.iter()
        .any(|o| matches!(o, Output::Send { to: t, message } if *t == peer(to) && is(message)))
}

fn is_empty_graft(m: &Message) -> bool {
    matches!(m, Message::Graft(ids) if ids.is_empty())
}

fn is_prune(m: &Message) -> bool {
    matches!(m, Message::Prune)
}

fn is_gossip(m: &Message) -> bool {
    matches!(m, Message::Gossip(_))
}

/// Tree mode with parent 0 (eager) and lazy peers 1 and 2: messages `0..n` are announced by
/// peer 1 and fetched from it with a GRAFT; the parent sends its own copy of those in
/// `parent_copies`, `late` after the repair. Returns the machine, the time, and everything it
/// output.
fn watch_run(n: u8, parent_copies: &[u8], late: TimeDelta) -> (Plumtree, Timestamp, Vec<Output>) {
    let (mut p, mut r) = tree_with_rtts(None);
    p.handle(T0, Input::Parent(Some(peer(0))), &mut r);
    let mut all = Vec::new();
    let mut now = T0;
    for m in 0..n {
        p.handle(now, ihave(1, m), &mut r);
        let (at, to) = next_graft(&mut p, &mut r, now);
        assert_eq!(to, peer(1));
        now = at + TimeDelta::from_millis(30);
        p.handle(now, gossip(1, m, 2), &mut r);
        if parent_copies.contains(&m) {
            all.extend({
                let until = now + late;
                run_until(&mut p, &mut r, &mut now, until)
            });
            p.handle(now, gossip(0, m, 3), &mut r);
        }
        // Let the watch run out before the next message.
        let until = now + TimeDelta::from_secs(5);
        all.extend(run_until(&mut p, &mut r, &mut now, until));
    }
    (p, now, all)
}

/// A parent that pushes nothing of what had to be fetched by GRAFT is demoted after
/// `parent_misses` (3) such messages in a row: it leaves the eager set (it stays the tree's
/// parent: nothing goes to the owner's tree), and is watched no more while demoted.
#[test]
fn a_parent_that_forwards_nothing_is_demoted_after_three_misses() {
    for (n, demoted) in [(2, 0), (3, 1), (6, 1)] {
        let (p, _, out) = watch_run(n, &[], TimeDelta::ZERO);
        assert_eq!(p.counters.parents_distrusted, demoted, "{n} misses");
        assert_eq!(p.eager_peers.contains(&peer(0)), demoted == 0);
        assert!(p.lazy_peers.contains(&peer(0)) == (demoted == 1));
        assert!(out.iter().all(|o| matches!(
            o,
            Output::Send { .. } | Output::Deliver { .. } | Output::Evidence { .. }
        )));
        // Each miss is a broken promise for the parent's score (§13.8); none while demoted.
        let broken = out
            .iter()
            .filter(|o| {
                matches!(o, Output::Evidence { peer: p, evidence: crate::score::Evidence::BrokenPromise } if *p == peer(0))
            })
            .count();
        assert_eq!(broken, usize::from(n.min(3)), "{n} misses");
    }
}

/// An honest parent that lost the messages upstream fetches them too and pushes them down
/// late (within `parent_watch`): never demoted, and no bypass link is made. One copy in a run
/// of misses resets it.
#[test]
fn a_parent_that_pushes_late_copies_is_never_demoted() {
    let late = TimeDelta::from_millis(2_500);
    let (p, _, out) = watch_run(8, &[0, 1, 2, 3, 4, 5, 6, 7], late);
    assert_eq!(p.counters.parents_distrusted, 0);
    assert_eq!(p.counters.bypasses, 0);
    assert!(!sends(&out, 1, is_empty_graft));
    let (p, _, _) = watch_run(8, &[2, 5], TimeDelta::ZERO);
    assert_eq!(p.counters.parents_distrusted, 0);
    // A copy after the wait is a miss, but it shows the parent forwards: the run ends there.
    let too_late = TimeDelta::from_millis(3_500);
    let (p, _, _) = watch_run(6, &[0, 1, 2, 3, 4, 5], too_late);
    assert_eq!(p.counters.parents_distrusted, 0);
}

/// The peer that served a message the parent missed becomes a bypass link (SPEC.md §15.4):
/// told with an empty GRAFT, eager through tree updates, its duplicates not pruned, for
/// `bypass_for`; then it is told PRUNE and goes lazy.
#[test]
fn a_peer_that_served_what_the_parent_missed_stays_eager_across_tree_updates() {
    let (mut p, mut now, out) = watch_run(1, &[], TimeDelta::ZERO);
    let mut r = rng();
    assert!(
        sends(&out, 1, is_empty_graft),
        "the peer is asked to keep pushing"
    );
    assert_eq!(p.counters.bypasses, 1);
    // The tree is given again (same links): the bypass link stays eager, peer 2 lazy.
    p.handle(now, Input::SetTree(&[peer(0)]), &mut r);
    assert!(p.eager_peers.contains(&peer(1)) && p.lazy_peers.contains(&peer(2)));
    // A duplicate on it is not pruned.
    p.handle(now, gossip(1, 0, 4), &mut r);
    assert!(!sends(&drain(&mut p), 1, is_prune));
    // A new message from the parent is pushed along it.
    p.handle(now, gossip(0, 9, 2), &mut r);
    assert!(sends(&drain(&mut p), 1, is_gossip));
    // Its time runs out: PRUNE, and lazy.
    let end = now + Config::default().bypass_for;
    let out = run_until(&mut p, &mut r, &mut now, end);
    assert!(sends(&out, 1, is_prune));
    assert!(p.lazy_peers.contains(&peer(1)));
    p.handle(now, Input::SetTree(&[peer(0)]), &mut r);
    assert!(p.lazy_peers.contains(&peer(1)));
}

/// At most `max_bypass` bypass links: a new one replaces the oldest (told PRUNE); a bypass
/// peer that stops being a neighbour is forgotten.
#[test]
fn bypass_links_are_bounded_and_end_with_the_neighbour() {
    let (mut p, mut r) = tree_with_rtts(None);
    for n in 3..5 {
        p.handle(T0, Input::NeighborUp(peer(n)), &mut r);
    }
    p.handle(T0, Input::SetTree(&[peer(0)]), &mut r);
    p.handle(T0, Input::Parent(Some(peer(0))), &mut r);
    let mut now = T0;
    for (m, from) in [(0u8, 1u8), (1, 2), (2, 3)] {
        p.handle(now, ihave(from, m), &mut r);
        let (at, to) = next_graft(&mut p, &mut r, now);
        assert_eq!(to, peer(from));
        now = at;
        p.handle(now, gossip(from, m, 2), &mut r);
        let until = now + TimeDelta::from_secs(5);
        let out = run_until(&mut p, &mut r, &mut now, until);
        if m == 2 {
            assert!(sends(&out, 1, is_prune), "the oldest is replaced");
        }
    }
    let links: Vec<PeerId> = p.bypass.iter().map(|(b, _)| *b).collect();
    assert_eq!(links, [peer(2), peer(3)]);
    assert!(p.lazy_peers.contains(&peer(1)));
    p.handle(now, Input::NeighborDown(peer(2)), &mut r);
    assert!(!p.is_bypass(&peer(2)) && p.bypass.len() == 1);
}

/// The other end of a bypass link: an empty GRAFT in tree mode keeps its sender eager through
/// tree updates and duplicates, until it sends PRUNE. A GRAFT naming messages makes the link
/// eager only until the next tree update, as before.
#[test]
fn an_empty_graft_keeps_its_sender_eager_until_it_prunes() {
    let (mut p, mut r) = tree_with_rtts(None);
    let graft = |from: u8, ids: Vec<MessageId>| Input::Message {
        from: peer(from),
        message: Message::Graft(BoundedVec::new(ids).unwrap()),
        validator: &FirstByte,
    };
    p.handle(T0, gossip(0, 1, 1), &mut r);
    p.handle(T0, graft(1, alloc::vec![]), &mut r);
    p.handle(T0, graft(2, alloc::vec![id(1)]), &mut r);
    drain(&mut p);
    p.handle(T0, Input::SetTree(&[peer(0)]), &mut r);
    assert!(p.eager_peers.contains(&peer(1)));
    assert!(p.lazy_peers.contains(&peer(2)));
    p.handle(T0, gossip(1, 1, 3), &mut r);
    assert!(!sends(&drain(&mut p), 1, is_prune));
    p.handle(T0, gossip(0, 2, 1), &mut r);
    assert!(sends(&drain(&mut p), 1, is_gossip));
    let prune = Input::Message {
        from: peer(1),
        message: Message::Prune,
        validator: &FirstByte,
    };
    p.handle(T0, prune, &mut r);
    p.handle(T0, Input::SetTree(&[peer(0)]), &mut r);
    assert!(p.lazy_peers.contains(&peer(1)));
}

/// A demoted parent gets announcements, not pushes, through tree updates; it is grafted last
/// among announcers; a payload from it (it forwards after all) promotes it back, and so does
/// the end of `distrust_for`.
#[test]
fn a_demoted_parent_gets_announcements_until_it_forwards_again() {
    let (mut p, mut now, _) = watch_run(3, &[], TimeDelta::ZERO);
    let mut r = rng();
    assert_eq!(p.counters.parents_distrusted, 1);
    p.handle(now, Input::SetTree(&[peer(0)]), &mut r);
    assert!(p.lazy_peers.contains(&peer(0)));
    // A message from peer 2 is announced to the parent, not pushed.
    p.handle(now, gossip(2, 20, 2), &mut r);
    let until = now + TimeDelta::from_secs(1);
    let out = run_until(&mut p, &mut r, &mut now, until);
    assert!(!sends(&out, 0, is_gossip));
    assert!(sends(&out, 0, |m| matches!(m, Message::IHave(_))));
    // Announced first by the parent, then by peer 2: peer 2 is grafted first.
    p.handle(now, ihave(0, 21), &mut r);
    p.handle(now, ihave(2, 21), &mut r);
    assert_eq!(next_graft(&mut p, &mut r, now).1, peer(2));
    // The parent's pushes are accepted, and one promotes it back.
    p.handle(now, gossip(0, 21, 3), &mut r);
    assert!(p.eager_peers.contains(&peer(0)));
    assert!(p.distrusted.is_empty());
    // Demoted again, it is promoted back when `distrust_for` ends.
    let (mut p, mut now, _) = watch_run(3, &[], TimeDelta::ZERO);
    let end = now + Config::default().distrust_for;
    run_until(&mut p, &mut r, &mut now, end);
    assert!(p.eager_peers.contains(&peer(0)));
}

/// A retained message of `kib` KiB (its payload bytes all `n`).
fn big_payload(n: u8, kib: usize) -> Payload {
    let mut p = payload(n, true, 1);
    p.message.payload = Bytes::new(alloc::vec![n; kib * 1024]).unwrap();
    p
}

/// IWANT and GRAFT are served within the asker's budget: ten times the budget asked for, in
/// requests full of repeated ids, sends each id once and at most the budget's bytes; another
/// peer has a budget of its own; the budget refills with time.
#[test]
fn requests_are_served_once_per_id_and_within_a_byte_budget() {
    let mut r = rng();
    let config = Config {
        serve_rate_kib: 1024,
        ..Config::default()
    };
    let mut p = Plumtree::new(config, topic());
    for n in 0..3 {
        p.handle(T0, Input::NeighborUp(peer(n)), &mut r);
    }
    // Forty retained messages of 100 KiB (4,000 KiB): about four budgets.
    for m in 0..40u8 {
        let input = Input::Message {
            from: peer(0),
            message: Message::Gossip(big_payload(m, 100)),
            validator: &FirstByte,
        };
        p.handle(T0, input, &mut r);
    }
    drain(&mut p);
    let served_bytes = |out: &[Output], to: PeerId| -> (usize, BTreeSet<MessageId>) {
        let mut bytes = 0;
        let mut ids = BTreeSet::new();
        for o in out {
            if let Output::Send {
                to: t,
                message: Message::Repair(pl) | Message::Gossip(pl),
            } = o
                && *t == to
            {
                bytes += pl.message.payload.len();
                assert!(ids.insert(pl.message.id()), "an id served twice");
            }
        }
        (bytes, ids)
    };
    // Ten requests of 64 ids each, every id of the forty repeated: 640 ids asked for.
    let all: Vec<MessageId> = (0..40u8).map(message_id_of).collect();
    let mut out = Vec::new();
    for k in 0..10usize {
        let ids: Vec<MessageId> = (0..64).map(|i| all[(i + k) % 40]).collect();
        let msg = if k % 2 == 0 {
            Message::IWant(BoundedVec::new(ids).unwrap())
        } else {
            Message::Graft(BoundedVec::new(ids).unwrap())
        };
        let input = Input::Message {
            from: peer(1),
            message: msg,
            validator: &FirstByte,
        };
        p.handle(T0, input, &mut r);
        out.extend(drain(&mut p));
    }
    let (bytes, first) = served_bytes(&out, peer(1));
    assert!(bytes <= 1024 * 1024, "{bytes} bytes served");
    assert_eq!(
        first.len(),
        10,
        "a 1 MiB budget serves ten 100 KiB messages"
    );
    assert!(p.counters.served_again > 0 && p.counters.serve_over_budget > 0);
    // Each request that went beyond the budget is one piece of evidence for the asker's score
    // (§13.8), however many ids it asked beyond: all ten did (the first asked 4 MiB of 1).
    let abuse = out
        .iter()
        .filter(|o| {
            matches!(o, Output::Evidence { peer: p, evidence: crate::score::Evidence::Abuse } if *p == peer(1))
        })
        .count();
    assert_eq!(abuse, 10);
    // Another peer has its own budget.
    let ids: Vec<MessageId> = all[..10].to_vec();
    let input = Input::Message {
        from: peer(2),
        message: Message::IWant(BoundedVec::new(ids.clone()).unwrap()),
        validator: &FirstByte,
    };
    p.handle(T0, input, &mut r);
    let (_, other) = served_bytes(&drain(&mut p), peer(2));
    assert_eq!(other.len(), 10);
    // A second later the first peer's budget is back, but what it already has is not sent
    // again within `RESERVE_AFTER`.
    let later = T0 + TimeDelta::from_secs(1);
    let input = Input::Message {
        from: peer(1),
        message: Message::IWant(BoundedVec::new(all[..20].to_vec()).unwrap()),
        validator: &FirstByte,
    };
    p.handle(later, input, &mut r);
    let (_, again) = served_bytes(&drain(&mut p), peer(1));
    assert!(again.is_disjoint(&first), "served again within the window");
    assert_eq!(again.len(), 10);
}

fn message_id_of(m: u8) -> MessageId {
    big_payload(m, 100).message.id()
}

/// A payload by `author` with sequence `n`, valid for [`FirstByte`].
fn authored(author: u8, n: u64, at: Timestamp) -> Payload {
    let mut sig = alloc::vec![0u8; SIGNATURE_LEN];
    sig[1] = author;
    Payload {
        message: SignedMessage {
            author: PeerId::from_bytes([author; 32]),
            topic: topic(),
            sequence: n,
            timestamp: at,
            payload: Bytes::new(alloc::vec![author; 8]).unwrap(),
            signature: SignatureBytes::new(sig).unwrap(),
            kind: Default::default(),
        },
        author_key: VerifyingKeyBytes::new(alloc::vec![0u8; SIG_VERIFYING_KEY_LEN]).unwrap(),
        hops: 1,
    }
}

/// One author sending ten times its share of the seen-cache within the window gets its share
/// delivered and the rest refused (counted, no penalty); the honest ids seen before stay, so a
/// replay of an honest message after the flood is a duplicate, not a second delivery; and a
/// cache full of unexpired ids refuses rather than forgetting one (§15.4). Before, the flood
/// pushed the honest ids out and their replays were delivered again.
#[test]
fn an_author_flooding_the_seen_cache_gets_its_share_and_replays_stay_closed() {
    let mut r = rng();
    let config = Config {
        seen_capacity: 64,
        seen_per_author: 16,
        ..Config::default()
    };
    let mut p = Plumtree::new(config, topic());
    let v = &FirstByte;
    p.handle(T0, Input::NeighborUp(peer(1)), &mut r);
    let deliver = |p: &mut Plumtree, r: &mut Rng, at: Timestamp, payload: Payload| -> bool {
        let input = Input::Message {
            from: peer(1),
            message: Message::Gossip(payload),
            validator: v,
        };
        p.handle(at, input, r);
        drain(p).iter().any(|o| matches!(o, Output::Deliver { .. }))
    };
    let honest: Vec<Payload> = (0..8).map(|n| authored(10, n, T0)).collect();
    for h in &honest {
        assert!(deliver(&mut p, &mut r, T0, h.clone()));
    }
    let at = T0 + TimeDelta::from_secs(1);
    let delivered = (0..160)
        .filter(|n| deliver(&mut p, &mut r, at, authored(66, *n, at)))
        .count();
    assert_eq!(delivered, 16, "the flooding author's share");
    assert_eq!(p.counters.seen_author_full, 144);
    assert!(p.counters.invalid == 0, "no penalty for a valid message");
    for h in &honest {
        assert!(
            !deliver(&mut p, &mut r, at, h.clone()),
            "an honest message was delivered again"
        );
    }
    // Five more authors at their share fill the cache: 8 + 16 · 3 = 56, then 8 of the fourth.
    for a in 70..75u8 {
        for n in 0..16 {
            deliver(&mut p, &mut r, at, authored(a, n, at));
        }
    }
    assert_eq!(p.seen.len(), 64);
    assert!(p.counters.seen_full > 0);
    for h in &honest {
        assert!(
            !deliver(&mut p, &mut r, at, h.clone()),
            "replayed when full"
        );
    }
    // Once the honest ids expire, their room is free again for new messages.
    let later = T0 + p.config.retention + TimeDelta::from_secs(1);
    assert!(deliver(&mut p, &mut r, later, authored(11, 0, later)));
}

/// An author publishing ten times the retained cache evicts its own messages, not the others':
/// the honest authors' messages stay retained (and servable) through the flood, the flooding
/// author holds the rest, and with one author the oldest goes first as before (§15.4).
#[test]
fn a_flooding_author_evicts_its_own_retained_messages() {
    let mut r = rng();
    let config = Config {
        cache_messages: 16,
        ..Config::default()
    };
    let mut p = Plumtree::new(config, topic());
    let v = &FirstByte;
    p.handle(T0, Input::NeighborUp(peer(1)), &mut r);
    let deliver = |p: &mut Plumtree, r: &mut Rng, at: Timestamp, payload: Payload| {
        let input = Input::Message {
            from: peer(1),
            message: Message::Gossip(payload),
            validator: v,
        };
        p.handle(at, input, r);
        drain(p);
    };
    let honest: Vec<MessageId> = (0..4u8)
        .flat_map(|a| (0..2).map(move |n| (a, n)))
        .map(|(a, n)| {
            let m = authored(10 + a, n, T0);
            let id = m.message.id();
            deliver(&mut p, &mut r, T0, m);
            id
        })
        .collect();
    for n in 0..160 {
        let at = T0 + TimeDelta::from_millis(10 * (n + 1));
        deliver(&mut p, &mut r, at, authored(66, n, at));
    }
    assert_eq!(p.cache.len(), 16);
    for id in &honest {
        assert!(p.cache.contains_key(id), "an honest message was evicted");
    }
    let flood = PeerId::from_bytes([66; 32]);
    assert_eq!(p.retained_by[&flood].0, 8);
    assert_eq!(p.counters.evicted_for_share, 152);
    // One author alone: the oldest goes first.
    let mut p = Plumtree::new(
        Config {
            cache_messages: 4,
            ..Config::default()
        },
        topic(),
    );
    p.handle(T0, Input::NeighborUp(peer(1)), &mut r);
    let ids: Vec<MessageId> = (0..6)
        .map(|n| {
            let at = T0 + TimeDelta::from_millis(n + 1);
            let m = authored(9, n, at);
            let id = m.message.id();
            deliver(&mut p, &mut r, at, m);
            id
        })
        .collect();
    assert!(ids[..2].iter().all(|id| !p.cache.contains_key(id)));
    assert!(ids[2..].iter().all(|id| p.cache.contains_key(id)));
    assert_eq!(p.counters.evicted_for_share, 0);
}
