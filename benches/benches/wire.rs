//! Wire codec per frame kind: `Frame::encode` and `Frame::decode_shared` (what the node calls on
//! every received frame) of one realistic frame of every message the core sends
//! (`hearsay_benches::frames::all_frames`), throughput in frame bytes.
//!
//! Benchmark ids are `wire/<kind>/<message>/{encode,decode}`, e.g.
//! `wire/topic/gossip_1KiB/decode`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hearsay_benches::frames::all_frames;
use hearsay_proto::Frame;
use std::hint::black_box;

fn wire(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire");
    for fixture in all_frames() {
        let bytes = fixture.bytes();
        let frame = &fixture.frame;
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("{}/encode", fixture.id()), |b| {
            b.iter(|| black_box(frame).encode().expect("encodes"))
        });
        group.bench_function(format!("{}/decode", fixture.id()), |b| {
            b.iter(|| Frame::decode_shared(black_box(&bytes)).expect("decodes"))
        });
    }
    group.finish();
}

criterion_group!(benches, wire);
criterion_main!(benches);
