//! Privacy: who may read what (SPEC.md §17).
//!
//! - [`envelope`]: a per-message content key wrapped for each reader with ML-KEM-768, the
//!   content sealed with ChaCha20-Poly1305 (§17.1–17.6);
//! - [`access`]: access records naming a message's readers, and revocation (§17.7);
//! - [`fetch_guard`]: fetch authorisation, the challenge a reader answers to prove it holds a
//!   slot before an author hands it the content (§17.8);
//! - [`fetch`]: the fetch exchange, serving and fetching contents ([`fetch::FetchExchange`], a
//!   state machine), its wire messages and announcements (frame kind 6, §17.10);
//! - [`group`]: groups for large audiences: the operation log, keys and key packages (§17.9).

pub mod access;
pub mod envelope;
pub mod fetch;
pub mod fetch_guard;
pub mod group;
