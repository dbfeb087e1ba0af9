//! A node does the same whether or not it is woken when nothing is due (SPEC §8.4): the
//! simulator relies on it to skip wakes whose deadline was cancelled or moved since it was
//! armed, about half of all timer events in a steady overlay.

use hearsay_proto::TimeDelta;
use hearsay_sim::scenario::Scenario;
use hearsay_sim::world::{CryptoChoice, World};

/// The trace hash of `file` at `seed` with `nodes` nodes, with or without a wake of every node
/// every 37 ms of virtual time.
fn trace(file: &str, seed: u64, nodes: usize, pokes: bool) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    let scenario = Scenario::load(&path).unwrap();
    let mut w = World::new(scenario, seed, nodes, CryptoChoice::Fast).unwrap();
    if pokes {
        w.wake_every(TimeDelta::from_millis(37));
    }
    w.run();
    w.trace_hash().to_hex().to_string()
}

fn same_with_extra_wakes(file: &str, seed: u64, nodes: usize) {
    assert_eq!(
        trace(file, seed, nodes, false),
        trace(file, seed, nodes, true),
        "{file} seed {seed}, {nodes} nodes: extra wakes changed the run"
    );
}

#[test]
fn spurious_wakes_change_nothing_in_membership_under_loss_and_restarts() {
    // Loss, suspicion and refutation; crashes, restarts with state and repair.
    same_with_extra_wakes("membership-loss10.toml", 1, 40);
    same_with_extra_wakes("restart-tenth.toml", 3, 60);
}

#[test]
fn spurious_wakes_change_nothing_in_topics_partitions_and_presence() {
    // Topic overlays, root beacons, broadcast and repair; a partition and its healing;
    // presence beacons and FOAF queries.
    same_with_extra_wakes("crash-half.toml", 2, 60);
    same_with_extra_wakes("partition-heal.toml", 1, 40);
    same_with_extra_wakes("presence-foaf-200.toml", 1, 40);
}
