use hearsay_proto::TimeDelta;
use hearsay_sim::SIM_EPOCH;
use hearsay_sim::run::Sim;
use hearsay_sim::scenario::Action;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let mut w = Sim::builder()
        .nodes(n)
        .seed(1)
        .duration(TimeDelta::from_secs(60))
        .at(
            TimeDelta::ZERO,
            Action::Join {
                contacts: 1,
                spread: TimeDelta::ZERO,
            },
        )
        .build()
        .unwrap();
    for t in [1, 5, 20, 60] {
        w.run_until(SIM_EPOCH + TimeDelta::from_secs(t));
        let degs: Vec<usize> = (0..n)
            .map(|i| w.node(i).unwrap().inspect().neighbors().count())
            .collect();
        let pas: Vec<usize> = (0..n)
            .map(|i| w.node(i).unwrap().inspect().passive().count())
            .collect();
        let conns: Vec<usize> = (0..n)
            .map(|i| w.node(i).unwrap().inspect().connections().count())
            .collect();
        println!(
            "t={t}s components={} active={degs:?}\n passive={pas:?}\n conns={conns:?}",
            w.components()
        );
        let c = w.node(0).unwrap().inspect().membership_counters().clone();
        let s = w
            .node(0)
            .unwrap()
            .inspect()
            .failure_detector_counters()
            .clone();
        println!(
            " node0 hpv {c:?}\n swim {s:?}\n node {:?}",
            w.node(0).unwrap().inspect().counters()
        );
    }
}
