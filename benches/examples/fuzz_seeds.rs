//! Writes valid inputs for the cargo-fuzz targets into a corpus directory, so the fuzzers start
//! from real frames and records instead of having to discover kilobytes of valid keys and
//! signatures by mutation. `fuzz/run.sh` calls it; existing files are overwritten with the same
//! bytes (the fixtures are deterministic).
//!
//! Usage: `cargo run -p hearsay-benches --example fuzz_seeds -- CORPUS_DIR`

use hearsay_benches::{
    fixture_frame, fixture_gossip_frame, fixture_hello_frame, fixture_record, fixture_topic,
    fixture_topic_frames,
};
use hearsay_proto::broadcast::message::{MessageKind, SignedMessage};
use hearsay_proto::broadcast::plumtree::{Message as Plum, Payload};
use hearsay_proto::broadcast::topic::TopicMessage;
use hearsay_proto::discovery::foaf::{
    Answer, Capability, DiscoveryMessage, Query, QueryId, Target,
};
use hearsay_proto::frame::{Goodbye, GoodbyeReason, SessionMessage};
use hearsay_proto::node::{Announcement, PrivateMessage};
use hearsay_proto::privacy::access::{AccessRecord, DeleteRequest, Slots};
use hearsay_proto::privacy::envelope;
use hearsay_proto::privacy::group::{Group, Role};
use hearsay_proto::testing::{T0, identity};
use hearsay_proto::wire::{BoundedVec, FixedBytes};
use hearsay_proto::{Frame, MessageId, default_provider};
use rand_core::SeedableRng;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(corpus) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz_seeds CORPUS_DIR");
        return ExitCode::from(2);
    };
    let Frame::Session(SessionMessage::Hello(hello)) = fixture_frame() else {
        unreachable!("the fixture frame is a Hello");
    };
    let goodbye = Frame::Session(SessionMessage::Goodbye(Goodbye {
        reason: GoodbyeReason::Leaving,
    }));
    let seeds = [
        ("frame_decode", "seed-hello", fixture_hello_frame().to_vec()),
        (
            "frame_decode",
            "seed-goodbye",
            goodbye.encode().expect("goodbye encodes").to_vec(),
        ),
        (
            "record_decode",
            "seed-record",
            hello.record.to_bytes().expect("record encodes"),
        ),
    ];
    let mut seeds: Vec<(&str, String, Vec<u8>)> = seeds
        .into_iter()
        .map(|(t, n, b)| (t, n.to_string(), b))
        .collect();
    let mut topic_frames = fixture_topic_frames();
    topic_frames.push(("gossip", fixture_gossip_frame(64)));
    for (name, frame) in topic_frames {
        seeds.push(("frame_decode", format!("seed-{name}"), frame.to_vec()));
        // node_frames reads records [op (even: a frame), len_hi, len_lo, frame...], then a wait.
        let mut record = vec![0u8, (frame.len() >> 8) as u8, frame.len() as u8];
        record.extend_from_slice(&frame);
        record.extend_from_slice(&[1, 0x02, 0x00]);
        seeds.push(("node_frames", format!("seed-{name}"), record));
    }
    seeds.extend(issue_g_seeds());
    seeds.extend(handler_seeds());
    for (target, name, bytes) in seeds {
        let dir = corpus.join(target);
        let written =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(&name), &bytes));
        if let Err(e) = written {
            eprintln!(
                "fuzz_seeds: cannot write {}: {e}",
                dir.join(&name).display()
            );
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// `[len_hi, len_lo, bytes...]`: a length-prefixed chunk, as the scripted targets read them.
fn chunk(bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("seed chunks are below 64 KiB");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A `node_frames` record: `[op, len_hi, len_lo, bytes]`, then a 512 ms wait.
fn node_record(op: u8, bytes: &[u8]) -> Vec<u8> {
    cat(&[&[op], &chunk(bytes), &[1, 0x02, 0x00]])
}

type Seed = (&'static str, String, Vec<u8>);

/// Seeds of the targets added for issue G (discovery, presence, groups, envelopes) and of the
/// frame kinds 5 and 6 and message kinds 1-3 for `frame_decode` and `node_frames`. They are
/// made with the default provider: the targets use the insecure test provider, so their
/// signatures do not verify there, but their structure does; the targets re-sign what they need
/// to (see each target's documentation).
fn issue_g_seeds() -> Vec<Seed> {
    let mut seeds: Vec<Seed> = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.push((target, name.to_string(), bytes));
    };
    let provider = default_provider();
    let author = identity(1);
    let reader = identity(2);
    let record = fixture_record(&author);
    let topic = fixture_topic();
    let mut rng = chacha20::ChaCha8Rng::from_seed([7; 32]);

    // Discovery (frame kind 5).
    let query = DiscoveryMessage::Query(Query {
        id: QueryId::from_bytes([1; 16]),
        target: Target::Peer(author.peer_id()),
        ttl: 3,
    });
    let capability = DiscoveryMessage::Query(Query {
        id: QueryId::from_bytes([2; 16]),
        target: Target::Capability(Capability::new(b"relay".to_vec()).expect("fits")),
        ttl: 2,
    });
    let answer = DiscoveryMessage::Answer(Answer {
        id: QueryId::from_bytes([1; 16]),
        records: BoundedVec::new(vec![record.clone(), fixture_record(&reader)]).expect("fit"),
    });
    for (name, m) in [
        ("query", &query),
        ("capability", &capability),
        ("answer", &answer),
    ] {
        let body = m.encode().expect("encodes");
        add("discovery_decode", &format!("seed-{name}"), body.clone());
        // Config byte (small tables), then the message from neighbour 0, a wait, the same id
        // again from neighbour 1, and an own query.
        let script = cat(&[
            &[1, 0, 0],
            &chunk(&body),
            &[4, 0x01, 0x00, 0, 1],
            &chunk(&body),
        ]);
        add("discovery_decode", &format!("seed-{name}-script"), script);
        let frame = Frame::Discovery(m.clone()).encode().expect("fits");
        add(
            "frame_decode",
            &format!("seed-discovery-{name}"),
            frame.to_vec(),
        );
        add(
            "node_frames",
            &format!("seed-discovery-{name}"),
            node_record(0, &frame),
        );
    }
    // Structured FOAF scripts: queries, answers for ids sent on, own queries, waits.
    add(
        "discovery_decode",
        "seed-structured",
        vec![
            1, 1, 0, 0, 3, 1, 1, 0x80, 0, 2, 1, 0x80, 3, 0, 1, 2, 3, 0, 0x0f, 5, 4, 0x08, 0x00, 6,
            1, 2, 1, 5, 6, 7, 3, 2, 1, 4, 0x10, 0x00,
        ],
    );

    // Encrypted messages: envelope, access record, delete request, announcement, and the
    // frames and message kinds that carry them (frame kind 6; message kinds 1, 2, 3).
    let sealed = envelope::seal(
        &*provider,
        &[reader.encapsulation_key().clone()],
        b"for the reader",
        &mut rng,
    )
    .expect("seals");
    let content =
        SignedMessage::publish_kind(&author, MessageKind::Sealed, topic, 5, T0, &sealed.content)
            .expect("signs");
    let id = content.id();
    let access = AccessRecord::issue(
        &author,
        id,
        1,
        Slots::new(sealed.slots.to_vec()).expect("fits"),
    )
    .expect("signs");
    let delete = DeleteRequest::issue(&author, id).expect("signs");
    let announcement = Announcement {
        record: access.clone(),
        author: record.clone(),
        content_hash: FixedBytes::from_array(sealed.content_hash()),
    };
    let sealed_bytes = sealed.to_bytes().expect("encodes");
    let access_bytes = access.to_bytes().expect("encodes");
    let delete_bytes = delete.to_bytes().expect("encodes");
    let announcement_bytes = announcement.to_bytes().expect("encodes");
    add("envelope_open", "seed-sealed", sealed_bytes.clone());
    add("envelope_open", "seed-access", access_bytes.clone());
    add("envelope_open", "seed-delete", delete_bytes.clone());
    add(
        "envelope_open",
        "seed-announcement",
        announcement_bytes.clone(),
    );
    add(
        "envelope_open",
        "seed-script",
        cat(&[
            &[1, 0],
            &chunk(&sealed_bytes),
            &[1, 1, 0],
            &chunk(&access_bytes),
            &[1, 0, 1],
            &chunk(&access_bytes),
            &[2, 1, 0],
            &chunk(&delete_bytes),
            &[1, 1, 0],
            &chunk(&access_bytes),
            &[3],
            &chunk(&announcement_bytes),
            // Sealed here: 2 recipients and the fixed one, no mutation; then one mutation.
            &[4, 2, 1],
            &chunk(b"hello envelope"),
            &[0, 4, 1, 1],
            &chunk(b"mutated"),
            &[1, 0x00, 0x40, 0x01],
        ]),
    );
    let private = [
        ("fetch", PrivateMessage::Fetch { message: id }),
        (
            "challenge",
            PrivateMessage::Challenge {
                message: id,
                nonce: FixedBytes::from_array([3; 32]),
            },
        ),
        (
            "prove",
            PrivateMessage::Prove {
                message: id,
                nonce: FixedBytes::from_array([3; 32]),
                proof: FixedBytes::from_array([4; 32]),
            },
        ),
        ("content", PrivateMessage::Content { message: content }),
        ("refused", PrivateMessage::Refused { message: id }),
    ];
    for (name, m) in private {
        let frame = Frame::Private(m).encode().expect("fits");
        add(
            "frame_decode",
            &format!("seed-private-{name}"),
            frame.to_vec(),
        );
        add(
            "node_frames",
            &format!("seed-private-{name}"),
            node_record(0, &frame),
        );
    }
    let kinds = [
        (
            "announcement",
            MessageKind::Access,
            announcement_bytes.clone(),
        ),
        ("delete", MessageKind::Delete, delete_bytes.clone()),
        ("sealed", MessageKind::Sealed, sealed.content.to_vec()),
    ];
    for (name, kind, payload) in kinds {
        let message =
            SignedMessage::publish_kind(&author, kind, topic, 9, T0, &payload).expect("signs");
        let frame = Frame::Topic(TopicMessage::Broadcast {
            topic,
            message: Plum::Gossip(Payload {
                message,
                author_key: author.verifying_key().clone(),
                hops: 1,
            }),
        })
        .encode()
        .expect("fits");
        add("frame_decode", &format!("seed-kind-{name}"), frame.to_vec());
        add(
            "node_frames",
            &format!("seed-kind-{name}"),
            node_record(0, &frame),
        );
        // The same payload signed by the neighbour itself (op 2 | kind << 3).
        let op = 2 | (kind.number() << 3);
        add(
            "node_frames",
            &format!("seed-signed-{name}"),
            node_record(op, &payload),
        );
    }
    add(
        "node_frames",
        "seed-signed-application",
        node_record(2, b"hello from the neighbour"),
    );
    // Templates (op 4): the neighbour's own frames, intact and with one byte flipped.
    add("node_frames", "seed-template", node_record(4, &[0]));
    add(
        "node_frames",
        "seed-template-edit",
        node_record(4, &[5, 0x00, 0x10, 0x01]),
    );
    // Neighbour actions (op 6): publish, publish encrypted for the node, FOAF query, subscribe.
    for (n, action) in [
        b"\x00publish".to_vec(),
        b"\x01secret".to_vec(),
        vec![2],
        vec![3],
    ]
    .into_iter()
    .enumerate()
    {
        let record = cat(&[&node_record(6, &action), &node_record(4, &[n as u8 + 6])]);
        add("node_frames", &format!("seed-action-{n}"), record);
    }

    // Presence: clean structured beacons from two members, a replay, time, a mutation.
    add(
        "presence_beacon",
        "seed-beacons",
        cat(&[
            &[0x0f, 0],
            &[1, 1, 0x00, 1, 0],
            &[0; 8],
            &[0; 12],
            &[1, 2, 0x00, 1, 0],
            &[0; 8],
            &[0; 12],
            &[6, 1, 3, 0x00, 0x40, 5, 2, 0x01, 0x00, 0x55, 1],
            &[1, 3, 0x08, 2, 0],
            &[0; 8],
            &[0; 12],
            &[4, 3, 0x02, 0x58],
        ]),
    );
    add("presence_beacon", "seed-defects", {
        let mut s = vec![0x05, 3];
        for flags in [0x01u8, 0x02, 0x04, 0x10, 0x20, 0x40, 0x80] {
            s.extend_from_slice(&[1, 1, flags, 2, 0, 7]);
            s.extend_from_slice(&[0; 8]);
            s.extend_from_slice(&[1; 12]);
        }
        s.extend_from_slice(&cat(&[&[1, 5, 0, 1, 0], &[0; 8], &[2; 12]]));
        s
    });
    add(
        "presence_beacon",
        "seed-plaintext",
        cat(&[&[0, 0, 2, 0], &chunk(&[0x00, 0x03, 0x85, 0x00, 0x01])]),
    );
    add(
        "presence_beacon",
        "seed-raw",
        cat(&[&[0, 0, 0, 0, 0], &chunk(&[0x83, 0x50])]),
    );

    // Groups: every kind of operation (made by proposals on a real group) and a key package.
    let founder = &author;
    let (mut group, create, _) = Group::create(&*provider, founder, 2, &mut rng).expect("founds");
    let member = identity(3);
    let add_op = group
        .propose_add(
            &*provider,
            founder,
            member.peer_id(),
            member.encapsulation_key().clone(),
            Role::Poster,
            false,
            &mut rng,
        )
        .expect("proposes");
    group.apply(&*provider, &add_op.op).expect("applies");
    let set_role = group
        .propose_set_role(&*provider, founder, member.peer_id(), Role::Admin)
        .expect("proposes");
    group.apply(&*provider, &set_role.op).expect("applies");
    let rotate = group
        .propose_rotate(&*provider, founder, 0, &mut rng)
        .expect("proposes");
    group.apply(&*provider, &rotate.op).expect("applies");
    let package = group
        .rekey_package(
            &*provider,
            founder,
            0,
            &rotate.rekey.as_ref().expect("a rotation rekeys").secret,
            &mut rng,
        )
        .expect("packages");
    let remove = group
        .propose_remove(&*provider, founder, member.peer_id(), &mut rng)
        .expect("proposes");
    let ops = [
        ("create", create),
        ("add", add_op.op),
        ("set-role", set_role.op),
        ("rotate", rotate.op),
        ("remove", remove.op),
    ];
    let package_bytes = package.to_bytes().expect("encodes");
    add("group_decode", "seed-package", package_bytes.clone());
    let mut script = vec![1u8];
    for (name, op) in &ops {
        let bytes = op.to_bytes().expect("encodes");
        add("group_decode", &format!("seed-op-{name}"), bytes.clone());
        // Re-addressed and re-signed by identity 1 (the founder), then as decoded.
        script.extend_from_slice(&cat(&[&[1, 0, 0], &chunk(&bytes), &[0], &chunk(&bytes)]));
    }
    add("group_decode", "seed-ops", script);
    let create_bytes = ops[0].1.to_bytes().expect("encodes");
    add(
        "group_decode",
        "seed-proposals",
        cat(&[
            &[0, 2, 0, 1, 1, 0, 0, 2, 0, 2, 0, 1, 0, 2, 2, 3, 2, 0, 0],
            &[
                4, 0, 1, 0, 0, 0, 4, 0, 1, 0x00, 0x20, 0x01, 2, 1, 1, 0, 0, 0,
            ],
            &[3, 1],
            &chunk(&package_bytes),
            &[6, 4, 1, 2, 3, 4, 0],
            &[5],
            &chunk(&create_bytes),
        ]),
    );
    let _ = MessageId::from_bytes([0; 32]);
    seeds
}

/// Seeds of the targets `iblt_decode`, `protocol_handlers`, `scenario_parse` and
/// `control_request`: valid tables, scripts that walk each protocol machine through its happy
/// paths (with frames of each protocol for the raw-frame ops), real scenario files, and valid
/// control requests. The byte layouts are documented in each target.
fn handler_seeds() -> Vec<Seed> {
    use hearsay_proto::antientropy::Message as Recon;
    use hearsay_proto::antientropy::iblt::Iblt;
    use hearsay_proto::broadcast::plumtree::Announcement;
    use hearsay_proto::broadcast::topic::ReconcileMessage;
    use hearsay_proto::membership::hyparview::{Message as Hv, PeerInfo, Priority};
    use hearsay_proto::membership::swim::{Gossip, Message as Swim, Update};
    use hearsay_proto::wire::{BoundedBytes, BoundedVec};
    use hearsay_proto::{PeerId, TopicId};

    let mut seeds: Vec<Seed> = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.push((target, name.to_string(), bytes));
    };
    let encode = |f: Frame| f.encode().expect("fits a frame").to_vec();

    // iblt_decode: whole encodings, then a script of every op.
    let id = |n: u8| [n; 32];
    let mut table = Iblt::new(64, [1; 32]).expect("valid size");
    (0..20).for_each(|n| table.insert(&id(n)));
    (100..103).for_each(|n| table.remove(&id(n)));
    add("iblt_decode", "seed-table", table.to_bytes());
    let mut small = Iblt::new(8, [2; 32]).expect("valid size");
    small.insert(&id(7));
    add("iblt_decode", "seed-table-one", small.to_bytes());
    let mut sixteen = Iblt::new(16, [3; 32]).expect("valid size");
    (0..5).for_each(|n| sixteen.insert(&id(n)));
    add(
        "iblt_decode",
        "seed-script",
        cat(&[
            &[0],
            &chunk(&sixteen.to_bytes()),
            // Ranges: 30 and 25 ids sharing 20, in 68 cells.
            &[2, 0x00, 0x44, 2, 3, 0, 30, 25, 20],
            // Lists, in 12 cells; then a difference of one in 32 cells.
            &[2, 0x00, 0x0c, 4, 5, 1, 3, 1, 2, 3, 2, 2, 9],
            &[2, 0x00, 0x20, 6, 7, 1, 1, 8, 0],
            &[3, 0, 0, 0, 0, 0, 0, 0x03, 0xe8],
            // The current set's table in 24 cells, two edits; its estimator, three edits.
            &[4, 20, 9, 2, 0x00, 0x03, 5, 0xff, 0x00, 0x07, 40, 0x01],
            &[
                1, 0, 7, 3, 0x00, 0x10, 0x01, 0x12, 0x34, 0x80, 0x4f, 0xf0, 0x02,
            ],
            &[1, 1],
            &chunk(&small.to_bytes()),
        ]),
    );

    // protocol_handlers, HyParView (machine 0).
    let hv_frame = |m: Hv| encode(Frame::Membership(m));
    let peer_info = |n: u8, address: &[u8]| PeerInfo {
        peer: PeerId::from_bytes([n; 32]),
        addresses: BoundedVec::new(vec![BoundedBytes::new(address.to_vec()).expect("fits")])
            .expect("fits"),
    };
    let hv_config: &[u8] = &[0, 4, 8, 3, 4, 3, 2, 2, 3, 50, 1];
    add(
        "protocol_handlers",
        "seed-hyparview",
        cat(&[
            hv_config,
            &[6, 2, 1, 2],                   // join through peers 1 and 2
            &[2, 0],                         // link to peer 1 up
            &[0, 0, 1, 3, 1],                // peer 1: NEIGHBOR_REPLY accepted
            &[0, 2, 1, 0],                   // peer 3: JOIN
            &[0, 0, 1, 5, 4, 2, 3, 5, 6, 7], // peer 1: SHUFFLE
            &[0, 0, 1, 1, 8, 3],             // peer 1: FORWARD_JOIN
            &[0, 3, 1, 2, 1],                // peer 4: NEIGHBOR high
            &[10, 0, 0x2a, 0xf8],
            &[11, 1],
            &[3, 2],
            &[4, 0],
            &[11, 1, 11, 1],
            &[7, 1, 9, 7, 0, 10],
            &[8, 3, 5, 6, 7],
            &[11, 1, 5, 3, 9, 11, 1],
        ]),
    );
    let hv_frames = [
        Hv::Join,
        Hv::Neighbor {
            priority: Priority::High,
        },
        Hv::NeighborReply { accepted: true },
        Hv::ForwardJoin {
            node: peer_info(5, b"127.0.0.1:4433"),
            ttl: 3,
        },
        Hv::Shuffle {
            origin: peer_info(6, b"127.0.0.6:1"),
            ttl: 2,
            nodes: BoundedVec::new(vec![peer_info(7, b"a"), peer_info(8, b"b")]).expect("fits"),
        },
        Hv::ShuffleReply {
            nodes: BoundedVec::new(vec![peer_info(9, b"c")]).expect("fits"),
        },
        Hv::Disconnect,
    ];
    let mut script = hv_config.to_vec();
    for m in hv_frames {
        script.extend_from_slice(&cat(&[&[1, 0], &chunk(&hv_frame(m)), &[11, 1]]));
    }
    add("protocol_handlers", "seed-hyparview-frames", script);

    // SWIM (machine 1).
    let ping = encode(Frame::FailureDetection(Swim::Ping {
        seq: 1,
        want_view: true,
        updates: BoundedVec::new(vec![
            Gossip {
                update: Update::Suspect {
                    peer: PeerId::from_bytes([0; 32]),
                    incarnation: 1,
                    by: Some(PeerId::from_bytes([2; 32])),
                },
                hops: 1,
            },
            Gossip {
                update: Update::Alive {
                    peer: PeerId::from_bytes([2; 32]),
                    incarnation: 4,
                    signature: hearsay_proto::crypto::SignatureBytes::from_array(
                        [5; hearsay_proto::crypto::SIGNATURE_LEN],
                    ),
                },
                hops: 2,
            },
        ])
        .expect("fits"),
        rtt_us: None,
    }));
    let ack = encode(Frame::FailureDetection(Swim::Ack {
        seq: 1,
        view: Some(BoundedVec::new(vec![PeerId::from_bytes([3; 32])]).expect("fits")),
        updates: BoundedVec::default(),
    }));
    add(
        "protocol_handlers",
        "seed-swim",
        cat(&[
            &[1, 3, 3, 4, 1, 8, 3, 2, 2],
            &[0, 1, 0, 2, 0, 3], // members 1, 2, 3
            &[6, 1],             // the first round: pings
            &[7, 0, 1, 1, 7, 1, 1, 1],
            &[5, 0, 0x01, 0xf4],
            &[7, 0, 1, 0, 7, 1, 0, 0],
            &[6, 1, 6, 1, 6, 1],
            // peer 2: a PING carrying "suspect me" and "peer 3 is dead"; a PING_REQ for 3.
            &[2, 1, 0x07, 0xff, 0, 0, 5, 1, 2, 1, 0, 1, 2, 2, 3, 0, 1],
            &[2, 1, 0x00, 0x00, 2, 0, 9, 3],
            &[4, 0, 7],
            &[6, 1, 6, 1, 6, 1, 6, 1],
            &[3, 1],
            &chunk(&ping),
            &[3, 2],
            &chunk(&ack),
            &[6, 1, 6, 1],
        ]),
    );

    // Plumtree (machine 2); the frames carry the default provider's signatures, which the
    // target's insecure provider refuses (the refusal path).
    let topic = TopicId::from_name("fuzz/protocol_handlers");
    let broadcast = |m: Plum| encode(Frame::Topic(TopicMessage::Broadcast { topic, message: m }));
    let some_ids = BoundedVec::new(vec![MessageId::from_bytes([4; 32])]).expect("fits");
    add(
        "protocol_handlers",
        "seed-plumtree",
        cat(&[
            &[2, 3, 0, 200, 0, 200, 3, 7, 3, 7, 1],
            &[0, 0, 0, 1, 0, 2],                      // neighbours 1, 2, 3
            &[4, 0, 0, 1, 0, 0, 3, b'a', b'b', b'c'], // gossip from 1
            &[4, 1, 0, 1, 0, 0, 3, b'a', b'b', b'c'], // the same from 2: a duplicate
            &[6, 2, 2, 1, 0, 0, 9, 1],                // IHAVE from 3: a known id and another
            &[10, 1],
            &[5, 2, 1, 2, 1, 0, 1, b'z'],    // a repair from 3
            &[7, 0, 0, 1, 1, 0],             // GRAFT from 1
            &[7, 0, 1, 1, 1, 0],             // IWANT from 1
            &[9, 5, 1, 1, 1, 0],             // serve peer 6
            &[3, 2, 7, 0, 0, 2, b'h', b'i'], // publish
            &[4, 0, 3, 3, 9, 8, 1, b'x'],    // a forged signature
            &[10, 1, 10, 1, 10, 1],
            &[1, 0],
            &[2, 0x00, 0x03],
            &[10, 0, 0x27, 0x10],
            &[8, 0],
            &chunk(&fixture_gossip_frame(32)),
            &[8, 1],
            &chunk(&broadcast(Plum::IHave(
                BoundedVec::new(vec![Announcement {
                    id: MessageId::from_bytes([4; 32]),
                    hops: 2,
                }])
                .expect("fits"),
            ))),
            &[8, 1],
            &chunk(&broadcast(Plum::Graft(some_ids.clone()))),
            &[8, 2],
            &chunk(&broadcast(Plum::IWant(some_ids))),
            &[8, 2],
            &chunk(&broadcast(Plum::Prune)),
            &[10, 1],
        ]),
    );

    // Anti-entropy (machine 3).
    let mut sketch_table = Iblt::new(16, [6; 32]).expect("valid size");
    sketch_table.insert(&[1; 32]);
    let reconcile = |m: Recon| encode(Frame::Reconcile(ReconcileMessage { topic, message: m }));
    add(
        "protocol_handlers",
        "seed-antientropy",
        cat(&[
            &[3, 1, 1, 16, 3, 200, 3, 4],
            &[0, 1, 1, 0, 2, 1, 0, 3, 1, 0, 4, 0], // ids 1, 2, 3
            &[1, 0x00, 0x07],                      // neighbours 1, 2, 3
            &[7, 1, 7, 1],                         // a session starts: a sketch
            &[3, 0, 1, 5, 5, 1, 2, 9, 10, 11],     // an estimate for it
            &[7, 1],
            &[4, 0, 0], // DONE
            // A sketch of {1, 2, 20, 21} in 68 cells; one of 20 ids in 4 cells.
            &[2, 0, 0, 7, 0, 0x00, 0x40, 9, 4, 1, 2, 20, 21],
            &[2, 1, 0, 8, 0, 0x00, 0x00, 3, 20],
            &[
                30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49,
            ],
            &[5, 0],
            &chunk(&reconcile(Recon::Sketch {
                session: 3,
                attempt: 0,
                table: BoundedBytes::new(sketch_table.to_bytes()).expect("fits"),
            })),
            &[5, 1],
            &chunk(&reconcile(Recon::Done {
                session: 3,
                pushed: 1,
                wanted: 0,
            })),
            &[6, 0, 7, 1, 7, 1, 7, 1],
        ]),
    );

    // FOAF (machine 4).
    let discovery = encode(Frame::Discovery(DiscoveryMessage::Query(Query {
        id: QueryId::from_bytes([9; 16]),
        target: Target::Capability(Capability::new(b"relay".to_vec()).expect("fits")),
        ttl: 2,
    })));
    add(
        "protocol_handlers",
        "seed-foaf",
        cat(&[
            &[4, 2, 4, 3, 1, 0, 8, 3, 3, 7, 3, 7, 3, 16, 5],
            &[0, 0x00, 0x07, 1, 3], // own query for person 1
            &[2, 0, 1, 0, 2, 1, 4], // answers through peers 1, 2, 3
            &[2, 1, 1, 0, 1, 1],
            &[2, 2, 1, 0, 2, 0, 1],
            &[1, 3, 0x00, 0x0f, 0, 0x33, 0x80, 3], // a capability query from peer 4
            &[1, 4, 0x00, 0x1f, 0, 0x44, 2, 2],    // a peer query from peer 5
            &[4, 0, 0x13, 0x88],
            &[5, 1],
            &[3, 5, 0x00, 0x0f],
            &chunk(&discovery),
            &[6, 0, 0x00, 0x07, 2, 2, 0, 0x00, 0x07, 3, 2, 6],
            &[5, 1, 5, 1],
        ]),
    );

    // scenario_parse: real scenario files, and one with every action and key.
    for (name, text) in [
        (
            "partition-heal",
            include_str!("../../sim/scenarios/partition-heal.toml"),
        ),
        (
            "presence-foaf-200",
            include_str!("../../sim/scenarios/presence-foaf-200.toml"),
        ),
        (
            "broadcast-byzantine",
            include_str!("../../sim/scenarios/broadcast-byzantine.toml"),
        ),
        (
            "membership-crash",
            include_str!("../../sim/scenarios/membership-crash.toml"),
        ),
        (
            "topics-partial",
            include_str!("../../sim/scenarios/topics-partial.toml"),
        ),
    ] {
        add(
            "scenario_parse",
            &format!("seed-{name}"),
            text.as_bytes().to_vec(),
        );
    }
    add(
        "scenario_parse",
        "seed-every-action",
        SCENARIO_EVERY_ACTION.as_bytes().to_vec(),
    );

    // control_request: [flags, method, target, authorization, body, token] (chunks).
    let request = |flags: u8, method: &str, target: &str, auth: &[u8], body: &[u8]| {
        cat(&[
            &[flags],
            &chunk(method.as_bytes()),
            &chunk(target.as_bytes()),
            &chunk(auth),
            &chunk(body),
            &chunk(b"3f1c0a9e5b7d2468"),
        ])
    };
    for (name, bytes) in [
        ("status", request(2, "GET", "/v1/status", b"", b"")),
        ("peers", request(2, "GET", "/v1/peers", b"", b"")),
        (
            "publish",
            request(2, "POST", "/v1/publish?topic=news%2Fdaily+x", b"", b"hello"),
        ),
        (
            "subscribe",
            request(2, "GET", "/v1/subscribe?count=3&topic=chat", b"", b""),
        ),
        (
            "subscribe-replay",
            request(2, "GET", "/v1/subscribe?topic=chat&replay=1", b"", b""),
        ),
        (
            "presence-start",
            request(2, "POST", "/v1/presence/start?group=friends", b"", b""),
        ),
        (
            "presence-stop",
            request(2, "POST", "/v1/presence/stop?group=friends", b"", b""),
        ),
        (
            "presence-online",
            request(2, "GET", "/v1/presence/online?group=f%20g", b"", b""),
        ),
        (
            "send",
            request(
                2,
                "POST",
                "/v1/send?to=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                b"",
                b"secret",
            ),
        ),
        ("inbox", request(2, "GET", "/v1/inbox?replay=1", b"", b"")),
        (
            "raw-header",
            request(0, "GET", "/v1/status", b"Bearer 3f1c0a9e5b7d2468", b""),
        ),
        (
            "edited-token",
            request(2, "GET", "/v1/peers", &[9, b'x'], b""),
        ),
        ("no-header", request(1, "GET", "/v1/status", b"", b"")),
        (
            "wrong-method",
            request(2, "PUT", "/v1/publish?topic=t", b"", b""),
        ),
        ("unknown-path", request(2, "GET", "/v1/statuses", b"", b"")),
        (
            "route-built",
            request(2 | 4 | (2 << 3), "POST", "topic=a&b=c", b"", b"p"),
        ),
        (
            "too-large",
            request(2 | 0x20 | 0x80, "POST", "/v1/publish?topic=t", b"", b""),
        ),
    ] {
        add("control_request", &format!("seed-{name}"), bytes);
    }
    seeds
}

/// A scenario with every action and every optional key.
const SCENARIO_EVERY_ACTION: &str = r#"name = "every action"
seed = 1
nodes = 20
duration = "2m"

[network]
latency = { dist = "lognormal", median = "40ms", p99 = "250ms" }
loss = 0.01
loss_mode = "delay"
duplicate = 0.001
reorder = 0.002
idle_timeout = "5s"

[config]
retention = "60s"
active_view = 6
fanout = 2.5
lifeguard = true
mode = "fast"

[[events]]
at = "0s"
action = "join"
contacts = 2
spread = "1.5s"

[[events]]
at = "1s"
action = "subscribe"
topic = "t"
fraction = 0.5

[[events]]
at = "2s"
action = "publish"
topic = "t"
count = 5
rate = "30/m"
size = 64
measure = false
senders = 2

[[events]]
at = "3s"
action = "crash"
fraction = 0.1
group = "g"

[[events]]
at = "4s"
action = "hang"
ids = [1, 2]

[[events]]
at = "5s"
action = "resume"
ids = "hung"

[[events]]
at = "6s"
action = "restart"
ids = [3]

[[events]]
at = "7s"
action = "leave"
group = "g"

[[events]]
at = "8s"
action = "partition"
groups = [0.25, 0.5]
oneway = true

[[events]]
at = "9s"
action = "heal"

[[events]]
at = "10s"
action = "set_network"
latency = { dist = "fixed", value = "20ms" }

[[events]]
at = "11s"
action = "byzantine"
fraction = 0.05
behaviour = "flood"

[[events]]
at = "12s"
action = "presence"
group = "g"
fraction = 0.3

[[events]]
at = "13s"
action = "foaf"
count = 10
rate = 2
distance = "any"

[[expect]]
metric = "delivery_ratio"
min = 0.9
max = 1.0

[[expect]]
metric = "latency_ms.p95"
max = 500
"#;
