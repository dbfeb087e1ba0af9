//! Finding people: friends-of-friends queries and presence beacons.
//!
//! - [`foaf`]: queries for a peer's record or a capability, forwarded with a TTL along the
//!   overlay and answered along the reverse path (SPEC.md §18);
//! - [`presence`]: sealed, signed beacons on a group's secret topic, telling its members who is
//!   online (SPEC.md §19).

pub mod foaf;
pub mod presence;
