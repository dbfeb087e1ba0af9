//! Writes valid inputs for the cargo-fuzz targets into a corpus directory, so the fuzzers start
//! from real frames and records instead of having to discover kilobytes of valid keys and
//! signatures by mutation. `fuzz/run.sh` calls it; existing files are overwritten with the same
//! bytes (the fixtures are deterministic).
//!
//! Usage: `cargo run -p hearsay-benches --example fuzz_seeds -- CORPUS_DIR`

use hearsay_benches::{
    FIXTURE_NOW, fixture_frame, fixture_gossip_frame, fixture_hello_frame, fixture_identity,
    fixture_record, fixture_topic, fixture_topic_frames,
};
use hearsay_proto::access::{AccessRecord, DeleteRequest, Slots};
use hearsay_proto::envelope;
use hearsay_proto::foaf::{Answer, Capability, DiscoveryMessage, Query, QueryId, Target};
use hearsay_proto::group::{Group, Role};
use hearsay_proto::message::{MessageKind, SignedMessage};
use hearsay_proto::node::{Announcement, PrivateMessage};
use hearsay_proto::plumtree::{Message as Plum, Payload};
use hearsay_proto::topic::TopicMessage;
use hearsay_proto::wire::{BoundedVec, FixedBytes, Goodbye, GoodbyeReason, SessionMessage};
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
    let author = fixture_identity(1);
    let reader = fixture_identity(2);
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
    let content = SignedMessage::publish_kind(
        &author,
        MessageKind::Sealed,
        topic,
        5,
        FIXTURE_NOW,
        &sealed.content,
    )
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
        let message = SignedMessage::publish_kind(&author, kind, topic, 9, FIXTURE_NOW, &payload)
            .expect("signs");
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
    let member = fixture_identity(3);
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
