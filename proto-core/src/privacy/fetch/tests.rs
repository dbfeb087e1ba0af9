use super::*;
use crate::crypto::PureRustProvider;
use crate::identity::{Identity, IdentitySeeds};
use crate::machine::Rng;
use alloc::vec;
use chacha20::ChaCha8Rng;
use proptest::prelude::*;
use rand_core::SeedableRng;
use std::sync::OnceLock;

const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

fn rng(seed: u64) -> Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A peer id with nothing behind it.
fn pid(n: u64) -> PeerId {
    PeerId::from_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

/// One encrypted message sealed for the reader: the author's and the reader's sides.
struct Sample {
    content: SignedMessage,
    key: ContentKey,
    fetch_keys: Vec<FetchKey>,
    reader_key: ContentKey,
    reader_fetch_key: FetchKey,
    content_hash: [u8; 32],
    plaintext: Vec<u8>,
}

struct Fixture {
    author: PeerId,
    author_key: VerifyingKeyBytes,
    reader: PeerId,
    samples: Vec<Sample>,
}

/// Real messages (pure-Rust ML-DSA and ML-KEM), made once for all tests.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let identity = |seed: u8| {
            let mut r = ChaCha8Rng::from_seed([seed; 32]);
            Identity::from_seeds(&PureRustProvider, IdentitySeeds::generate(&mut r))
        };
        let author = identity(1);
        let reader = identity(2);
        let mut r = rng(3);
        let topic = TopicId::from_name("fetch");
        let samples = (0..3u8)
            .map(|n| {
                let plaintext = vec![n; 16 + usize::from(n)];
                let (sealed, secrets, key) = envelope::seal_keyed(
                    &PureRustProvider,
                    &[reader.encapsulation_key().clone()],
                    &plaintext,
                    &mut r,
                )
                .unwrap();
                let content = SignedMessage::publish_kind(
                    &author,
                    MessageKind::Sealed,
                    topic,
                    u64::from(n),
                    T0,
                    &sealed.content,
                )
                .unwrap();
                let content_hash = sealed.content_hash();
                let (index, secret, reader_key) =
                    envelope::find_key(&sealed.slots, &content_hash, reader.decapsulator())
                        .unwrap();
                let reader_fetch_key =
                    fetch_guard::fetch_key(&secret, &sealed.slots[index], &content_hash);
                Sample {
                    content,
                    key,
                    fetch_keys: fetch_guard::fetch_keys(&sealed, &secrets),
                    reader_key,
                    reader_fetch_key,
                    content_hash,
                    plaintext,
                }
            })
            .collect();
        Fixture {
            author: author.peer_id(),
            author_key: author.verifying_key().clone(),
            reader: reader.peer_id(),
            samples,
        }
    })
}

fn config() -> PrivateConfig {
    PrivateConfig::default()
}

fn serve(n: usize) -> Input<'static> {
    let s = &fixture().samples[n];
    Input::Serve {
        message: s.content.id(),
        authored: Authored {
            topic: s.content.topic,
            content: s.content.clone(),
            key: s.key.clone(),
            version: 1,
        },
        fetch_keys: s.fetch_keys.clone(),
    }
}

fn wanted(n: usize, author: PeerId) -> Input<'static> {
    let f = fixture();
    let s = &f.samples[n];
    Input::Fetch(Wanted {
        message: s.content.id(),
        topic: s.content.topic,
        author,
        author_key: f.author_key.clone(),
        key: s.reader_key.clone(),
        fetch_key: s.reader_fetch_key.clone(),
        content_hash: s.content_hash,
        version: 1,
    })
}

fn frame(from: PeerId, message: PrivateMessage) -> Input<'static> {
    Input::Frame {
        from,
        message,
        crypto: &PureRustProvider,
    }
}

fn drain(m: &mut FetchExchange) -> Vec<Output> {
    core::iter::from_fn(|| m.poll()).collect()
}

fn id(n: usize) -> MessageId {
    fixture().samples[n].content.id()
}

/// Every timer belongs to a fetch in flight or an outstanding challenge, and each of those
/// has exactly one.
fn timers_match_the_tables(m: &FetchExchange) {
    assert_eq!(
        m.deadlines.len(),
        m.fetches.len() + m.guard.challenges_len(),
        "{m:?}"
    );
}

