use hearsay_proto::TimeDelta;
use hearsay_proto::node::Event;
use hearsay_sim::SIM_EPOCH;
use hearsay_sim::scenario::Scenario;
use hearsay_sim::world::{CryptoChoice, World};

fn main() {
    let file = std::env::args()
        .nth(1)
        .unwrap_or("sim/scenarios/membership-crash.toml".into());
    let s = Scenario::load(std::path::Path::new(&file)).unwrap();
    let (seed, n) = (s.seed, s.nodes);
    let mut w = World::new(s, seed, n, CryptoChoice::Fast).unwrap();
    w.record();
    w.run_until(SIM_EPOCH + TimeDelta::from_secs(120));
    for i in 0..n {
        if !w.is_live(i) {
            continue;
        }
        let v = w.node(i).unwrap().inspect();
        if v.neighbors().count() > 0 {
            continue;
        }
        let passive: Vec<String> = v
            .passive()
            .map(|p| {
                let j = w.index_of(&p).unwrap();
                format!("{j}:{:?}", w.state(j))
            })
            .collect();
        println!(
            "isolated {i}: passive {passive:?}\n  conns {:?} hpv {:?}",
            v.connections().count(),
            v.membership_counters()
        );
        for (t, j, e) in w.events() {
            if *j == i {
                println!(
                    "   {:?} {e:?} {:?}",
                    *t - SIM_EPOCH,
                    match e {
                        Event::NeighborDown { peer, .. } | Event::NeighborUp { peer } =>
                            w.index_of(peer).map(|x| w.state(x)),
                        _ => None,
                    }
                );
            }
        }
    }
}
