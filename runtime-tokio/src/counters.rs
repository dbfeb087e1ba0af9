//! [`TransportCounters`]: running totals of the transport, readable at any time without asking
//! the node task (for metrics).

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($(#[$doc:meta])* $name:ident / $snapshot:ident { $($(#[$fdoc:meta])* $field:ident,)* }) => {
        /// Live counters, shared between the node task, the connection tasks and the handles.
        #[derive(Debug, Default)]
        pub(crate) struct $name {
            $(pub(crate) $field: AtomicU64,)*
        }

        impl $name {
            pub(crate) fn snapshot(&self) -> $snapshot {
                $snapshot {
                    $($field: self.$field.load(Ordering::Relaxed),)*
                }
            }
        }

        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct $snapshot {
            $($(#[$fdoc])* pub $field: u64,)*
        }
    };
}

counters! {
    /// A snapshot of the transport's running totals (see
    /// [`NodeHandle::counters`](crate::NodeHandle::counters)). The protocol's own totals are in
    /// [`hearsay_proto::node::Counters`], available through
    /// [`NodeHandle::inspect`](crate::NodeHandle::inspect).
    Live / TransportCounters {
        /// Incoming connections whose identity proof verified.
        connections_accepted,
        /// Outgoing connections whose identity proof verified.
        connections_dialled,
        /// Connections handed to the core (`handle_connected`).
        connections_registered,
        /// Connections closed, for any reason, after they were handed to the core.
        connections_closed,
        /// Refused: the TLS/QUIC handshake failed (wrong ALPN, no common key exchange group, ...).
        refused_tls,
        /// Refused: the identity proof did not arrive in time.
        refused_proof_timeout,
        /// Refused: the identity proof was malformed (framing, length, record encoding).
        refused_malformed_proof,
        /// Refused: the record in the identity proof did not verify (SPEC.md §4).
        refused_bad_record,
        /// Refused: the channel-binding signature did not verify under the record's key.
        refused_bad_signature,
        /// Refused: a dial pinned to one peer id reached another.
        refused_wrong_peer,
        /// Refused: the connection led to this node itself.
        refused_self,
        /// Refused: the connection limit (`Config::max_connections`) was reached.
        refused_limit,
        /// Refused: too many incoming handshakes at once.
        refused_busy,
        /// Closed as the loser of two simultaneous connections to the same peer.
        duplicates_closed,
        /// Dial attempts (one per address tried).
        dial_attempts,
        /// Dials requested by the core that reached none of their addresses.
        dials_failed,
        /// Bootstrap peers that could not be reached or refused their proof.
        bootstrap_failures,
        /// Frames received and handed to the core.
        frames_in,
        /// Frame bytes received (without the 4-byte prefixes).
        bytes_in,
        /// Frames written to QUIC.
        frames_out,
        /// Frame bytes written (without the 4-byte prefixes).
        bytes_out,
        /// Frames for a peer without a connection, dropped.
        frames_dropped,
        /// Connections closed because a length prefix exceeded the frame limit.
        oversize_frames,
        /// Connections closed because a frame stalled mid-way for longer than the read timeout.
        read_timeouts,
        /// Peers disconnected because their send queue overflowed.
        send_queue_overflows,
        /// Peers disconnected because one frame's write stayed blocked too long.
        write_stalls,
        /// Connections closed because the peer broke the stream rules (reset, extra streams).
        protocol_violations,
        /// Frames the core refused (it counts them by cause itself).
        frames_refused_by_core,
    }
}
