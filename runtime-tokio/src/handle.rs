//! [`NodeHandle`]: the application's side of a running node, and what it receives
//! ([`Subscription`], [`Events`]).

use crate::addr::BootstrapPeer;
use crate::counters::{Live, TransportCounters};
use crate::error::{DialError, Error};
use bytes::Bytes;
use hearsay_proto::node::NodeView;
use hearsay_proto::{DownReason, MessageId, Node, PeerId, Timestamp, TopicId};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, oneshot};

/// A message delivered on a subscribed topic: accepted by the topic's validator (by default,
/// the author's signature verified), delivered once per message id, in no particular order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The topic.
    pub topic: TopicId,
    /// Who published it.
    pub author: PeerId,
    /// Its id.
    pub id: MessageId,
    /// The author's sequence number.
    pub sequence: u64,
    /// When the author published it (the author's clock).
    pub timestamp: Timestamp,
    /// The application's bytes.
    pub payload: Bytes,
    /// Hops from the author to this node.
    pub hops: u8,
}

/// What a [`Subscription`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// The next delivery.
    Message(Delivery),
    /// This subscriber fell behind and lost its `n` oldest deliveries (other subscribers and the
    /// node are not affected).
    Lagged(u64),
}

/// The deliveries of one topic to one subscriber, from [`NodeHandle::subscribe`].
///
/// Bounded: if the application reads more slowly than messages arrive, this subscriber loses its
/// own oldest deliveries (it is told how many with [`Received::Lagged`]); the node never waits
/// for it.
#[derive(Debug)]
pub struct Subscription {
    topic: TopicId,
    rx: broadcast::Receiver<Delivery>,
}

impl Subscription {
    pub(crate) fn new(topic: TopicId, rx: broadcast::Receiver<Delivery>) -> Self {
        Self { topic, rx }
    }

    /// The topic.
    pub fn topic(&self) -> TopicId {
        self.topic
    }

