//! The scenario's actions, carried out at their virtual times: join, crash, hang, resume,
//! restart, leave, partition, heal, set-network, Byzantine plug-ins, subscribe, unsubscribe,
//! publish, presence and foaf queries; and how they pick the nodes they act on (all with the
//! world RNG, so deterministically for a seed).

use super::{Ev, NodeState, World, address_of, node_seed, register_keys};
use crate::broadcast::{self, Published};
use crate::byzantine::{self, Adversary};
use crate::scenario::{Action, Behaviour, DEFAULT_TARGETS, FoafDistance, Selection, SubnetChoice};
use chacha20::ChaCha8Rng;
use hearsay_proto::node::{Command, Contact};
use hearsay_proto::{Config, Identity, Node, TimeDelta, Timestamp, TopicId};
use rand_core::SeedableRng;
use std::collections::BTreeMap;

/// One `publish` event in progress.
#[derive(Debug, Clone)]
pub(super) struct PublishPlan {
    /// The scenario event it comes from.
    event: usize,
    topic: TopicId,
    name: String,
    size: usize,
    measure: bool,
    /// `senders = N`: the N nodes chosen at the event, taking turns; empty for `senders = 0`.
    senders: Vec<usize>,
    turn: usize,
}

impl World {
    /// A node picked by a `join` action starts joining through `contacts`.
    pub(super) fn join_node(&mut self, now: Timestamp, node: usize, contacts: Vec<usize>) {
        if self.nodes[node].state != NodeState::Running {
            return;
        }
        self.nodes[node].joined = true;
        self.nodes[node].contacts = contacts;
        self.send_join(now, node);
    }

    /// A Byzantine plug-in's periodic turn: it may send what it likes, then waits for the next.
    pub(super) fn adversary_tick(&mut self, now: Timestamp, node: usize) {
        if !self.running(node) || self.nodes[node].adversary.is_none() {
            return;
        }
        if self.attackers.contains_key(&node) {
            self.eclipse_tick(now, node);
            self.scheduler
                .schedule(now + byzantine::TICK, Ev::AdversaryTick { node });
            return;
        }
        let mut rng = ChaCha8Rng::from_seed(node_seed(self.seed, node, now.as_micros()));
        let sim_node = &mut self.nodes[node];
        let out = match (sim_node.adversary.as_mut(), sim_node.node.as_ref()) {
            (Some(adv), Some(n)) => adv.tick(now, n, &mut rng),
            _ => Vec::new(),
        };
        for t in out {
            self.transmit(now, node, t, true);
        }
        self.scheduler
            .schedule(now + byzantine::TICK, Ev::AdversaryTick { node });
    }

    /// Node `node` (re)joins through its contacts.
    pub(super) fn send_join(&mut self, now: Timestamp, node: usize) {
        let contacts: Vec<Contact> = self.nodes[node]
            .contacts
            .iter()
            .map(|&c| Contact {
                peer: self.nodes[c].peer,
                addresses: vec![address_of(c, self.nodes[c].subnet)],
            })
            .collect();
        if let Some(n) = self.nodes[node].node.as_mut() {
            let _ = n.handle_command(now, Command::Join { contacts });
        }
        self.drain(node);
    }

    /// `contacts` distinct nodes drawn at random from those that began joining, as drawing
    /// from a copy of that list with `swap_remove` would (the same draws of the world RNG, the
    /// same nodes), without copying it.
    fn pick_contacts(&mut self, contacts: usize) -> Vec<usize> {
        let pool = &self.began_joining;
        // Positions of the virtual copy that swap_remove has overwritten, and their values.
        let mut moved: Vec<(usize, usize)> = Vec::new();
        let at = |moved: &[(usize, usize)], k: usize| {
            moved
                .iter()
                .rev()
                .find(|(p, _)| *p == k)
                .map_or(pool[k], |(_, v)| *v)
        };
        let mut len = pool.len();
        let mut chosen = Vec::new();
        while chosen.len() < contacts && len > 0 {
            let j = byzantine::below(&mut self.rng, len);
            chosen.push(at(&moved, j));
            let last = at(&moved, len - 1);
            moved.push((j, last));
            len -= 1;
        }
        chosen
    }

    pub(super) fn pick_fraction(&mut self, candidates: Vec<usize>, fraction: f64) -> Vec<usize> {
        let k = ((candidates.len() as f64) * fraction + 1e-9).floor() as usize;
        self.pick_count(candidates, k)
    }

