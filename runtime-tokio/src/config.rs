//! [`TransportConfig`]: the driver's own limits and timeouts (the protocol's are in
//! [`hearsay_proto::Config`]).

use std::time::Duration;

/// Limits and timeouts of the QUIC transport. `TransportConfig::default()` holds the values
/// SPEC.md §20.6 states; every queue and map of the driver is bounded by one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportConfig {
    /// How long one dial attempt to one address may take: QUIC handshake plus identity proofs.
    /// Addresses are tried in order, each with this budget. Default 5 s.
    pub dial_timeout: Duration,
    /// How long an incoming connection may take from its first packet to a verified identity
    /// proof. Default 5 s.
    pub handshake_timeout: Duration,
    /// Once the first byte of a frame's length prefix has arrived, how long the rest of the frame
    /// may take. A peer that stalls mid-frame is disconnected. Default 10 s.
    pub frame_read_timeout: Duration,
    /// How long writing one frame into QUIC may stay blocked by the peer's flow control before
    /// the peer is disconnected as stalled. Default 10 s.
    pub write_stall_timeout: Duration,
    /// Most frames queued for one peer. A peer whose queue overflows is disconnected. Default 1024.
    pub send_queue_frames: usize,
    /// Most bytes queued for one peer (at least one maximal frame is always accepted).
    /// Default 4 MiB.
    pub send_queue_bytes: usize,
    /// On a graceful close, how long to wait for the peer to read what was queued. Default 2 s.
    pub flush_timeout: Duration,
    /// How long [`NodeHandle::shutdown`](crate::NodeHandle::shutdown) waits for send queues to
    /// drain and connections to close. Default 3 s.
    pub shutdown_timeout: Duration,
    /// QUIC idle timeout: a connection that hears nothing for this long is closed. Default 15 s.
    pub idle_timeout: Duration,
    /// QUIC keep-alive interval (keeps idle connections and NAT bindings open). Default 5 s.
    pub keep_alive_interval: Option<Duration>,
    /// Most incoming connections in their handshake at once; more are refused. Default 64.
    pub max_pending_handshakes: usize,
    /// Most outgoing dials in flight at once; more fail at once. Default 64.
    pub max_pending_dials: usize,
    /// When two connections to one peer race (both dialled at once), how long the losing one
    /// stays open, unused, before it is closed (the peer may not have seen the winner yet).
    /// Default 3 s.
    pub duplicate_grace: Duration,
    /// Deliveries buffered per subscriber; a slower subscriber loses its own oldest ones and is
    /// told how many. Default 1024.
    pub subscription_capacity: usize,
    /// Events buffered per [`NodeHandle::events`](crate::NodeHandle::events) receiver. Default 256.
    pub event_capacity: usize,
    /// Act as a reflector: tell every peer, right after the identity proofs, the address its
    /// connection comes from (it learns it as [`NodeEvent::AddressObserved`](crate::NodeEvent::AddressObserved)).
    /// Default false.
    pub reflector: bool,
    /// Network events (frames, connection changes) waiting for the node task. When full, the
    /// connections' readers wait, which back-pressures peers through QUIC flow control.
    /// Default 1024.
    pub inbox_capacity: usize,
    /// Application requests waiting for the node task. Default 256.
    pub request_capacity: usize,
    /// QUIC per-stream receive window, bytes. Default 1 MiB.
    pub stream_receive_window: u32,
    /// QUIC per-connection receive window, bytes. Default 2 MiB.
    pub connection_receive_window: u32,
    /// QUIC per-connection send window, bytes. Default 2 MiB.
    pub send_window: u32,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            dial_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            frame_read_timeout: Duration::from_secs(10),
            write_stall_timeout: Duration::from_secs(10),
            send_queue_frames: 1024,
            send_queue_bytes: 4 << 20,
            flush_timeout: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(15),
            keep_alive_interval: Some(Duration::from_secs(5)),
            max_pending_handshakes: 64,
            max_pending_dials: 64,
            duplicate_grace: Duration::from_secs(3),
            subscription_capacity: 1024,
            event_capacity: 256,
            reflector: false,
            inbox_capacity: 1024,
            request_capacity: 256,
            stream_receive_window: 1 << 20,
            connection_receive_window: 2 << 20,
            send_window: 2 << 20,
        }
    }
}

impl TransportConfig {
    /// Every capacity raised to its smallest workable value (a zero capacity would make a
    /// channel panic or a queue refuse everything).
    pub(crate) fn sanitized(mut self) -> Self {
        self.send_queue_frames = self.send_queue_frames.max(1);
        self.send_queue_bytes = self.send_queue_bytes.max(hearsay_proto::MAX_FRAME_LEN + 4);
        self.max_pending_handshakes = self.max_pending_handshakes.max(1);
        self.max_pending_dials = self.max_pending_dials.max(1);
        self.subscription_capacity = self.subscription_capacity.max(1);
        self.event_capacity = self.event_capacity.max(1);
        self.inbox_capacity = self.inbox_capacity.max(1);
        self.request_capacity = self.request_capacity.max(1);
        let min_window = (hearsay_proto::MAX_FRAME_LEN as u32) + 4;
        self.stream_receive_window = self.stream_receive_window.max(min_window);
        self.connection_receive_window = self
            .connection_receive_window
            .max(self.stream_receive_window);
        self.send_window = self.send_window.max(min_window);
        self
    }
}
