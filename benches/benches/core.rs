//! Benchmarks of the protocol core's hot paths: frame codec, record verification, signing and
//! message ids.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hearsay_benches::{fixture_frame, fixture_hello_frame, fixture_record};
use hearsay_proto::testing::{T0, identity};
use hearsay_proto::{Frame, MessageId, TopicId, default_provider};
use std::hint::black_box;

fn frame_codec(c: &mut Criterion) {
    let frame = fixture_frame();
    let bytes = fixture_hello_frame();
    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode_hello", |b| {
        b.iter(|| black_box(&frame).encode().expect("encodes"))
    });
    group.bench_function("decode_hello", |b| {
        b.iter(|| Frame::decode(black_box(&bytes)).expect("decodes"))
    });
    group.finish();
}

fn record_verify(c: &mut Criterion) {
    let provider = default_provider();
    let record = fixture_record(&identity(1));
    c.bench_function("peer_record/verify", |b| {
        b.iter(|| {
            black_box(&record)
                .verify(&*provider, black_box(T0))
                .expect("verifies")
        })
    });
}

fn sign(c: &mut Criterion) {
    let identity = identity(2);
    // A record-sized message whose first eight bytes change on every iteration: ML-DSA's
    // deterministic signing of one fixed message always takes the same number of rejection
    // rounds, which would pin the measurement to one arbitrary point of the distribution.
    let mut message = fixture_record(&identity)
        .signed_bytes()
        .expect("the record encodes");
    let mut counter = 0u64;
    c.bench_function("signer/sign_record_message", |b| {
        b.iter_batched_ref(
            || {
                counter = counter.wrapping_add(1);
                message[..8].copy_from_slice(&counter.to_le_bytes());
                message.clone()
            },
            |msg| identity.signer().sign(black_box(msg)).expect("signs"),
            BatchSize::SmallInput,
        )
    });
}

fn message_id(c: &mut Criterion) {
    let author = identity(1).peer_id();
    let topic = TopicId::from_name("bench");
    let payload = vec![0xa5u8; 1024];
    let mut group = c.benchmark_group("message_id");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function("new_1KiB", |b| {
        b.iter(|| {
            MessageId::new(
                black_box(&author),
                &topic,
                black_box(7),
                black_box(&payload),
            )
        })
    });
    group.finish();
}

/// What a relay spends on one payload frame: decoding it, and Plumtree accepting a new message
/// (signature check included) or dropping a duplicate.
fn broadcast(c: &mut Criterion) {
    use hearsay_proto::broadcast::plumtree::{Config, Plumtree, SignatureValidator};
    use hearsay_proto::broadcast::topic::TopicMessage;
    let bytes = hearsay_benches::fixture_gossip_frame(1024);
    let Ok(Frame::Topic(TopicMessage::Broadcast { message, .. })) = Frame::decode(&bytes) else {
        panic!("the fixture is a broadcast frame");
    };
    let validator = SignatureValidator(default_provider());
    let from = identity(2).peer_id();
    let topic = hearsay_benches::fixture_topic();
    let mut group = c.benchmark_group("broadcast");
    group.bench_function("decode_gossip_1KiB", |b| {
        b.iter(|| Frame::decode_shared(black_box(&bytes)))
    });
    group.bench_function("accept_new_1KiB", |b| {
        b.iter_batched(
            || {
                let mut p = Plumtree::new(Config::default(), topic);
                p.neighbor_up(from);
                p
            },
            |mut p| {
                p.handle_message(T0, from, message.clone(), &validator);
                p
            },
            BatchSize::SmallInput,
        )
    });
    let mut seen = Plumtree::new(Config::default(), topic);
    seen.neighbor_up(from);
    seen.handle_message(T0, from, message.clone(), &validator);
    group.bench_function("drop_duplicate_1KiB", |b| {
        b.iter(|| {
            seen.handle_message(T0, from, black_box(message.clone()), &validator);
            while seen.poll().is_some() {}
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    frame_codec,
    record_verify,
    sign,
    message_id,
    broadcast
);
criterion_main!(benches);