#[test]
fn a_reader_fetches_and_opens_what_its_author_serves() {
    let f = fixture();
    let (mut author, mut reader) = (FetchExchange::new(&config()), FetchExchange::new(&config()));
    let mut r = rng(1);
    author.handle(T0, serve(0), &mut r);
    assert_eq!(
        reader.handle(T0, wanted(0, f.author), &mut r),
        Reply::Started
    );
    assert!(matches!(
        drain(&mut reader)[..],
        [Output::Ask { author: a, message }] if a == f.author && message == id(0)
    ));
    // FETCH, CHALLENGE, PROVE, CONTENT: one frame each way, shuttled by hand.
    let mut to_author = PrivateMessage::Fetch { message: id(0) };
    loop {
        author.handle(T0, frame(f.reader, to_author), &mut r);
        let [Output::Send { to, message }] = &drain(&mut author)[..] else {
            panic!("the author answers once");
        };
        assert_eq!(*to, f.reader);
        reader.handle(T0, frame(f.author, message.clone()), &mut r);
        match drain(&mut reader).pop() {
            Some(Output::Send { message, .. }) => to_author = message,
            Some(Output::Fetched {
                message, plaintext, ..
            }) => {
                assert_eq!(message, id(0));
                assert_eq!(&plaintext[..], &f.samples[0].plaintext[..]);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(author.guard().counters().allowed, 1);
    // The challenge was spent and the fetch is over: no timer is left on either side.
    assert_eq!((author.poll_timeout(), reader.poll_timeout()), (None, None));
    assert_eq!(reader.fetches_len(), 0);
}

#[test]
fn attempts_time_out_and_the_fetch_fails_after_the_last() {
    let f = fixture();
    let c = config();
    let mut m = FetchExchange::new(&c);
    let mut r = rng(2);
    m.handle(T0, wanted(0, f.author), &mut r);
    drain(&mut m);
    let at = |k: u8| T0 + c.fetch_timeout.saturating_mul(u64::from(k));
    for k in 1..c.fetch_attempts {
        assert_eq!(m.poll_timeout(), Some(at(k)));
        m.handle_timeout(at(k), &mut r);
        assert!(matches!(drain(&mut m)[..], [Output::Ask { .. }]));
    }
    let now = at(c.fetch_attempts);
    assert_eq!(m.poll_timeout(), Some(now));
    m.handle_timeout(now, &mut r);
    assert!(matches!(
        drain(&mut m)[..],
        [Output::Failed {
            reason: Failure::TimedOut,
            ..
        }]
    ));
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn a_fetch_without_a_link_asks_when_it_comes_up_and_only_then() {
    let f = fixture();
    let mut m = FetchExchange::new(&config());
    let mut r = rng(3);
    m.handle(T0, wanted(0, f.author), &mut r);
    m.handle(T0, wanted(1, f.author), &mut r);
    assert_eq!(drain(&mut m).len(), 2);
    m.handle(T0, Input::NoLink { message: id(0) }, &mut r);
    m.handle(T0, Input::LinkUp { peer: pid(9) }, &mut r);
    assert!(drain(&mut m).is_empty());
    // Only the fetch whose FETCH did not go out asks again.
    m.handle(T0, Input::LinkUp { peer: f.author }, &mut r);
    assert!(matches!(
        drain(&mut m)[..],
        [Output::Ask { message, .. }] if message == id(0)
    ));
    m.handle(T0, Input::LinkUp { peer: f.author }, &mut r);
    assert!(drain(&mut m).is_empty());
    assert!(m.wants_link(&f.author) && !m.wants_link(&pid(9)));
}

#[test]
fn a_refusal_ends_the_fetch_only_from_its_author() {
    let f = fixture();
    let mut m = FetchExchange::new(&config());
    let mut r = rng(4);
    m.handle(T0, wanted(0, f.author), &mut r);
    drain(&mut m);
    let refused = || PrivateMessage::Refused { message: id(0) };
    assert_eq!(
        m.handle(T0, frame(pid(9), refused()), &mut r),
        Reply::Unsolicited
    );
    assert!(m.is_fetching(&id(0)));
    m.handle(T0, frame(f.author, refused()), &mut r);
    assert!(matches!(
        drain(&mut m)[..],
        [Output::Failed {
            reason: Failure::Refused,
            ..
        }]
    ));
    assert_eq!((m.fetches_len(), m.poll_timeout()), (0, None));
}

#[test]
fn a_full_table_starts_no_fetch() {
    let f = fixture();
    let mut m = FetchExchange::new(&PrivateConfig {
        max_fetches: 1,
        ..config()
    });
    let mut r = rng(5);
    assert_eq!(m.handle(T0, wanted(0, f.author), &mut r), Reply::Started);
    assert_eq!(m.handle(T0, wanted(1, f.author), &mut r), Reply::Done);
    assert!(matches!(
        drain(&mut m)[..],
        [Output::Ask { .. }, Output::Failed { reason: Failure::Full, message }] if message == id(1)
    ));
    // A newer version of the fetch in flight replaces it.
    assert_eq!(m.handle(T0, wanted(0, f.author), &mut r), Reply::Started);
    timers_match_the_tables(&m);
}

#[test]
fn challenges_expire_on_their_timer_and_eviction_takes_theirs() {
    let f = fixture();
    let c = PrivateConfig {
        max_challenges: 2,
        ..config()
    };
    let mut m = FetchExchange::new(&c);
    let mut r = rng(6);
    m.handle(T0, serve(0), &mut r);
    let mut nonces = Vec::new();
    for _ in 0..5 {
        m.handle(
            T0,
            frame(f.reader, PrivateMessage::Fetch { message: id(0) }),
            &mut r,
        );
        for o in drain(&mut m) {
            if let Output::Send {
                message: PrivateMessage::Challenge { nonce, .. },
                ..
            } = o
            {
                nonces.push(nonce);
            }
        }
    }
    assert_eq!(nonces.len(), 5);
    assert_eq!(m.guard().challenges_len(), 2);
    assert_eq!(m.guard().counters().evicted_challenges, 3);
    timers_match_the_tables(&m);
    assert_eq!(m.poll_timeout(), Some(T0 + c.challenge_ttl));
    m.handle_timeout(T0 + c.challenge_ttl, &mut r);
    assert_eq!((m.guard().challenges_len(), m.poll_timeout()), (0, None));
    // A proof against an expired challenge is refused: it is no longer known.
    let prove = PrivateMessage::Prove {
        message: id(0),
        nonce: nonces[4].clone(),
        proof: FixedBytes::from_array([0; 32]),
    };
    m.handle(T0 + c.challenge_ttl, frame(f.reader, prove), &mut r);
    assert!(matches!(
        drain(&mut m)[..],
        [Output::Send {
            message: PrivateMessage::Refused { .. },
            ..
        }]
    ));
    assert_eq!(m.guard().counters().unknown_challenge, 1);
    // Without its timer having run, an expired challenge is refused as expired.
    m.handle(
        T0,
        frame(f.reader, PrivateMessage::Fetch { message: id(0) }),
        &mut r,
    );
    let Some(Output::Send {
        message: PrivateMessage::Challenge { nonce, .. },
        ..
    }) = drain(&mut m).pop()
    else {
        panic!("a challenge");
    };
    let late = T0 + c.challenge_ttl + TimeDelta::from_secs(1);
    let prove = PrivateMessage::Prove {
        message: id(0),
        nonce,
        proof: FixedBytes::from_array([0; 32]),
    };
    m.handle(late, frame(f.reader, prove), &mut r);
    assert_eq!(m.guard().counters().expired_challenge, 1);
    timers_match_the_tables(&m);
}

#[test]
fn a_withdrawn_message_is_neither_served_nor_fetched() {
    let f = fixture();
    let mut m = FetchExchange::new(&config());
    let mut r = rng(7);
    m.handle(T0, serve(0), &mut r);
    m.handle(T0, wanted(0, f.author), &mut r);
    drain(&mut m);
    m.handle(T0, Input::Withdraw { message: id(0) }, &mut r);
    assert!(m.authored(&id(0)).is_none() && !m.is_fetching(&id(0)));
    m.handle(
        T0,
        frame(f.reader, PrivateMessage::Fetch { message: id(0) }),
        &mut r,
    );
    assert!(matches!(
        drain(&mut m)[..],
        [Output::Send {
            message: PrivateMessage::Refused { .. },
            ..
        }]
    ));
    assert_eq!(m.poll_timeout(), None);
}

/// What can happen between an author's and a reader's exchange.
#[derive(Debug, Clone)]
enum Op {
    Serve(usize),
    Rekey(usize, bool),
    Withdraw(usize, bool),
    Fetch(usize, bool),
    Cancel(usize),
    LinkUp(bool),
    NoLink(usize),
    /// Deliver (or lose) the oldest frame in flight.
    Deliver(bool),
    /// A stranger's frame to the author or the reader.
    Junk(u8, usize, u8),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..3usize;
    prop_oneof![
        1 => n.clone().prop_map(Op::Serve),
        1 => (n.clone(), any::<bool>()).prop_map(|(n, b)| Op::Rekey(n, b)),
        1 => (n.clone(), any::<bool>()).prop_map(|(n, b)| Op::Withdraw(n, b)),
        3 => (n.clone(), any::<bool>()).prop_map(|(n, b)| Op::Fetch(n, b)),
        1 => n.clone().prop_map(Op::Cancel),
        1 => any::<bool>().prop_map(Op::LinkUp),
        1 => n.clone().prop_map(Op::NoLink),
        8 => (0..8u8).prop_map(|n| Op::Deliver(n == 0)),
        1 => (0..5u8, n, any::<u8>()).prop_map(|(k, n, b)| Op::Junk(k, n, b)),
        4 => (0..25_000u64).prop_map(Op::Wait),
    ]
}

/// Runs `m`'s timers up to `until` the way a driver does, checking that after
/// `handle_timeout(t)` the machine never again reports a deadline at or before `t`.
fn run_timers(m: &mut FetchExchange, now: Timestamp, until: Timestamp, r: &mut Rng) -> Vec<Output> {
    let mut out = Vec::new();
    let mut now = now;
    while let Some(at) = m.poll_timeout().filter(|at| *at <= until) {
        now = now.max(at);
        m.handle_timeout(now, r);
        out.extend(drain(m));
        if let Some(next) = m.poll_timeout() {
            assert!(
                next > now,
                "after handle_timeout({now:?}) poll_timeout() is {next:?}"
            );
        }
    }
    m.handle_timeout(until, r);
    out.extend(drain(m));
    assert!(m.poll_timeout().is_none_or(|next| next > until));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// An author and a reader under random requests, links, losses, strangers' frames and
    /// waits: timers move forward, every timer belongs to a fetch or a challenge, and what a
    /// reader opens is what was sealed.
    #[test]
    fn timers_move_forward_and_match_the_tables(ops in proptest::collection::vec(op(), 1..60)) {
        let f = fixture();
        let c = PrivateConfig { max_challenges: 4, max_fetches: 2, ..config() };
        let (mut author, mut reader) = (FetchExchange::new(&c), FetchExchange::new(&c));
        let mut r = rng(7);
        let mut now = T0;
        // Frames in flight: (to the author?, from, message).
        let mut wire: VecDeque<(bool, PeerId, PrivateMessage)> = VecDeque::new();
        let mut version = 1;
        for n in 0..f.samples.len() {
            author.handle(now, serve(n), &mut r);
        }
        for op in ops {
            let mut outs: Vec<(bool, Output)> = Vec::new();
            match op {
                Op::Serve(n) => { author.handle(now, serve(n), &mut r); }
                Op::Rekey(n, keep) => {
                    version += 1;
                    let keys = if keep {
                        f.samples[n].fetch_keys.clone()
                    } else {
                        vec![Zeroizing::new([version as u8; 32])]
                    };
                    author.handle(now, Input::Rekey { message: id(n), version, fetch_keys: keys }, &mut r);
                }
                Op::Withdraw(n, at_author) => {
                    let m = if at_author { &mut author } else { &mut reader };
                    m.handle(now, Input::Withdraw { message: id(n) }, &mut r);
                }
                Op::Fetch(n, right) => {
                    let from = if right { f.author } else { pid(5) };
                    reader.handle(now, wanted(n, from), &mut r);
                }
                Op::Cancel(n) => { reader.handle(now, Input::Cancel { message: id(n) }, &mut r); }
                Op::LinkUp(right) => {
                    let peer = if right { f.author } else { pid(5) };
                    reader.handle(now, Input::LinkUp { peer }, &mut r);
                }
                Op::NoLink(n) => { reader.handle(now, Input::NoLink { message: id(n) }, &mut r); }
                Op::Deliver(lose) => {
                    if let Some((to_author, from, message)) = wire.pop_front() && !lose {
                        let m = if to_author { &mut author } else { &mut reader };
                        m.handle(now, frame(from, message), &mut r);
                    }
                }
                Op::Junk(kind, n, b) => {
                    let nonce = FixedBytes::from_array([b; 32]);
                    let (to_author, message) = match kind {
                        0 => (true, PrivateMessage::Fetch { message: id(n) }),
                        1 => (true, PrivateMessage::Prove { message: id(n), nonce, proof: FixedBytes::from_array([b; 32]) }),
                        2 => (false, PrivateMessage::Challenge { message: id(n), nonce }),
                        3 => (false, PrivateMessage::Refused { message: id(n) }),
                        _ => (false, PrivateMessage::Content { message: f.samples[n].content.clone() }),
                    };
                    let m = if to_author { &mut author } else { &mut reader };
                    m.handle(now, frame(pid(5), message), &mut r);
                }
                Op::Wait(ms) => {
                    let until = now + TimeDelta::from_millis(ms);
                    outs.extend(run_timers(&mut author, now, until, &mut r).into_iter().map(|o| (true, o)));
                    outs.extend(run_timers(&mut reader, now, until, &mut r).into_iter().map(|o| (false, o)));
                    now = until;
                }
            }
            outs.extend(drain(&mut author).into_iter().map(|o| (true, o)));
            outs.extend(drain(&mut reader).into_iter().map(|o| (false, o)));
            for (from_author, o) in outs {
                let (me, other) = if from_author { (f.author, f.reader) } else { (f.reader, f.author) };
                match o {
                    Output::Ask { author: a, message } if a == f.author => {
                        wire.push_back((true, me, PrivateMessage::Fetch { message }));
                    }
                    Output::Send { to, message } if to == other => {
                        wire.push_back((!from_author, me, message));
                    }
                    Output::Fetched { message, plaintext, .. } => {
                        let s = f.samples.iter().find(|s| s.content.id() == message).unwrap();
                        prop_assert_eq!(&plaintext[..], &s.plaintext[..]);
                    }
                    _ => {}
                }
            }
            timers_match_the_tables(&author);
            timers_match_the_tables(&reader);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// One exchange that both serves and fetches, driven by the shared driver loop
    /// (`machine::check::timers_move_forward`): a few inputs before every wake.
    #[test]
    fn timers_move_forward_for_one_exchange(
        batches in proptest::collection::vec(proptest::collection::vec(op(), 0..4), 1..30),
    ) {
        let f = fixture();
        let c = PrivateConfig { max_challenges: 3, max_fetches: 2, ..config() };
        let mut m = FetchExchange::new(&c);
        let mut r = rng(8);
        let mut batches = batches.into_iter();
        crate::machine::check::timers_move_forward(
            &mut m,
            &mut r,
            T0,
            T0 + TimeDelta::from_secs(3600),
            200,
            |now, m, r| {
                for op in batches.next().unwrap_or_default() {
                    let input = match op {
                        Op::Serve(n) => serve(n),
                        Op::Rekey(n, _) => Input::Rekey {
                            message: id(n),
                            version: 2,
                            fetch_keys: f.samples[n].fetch_keys.clone(),
                        },
                        Op::Withdraw(n, _) => Input::Withdraw { message: id(n) },
                        Op::Fetch(n, right) => wanted(n, if right { f.author } else { pid(5) }),
                        Op::Cancel(n) => Input::Cancel { message: id(n) },
                        Op::LinkUp(right) => Input::LinkUp {
                            peer: if right { f.author } else { pid(5) },
                        },
                        Op::NoLink(n) => Input::NoLink { message: id(n) },
                        Op::Deliver(_) | Op::Wait(_) => {
                            frame(f.reader, PrivateMessage::Fetch { message: id(0) })
                        }
                        Op::Junk(_, n, b) => frame(
                            f.reader,
                            PrivateMessage::Prove {
                                message: id(n),
                                nonce: FixedBytes::from_array([b; 32]),
                                proof: FixedBytes::from_array([b; 32]),
                            },
                        ),
                    };
                    m.handle(now, input, r);
                    timers_match_the_tables(m);
                }
            },
        );
        timers_match_the_tables(&m);
    }
}
