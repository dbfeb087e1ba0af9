//! Errors and the QUIC application close codes (SPEC.md §20.7).

use crate::tls::TlsSetupError;
use hearsay_proto::{NodeError, PeerId, RecordError};
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// The QUIC application error codes a hearsay peer closes a connection with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u32)]
pub enum CloseCode {
    /// A graceful close (the core asked for it, or the peer finished its stream).
    Normal = 0,
    /// The loser of two simultaneous connections between the same pair of peers.
    Duplicate = 1,
    /// The identity proof was malformed, late, or did not verify.
    BadProof = 2,
    /// A dial pinned to one peer id reached another.
    WrongPeer = 3,
    /// The connection leads to the node itself.
    SelfConnection = 4,
    /// The connection limit was reached.
    Limit = 5,
    /// A length prefix exceeded the frame limit.
    FrameTooLarge = 6,
    /// A frame stalled mid-way for longer than the read timeout.
    ReadTimeout = 7,
    /// The peer did not read its frames fast enough (send queue overflow or write stall).
    SlowPeer = 8,
    /// The node is shutting down.
    Shutdown = 9,
    /// The peer broke the stream rules (reset its stream, truncated a frame).
    Protocol = 10,
}

impl CloseCode {
    /// The code as a QUIC varint.
    pub fn to_varint(self) -> quinn::VarInt {
        quinn::VarInt::from_u32(self as u32)
    }

    /// The code a peer closed with, if it is one of ours.
    pub fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            0 => CloseCode::Normal,
            1 => CloseCode::Duplicate,
            2 => CloseCode::BadProof,
            3 => CloseCode::WrongPeer,
            4 => CloseCode::SelfConnection,
            5 => CloseCode::Limit,
            6 => CloseCode::FrameTooLarge,
            7 => CloseCode::ReadTimeout,
            8 => CloseCode::SlowPeer,
            9 => CloseCode::Shutdown,
            10 => CloseCode::Protocol,
            _ => return None,
        })
    }

    /// A short reason phrase, sent with the close.
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "bye",
            CloseCode::Duplicate => "duplicate connection",
            CloseCode::BadProof => "bad identity proof",
            CloseCode::WrongPeer => "wrong peer",
            CloseCode::SelfConnection => "connection to self",
            CloseCode::Limit => "connection limit",
            CloseCode::FrameTooLarge => "frame too large",
            CloseCode::ReadTimeout => "frame read timeout",
            CloseCode::SlowPeer => "slow peer",
            CloseCode::Shutdown => "shutting down",
            CloseCode::Protocol => "protocol violation",
        }
    }
}

/// Closes `conn` with `code` and its reason phrase.
pub(crate) fn close(conn: &quinn::Connection, code: CloseCode) {
    conn.close(code.to_varint(), code.reason().as_bytes());
}

/// Why a connection was refused before it reached the core.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The QUIC/TLS handshake failed.
    Tls(String),
    /// The handshake or the identity proof did not complete in time.
    Timeout,
    /// The identity proof was malformed.
    MalformedProof(&'static str),
    /// The record in the proof did not verify.
    BadRecord(RecordError),
    /// The channel-binding signature did not verify.
    BadSignature,
    /// A dial pinned to `expected` reached `found`.
    WrongPeer {
        /// The id the dial was pinned to.
        expected: PeerId,
        /// The id the peer proved.
        found: PeerId,
    },
    /// The connection leads to this node itself.
    SelfConnection,
    /// The connection or handshake limit was reached.
    Limit,
    /// The connection was lost during the handshake.
    Lost(String),
}

