//! FOAF at distances 1 to 4 in one overlay size: for each distance, random live nodes look for a
//! live node exactly that many hops away (node-level active views), and the table gives the
//! success ratio and the query frames per query against the bound fanout + fanout² + fanout³
//! (+ fanout⁴ at TTL 4). Usage:
//! `cargo run --release -p hearsay-sim --example foaf_distances -- [NODES] [QUERIES] [TTL]`
//! (defaults 1000, 200, 3).
use hearsay_proto::TimeDelta;
use hearsay_sim::run::Sim;
use hearsay_sim::scenario::{Action, ConfigValue, FoafDistance};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: u64| args.get(i).map_or(d, |a| a.parse().expect("a number"));
    let nodes = arg(1, 1000) as usize;
    let queries = arg(2, 200);
    let ttl = arg(3, 3) as i64;
    let fanout = 3.0f64;
    let bound: f64 = (1..=ttl as i32).map(|k| fanout.powi(k)).sum();
    println!("FOAF, {nodes} nodes, {queries} queries per distance at 10/s, fanout 3, TTL {ttl}");
    println!("distance  success  forwards/query mean  max  bound  wall s");
    for d in 1..=4u32 {
        let t0 = std::time::Instant::now();
        let result = Sim::builder()
            .name(&format!("foaf-{nodes}-d{d}"))
            .nodes(nodes)
            .seed(u64::from(d))
            .duration(TimeDelta::from_secs(60 + queries / 10 + 10))
            .config("foaf_ttl", ConfigValue::Int(ttl))
            .at(
                TimeDelta::ZERO,
                Action::Join {
                    contacts: 1,
                    spread: TimeDelta::from_secs(10),
                },
            )
            .at(
                TimeDelta::from_secs(60),
                Action::Foaf {
                    count: queries,
                    rate: 10.0,
                    distance: FoafDistance::Hops(d),
                },
            )
            .run()
            .expect("the run starts");
        let m = &result.metrics;
        let f = m.foaf_forwards_per_query.expect("queries ran");
        println!(
            "{d:>8}  {:>7.3}  {:>19.2}  {:>3}  {bound:>5}  {:>6.1}",
            m.foaf_success_ratio.unwrap_or(0.0),
            f.mean,
            f.max,
            t0.elapsed().as_secs_f64()
        );
        assert!(f.max <= bound, "forwards per query above the bound");
    }
}
