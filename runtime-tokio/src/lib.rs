//! # hearsay-tokio
//!
//! The tokio driver for [`hearsay_proto::Node`]: real sockets, a real clock, and a QUIC transport
//! (quinn) with post-quantum key exchange and ML-DSA-65 identities.
//!
//! - **One task owns the node.** It feeds the core frames, connection changes, timeouts and the
//!   application's commands, and carries out what the core asks (send, dial, hang up). Connection
//!   tasks talk to it over bounded channels; there is no lock around the core and no protocol
//!   logic in the driver.
//! - **One QUIC connection per neighbour.** TLS 1.3 with X25519MLKEM768 as the only key exchange
//!   group, ALPN `hearsay/1`, self-signed certificates; the peer's identity is proven after the
//!   handshake by an ML-DSA-65 signature over the connection's TLS exporter secret (channel
//!   binding), made by the key its [`PeerRecord`](hearsay_proto::PeerRecord) names. Frames
//!   travel length-prefixed on one unidirectional stream per direction. SPEC.md §20 is the
//!   normative description.
//! - **Bounded everywhere.** Each peer has its own send queue (a slow peer is disconnected, not
//!   waited for), each subscriber its own delivery buffer (a slow subscriber loses its own oldest
//!   deliveries and is told), and every map is capped ([`TransportConfig`]).
//!
//! Start a node with [`NodeBuilder`]; talk to it through the [`NodeHandle`] it returns.
//!
//! ```
//! use hearsay_proto::TopicId;
//! use hearsay_tokio::{NodeBuilder, Received, default_config, generate_identity};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = default_config();
//! let localhost = "127.0.0.1:0".parse()?;
//! let alice = NodeBuilder::new(generate_identity(&*config.crypto)?)
//!     .bind(localhost)
//!     .spawn()?;
//! let bob = NodeBuilder::new(generate_identity(&*config.crypto)?)
//!     .bind(localhost)
//!     .bootstrap([alice.bootstrap_peer()]) // PEERID@127.0.0.1:PORT
//!     .spawn()?;
//!
//! let topic = TopicId::from_name("greetings");
//! let _alice_inbox = alice.subscribe(topic).await?;
//! let mut bob_inbox = bob.subscribe(topic).await?;
//! // Wait until the two have found each other in the topic's overlay.
//! for node in [&alice, &bob] {
//!     while node.inspect(move |v| v.topic_neighbors(&topic).is_empty()).await? {
//!         tokio::time::sleep(Duration::from_millis(20)).await;
//!     }
//! }
//!
//! let id = alice.publish(topic, "hello, bob").await?;
//! match tokio::time::timeout(Duration::from_secs(10), bob_inbox.recv()).await? {
//!     Some(Received::Message(m)) => {
//!         assert_eq!((m.id, m.author, &m.payload[..]), (id, alice.peer_id(), &b"hello, bob"[..]));
//!     }
//!     other => panic!("expected the message, got {other:?}"),
//! }
//! bob.shutdown().await;
//! alice.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable
    )
)]

mod addr;
mod builder;
mod clock;
mod config;
mod conn;
mod counters;
#[cfg(feature = "aws-lc")]
mod crypto;
mod driver;
mod error;
mod handle;
mod proof;
pub mod tls;

pub use addr::{BootstrapPeer, ParseBootstrapError, address_from_socket, socket_from_address};
pub use builder::{NodeBuilder, default_config};
pub use clock::{MonotonicClock, SystemTimeSource, TimeSource, timestamp_from_system_time};
pub use config::TransportConfig;
pub use counters::TransportCounters;
#[cfg(feature = "aws-lc")]
pub use crypto::AwsLcProvider;
pub use driver::MAX_PENDING_PUBLISHES;
pub use error::{CloseCode, DialError, Error, Refusal, SpawnError};
pub use handle::{Delivery, Events, Neighbor, NodeEvent, NodeHandle, Received, Subscription};
pub use proof::{BINDING_LEN, CHANNEL_BINDING_DOMAIN, EXPORTER_LABEL, MAX_PROOF_LEN};

/// The quinn crate this driver is built on (for [`NodeBuilder::socket`]).
pub use quinn;

use hearsay_proto::{CryptoProvider, Identity, IdentitySeeds};

/// A new identity from the operating system's random number generator, its keys expanded with
/// `crypto`. Keep [`Identity::seeds`] somewhere safe to be the same peer after a restart.
pub fn generate_identity(crypto: &dyn CryptoProvider) -> Result<Identity, SpawnError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 96]);
    getrandom::fill(bytes.as_mut()).map_err(|e| SpawnError::Random(e.to_string()))?;
    Ok(Identity::from_seeds(
        crypto,
        IdentitySeeds::from_bytes(&bytes),
    ))
}