impl Refusal {
    /// The close code that tells the peer about this refusal.
    pub(crate) fn code(&self) -> CloseCode {
        match self {
            Refusal::Tls(_) | Refusal::Lost(_) => CloseCode::Protocol,
            Refusal::Timeout
            | Refusal::MalformedProof(_)
            | Refusal::BadRecord(_)
            | Refusal::BadSignature => CloseCode::BadProof,
            Refusal::WrongPeer { .. } => CloseCode::WrongPeer,
            Refusal::SelfConnection => CloseCode::SelfConnection,
            Refusal::Limit => CloseCode::Limit,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Tls(e) => write!(f, "QUIC/TLS handshake failed: {e}"),
            Refusal::Timeout => f.write_str("handshake or identity proof timed out"),
            Refusal::MalformedProof(what) => write!(f, "malformed identity proof: {what}"),
            Refusal::BadRecord(e) => write!(f, "identity proof carries a bad record: {e}"),
            Refusal::BadSignature => f.write_str("channel-binding signature does not verify"),
            Refusal::WrongPeer { expected, found } => write!(
                f,
                "expected peer {}, but the peer proved {}",
                expected.short(),
                found.short()
            ),
            Refusal::SelfConnection => f.write_str("the address leads to this node itself"),
            Refusal::Limit => f.write_str("connection limit reached"),
            Refusal::Lost(e) => write!(f, "connection lost during the handshake: {e}"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Why a dial failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialError {
    /// None of the peer's addresses is a socket address this driver can dial.
    NoAddress,
    /// Too many dials in flight.
    Busy,
    /// The last address tried did not answer within the dial timeout.
    Timeout {
        /// The address.
        addr: SocketAddr,
    },
    /// The last address tried could not be dialled (unreachable, refused, local error).
    Connect {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        error: String,
    },
    /// The last address tried answered, but its identity proof was refused.
    Refused {
        /// The address.
        addr: SocketAddr,
        /// Why.
        refusal: Refusal,
    },
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialError::NoAddress => f.write_str("no dialable address (IP:PORT) known"),
            DialError::Busy => f.write_str("too many dials in flight"),
            DialError::Timeout { addr } => write!(f, "{addr} did not answer in time"),
            DialError::Connect { addr, error } => write!(f, "cannot connect to {addr}: {error}"),
            DialError::Refused { addr, refusal } => write!(f, "{addr} refused: {refusal}"),
        }
    }
}

impl std::error::Error for DialError {}

/// Why a node could not be started.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpawnError {
    /// `spawn` was called outside a tokio runtime.
    NoRuntime,
    /// The UDP socket could not be bound (for example, the port is in use).
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// The TLS configuration could not be built.
    Tls(TlsSetupError),
    /// The core refused the configuration.
    Node(NodeError),
    /// The operating system's random number generator failed.
    Random(String),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NoRuntime => f.write_str("spawn() must be called inside a tokio runtime"),
            SpawnError::Bind { addr, source } if source.kind() == io::ErrorKind::AddrInUse => {
                write!(
                    f,
                    "cannot bind UDP {addr}: the port is already in use ({source})"
                )
            }
            SpawnError::Bind { addr, source } => write!(f, "cannot bind UDP {addr}: {source}"),
            SpawnError::Tls(e) => write!(f, "{e}"),
            SpawnError::Node(e) => write!(f, "the node refused its configuration: {e}"),
            SpawnError::Random(e) => write!(f, "the OS random number generator failed: {e}"),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpawnError::Bind { source, .. } => Some(source),
            SpawnError::Tls(e) => Some(e),
            SpawnError::Node(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a request to a running node failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The node has shut down (or its task ended).
    Closed,
    /// The core refused the command (not subscribed, payload too large, ...).
    Node(NodeError),
    /// Too many publishes are already waiting for the peers' send queues to drain (see
    /// [`MAX_PENDING_PUBLISHES`](crate::MAX_PENDING_PUBLISHES)); try again later.
    Backlogged,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("the node has shut down"),
            Error::Node(e) => write!(f, "{e}"),
            Error::Backlogged => f.write_str(
                "too many publishes are waiting for slow peers' send queues; try again later",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Node(e) => Some(e),
            Error::Closed | Error::Backlogged => None,
        }
    }
}

impl From<NodeError> for Error {
    fn from(e: NodeError) -> Self {
        Error::Node(e)
    }
}
