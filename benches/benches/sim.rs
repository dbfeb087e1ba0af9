//! Simulator throughput: `hearsay_benches::simulate::SCENARIO` (50 nodes join, subscribe, 50
//! messages of 1 KiB; 20 virtual seconds) run to its end through `hearsay_sim`'s library API,
//! set-up excluded. Throughput is in scheduler events (`World::events_processed`: frames
//! handed to nodes, timers, dials, actions), so criterion reports events per second.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hearsay_benches::simulate;

fn sim(c: &mut Criterion) {
    const NODES: usize = 50;
    // The run is deterministic: count its events once.
    let probe = simulate::run(NODES).expect("the scenario runs");
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    group.throughput(Throughput::Elements(probe.events));
    group.bench_function("broadcast_50_nodes_20s", |b| {
        b.iter_batched(
            || simulate::world(NODES).expect("the scenario sets up"),
            |mut world| {
                world.run();
                assert_eq!(world.events_processed(), probe.events);
                world
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, sim);
criterion_main!(benches);
