//! Address groups (SPEC.md §13.7): the part of a connection's remote address that one operator
//! cannot cheaply vary. Identities cost one key generation, addresses in many networks do not,
//! so admission limits what one group may hold of a node's views.

use core::net::{IpAddr, SocketAddr};

/// The address group of a connection's remote end: the /24 of an IPv4 address, the /48 of an
/// IPv6 one (an IPv4-mapped IPv6 address counts as IPv4). Loopback addresses form a group per
/// address and port: on one machine every peer is local, and a test network of them must not
/// look like one operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddressGroup(u64);

impl AddressGroup {
    /// The group of a connection whose remote end is `remote`.
    pub fn of(remote: SocketAddr) -> Self {
        let port = u64::from(remote.port());
        let ip = match remote.ip() {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        Self(match ip {
            IpAddr::V4(v4) if v4.is_loopback() => {
                (1 << 60) | (u64::from(v4.to_bits()) << 16) | port
            }
            IpAddr::V4(v4) => (4 << 60) | u64::from(v4.to_bits() >> 8),
            IpAddr::V6(v6) if v6.is_loopback() => (2 << 60) | port,
            IpAddr::V6(v6) => (6 << 60) | (v6.to_bits() >> 80) as u64,
        })
    }

    /// A group given by number, for drivers with addresses of their own kind (the simulator's
    /// `subnets`): groups made this way never equal one made by [`AddressGroup::of`].
    pub const fn numbered(n: u32) -> Self {
        Self((8 << 60) | n as u64)
    }

    /// The group of an advertised address (a record's, or one a peer passed on): its text
    /// form `ip:port` or `[ipv6]:port`, as the drivers write them. `None` for any other form
    /// (a name, a relay path): such an entry is in no group.
    pub fn of_address(address: &[u8]) -> Option<Self> {
        let text = core::str::from_utf8(address).ok()?;
        text.parse::<SocketAddr>().ok().map(Self::of)
    }
}

/// Where an advertised address points (SPEC.md §20.1, "Dialling"): a node dials a loopback or
/// private address only where it could be reached from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AddressScope {
    /// 127.0.0.0/8, ::1: this machine.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 (shared), 169.254/16 and fe80::/10 (link-local),
    /// fc00::/7 (unique local): a local network.
    Private,
    /// Any other IP address.
    Public,
}

impl AddressScope {
    /// The scope of an advertised address in its text form (`ip:port`, `[ipv6]:port`);
    /// `None` for any other form.
    pub fn of_address(address: &[u8]) -> Option<Self> {
        let text = core::str::from_utf8(address).ok()?;
        let ip = match text.parse::<SocketAddr>().ok()?.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        Some(match ip {
            IpAddr::V4(v4) if v4.is_loopback() => Self::Loopback,
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                if v4.is_private() || v4.is_link_local() || (a == 100 && (64..128).contains(&b)) {
                    Self::Private
                } else {
                    Self::Public
                }
            }
            IpAddr::V6(v6) if v6.is_loopback() => Self::Loopback,
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80 {
                    Self::Private
                } else {
                    Self::Public
                }
            }
        })
    }
}

/// Whom a per-source budget is charged to (SPEC.md §13.7): the address group of the link a
/// request came on where the driver gave one (identities are free, addresses are not), else
/// the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// Every link from this address group.
    Group(AddressGroup),
    /// A link without a known group.
    Peer(crate::PeerId),
}

impl Source {
    /// The source of a request from `peer` over a link of `group`.
    pub fn of(group: Option<AddressGroup>, peer: crate::PeerId) -> Self {
        group.map_or(Self::Peer(peer), Self::Group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn address_scopes() {
        // Text parsed and classified only: nothing is sent anywhere, and no socket is opened.
        let scope = |t: &str| AddressScope::of_address(t.as_bytes());
        assert_eq!(scope("127.0.0.1:7000"), Some(AddressScope::Loopback));
        assert_eq!(scope("[::1]:7000"), Some(AddressScope::Loopback));
        assert_eq!(
            scope("[::ffff:127.0.0.1]:7000"),
            Some(AddressScope::Loopback)
        );
        for private in [
            "10.1.2.3:1",
            "172.16.0.1:1",
            "192.168.1.1:1",
            "100.64.0.1:1",
            "169.254.1.1:1",
            "[fd00:0:1::1]:7000",
            "[fe80::1]:1",
        ] {
            assert_eq!(scope(private), Some(AddressScope::Private), "{private}");
        }
        for public in [
            "198.18.0.1:1",
            "8.8.8.8:53",
            "100.128.0.1:1",
            "[2001:db8::1]:1",
        ] {
            assert_eq!(scope(public), Some(AddressScope::Public), "{public}");
        }
        assert_eq!(scope("relay/abc"), None);
    }

    fn v4(a: [u8; 4], port: u16) -> AddressGroup {
        AddressGroup::of(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port))
    }

    fn v6(segments: [u16; 8], port: u16) -> AddressGroup {
        let [a, b, c, d, e, f, g, h] = segments;
        AddressGroup::of(SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            port,
        ))
    }

    #[test]
    fn advertised_addresses_have_the_group_of_their_socket_address() {
        assert_eq!(
            AddressGroup::of_address(b"198.18.7.9:4433"),
            Some(v4([198, 18, 7, 200], 1))
        );
        assert_eq!(
            AddressGroup::of_address(b"[fd00:0:32::1:7]:7000"),
            Some(v6([0xfd00, 0, 0x32, 9, 0, 0, 0, 1], 2))
        );
        assert_eq!(AddressGroup::of_address(b"node-7"), None);
        assert_eq!(AddressGroup::of_address(b"\xff\xfe"), None);
    }

    #[test]
    fn ipv4_groups_are_slash_24s() {
        assert_eq!(v4([198, 18, 7, 1], 4433), v4([198, 18, 7, 200], 9));
        assert_ne!(v4([198, 18, 7, 1], 4433), v4([198, 18, 8, 1], 4433));
        assert_ne!(v4([198, 18, 7, 1], 4433), v4([199, 18, 7, 1], 4433));
    }

    #[test]
    fn ipv6_groups_are_slash_48s_and_mapped_ipv4_counts_as_ipv4() {
        let a = v6([0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 1], 1);
        assert_eq!(a, v6([0x2001, 0xdb8, 0x10, 0xffff, 7, 0, 0, 9], 2));
        assert_ne!(a, v6([0x2001, 0xdb8, 0x11, 1, 0, 0, 0, 1], 1));
        let mapped = Ipv4Addr::new(198, 18, 7, 1).to_ipv6_mapped();
        let m = AddressGroup::of(SocketAddr::new(IpAddr::V6(mapped), 5));
        assert_eq!(m, v4([198, 18, 7, 99], 6));
    }

    #[test]
    fn loopback_peers_are_each_their_own_group() {
        assert_ne!(v4([127, 0, 0, 1], 4000), v4([127, 0, 0, 1], 4001));
        assert_eq!(v4([127, 0, 0, 1], 4000), v4([127, 0, 0, 1], 4000));
        assert_ne!(
            v6([0, 0, 0, 0, 0, 0, 0, 1], 1),
            v6([0, 0, 0, 0, 0, 0, 0, 1], 2)
        );
        assert_ne!(AddressGroup::numbered(3), v4([0, 0, 0, 3], 0));
    }
}
