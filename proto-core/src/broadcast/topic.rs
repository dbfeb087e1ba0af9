//! Topics: one overlay per topic, built from the same HyParView as the node-level overlay, with
//! its own Plumtree and anti-entropy, over connections and a failure detector shared per peer.
//!
//! Only subscribers are members of a topic's overlay, so only they carry its payloads. A node
//! finds a first member of a topic it subscribes to through the node-level overlay: neighbours
//! tell each other which topics they subscribe to (SUBSCRIPTIONS); a node with a subscribed
//! neighbour joins the topic through it; otherwise it sends FIND walks along the node-level
//! overlay, and the first subscriber a walk reaches introduces the seeker into the topic (as if
//! it had received the seeker's JOIN). Nodes that subscribe at the same time can pair up into
//! separate groups this way, and a partition cuts an overlay in parts. Each overlay therefore
//! elects a root by beacons ([`crate::broadcast::tree`]): the parts have different roots. A member sends
//! *merge walks* now and then; one that ends at a member following another root links the two
//! members, which joins the parts. SPEC.md §15 gives the cost per topic.

use crate::antientropy::{self, Reconciler};
use crate::broadcast::plumtree::{self, Plumtree, Validator};
use crate::id::{PeerId, TopicId};
use crate::membership::hyparview::{self, HyParView, PeerInfo};
use crate::time::{TimeDelta, Timestamp};
use crate::wire::BoundedVec;
use alloc::boxed::Box;
use minicbor::{Decode, Encode};

/// Most topics a node subscribes to (and advertises).
pub const MAX_SUBSCRIPTIONS: usize = 1024;

/// Topic messages (frame kind 3).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub enum TopicMessage {
    /// The sender's complete list of subscriptions (sent to node-level neighbours).
    #[n(0)]
    Subscriptions {
        /// The topics.
        #[n(0)]
        topics: BoundedVec<TopicId, MAX_SUBSCRIPTIONS>,
    },
    /// A walk looking for a member of `topic` on behalf of `origin`.
    #[n(1)]
    Find {
        /// The topic.
        #[n(0)]
        topic: TopicId,
        /// Who is looking.
        #[n(1)]
        origin: PeerInfo,
        /// Remaining hops.
        #[n(2)]
        ttl: u8,
        /// For a merge walk, the root the seeker follows: the seeker has neighbours in the
        /// topic and looks for a member of another part of its overlay (one following another
        /// root). A merge walk wanders its full `ttl` before it may end.
        #[n(3)]
        merge: Option<PeerId>,
    },
    /// HyParView, inside a topic's overlay.
    #[n(2)]
    Membership {
        /// The topic.
        #[n(0)]
        topic: TopicId,
        /// The message.
        #[n(1)]
        message: hyparview::Message,
    },
    /// "I am not (or no longer) a member of `topic`."
    #[n(3)]
    Left {
        /// The topic.
        #[n(0)]
        topic: TopicId,
    },
    /// Plumtree, inside a topic's overlay.
    #[n(4)]
    Broadcast {
        /// The topic.
        #[n(0)]
        topic: TopicId,
        /// The message.
        #[n(1)]
        message: plumtree::Message,
    },
    /// The root beacon of a topic's overlay.
    #[n(5)]
    Beacon {
        /// The topic.
        #[n(0)]
        topic: TopicId,
        /// The beacon.
        #[n(1)]
        beacon: crate::broadcast::tree::RootBeacon,
    },
}

/// Reconciliation of one topic (frame kind 4).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct ReconcileMessage {
    /// The topic.
    #[n(0)]
    pub topic: TopicId,
    /// The message.
    #[n(1)]
    pub message: antientropy::Message,
}

/// Topic parameters (SPEC.md §15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// HyParView of each topic's overlay. Default: as the node-level overlay but an active view
    /// of 7 and a passive view of 28 (a denser overlay gives the broadcast tree less depth),
    /// shuffles that back off to one every 10
    /// minutes while the topic's active view stays the same, and repairs of a view that cannot
    /// fill backing off to 10 minutes (an idle topic costs almost nothing).
    pub hyparview: hyparview::Config,
    /// Plumtree.
    pub plumtree: plumtree::Config,
    /// Anti-entropy.
    pub antientropy: antientropy::Config,
    /// Hops of a FIND walk. Default 8.
    pub find_ttl: u8,
    /// Walks sent per discovery round. Default 2.
    pub find_walks: usize,
    /// First pause between discovery rounds while alone in a topic (doubles up to
    /// `discovery_backoff_max`). Default 1 s.
    pub discovery_backoff_min: TimeDelta,
    /// Longest pause between discovery rounds. Default 30 s.
    pub discovery_backoff_max: TimeDelta,
    /// FIND walks forwarded per second (burst the same); more are dropped. Default 50.
    pub find_rate: u32,
    /// FIND walks handled per second from one source (the link's address group, else the
    /// peer), burst the same: one operator spends at most this share of `find_rate`. Default 10.
    pub find_rate_per_source: u32,
    /// Longest pause between two merge walks of a topic (the first goes
    /// `discovery_backoff_min` after subscribing, then the pause doubles up to this; a new
    /// node-level neighbour starts it again from `discovery_backoff_min`). Default 10 min.
    pub merge_walk_max: TimeDelta,
    /// Root beacons.
    pub beacon: crate::broadcast::tree::Config,
    /// Whether Plumtree's eager links follow the beacon tree (§15.4). Default true.
    pub beacon_tree: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hyparview: hyparview::Config {
                active_view: 7,
                passive_view: 28,
                shuffle_interval_max: TimeDelta::from_secs(600),
                repair_backoff_max: TimeDelta::from_secs(600),
                ..hyparview::Config::default()
            },
            plumtree: plumtree::Config::default(),
            antientropy: antientropy::Config::default(),
            find_ttl: 8,
            find_walks: 2,
            discovery_backoff_min: TimeDelta::from_secs(1),
            discovery_backoff_max: TimeDelta::from_secs(30),
            find_rate: 50,
            find_rate_per_source: 10,
            merge_walk_max: TimeDelta::from_secs(600),
            beacon: crate::broadcast::tree::Config::default(),
            beacon_tree: true,
        }
    }
}

/// The state of one subscribed topic.
pub(crate) struct Topic {
    pub(crate) hyparview: HyParView,
    pub(crate) plumtree: Plumtree,
    pub(crate) reconciler: Reconciler,
    pub(crate) validator: Box<dyn Validator>,
    /// Next sequence number for messages this node publishes.
    pub(crate) sequence: u64,
    /// When to look for members again while the topic's active view is empty.
    pub(crate) next_discovery: Timestamp,
    pub(crate) discovery_backoff: TimeDelta,
    /// Root beacons of the topic's overlay.
    pub(crate) beacons: crate::broadcast::tree::RootTree,
    /// When the next merge walk goes, and the pause after it.
    pub(crate) next_merge_walk: Timestamp,
    pub(crate) merge_walk_backoff: TimeDelta,
    /// The root the topic followed when its tree last changed: following a larger one now
    /// means a root was lost, and the part this node is in may be cut off from the rest.
    pub(crate) followed_root: crate::PeerId,
}

impl Topic {
    /// Whether this node has no neighbour in the topic (and no join in flight).
    pub(crate) fn alone(&self) -> bool {
        self.hyparview.active().next().is_none()
    }
}
