//! Island merging: two overlays that formed apart, neither having lost anything, become one as
//! soon as one node knows a node of the other (SPEC.md §13.6).
use super::tests::{T0, info, pid};
use super::*;
use alloc::collections::BTreeSet;
use rand_core::SeedableRng;

/// HyParView machines wired together with instant, lossless links.
struct Net {
    nodes: BTreeMap<PeerId, HyParView>,
    links: BTreeSet<(PeerId, PeerId)>,
    now: Timestamp,
    rng: machine::Rng,
}

impl Net {
    fn new(ids: &[u8], merge: bool) -> Self {
        let mut rng = machine::Rng::from_seed([7; 32]);
        let config = Config {
            active_view: 3,
            merge: merge.then(MergeConfig::default),
            ..Config::default()
        };
        let nodes = ids
            .iter()
            .map(|&n| {
                let hv = HyParView::new(config.clone(), pid(n), Addresses::default(), T0, &mut rng);
                (pid(n), hv)
            })
            .collect();
        Self {
            nodes,
            links: BTreeSet::new(),
            now: T0,
            rng,
        }
    }

    /// Carries every output until nothing is left to carry.
    fn settle(&mut self) {
        loop {
            let mut outs = Vec::new();
            for (id, hv) in self.nodes.iter_mut() {
                while let Some(o) = hv.poll() {
                    outs.push((*id, o));
                }
            }
            if outs.is_empty() {
                return;
            }
            for (from, o) in outs {
                self.carry(from, o);
            }
        }
    }

    fn carry(&mut self, from: PeerId, o: Output) {
        let (now, rng) = (self.now, &mut self.rng);
        match o {
            Output::Send { to, message } if self.links.contains(&(from, to)) => {
                if let Some(hv) = self.nodes.get_mut(&to) {
                    let addresses = Some(Addresses::default());
                    hv.handle_message(now, from, addresses, message, rng);
                }
            }
            Output::Connect { peer, .. } if self.nodes.contains_key(&peer) => {
                self.links.insert((from, peer));
                self.links.insert((peer, from));
                for (a, b) in [(from, peer), (peer, from)] {
                    if let Some(hv) = self.nodes.get_mut(&a) {
                        hv.on_link_up(now, b);
                    }
                }
            }
            Output::Disconnect { peer } if self.links.remove(&(from, peer)) => {
                self.links.remove(&(peer, from));
                for (a, b) in [(from, peer), (peer, from)] {
                    if let Some(hv) = self.nodes.get_mut(&a) {
                        hv.on_link_down(now, b, rng);
                    }
                }
            }
            _ => {}
        }
    }

    /// Makes `ids` a complete island: every node links every other (their views fill up).
    fn island(&mut self, ids: &[u8]) {
        for (i, &a) in ids.iter().enumerate() {
            for &b in ids.iter().skip(i + 1) {
                if let Some(hv) = self.nodes.get_mut(&pid(a)) {
                    hv.link(self.now, info(b));
                }
                self.settle();
            }
        }
    }

    /// Runs every timer due until `until`.
    fn run_until(&mut self, until: Timestamp) {
        loop {
            let next = self.nodes.values().filter_map(|hv| hv.poll_timeout()).min();
            let Some(at) = next.filter(|at| *at <= until) else {
                break;
            };
            self.now = at.max(self.now);
            let (now, rng) = (self.now, &mut self.rng);
            for hv in self.nodes.values_mut() {
                if hv.poll_timeout().is_some_and(|t| t <= now) {
                    hv.handle_timeout(now, rng);
                }
            }
            self.settle();
        }
        self.now = until;
    }

    /// Connected components of the active views.
    fn components(&self) -> usize {
        let mut seen = BTreeSet::new();
        let mut count = 0;
        for start in self.nodes.keys() {
            if !seen.insert(*start) {
                continue;
            }
            count += 1;
            let mut stack = alloc::vec![*start];
            while let Some(p) = stack.pop() {
                let Some(hv) = self.nodes.get(&p) else {
                    continue;
                };
                for q in hv.active() {
                    if seen.insert(*q) {
                        stack.push(*q);
                    }
                }
            }
        }
        count
    }

    fn counters(&self) -> (u64, u64) {
        self.nodes.values().fold((0, 0), |(p, l), hv| {
            (p + hv.counters.merge_probes, l + hv.counters.merge_links)
        })
    }
}

