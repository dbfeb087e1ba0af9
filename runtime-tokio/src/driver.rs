//! The node task: the one owner of the [`Node`]. It feeds the core what the connection tasks,
//! the timer and the application report, and carries out what the core asks (SPEC.md §8.4):
//! after every input it drains `poll_transmit` and `poll_event`, then sleeps until
//! `poll_timeout` or the next input. No protocol logic lives here.

use crate::addr::{BootstrapPeer, address_from_socket, socket_from_address};
use crate::clock::DriverClock;
use crate::config::TransportConfig;
use crate::conn::{self, ConnId, HandshakeCtx, NetEvent, Origin, Proven, SendQueue};
use crate::counters::Live;
use crate::error::{CloseCode, DialError, Error, Refusal};
use crate::handle::{Delivery, Neighbor, NodeEvent, Request, Subscription};
use crate::proof::Role;
use bytes::Bytes;
use hearsay_proto::node::{Command, Contact, Event, Transmit};
use hearsay_proto::{Node, PeerId, PeerRecord, Timestamp, TopicId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Most contacts the driver keeps for the core's `Join` (the core retries them when alone).
const MAX_CONTACTS: usize = 16;
/// How long the endpoint may take to tell peers it closed, at shutdown.
const ENDPOINT_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A connection handed to the core.
struct Registered {
    id: ConnId,
    conn: quinn::Connection,
    queue: SendQueue,
    dialled_by_us: bool,
}

/// Everything the node task owns.
pub(crate) struct Driver {
    pub node: Node,
    pub me: PeerId,
    pub clock: Arc<DriverClock>,
    pub cfg: TransportConfig,
    pub max_connections: usize,
    pub ctx: Arc<HandshakeCtx>,
    pub counters: Arc<Live>,
    pub requests: mpsc::Receiver<Request>,
    pub inbox: mpsc::Receiver<NetEvent>,
    pub inbox_tx: mpsc::Sender<NetEvent>,
    pub events: broadcast::Sender<NodeEvent>,
    pub record_tx: watch::Sender<Arc<PeerRecord>>,
    pub registered_count: Arc<AtomicUsize>,
    /// Shared with the handles: what reflectors said.
    pub observed: Arc<std::sync::Mutex<std::collections::BTreeMap<PeerId, SocketAddr>>>,
    pub state: State,
}

/// The loser of two connections to one peer, kept open (unused) for a while.
enum Loser {
    Registered(Registered),
    Proven(Proven),
}

/// The driver's bookkeeping (all bounded: connections and losers by `max_connections`, dials by
/// `max_pending_dials`, topics by the core's subscription limit).
#[derive(Default)]
pub(crate) struct State {
    conns: HashMap<PeerId, Registered>,
    by_id: HashMap<ConnId, PeerId>,
    next_id: ConnId,
    /// Dials the core asked for, in flight, and whether the core still wants each (a
    /// `Disconnect` for the peer cancels it: its connection is closed when it arrives).
    dials: HashMap<PeerId, bool>,
    /// Bootstrap dials (by address) in flight.
    bootstrap_dials: usize,
    /// Pinned bootstrap peers (their failed dials are reported as bootstrap failures).
    pinned: HashSet<PeerId>,
    /// The contacts given to the core's `Join`.
    contacts: Vec<Contact>,
    /// Losers of simultaneous connections, closed at their deadline (see `on_proven`).
    losers: Vec<(Instant, Loser)>,
    topics: HashMap<TopicId, broadcast::Sender<Delivery>>,
    writers: JoinSet<()>,
    record_issued: Option<Timestamp>,
    /// Publishes waiting for the send queues to drain below half (back-pressure), at most
    /// [`MAX_PENDING_PUBLISHES`].
    pending_publishes: VecDeque<PendingPublish>,
}

/// A publish held back while a peer's send queue is at least half full.
struct PendingPublish {
    topic: TopicId,
    payload: Bytes,
    reply: tokio::sync::oneshot::Sender<Result<hearsay_proto::MessageId, Error>>,
}

/// Most publishes held back at once; more are refused with [`Error::Backlogged`].
pub const MAX_PENDING_PUBLISHES: usize = 1024;

/// How often held-back publishes are retried.
const PUBLISH_RETRY: Duration = Duration::from_millis(2);

impl Driver {
    /// Runs the node until shutdown.
    pub(crate) async fn run(mut self, bootstrap: Vec<BootstrapPeer>) {
        self.publish_record();
        self.bootstrap(bootstrap);
        self.drain();
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                request = self.requests.recv() => match request {
                    Some(Request::Shutdown { reply }) => {
                        // Refuse new requests first, so that the node reads as closed as soon
                        // as the caller hears it has stopped.
                        self.requests.close();
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(request) => self.on_request(request),
                    None => {
                        // Every handle is gone: leave gracefully.
                        self.shutdown().await;
                        return;
                    }
                },
                Some(event) = self.inbox.recv() => self.on_net(event),
                () = tokio::time::sleep_until(deadline) => self.on_timer(),
                Some(_) = self.state.writers.join_next(), if !self.state.writers.is_empty() => {}
            }
            self.drain();
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn emit(&self, event: NodeEvent) {
        // No receiver is fine; a slow one lags on its own.
        let _ = self.events.send(event);
    }

    fn next_deadline(&self) -> Instant {
        let now = Instant::now();
        let mut deadline = now + Duration::from_secs(3600);
        if let Some(t) = self.node.poll_timeout() {
            let wait = t.saturating_since(self.now()).as_micros();
            deadline = deadline.min(now + Duration::from_micros(wait));
        }
        if let Some((at, _)) = self.state.losers.iter().min_by_key(|(at, _)| *at) {
            deadline = deadline.min(*at);
        }
        if !self.state.pending_publishes.is_empty() {
            deadline = deadline.min(now + PUBLISH_RETRY);
        }
        deadline
    }

    /// Whether any peer's send queue is at least half full.
    fn backlogged(&self) -> bool {
        self.state.conns.values().any(|r| r.queue.is_backlogged())
    }

    /// Publishes what was held back, in order, while no queue is backlogged.
    fn flush_publishes(&mut self) {
        while !self.backlogged() {
            let Some(p) = self.state.pending_publishes.pop_front() else {
                return;
            };
            let now = self.now();
            let _ = p.reply.send(
                self.node
                    .publish(now, p.topic, &p.payload)
                    .map_err(Error::Node),
            );
            // Each publish queues its frames at once: drain before checking again.
            self.drain();
        }
    }

    fn on_timer(&mut self) {
        let now = self.now();
        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.node.handle_timeout(now);
        }
        let (expired, kept) = std::mem::take(&mut self.state.losers)
            .into_iter()
            .partition(|(at, _)| *at <= Instant::now());
        self.state.losers = kept;
        for (_, loser) in expired {
            close_loser(loser);
        }
        self.flush_publishes();
    }

    // ------------------------------------------------------------ outputs of the core

    /// Carries out everything the core asked for, and hands its events on.
    fn drain(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            match t {
                Transmit::Send { to, frame } => self.send(to, frame),
                Transmit::Connect { peer, addresses } => self.connect(peer, &addresses),
                Transmit::Disconnect { peer } => self.disconnect(peer),
                _ => {}
            }
        }
        while let Some(event) = self.node.poll_event() {
            self.on_core_event(event);
        }
        self.publish_record();
    }

    fn on_core_event(&mut self, event: Event) {
        match event {
            Event::Delivered {
                topic,
                author,
                id,
                sequence,
                timestamp,
                payload,
                hops,
            } => {
                if let Some(tx) = self.state.topics.get(&topic) {
                    let _ = tx.send(Delivery {
                        topic,
                        author,
                        id,
                        sequence,
                        timestamp,
                        payload,
                        hops,
                    });
                }
            }
            Event::NeighborUp { peer } => {
                let address = self.state.conns.get(&peer).map(|r| r.conn.remote_address());
                self.emit(NodeEvent::NeighborUp { peer, address });
            }
            Event::NeighborDown { peer, reason } => {
                self.emit(NodeEvent::NeighborDown { peer, reason })
            }
            Event::PresenceOnline {
                group,
                member,
                record,
            } => self.emit(NodeEvent::PresenceOnline {
                group,
                member,
                record: Box::new(record),
            }),
            Event::PresenceOffline {
                group,
                member,
                reason,
            } => self.emit(NodeEvent::PresenceOffline {
                group,
                member,
                reason,
            }),
            Event::Found { query, records, .. } => self.emit(NodeEvent::Found { query, records }),
            Event::FindDone { query, found, .. } => self.emit(NodeEvent::FindDone { query, found }),
            Event::PrivateDelivered {
                topic,
                author,
                id,
                plaintext,
                ..
            } => self.emit(NodeEvent::PrivateDelivered {
                topic,
                author,
                id,
                plaintext,
            }),
            Event::PrivateDeleted { id } => self.emit(NodeEvent::PrivateDeleted { id }),
            Event::Archived {
                topic,
                author,
                id,
                expires,
                record,
            } => self.emit(NodeEvent::Archived {
                topic,
                author,
                id,
                expires,
                record,
            }),
            _ => {}
        }
    }

    /// Tells the handshake tasks about a re-issued record.
    fn publish_record(&mut self) {
        let record = self.node.inspect().record();
        if self.state.record_issued != Some(record.issued_at) {
            self.state.record_issued = Some(record.issued_at);
            let _ = self.record_tx.send(Arc::new(record.clone()));
        }
    }

    fn send(&mut self, to: PeerId, frame: Bytes) {
        let Some(reg) = self.state.conns.get(&to) else {
            self.counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if !reg.queue.push(frame) {
            // The peer does not keep up: it alone pays, with its connection.
            self.counters
                .send_queue_overflows
                .fetch_add(1, Ordering::Relaxed);
            if let Some(reg) = self.unregister(&to) {
                reg.queue.abort(CloseCode::SlowPeer);
            }
            let now = self.now();
            self.node.handle_disconnected(now, to);
        }
    }

    fn connect(&mut self, peer: PeerId, addresses: &[hearsay_proto::Address]) {
        let now = self.now();
        if let Some(reg) = self.state.conns.get(&peer) {
            let remote = reg.conn.remote_address();
            self.node.handle_connected_from(now, peer, remote);
            return;
        }
        if let Some(wanted) = self.state.dials.get_mut(&peer) {
            *wanted = true;
            return; // a connection is on its way
        }
        let addrs: Vec<SocketAddr> = addresses.iter().filter_map(socket_from_address).collect();
        let error = if addrs.is_empty() {
            Some(DialError::NoAddress)
        } else if self.dials_in_flight() >= self.cfg.max_pending_dials {
            Some(DialError::Busy)
        } else {
            None
        };
        if let Some(error) = error {
            self.dial_failed(peer, error);
            return;
        }
        self.state.dials.insert(peer, true);
        tokio::spawn(conn::dial(
            self.ctx.clone(),
            addrs,
            Some(peer),
            Origin::Dial { peer },
            self.inbox_tx.clone(),
        ));
    }

    fn dials_in_flight(&self) -> usize {
        self.state.dials.len() + self.state.bootstrap_dials
    }

    fn dial_failed(&mut self, peer: PeerId, error: DialError) {
        self.counters.dials_failed.fetch_add(1, Ordering::Relaxed);
        if self.state.pinned.contains(&peer) {
            self.counters
                .bootstrap_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        if !self.state.conns.contains_key(&peer) {
            let now = self.now();
            self.node.handle_disconnected(now, peer);
        }
        self.emit(NodeEvent::DialFailed { peer, error });
    }

    fn disconnect(&mut self, peer: PeerId) {
        // Dropping the queue lets the writer flush what is queued, finish its stream and close.
        drop(self.unregister(&peer));
        if let Some(wanted) = self.state.dials.get_mut(&peer) {
            *wanted = false;
        }
        let now = self.now();
        self.node.handle_disconnected(now, peer);
    }

    fn unregister(&mut self, peer: &PeerId) -> Option<Registered> {
        let reg = self.state.conns.remove(peer)?;
        self.state.by_id.remove(&reg.id);
        self.registered_count
            .store(self.state.conns.len(), Ordering::Relaxed);
        self.counters
            .connections_closed
            .fetch_add(1, Ordering::Relaxed);
        Some(reg)
    }

    // ------------------------------------------------------------ network inputs

    fn on_net(&mut self, event: NetEvent) {
        match event {
            NetEvent::Frame { id, frame } => {
                if let Some(peer) = self.state.by_id.get(&id).copied() {
                    let now = self.now();
                    if self.node.handle_frame(now, peer, frame).is_err() {
                        self.counters
                            .frames_refused_by_core
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            NetEvent::Closed { id } => {
                let Some(peer) = self.state.by_id.get(&id).copied() else {
                    return; // a connection already replaced or dropped
                };
                drop(self.unregister(&peer));
                let now = self.now();
                self.node.handle_disconnected(now, peer);
            }
            NetEvent::Proven { proven, origin } => self.on_proven(proven, origin),
            NetEvent::DialFailed { origin, error } => match origin {
                Origin::Dial { peer } => {
                    self.state.dials.remove(&peer);
                    self.dial_failed(peer, error);
                }
                Origin::Bootstrap { addr } => {
                    self.state.bootstrap_dials = self.state.bootstrap_dials.saturating_sub(1);
                    self.counters
                        .bootstrap_failures
                        .fetch_add(1, Ordering::Relaxed);
                    self.emit(NodeEvent::BootstrapFailed {
                        peer: BootstrapPeer::open(addr),
                        error,
                    });
                }
                Origin::Inbound => {}
            },
        }
    }

    fn on_proven(&mut self, proven: Proven, origin: Origin) {
        let peer = proven.peer;
        if let Some(address) = proven.observed {
            if let Ok(mut seen) = self.observed.lock() {
                if seen.len() >= crate::handle::MAX_OBSERVED && !seen.contains_key(&peer) {
                    seen.pop_first();
                }
                seen.insert(peer, address);
            }
            self.emit(NodeEvent::AddressObserved { by: peer, address });
        }
        match origin {
            Origin::Dial { peer: p } => {
                let wanted = self.state.dials.remove(&p).unwrap_or(false);
                if !wanted && !self.state.conns.contains_key(&peer) {
                    // The core gave this dial up (it sent `Disconnect`) while it was in flight.
                    refuse(proven, CloseCode::Normal);
                    return;
                }
            }
            Origin::Bootstrap { addr } => {
                self.state.bootstrap_dials = self.state.bootstrap_dials.saturating_sub(1);
                self.emit(NodeEvent::Bootstrapped {
                    peer,
                    address: addr,
                });
            }
            Origin::Inbound => {}
        }
        let dialled_by_us = proven.role == Role::Dialer;
        if let Some(existing) = self.state.conns.get(&peer) {
            // Two connections to one peer. If both sides dialled at once, both keep the one
            // dialled by the smaller id, so they agree without talking; a second connection in
            // the same direction loses to the first. The loser is not closed yet: the peer may
            // not have seen the winner, and closing the loser now would make it report the peer
            // gone. It is left unused and closed after `duplicate_grace`.
            let keep_new =
                existing.dialled_by_us != dialled_by_us && dialled_by_us == (self.me < peer);
            self.counters
                .duplicates_closed
                .fetch_add(1, Ordering::Relaxed);
            let loser = if keep_new {
                let old = self.unregister(&peer).map(Loser::Registered);
                self.register(proven); // the core already counts the peer as connected
                old
            } else {
                Some(Loser::Proven(proven))
            };
            if let Some(loser) = loser {
                if self.state.losers.len() >= self.max_connections {
                    close_loser(loser);
                } else {
                    let at = Instant::now() + self.cfg.duplicate_grace;
                    self.state.losers.push((at, loser));
                }
            }
        } else if self.state.conns.len() >= self.max_connections {
            refuse(proven, CloseCode::Limit);
            conn::count_refusal(&self.counters, &Refusal::Limit);
            let now = self.now();
            self.node.handle_disconnected(now, peer);
        } else {
            let remote = proven.conn.remote_address();
            self.register(proven);
            let now = self.now();
            self.node.handle_connected_from(now, peer, remote);
        }
        if let Origin::Bootstrap { addr } = origin {
            self.add_contacts([Contact {
                peer,
                addresses: vec![address_from_socket(addr)],
            }]);
        }
    }

    fn register(&mut self, proven: Proven) {
        let id = self.state.next_id;
        self.state.next_id += 1;
        let peer = proven.peer;
        let dialled_by_us = proven.role == Role::Dialer;
        let conn = proven.conn.clone();
        let queue = conn::start(
            id,
            proven,
            &self.cfg,
            self.counters.clone(),
            self.inbox_tx.clone(),
            &mut self.state.writers,
        );
        self.state.conns.insert(
            peer,
            Registered {
                id,
                conn,
                queue,
                dialled_by_us,
            },
        );
        self.state.by_id.insert(id, peer);
        self.registered_count
            .store(self.state.conns.len(), Ordering::Relaxed);
        self.counters
            .connections_registered
            .fetch_add(1, Ordering::Relaxed);
    }

    // ------------------------------------------------------------ the application

    /// Joins through `peers`: pinned ones go to the core as contacts (it dials and retries);
    /// open ones are dialled here first to learn their ids.
    fn bootstrap(&mut self, peers: Vec<BootstrapPeer>) {
        let mut pinned = Vec::new();
        for p in peers {
            match p.peer() {
                Some(peer) if peer != self.me => {
                    self.state.pinned.insert(peer);
                    pinned.push(Contact {
                        peer,
                        addresses: vec![address_from_socket(p.addr())],
                    });
                }
                Some(_) => {} // ourselves
                None if self.dials_in_flight() >= self.cfg.max_pending_dials => {
                    self.counters
                        .bootstrap_failures
                        .fetch_add(1, Ordering::Relaxed);
                    self.emit(NodeEvent::BootstrapFailed {
                        peer: p,
                        error: DialError::Busy,
                    });
                }
                None => {
                    self.state.bootstrap_dials += 1;
                    tokio::spawn(conn::dial(
                        self.ctx.clone(),
                        vec![p.addr()],
                        None,
                        Origin::Bootstrap { addr: p.addr() },
                        self.inbox_tx.clone(),
                    ));
                }
            }
        }
        if !pinned.is_empty() {
            self.add_contacts(pinned);
        }
    }

    /// Adds contacts (newest last, at most [`MAX_CONTACTS`]) and hands them all to the core.
    fn add_contacts(&mut self, new: impl IntoIterator<Item = Contact>) {
        for c in new {
            self.state.contacts.retain(|old| old.peer != c.peer);
            self.state.contacts.push(c);
        }
        let excess = self.state.contacts.len().saturating_sub(MAX_CONTACTS);
        self.state.contacts.drain(..excess);
        let now = self.now();
        let contacts = self.state.contacts.clone();
        // Contacts carry one address each: within the core's limit.
        let _ = self.node.handle_command(now, Command::Join { contacts });
    }

    fn on_request(&mut self, request: Request) {
        let now = self.now();
        match request {
            Request::Subscribe { topic, reply } => {
                let result = match self.state.topics.get(&topic) {
                    Some(tx) => Ok(Subscription::new(topic, tx.subscribe())),
                    None => match self.node.subscribe(now, topic) {
                        Ok(()) => {
                            let (tx, rx) = broadcast::channel(self.cfg.subscription_capacity);
                            self.state.topics.insert(topic, tx);
                            Ok(Subscription::new(topic, rx))
                        }
                        Err(e) => Err(Error::Node(e)),
                    },
                };
                let _ = reply.send(result);
            }
            Request::Unsubscribe { topic, reply } => {
                self.state.topics.remove(&topic);
                let _ = reply.send(self.node.unsubscribe(now, topic).map_err(Error::Node));
            }
            Request::Publish {
                topic,
                payload,
                reply,
            } => {
                // Back-pressure: a burst of publishes waits for the peers' queues rather than
                // overflowing them (which would cost the peer its connection).
                if self.state.pending_publishes.len() >= MAX_PENDING_PUBLISHES {
                    let _ = reply.send(Err(Error::Backlogged));
                } else if !self.state.pending_publishes.is_empty() || self.backlogged() {
                    self.state.pending_publishes.push_back(PendingPublish {
                        topic,
                        payload,
                        reply,
                    });
                } else {
                    let _ =
                        reply.send(self.node.publish(now, topic, &payload).map_err(Error::Node));
                }
            }
            Request::Join { peers, reply } => {
                self.bootstrap(peers);
                let _ = reply.send(Ok(()));
            }
            Request::Peers { reply } => {
                let neighbors = self
                    .node
                    .inspect()
                    .neighbors()
                    .filter_map(|peer| {
                        let reg = self.state.conns.get(&peer)?;
                        Some(Neighbor {
                            peer,
                            address: reg.conn.remote_address(),
                        })
                    })
                    .collect();
                let _ = reply.send(neighbors);
            }
            Request::Inspect(job) => job(&self.node),
            Request::Mutate(job) => job(&mut self.node, now),
            Request::RestoreMessages { records, reply } => {
                let results = records
                    .iter()
                    .map(|r| self.node.restore_message(now, r))
                    .collect();
                let _ = reply.send(results);
            }
            Request::Shutdown { reply } => {
                // Handled by the loop; kept exhaustive.
                let _ = reply.send(());
            }
        }
    }

    /// Leaves gracefully: goodbyes, flushed queues (bounded), closed endpoint.
    async fn shutdown(&mut self) {
        let now = self.now();
        let _ = self.node.handle_command(now, Command::Leave);
        self.drain();
        let peers: Vec<PeerId> = self.state.conns.keys().copied().collect();
        for peer in peers {
            drop(self.unregister(&peer));
        }
        self.state.topics.clear();
        for (_, loser) in std::mem::take(&mut self.state.losers) {
            close_loser(loser);
        }
        let deadline = Instant::now() + self.cfg.shutdown_timeout;
        while !self.state.writers.is_empty() {
            tokio::select! {
                _ = self.state.writers.join_next() => {}
                // Keep the readers moving so that peers' goodbyes and closes are seen.
                Some(_) = self.inbox.recv() => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.state.writers.abort_all();
        self.ctx.endpoint.close(
            CloseCode::Shutdown.to_varint(),
            CloseCode::Shutdown.reason().as_bytes(),
        );
        let _ = tokio::time::timeout(ENDPOINT_CLOSE_WAIT, self.ctx.endpoint.wait_idle()).await;
    }
}

/// Closes the loser of a simultaneous pair.
fn close_loser(loser: Loser) {
    match loser {
        Loser::Registered(reg) => reg.queue.abort(CloseCode::Duplicate),
        Loser::Proven(proven) => refuse(proven, CloseCode::Duplicate),
    }
}

/// Closes a proven connection that will not be registered.
fn refuse(mut proven: Proven, code: CloseCode) {
    tokio::spawn(async move { conn::abort(&proven.conn, Some(&mut proven.send), code).await });
}

/// Accepts incoming connections until the endpoint closes: refuses them at once beyond the
/// connection limit or the handshake limit, and runs each handshake in its own task.
pub(crate) async fn accept_loop(
    ctx: Arc<HandshakeCtx>,
    inbox: mpsc::Sender<NetEvent>,
    registered: Arc<AtomicUsize>,
    max_connections: usize,
) {
    let slots = Arc::new(Semaphore::new(ctx.cfg.max_pending_handshakes));
    while let Some(incoming) = ctx.endpoint.accept().await {
        if registered.load(Ordering::Relaxed) >= max_connections {
            conn::count_refusal(&ctx.counters, &Refusal::Limit);
            incoming.refuse();
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            ctx.counters.refused_busy.fetch_add(1, Ordering::Relaxed);
            incoming.refuse();
            continue;
        };
        let ctx = ctx.clone();
        let inbox = inbox.clone();
        tokio::spawn(async move {
            let _permit = permit;
            conn::accept(ctx, incoming, inbox).await;
        });
    }
}
