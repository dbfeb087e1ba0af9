//! Addresses: how the driver names a socket address to the core (the UTF-8 text of a
//! [`SocketAddr`]), and the bootstrap peer syntax `ADDR` / `PEERID@ADDR`.

use hearsay_proto::id::ParseIdError;
use hearsay_proto::{Address, PeerId};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// The core's opaque [`Address`] for a socket address: its text form, e.g. `127.0.0.1:4433` or
/// `[::1]:4433` (at most 47 bytes, well within the core's 128-byte limit).
pub fn address_from_socket(addr: SocketAddr) -> Address {
    // A SocketAddr's text form is never longer than an Address may be.
    Address::new(addr.to_string().into_bytes()).unwrap_or_else(|_| Address::default())
}

/// The socket address an [`Address`] names, if it is the text form of one. Addresses from
/// other drivers (or garbage in a peer's record) give `None` and are skipped when dialling.
pub fn socket_from_address(address: &Address) -> Option<SocketAddr> {
    std::str::from_utf8(address.as_bytes()).ok()?.parse().ok()
}

/// A peer to join through: `ADDR` (learn the peer's id from its identity proof) or
/// `PEERID@ADDR` (refuse anyone else at that address).
///
/// ```
/// use hearsay_tokio::BootstrapPeer;
///
/// let open: BootstrapPeer = "127.0.0.1:4433".parse().unwrap();
/// assert_eq!(open.peer(), None);
/// let id = "ab".repeat(32);
/// let pinned: BootstrapPeer = format!("{id}@[::1]:4433").parse().unwrap();
/// assert_eq!(pinned.peer().unwrap().to_string(), id);
/// assert_eq!(pinned.to_string(), format!("{id}@[::1]:4433"));
/// assert!("not-an-address".parse::<BootstrapPeer>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BootstrapPeer {
    peer: Option<PeerId>,
    addr: SocketAddr,
}

impl BootstrapPeer {
    /// A peer known only by its address: whoever proves an identity there is accepted.
    pub fn open(addr: SocketAddr) -> Self {
        Self { peer: None, addr }
    }

    /// A peer pinned to `peer`: a connection to `addr` that proves another id is refused.
    pub fn pinned(peer: PeerId, addr: SocketAddr) -> Self {
        Self {
            peer: Some(peer),
            addr,
        }
    }

    /// The pinned id, if any.
    pub fn peer(&self) -> Option<PeerId> {
        self.peer
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl fmt::Display for BootstrapPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.peer {
            Some(peer) => write!(f, "{peer}@{}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// Why a bootstrap peer did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseBootstrapError {
    /// The part before `@` is not a peer id (64 hex digits).
    PeerId(ParseIdError),
    /// The address is not `IP:PORT` (IPv6 in brackets).
    Address(String),
}

impl fmt::Display for ParseBootstrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseBootstrapError::PeerId(e) => write!(f, "bad peer id before '@': {e}"),
            ParseBootstrapError::Address(a) => write!(
                f,
                "bad address {a:?}: expected IP:PORT, e.g. 192.0.2.7:4433 or [2001:db8::7]:4433"
            ),
        }
    }
}

impl std::error::Error for ParseBootstrapError {}

impl FromStr for BootstrapPeer {
    type Err = ParseBootstrapError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (peer, addr) = match s.split_once('@') {
            Some((id, addr)) => (
                Some(id.parse::<PeerId>().map_err(ParseBootstrapError::PeerId)?),
                addr,
            ),
            None => (None, s),
        };
        let addr = addr
            .parse::<SocketAddr>()
            .map_err(|_| ParseBootstrapError::Address(addr.to_string()))?;
        Ok(Self { peer, addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_the_core_form() {
        for text in ["127.0.0.1:4433", "[::1]:9", "[fe80::1%7]:65535"] {
            let addr: SocketAddr = text.parse().unwrap();
            let core = address_from_socket(addr);
            assert_eq!(core.as_bytes(), addr.to_string().as_bytes());
            assert_eq!(socket_from_address(&core), Some(addr));
        }
        assert_eq!(
            socket_from_address(&Address::new(b"\xff\xfe".to_vec()).unwrap()),
            None
        );
        assert_eq!(
            socket_from_address(&Address::new(b"node-7".to_vec()).unwrap()),
            None
        );
    }

    #[test]
    fn bootstrap_peers_parse_both_forms_and_refuse_garbage() {
        let id = PeerId::from_bytes([0xab; 32]);
        let p: BootstrapPeer = format!(" {id}@127.0.0.1:1 ").parse().unwrap();
        assert_eq!(p, BootstrapPeer::pinned(id, "127.0.0.1:1".parse().unwrap()));
        let upper = id.to_string().to_uppercase();
        assert_eq!(
            format!("{upper}@127.0.0.1:1")
                .parse::<BootstrapPeer>()
                .unwrap(),
            p
        );
        assert!(matches!(
            "abc@127.0.0.1:1".parse::<BootstrapPeer>(),
            Err(ParseBootstrapError::PeerId(ParseIdError::WrongLength(3)))
        ));
        assert!(matches!(
            format!("{id}@localhost:1").parse::<BootstrapPeer>(),
            Err(ParseBootstrapError::Address(_))
        ));
        assert!("127.0.0.1".parse::<BootstrapPeer>().is_err());
        assert!("".parse::<BootstrapPeer>().is_err());
        assert!("@127.0.0.1:1".parse::<BootstrapPeer>().is_err());
        let e = "x".parse::<BootstrapPeer>().unwrap_err().to_string();
        assert!(e.contains("IP:PORT"), "{e}");
    }
}