/// Two islands whose active views are full (nothing to repair, nobody lost): only node 12
/// knows a node of the other island, as a passive entry, as a join storm leaves behind.
fn two_islands(merge: bool) -> Net {
    let mut net = Net::new(&[1, 2, 3, 4, 11, 12, 13, 14], merge);
    net.island(&[1, 2, 3, 4]);
    net.island(&[11, 12, 13, 14]);
    assert_eq!(net.components(), 2);
    if let Some(hv) = net.nodes.get_mut(&pid(12)) {
        hv.remember([info(3)], &mut net.rng);
    }
    net.settle();
    net
}

#[test]
fn two_islands_that_formed_apart_become_one() {
    let mut net = two_islands(true);
    net.run_until(T0 + TimeDelta::from_secs(60));
    assert_eq!(net.components(), 1);
    let (probes, links) = net.counters();
    assert!(probes >= 1 && links >= 2, "probes {probes}, links {links}");
    // One root for everyone: the smallest id, flooded across the bridge.
    for hv in net.nodes.values() {
        assert_eq!(hv.component_root(), Some(pid(1)));
    }
}

#[test]
fn without_merging_the_islands_stay_apart() {
    let mut net = two_islands(false);
    net.run_until(T0 + TimeDelta::from_secs(600));
    assert_eq!(net.components(), 2);
}

/// A single overlay: probes find the same root, are refused, close their connection and
/// take no neighbour away; their pause grows fourfold up to `probe_interval_max`.
#[test]
fn a_single_overlay_probes_rarely_and_changes_nothing() {
    let mut net = Net::new(&[1, 2, 3, 4, 5, 6], true);
    net.island(&[1, 2, 3, 4]);
    // 5 and 6 join 1 and 4 by a link; everyone else learns them as passive.
    net.island(&[1, 5]);
    net.island(&[4, 6]);
    net.run_until(T0 + TimeDelta::from_secs(60));
    assert_eq!(net.components(), 1);
    let views = |net: &Net| -> Vec<Vec<PeerId>> {
        net.nodes
            .values()
            .map(|hv| hv.active().copied().collect())
            .collect()
    };
    let before = views(&net);
    let (probes_before, links_before) = net.counters();
    // 5 s, 20 s, 80 s, 320 s, then every 30 min (±25 %): at most ~5 per node in an hour.
    net.run_until(T0 + TimeDelta::from_secs(3600));
    let (probes, links) = net.counters();
    assert_eq!(links, links_before, "no bridge within one component");
    assert!(
        probes - probes_before <= 6 * 5,
        "{} probes",
        probes - probes_before
    );
    // Probes take no neighbour away (repairs may still fill a view with room: node 6 starts
    // with one neighbour, and its reserved refill asks the passive entry held longest).
    for (b, a) in before.iter().zip(views(&net)) {
        assert!(b.iter().all(|p| a.contains(p)), "{b:?} became {a:?}");
    }
    assert!(
        net.links
            .iter()
            .all(|(a, b)| { net.nodes.get(a).is_some_and(|hv| hv.is_active(b)) }),
        "every probe's connection closed"
    );
}

/// Of two islands, only node 12 has a link out: its join contact, 3 (join contacts link every
/// node to one that joined before it). Its passive view is full of its own island's peers, as
/// after a join storm (here ids that never answer). Its second probe goes to the contact, so
/// the islands are one within the first two probe pauses (5 s and 20 s, ± 25 %), not after
/// minutes of probes drawn one in thirty-one.
#[test]
fn a_node_probes_its_join_contact_first() {
    let mut net = Net::new(&[1, 2, 3, 4, 11, 12, 13, 14], true);
    net.island(&[1, 2, 3, 4]);
    net.island(&[11, 12, 13, 14]);
    if let Some(hv) = net.nodes.get_mut(&pid(12)) {
        hv.contacts = alloc::vec![info(3)];
        hv.remember((100..140).map(info), &mut net.rng);
        assert_eq!(hv.passive().count(), hv.config.passive_view);
    }
    net.settle();
    assert_eq!(net.components(), 2);
    net.run_until(T0 + TimeDelta::from_millis(31_500));
    assert_eq!(net.components(), 1);
}