    /// The next delivery, or a note of how many were lost; `None` once the topic is
    /// unsubscribed or the node has shut down (after what was buffered).
    pub async fn recv(&mut self) -> Option<Received> {
        match self.rx.recv().await {
            Ok(d) => Some(Received::Message(d)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Received::Lagged(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// Like [`Subscription::recv`], without waiting: `None` if nothing is buffered now (or the
    /// subscription has ended).
    pub fn try_recv(&mut self) -> Option<Received> {
        match self.rx.try_recv() {
            Ok(d) => Some(Received::Message(d)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Received::Lagged(n)),
            Err(_) => None,
        }
    }
}

/// What happened to the node, for the application (from [`NodeHandle::events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// `peer` entered the node-level active view (became a neighbour).
    NeighborUp {
        /// The neighbour.
        peer: PeerId,
        /// The address of its connection.
        address: Option<SocketAddr>,
    },
    /// `peer` left the active view.
    NeighborDown {
        /// The former neighbour.
        peer: PeerId,
        /// Why.
        reason: DownReason,
    },
    /// A bootstrap peer answered and proved its identity; the node joins through it.
    Bootstrapped {
        /// The peer's proven id.
        peer: PeerId,
        /// Its address.
        address: SocketAddr,
    },
    /// A bootstrap peer could not be reached or refused; the node keeps running.
    BootstrapFailed {
        /// The bootstrap peer.
        peer: BootstrapPeer,
        /// Why.
        error: DialError,
    },
    /// A dial the protocol asked for failed (the protocol retries by itself).
    DialFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        error: DialError,
    },
    /// A reflector told this node the address it sees this node's connection come from (after
    /// the peer proved its identity). Behind a NAT, this is the public address of the mapping.
    AddressObserved {
        /// The reflector.
        by: PeerId,
        /// This node's address as the reflector sees it.
        address: SocketAddr,
    },
    /// A member of one of this node's presence groups is online (a fresh beacon).
    PresenceOnline {
        /// The group's presence topic (from [`NodeHandle::presence_start`]).
        group: TopicId,
        /// The member.
        member: PeerId,
        /// Its record, from its beacon.
        record: Box<hearsay_proto::PeerRecord>,
    },
    /// A member of one of this node's presence groups went offline.
    PresenceOffline {
        /// The group's presence topic.
        group: TopicId,
        /// The member.
        member: PeerId,
        /// Why: it said so, or its beacons stopped.
        reason: hearsay_proto::discovery::presence::OfflineReason,
    },
    /// Records answering a [`NodeHandle::find`] query.
    Found {
        /// The query.
        query: hearsay_proto::discovery::foaf::QueryId,
        /// The records (verified).
        records: Vec<hearsay_proto::PeerRecord>,
    },
    /// A [`NodeHandle::find`] query ended.
    FindDone {
        /// The query.
        query: hearsay_proto::discovery::foaf::QueryId,
        /// Distinct records found (0: it failed).
        found: usize,
    },
    /// An encrypted message this node may read, fetched from its author and opened.
    PrivateDelivered {
        /// The topic it was announced on.
        topic: TopicId,
        /// Its author.
        author: PeerId,
        /// Its id.
        id: MessageId,
        /// The decrypted bytes.
        plaintext: Bytes,
    },
    /// The author withdrew an encrypted message this node had delivered.
    PrivateDeleted {
        /// The message.
        id: MessageId,
    },
    /// A message the node now retains, to be stored durably by an anchor (only when the core's
    /// `topics.plumtree.archive` is on). Give the records back after a restart with
    /// [`NodeHandle::restore_messages`].
    Archived {
        /// The topic.
        topic: TopicId,
        /// Its author.
        author: PeerId,
        /// The message.
        id: MessageId,
        /// When it leaves the retention window (it may be dropped from storage then).
        expires: Timestamp,
        /// The message and its author's key, encoded.
        record: Bytes,
    },
    /// This receiver fell behind and lost its `n` oldest events.
    Lagged(u64),
}

/// The node's events, for one receiver (from [`NodeHandle::events`]). Bounded like a
/// [`Subscription`]: a slow receiver loses its own oldest events and gets
/// [`NodeEvent::Lagged`].
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<NodeEvent>,
}

impl Events {
    /// The next event; `None` once the node has shut down.
    pub async fn recv(&mut self) -> Option<NodeEvent> {
        match self.rx.recv().await {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(NodeEvent::Lagged(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// Like [`Events::recv`], without waiting.
    pub fn try_recv(&mut self) -> Option<NodeEvent> {
        match self.rx.try_recv() {
            Ok(e) => Some(e),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(NodeEvent::Lagged(n)),
            Err(_) => None,
        }
    }
}

/// A neighbour and the address of its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    /// Its id.
    pub peer: PeerId,
    /// The remote address of the connection.
    pub address: SocketAddr,
}

/// A job run inside the node task with read access to the core.
pub(crate) type InspectJob = Box<dyn FnOnce(&Node) + Send>;
/// A job run inside the node task with write access to the core, given the current time.
pub(crate) type MutateJob = Box<dyn FnOnce(&mut Node, Timestamp) + Send>;

/// What the handles ask of the node task.
pub(crate) enum Request {
    Subscribe {
        topic: TopicId,
        reply: oneshot::Sender<Result<Subscription, Error>>,
    },
    Unsubscribe {
        topic: TopicId,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Publish {
        topic: TopicId,
        payload: Bytes,
        reply: oneshot::Sender<Result<MessageId, Error>>,
    },
    Join {
        peers: Vec<BootstrapPeer>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<Neighbor>>,
    },
    Inspect(InspectJob),
    Mutate(MutateJob),
    RestoreMessages {
        records: Vec<Bytes>,
        reply: oneshot::Sender<Vec<Result<MessageId, hearsay_proto::node::NodeError>>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

pub(crate) struct Shared {
    pub requests: mpsc::Sender<Request>,
    /// Weak, so that receivers end when the node task (the only strong sender) stops.
    pub events: broadcast::WeakSender<NodeEvent>,
    pub counters: Arc<Live>,
    pub peer_id: PeerId,
    pub local_addr: SocketAddr,
    /// What reflectors said they see this node at (bounded by [`MAX_OBSERVED`]).
    pub observed: Arc<std::sync::Mutex<std::collections::BTreeMap<PeerId, SocketAddr>>>,
}

/// Most reflector answers [`NodeHandle::observed_addresses`] keeps (one per reflector).
pub const MAX_OBSERVED: usize = 16;

/// A running node: cheap to clone, each clone talks to the same node task.
///
/// The node runs until [`NodeHandle::shutdown`] is called or the last handle is dropped (which
/// shuts it down gracefully as well). All methods that talk to the node task are `async` and
/// return [`Error::Closed`] once it has stopped.
#[derive(Clone)]
pub struct NodeHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeHandle")
            .field("peer_id", &self.shared.peer_id)
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl NodeHandle {
    pub(crate) fn new(shared: Shared) -> Self {
        Self {
            shared: Arc::new(shared),
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .requests
            .send(make(tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.shared.peer_id
    }

    /// The local UDP address the node is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// This node as a bootstrap peer for others: `PEERID@local_addr`.
    pub fn bootstrap_peer(&self) -> BootstrapPeer {
        BootstrapPeer::pinned(self.shared.peer_id, self.shared.local_addr)
    }

    /// Subscribes to `topic` (if not already) and returns a new receiver of its deliveries.
    /// Several receivers of one topic each get every delivery.
    pub async fn subscribe(&self, topic: TopicId) -> Result<Subscription, Error> {
        self.ask(|reply| Request::Subscribe { topic, reply })
            .await?
    }

    /// Leaves `topic`: the node stops carrying it, and every [`Subscription`] of it ends.
    pub async fn unsubscribe(&self, topic: TopicId) -> Result<(), Error> {
        self.ask(|reply| Request::Unsubscribe { topic, reply })
            .await?
    }

    /// Publishes `payload` on a subscribed topic; returns the message's id. Fails with
    /// [`Error::Node`] if the topic is not subscribed or the payload is over
    /// [`MAX_PAYLOAD`](hearsay_proto::broadcast::message::MAX_PAYLOAD).
    pub async fn publish(
        &self,
        topic: TopicId,
        payload: impl Into<Bytes>,
    ) -> Result<MessageId, Error> {
        let payload = payload.into();
        self.ask(|reply| Request::Publish {
            topic,
            payload,
            reply,
        })
        .await?
    }

    /// Joins the overlay through more peers (as the builder's bootstrap peers do).
    pub async fn join(&self, peers: impl IntoIterator<Item = BootstrapPeer>) -> Result<(), Error> {
        let peers = peers.into_iter().collect();
        self.ask(|reply| Request::Join { peers, reply }).await?
    }

    /// The current neighbours (the node-level active view) and their connections' addresses.
    pub async fn peers(&self) -> Result<Vec<Neighbor>, Error> {
        self.ask(|reply| Request::Peers { reply }).await
    }

    /// A new receiver of the node's events, from now on.
    pub fn events(&self) -> Events {
        let rx = match self.shared.events.upgrade() {
            Some(tx) => tx.subscribe(),
            // The node has stopped: a receiver that ends at once.
            None => broadcast::channel(1).1,
        };
        Events { rx }
    }

    /// The addresses reflectors said they see this node at, one per reflector (the latest
    /// answer of at most [`MAX_OBSERVED`] reflectors). Behind a NAT, the public address of its
    /// mapping: a candidate for [`NodeBuilder::advertise`](crate::NodeBuilder::advertise).
    pub fn observed_addresses(&self) -> Vec<(PeerId, SocketAddr)> {
        self.shared
            .observed
            .lock()
            .map(|o| o.iter().map(|(p, a)| (*p, *a)).collect())
            .unwrap_or_default()
    }

    /// The transport's running totals (connections refused by reason, frames and bytes in and
    /// out, queue drops, ...). Never waits for the node task.
    pub fn counters(&self) -> TransportCounters {
        self.shared.counters.snapshot()
    }

    /// Runs `f` in the node task with a read-only view of the core (its neighbours, topic
    /// overlays, protocol counters; see [`NodeView`]) and returns its result. `f` must be quick:
    /// the node does nothing else meanwhile.
    pub async fn inspect<R: Send + 'static>(
        &self,
        f: impl FnOnce(NodeView<'_>) -> R + Send + 'static,
    ) -> Result<R, Error> {
        let (tx, rx) = oneshot::channel();
        let job: InspectJob = Box::new(move |node: &Node| {
            let _ = tx.send(f(node.inspect()));
        });
        self.shared
            .requests
            .send(Request::Inspect(job))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Runs `f` in the node task with the core itself and the current time, then carries out
    /// whatever it asked for (sends, dials, events). For the core operations this handle has no
    /// method of its own (group keys, access-list updates, re-encryption, ...). `f` must be
    /// quick: the node does nothing else meanwhile.
    pub async fn with_node<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Node, Timestamp) -> R + Send + 'static,
    ) -> Result<R, Error> {
        let (tx, rx) = oneshot::channel();
        let job: MutateJob = Box::new(move |node: &mut Node, now| {
            let _ = tx.send(f(node, now));
        });
        self.shared
            .requests
            .send(Request::Mutate(job))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Joins the presence group whose secret is `group_secret` and starts beaconing; returns the
    /// group's presence topic, which names it in [`NodeEvent::PresenceOnline`] and
    /// [`NodeEvent::PresenceOffline`] (SPEC.md §19).
    pub async fn presence_start(&self, group_secret: [u8; 32]) -> Result<TopicId, Error> {
        self.with_node(move |n, now| n.presence_start(now, group_secret))
            .await?
            .map_err(Error::Node)
    }

    /// Leaves a presence group gracefully (an offline beacon goes out).
    pub async fn presence_stop(&self, group: TopicId) -> Result<(), Error> {
        self.with_node(move |n, now| n.presence_stop(now, group))
            .await?
            .map_err(Error::Node)
    }

    /// The members of a presence group seen online now.
    pub async fn presence_online(&self, group: TopicId) -> Result<Vec<PeerId>, Error> {
        self.with_node(move |n, now| n.presence_online(now, &group))
            .await
    }

    /// Publishes `plaintext` encrypted for `readers` (their ML-KEM keys, from their records) on
    /// a subscribed topic; readers fetch it from this node (SPEC.md §17.10).
    pub async fn publish_private(
        &self,
        topic: TopicId,
        plaintext: impl Into<Bytes>,
        readers: Vec<hearsay_proto::crypto::EncapsulationKeyBytes>,
    ) -> Result<MessageId, Error> {
        let plaintext = plaintext.into();
        self.with_node(move |n, now| n.publish_private(now, topic, &plaintext, &readers))
            .await?
            .map_err(Error::Node)
    }

    /// Asks the overlay for a peer's record (or peers offering a capability), `ttl` hops deep;
    /// answers come as [`NodeEvent::Found`], the end as [`NodeEvent::FindDone`] (SPEC.md §18).
    pub async fn find(
        &self,
        target: hearsay_proto::discovery::foaf::Target,
        ttl: Option<u8>,
    ) -> Result<hearsay_proto::discovery::foaf::QueryId, Error> {
        self.with_node(move |n, now| n.find(now, target, ttl))
            .await?
            .map_err(Error::Node)
    }

    /// Takes back messages an anchor stored from [`NodeEvent::Archived`] before a restart: each
    /// is checked like a received message (its topic must be subscribed first, it must be inside
    /// the retention window and pass the validator), then retained and served to peers that lack
    /// it, never delivered again. One result per record, in order.
    pub async fn restore_messages(
        &self,
        records: Vec<Bytes>,
    ) -> Result<Vec<Result<MessageId, hearsay_proto::node::NodeError>>, Error> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .requests
            .send(Request::RestoreMessages { records, reply })
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// What must survive a restart (boot count, remembered peer records): store it, and give
    /// it to [`NodeBuilder::restore`](crate::NodeBuilder::restore) on the next start. Save it
    /// once right after `spawn`, so that a node killed at any moment restarts with a higher
    /// boot count than any run that published.
    pub async fn persistent_state(&self) -> Result<hearsay_proto::PersistentState, Error> {
        let (tx, rx) = oneshot::channel();
        let job: InspectJob = Box::new(move |node: &Node| {
            let _ = tx.send(node.persistent_state());
        });
        self.shared
            .requests
            .send(Request::Inspect(job))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Leaves gracefully: says goodbye to every neighbour, flushes the send queues (bounded by
    /// [`TransportConfig::shutdown_timeout`](crate::TransportConfig::shutdown_timeout)), closes
    /// the endpoint, and returns when the node task has stopped. Calling it again, or on a node
    /// that has stopped, returns at once.
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Request::Shutdown { reply }).await;
    }

    /// Whether the node task has stopped.
    pub fn is_closed(&self) -> bool {
        self.shared.requests.is_closed()
    }
}