    /// `k` of `candidates` (all of them if fewer), chosen by the world RNG, in id order.
    pub(super) fn pick_count(&mut self, candidates: Vec<usize>, k: usize) -> Vec<usize> {
        let mut pool = candidates;
        // Partial Fisher-Yates with the world RNG: deterministic for a seed.
        for n in 0..k.min(pool.len()) {
            let j = n + byzantine::below(&mut self.rng, pool.len() - n);
            pool.swap(n, j);
        }
        pool.truncate(k);
        pool.sort_unstable();
        pool
    }

    fn select(
        &mut self,
        select: &Selection,
        qualifies: impl Fn(&Self, usize) -> bool,
    ) -> Vec<usize> {
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| qualifies(self, i))
            .collect();
        match select {
            Selection::Fraction(f) => self.pick_fraction(candidates, *f),
            Selection::Ids(ids) => ids
                .iter()
                .copied()
                .filter(|i| candidates.contains(i))
                .collect(),
            Selection::All => candidates,
        }
    }

    /// Carries out scenario event `index`.
    pub(super) fn action(&mut self, now: Timestamp, index: usize) {
        let scheduled = self.scenario.events[index].clone();
        let line = match &scheduled.action {
            // As before `subnet` and `targets` existed, when they have their defaults: the
            // traces of runs that do not use them stay the same.
            Action::Byzantine {
                fraction,
                behaviour,
                subnet: SubnetChoice::Shared,
                targets,
            } if *targets == DEFAULT_TARGETS => {
                format!("Byzantine {{ fraction: {fraction:?}, behaviour: {behaviour:?} }}")
            }
            other => format!("{other:?}"),
        };
        self.trace
            .update(format!("A{} {line}", now.as_micros()).as_bytes());
        let at = scheduled.at;
        match scheduled.action {
            Action::Join { contacts, spread } => {
                let joiners: Vec<usize> = (0..self.nodes.len())
                    .filter(|&i| {
                        self.nodes[i].state == NodeState::Running
                            && !self.nodes[i].joined
                            && !self.nodes[i].began_joining
                            && self.sybil_controller(i).is_none()
                    })
                    .collect();
                let count = joiners.len().max(1) as u64;
                for (k, node) in joiners.into_iter().enumerate() {
                    let chosen = self.pick_contacts(contacts);
                    self.began_joining.push(node);
                    self.nodes[node].began_joining = true;
                    let offset = TimeDelta::from_micros(spread.as_micros() / count * k as u64);
                    self.scheduler.schedule(
                        now + offset,
                        Ev::JoinNode {
                            node,
                            contacts: chosen,
                        },
                    );
                }
            }
            Action::Crash { select, group } => {
                let chosen = self.select(&select, |w, i| {
                    w.nodes[i].state == NodeState::Running
                        && w.nodes[i].adversary.is_none()
                        && group.as_ref().is_none_or(|g| w.discovery.is_member(g, i))
                });
                if !chosen.is_empty() {
                    self.broadcast.crashed(now);
                }
                for i in chosen {
                    self.discovery.departed(i, now, true);
                    self.note_departure(now, i);
                    let n = &mut self.nodes[i];
                    n.persisted = n.node.as_ref().map(Node::persistent_state);
                    n.node = None;
                    n.state = NodeState::Crashed;
                    n.armed = None;
                    self.refresh_health(now, Some(i));
                }
            }
            Action::Hang { select } => {
                let chosen = self.select(&select, |w, i| {
                    w.nodes[i].state == NodeState::Running && w.nodes[i].adversary.is_none()
                });
                for i in chosen {
                    self.note_departure(now, i);
                    self.nodes[i].state = NodeState::Hung;
                    self.refresh_health(now, Some(i));
                }
            }
            Action::Resume { select } => {
                let chosen = self.select(&select, |w, i| w.nodes[i].state == NodeState::Hung);
                for i in chosen {
                    self.nodes[i].state = NodeState::Running;
                    self.refresh_health(now, Some(i));
                    let missed = std::mem::take(&mut self.nodes[i].missed_disconnects);
                    if let Some(n) = self.nodes[i].node.as_mut() {
                        for peer in missed {
                            n.handle_disconnected(now, peer);
                        }
                        n.handle_timeout(now);
                    }
                    self.nodes[i].armed = None;
                    self.drain(i);
                }
            }
            Action::Restart { select } => {
                // Byzantine nodes never come back: retired sybils and the identities `root`
                // attackers left are crashed too (no other node is both crashed and Byzantine).
                let chosen = self.select(&select, |w, i| {
                    w.nodes[i].state == NodeState::Crashed && w.nodes[i].adversary.is_none()
                });
                for i in chosen {
                    self.restart(now, i);
                }
            }
            Action::Leave { select, group } => {
                let chosen = self.select(&select, |w, i| {
                    w.is_live(i) && group.as_ref().is_none_or(|g| w.discovery.is_member(g, i))
                });
                for i in chosen {
                    self.discovery.departed(i, now, false);
                    self.nodes[i].state = NodeState::Left;
                    if let Some(n) = self.nodes[i].node.as_mut() {
                        let _ = n.handle_command(now, Command::Leave);
                    }
                    self.drain(i);
                }
            }
            Action::Partition { groups, oneway } => self.partition(now, &groups, oneway),
            Action::Heal => {
                self.components_at_heal = Some(self.components());
                self.cut = None;
                self.last_heal_at = Some(now);
                self.refresh_health(now, None);
                if Some(now) == self.final_heal_at {
                    self.scheduler.schedule(now, Ev::SampleComponents);
                }
            }
            Action::SetNetwork(patch) => self.net.apply(&patch),
            Action::Byzantine {
                fraction,
                behaviour,
                subnet,
                targets,
            } => {
                let chosen = self.select(&Selection::Fraction(fraction), |w, i| w.is_live(i));
                let group = match subnet {
                    SubnetChoice::Shared => {
                        let g = self.next_subnet;
                        self.next_subnet = self.next_subnet.saturating_add(1);
                        Some(g)
                    }
                    SubnetChoice::Own => None,
                };
                for &i in &chosen {
                    if let Some(g) = group {
                        self.nodes[i].subnet = g;
                    }
                    let adversary = if behaviour == Behaviour::Forge {
                        let seeds = self.nodes[i].seeds.clone();
                        Adversary::with_identity(
                            behaviour,
                            Identity::from_seeds(&*self.config.crypto, seeds),
                        )
                    } else {
                        Adversary::new(behaviour)
                    };
                    self.nodes[i].adversary = Some(adversary);
                    // A `root` attacker's node stops at once; the identity it rejoins with
                    // acts through its plug-in's filter alone.
                    if behaviour != Behaviour::Root {
                        self.scheduler
                            .schedule(now + byzantine::TICK, Ev::AdversaryTick { node: i });
                    }
                }
                match behaviour {
                    Behaviour::Eclipse => self.start_eclipse(&chosen, targets),
                    Behaviour::Root => self.start_root(now, &chosen),
                    _ => {}
                }
                self.start_eclipse_sampling(now);
            }
            Action::Subscribe {
                ref topic,
                fraction,
            } => {
                let id = TopicId::from_name(topic);
                let chosen = self.select(&Selection::Fraction(fraction), |w, i| {
                    w.in_overlay(i) && !w.nodes[i].subscriptions.contains(&id)
                });
                for i in chosen {
                    let subs = &mut self.nodes[i].subscriptions;
                    if let Err(at) = subs.binary_search(&id) {
                        subs.insert(at, id);
                    }
                    self.subscribe(now, i, id, topic);
                }
            }
            Action::Unsubscribe {
                ref topic,
                fraction,
            } => {
                let id = TopicId::from_name(topic);
                let chosen = self.select(&Selection::Fraction(fraction), |w, i| {
                    w.in_overlay(i) && w.nodes[i].subscriptions.contains(&id)
                });
                for i in chosen {
                    self.nodes[i].subscriptions.retain(|t| *t != id);
                    let result = match self.nodes[i].node.as_mut() {
                        Some(n) => n.unsubscribe(now, id),
                        None => continue,
                    };
                    if let Err(e) = result {
                        self.warn_once(format!("unsubscribe (topic {topic:?}) at node {i}: {e}"));
                    }
                    self.drain(i);
                }
            }
            Action::Publish {
                ref topic,
                count,
                rate,
                size,
                measure,
                senders,
            } => {
                let id = TopicId::from_name(topic);
                let mut chosen = Vec::new();
                if senders > 0 {
                    let candidates: Vec<usize> = (0..self.nodes.len())
                        .filter(|&i| self.can_publish(i, &id))
                        .collect();
                    if candidates.len() < senders {
                        self.warn_once(format!(
                            "publish (topic {topic:?}) at {at:?}: senders = {senders} but only {} live subscribers",
                            candidates.len()
                        ));
                    }
                    chosen = self.pick_count(candidates, senders);
                }
                let plan = self.plans.len();
                self.plans.push(PublishPlan {
                    event: index,
                    topic: id,
                    name: topic.clone(),
                    size,
                    measure,
                    senders: chosen,
                    turn: 0,
                });
                for k in 0..count {
                    self.scheduler.schedule(
                        broadcast::publish_instant(now, k, rate),
                        Ev::Publish { plan, k },
                    );
                }
            }
            Action::Presence { group, fraction } => {
                let chosen = self.select(&Selection::Fraction(fraction), |w, i| {
                    w.is_live(i) && !w.discovery.is_member(&group, i)
                });
                let mut input = self.seed.to_le_bytes().to_vec();
                input.extend_from_slice(group.as_bytes());
                let secret = blake3::derive_key("hearsay-sim presence group secret v1", &input);
                let mut started = Vec::new();
                let mut topic = None;
                for i in chosen {
                    let result = match self.nodes[i].node.as_mut() {
                        Some(n) => n.presence_start(now, secret),
                        None => continue,
                    };
                    match result {
                        Ok(t) => {
                            topic = Some(t);
                            started.push(i);
                        }
                        Err(e) => self.warn_once(format!("presence at node {i}: {e}")),
                    }
                    self.drain(i);
                }
                if let Some(topic) = topic {
                    self.discovery.group_started(&group, topic, &started, now);
                }
            }
            Action::Foaf {
                count,
                rate,
                distance,
            } => {
                let step = if rate > 0.0 {
                    TimeDelta::from_micros((1_000_000.0 / rate) as u64)
                } else {
                    TimeDelta::ZERO
                };
                for k in 0..count {
                    self.scheduler.schedule(
                        now + TimeDelta::from_micros(step.as_micros() * k),
                        Ev::Foaf { distance, k },
                    );
                }
            }
        }
    }

    /// Whether node `i` is running (not hung or stopped) and joined or joining, Byzantine or
    /// not: the nodes that `subscribe` and `unsubscribe` choose from. (A `join` at the same
    /// instant as a `subscribe` has started but not finished its joins when the subscription
    /// runs; Byzantine nodes wrap an honest node and subscribe like any other, so that they sit
    /// in the topic overlays.)
    fn in_overlay(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        n.state == NodeState::Running && n.node.is_some() && (n.joined || n.began_joining)
    }

    /// Whether node `i` may author a message on `topic`: live and subscribed.
    fn can_publish(&self, i: usize, topic: &TopicId) -> bool {
        self.is_live(i)
            && self.nodes[i].subscriptions.contains(topic)
            && self.nodes[i]
                .node
                .as_ref()
                .is_some_and(|n| n.inspect().is_subscribed(topic))
    }

    pub(super) fn subscribe(&mut self, now: Timestamp, i: usize, topic: TopicId, name: &str) {
        let result = match self.nodes[i].node.as_mut() {
            Some(n) => n.subscribe(now, topic),
            None => return,
        };
        if let Err(e) = result {
            self.warn_once(format!("subscribe (topic {name:?}) at node {i}: {e}"));
        }
        self.drain(i);
    }

    /// Query `k` of a `foaf` action: a random live node looks for a live node `distance` hops
    /// away in the membership overlay (active views), or any live node.
    pub(super) fn foaf_query(&mut self, now: Timestamp, distance: FoafDistance, k: u64) {
        let live: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.is_live(i)).collect();
        for _ in 0..32 {
            if live.len() < 2 {
                break;
            }
            let origin = live[byzantine::below(&mut self.rng, live.len())];
            let candidates: Vec<usize> = match distance {
                FoafDistance::Hops(d) => self
                    .overlay_distances(origin)
                    .into_iter()
                    .filter(|&(_, x)| x == d)
                    .map(|(j, _)| j)
                    .collect(),
                FoafDistance::Any => live.iter().copied().filter(|&j| j != origin).collect(),
            };
            if candidates.is_empty() {
                continue;
            }
            let target = candidates[byzantine::below(&mut self.rng, candidates.len())];
            let peer = self.nodes[target].peer;
            let result = match self.nodes[origin].node.as_mut() {
                Some(n) => n.find(
                    now,
                    hearsay_proto::discovery::foaf::Target::Peer(peer),
                    None,
                ),
                None => continue,
            };
            match result {
                Ok(id) => {
                    self.trace.update(
                        format!("F{} {origin} {target} {id:?}", now.as_micros()).as_bytes(),
                    );
                    self.discovery.query_started(origin, id, peer);
                }
                Err(e) => self.warn_once(format!("foaf query {k} at node {origin}: {e}")),
            }
            self.drain(origin);
            return;
        }
        self.discovery.unplaceable += 1;
        self.warn_once(format!(
            "foaf: no live node has another live node at {distance:?}; query skipped"
        ));
    }

    /// Hops from `origin` to every live node it reaches over active views (breadth first).
    fn overlay_distances(&self, origin: usize) -> BTreeMap<usize, u32> {
        let mut dist = BTreeMap::new();
        dist.insert(origin, 0u32);
        let mut frontier = vec![origin];
        let mut d = 0;
        while !frontier.is_empty() {
            d += 1;
            let mut next = Vec::new();
            for &i in &frontier {
                let Some(n) = self.nodes[i].node.as_ref() else {
                    continue;
                };
                for p in n.inspect().neighbors() {
                    if let Some(&j) = self.index.get(&p)
                        && self.is_live(j)
                        && !dist.contains_key(&j)
                    {
                        dist.insert(j, d);
                        next.push(j);
                    }
                }
            }
            frontier = next;
        }
        dist
    }

    /// Message `k` of publish plan `plan`: picks its author, publishes through the node's API
    /// and records what `publish()` returned.
    pub(super) fn publish(&mut self, now: Timestamp, plan: usize, k: u64) {
        let p = &self.plans[plan];
        let topic = p.topic;
        let author = if p.senders.is_empty() {
            let candidates: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.can_publish(i, &topic))
                .collect();
            (!candidates.is_empty())
                .then(|| candidates[byzantine::below(&mut self.rng, candidates.len())])
        } else {
            // Taking turns; a chosen sender that is no longer live passes its turn on.
            let n = p.senders.len();
            let found = (0..n)
                .map(|j| (p.turn + j) % n)
                .find(|&j| self.can_publish(p.senders[j], &topic));
            let author = found.map(|j| p.senders[j]);
            let p = &mut self.plans[plan];
            p.turn = found.map_or(p.turn, |j| j) + 1;
            author
        };
        let p = &self.plans[plan];
        let (event, size, measure) = (p.event, p.size, p.measure);
        let Some(author) = author else {
            let w = format!(
                "publish (topic {:?}, event at {:?}): no live subscriber to publish from; message(s) skipped",
                p.name, self.scenario.events[event].at
            );
            self.warn_once(w);
            return;
        };
        let payload = broadcast::payload_bytes(self.seed, event, k, size);
        let result = match self.nodes[author].node.as_mut() {
            Some(n) => n.publish(now, topic, &payload),
            None => return,
        };
        match result {
            Ok(id) => {
                self.trace
                    .update(format!("P{} {author} {id:?}", now.as_micros()).as_bytes());
                self.broadcast.published(Published {
                    id,
                    topic,
                    author,
                    at: now,
                    measure,
                });
            }
            Err(e) => {
                let w = format!(
                    "publish (topic {:?}) at node {author}: {e}",
                    self.plans[plan].name
                );
                self.warn_once(w);
            }
        }
        self.drain(author);
    }

    /// Boots crashed node `i` again, from what it persisted, and rejoins and resubscribes it.
    fn restart(&mut self, now: Timestamp, i: usize) {
        let boots = self.nodes[i].boots + 1;
        let identity = Identity::from_seeds(&*self.config.crypto, self.nodes[i].seeds.clone());
        let config = Config {
            addresses: vec![address_of(i, self.nodes[i].subnet)],
            ..self.config.clone()
        };
        let rng_seed = node_seed(self.seed, i, boots);
        let node = match self.nodes[i].persisted.clone() {
            Some(state) => Node::restore(config, identity, rng_seed, now, state),
            None => Node::new(config, identity, rng_seed, now),
        };
        let Ok(node) = node else { return };
        register_keys(&self.interner, &node);
        self.forget_connections(i);
        let n = &mut self.nodes[i];
        n.node = Some(node);
        n.state = NodeState::Running;
        n.boots = boots;
        n.armed = None;
        self.refresh_health(now, Some(i));
        if self.nodes[i].joined {
            self.send_join(now, i);
        } else {
            self.drain(i);
        }
        // Subscriptions are not persisted: the operator's command line subscribes again.
        let topics: Vec<TopicId> = self.nodes[i].subscriptions.clone();
        for topic in topics {
            self.subscribe(now, i, topic, "(re-subscribed after restart)");
        }
    }
}
