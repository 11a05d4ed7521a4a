//! IP networks (`10.0.0.0/8`, or one address): what a trunk's source ACL and the guard's trusted
//! sources are made of.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network (`10.0.0.0/8`) or a single address (`192.0.2.7`, a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix_len: u8,
}

/// Why a text is not a [`Cidr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    BadAddress,
    /// The prefix length is not a number within 0..=32 (IPv4) or 0..=128 (IPv6); the field is the
    /// largest length allowed.
    BadPrefixLength(u8),
    /// The address has bits set after the prefix length (`10.0.0.1/8`).
    HostBits,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadAddress => f.write_str("bad address"),
            Self::BadPrefixLength(max) => write!(f, "prefix length must be 0..={max}"),
            Self::HostBits => f.write_str("host bits are set after the prefix length"),
        }
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// The network of `addr` with `prefix_len` leading bits; `None` when the length is too long for
    /// the address family or the address has bits set after it.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let net = Self { addr, prefix_len };
        (prefix_len <= max && net.masked(addr) == Some(addr)).then_some(net)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` is inside the network (IPv4-mapped IPv6 addresses match IPv4 networks).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        self.masked(ip) == Some(self.addr)
    }

    /// `ip` with the bits after the prefix length cleared; `None` when it is of the other family.
    fn masked(&self, ip: IpAddr) -> Option<IpAddr> {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(a)) => Some(IpAddr::from(Ipv4Addr::from(mask32(
                u32::from(a),
                self.prefix_len,
            )))),
            (IpAddr::V6(_), IpAddr::V6(a)) => Some(IpAddr::from(Ipv6Addr::from(mask128(
                u128::from(a),
                self.prefix_len,
            )))),
            _ => None,
        }
    }
}

fn mask32(v: u32, len: u8) -> u32 {
    match 32u32.checked_sub(u32::from(len)) {
        Some(32) | None => 0,
        Some(shift) => v & (u32::MAX << shift),
    }
}

fn mask128(v: u128, len: u8) -> u128 {
    match 128u32.checked_sub(u32::from(len)) {
        Some(128) | None => 0,
        Some(shift) => v & (u128::MAX << shift),
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `addr` or `addr/len`, spaces around either part allowed.
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let addr: IpAddr = ip.trim().parse().map_err(|_| CidrError::BadAddress)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            None => max,
            Some(l) => match l.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(CidrError::BadPrefixLength(max)),
            },
        };
        Self::new(addr, prefix_len).ok_or(CidrError::HostBits)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_table() {
        type Case = (&'static str, Result<(&'static str, u8), CidrError>);
        let cases: [Case; 12] = [
            ("10.0.0.0/8", Ok(("10.0.0.0", 8))),
            ("192.0.2.7", Ok(("192.0.2.7", 32))),
            (" 192.0.2.0 / 24 ", Ok(("192.0.2.0", 24))),
            ("0.0.0.0/0", Ok(("0.0.0.0", 0))),
            ("2001:db8::/32", Ok(("2001:db8::", 32))),
            ("2001:db8::1", Ok(("2001:db8::1", 128))),
            ("::/0", Ok(("::", 0))),
            ("10.0.0.1/8", Err(CidrError::HostBits)),
            ("10.0.0.0/33", Err(CidrError::BadPrefixLength(32))),
            ("2001:db8::/129", Err(CidrError::BadPrefixLength(128))),
            ("10.0.0.0/x", Err(CidrError::BadPrefixLength(32))),
            ("host.example/8", Err(CidrError::BadAddress)),
        ];
        for (text, want) in cases {
            let got = text.parse::<Cidr>().map(|c| (c.addr(), c.prefix_len()));
            assert_eq!(got, want.map(|(a, l)| (ip(a), l)), "{text}");
        }
        assert_eq!(
            CidrError::HostBits.to_string(),
            "host bits are set after the prefix length"
        );
        assert_eq!(
            CidrError::BadPrefixLength(32).to_string(),
            "prefix length must be 0..=32"
        );
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
    }

    #[test]
    fn contains_table() {
        let cases = [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.0", false),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("198.51.100.0/24", "::ffff:198.51.100.77", true),
            ("198.51.100.0/24", "::ffff:198.51.101.77", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "2001:db8::1", true),
            ("2001:db8::/32", "192.0.2.1", false),
        ];
        for (net, addr, want) in cases {
            let c: Cidr = net.parse().unwrap();
            assert_eq!(c.contains(ip(addr)), want, "{net} ∋ {addr}");
        }
    }

    #[test]
    fn new_checks_length_and_host_bits() {
        assert!(Cidr::new(ip("10.0.0.0"), 8).is_some());
        assert!(Cidr::new(ip("10.0.0.0"), 33).is_none());
        assert!(Cidr::new(ip("10.1.0.0"), 8).is_none());
        assert!(Cidr::new(ip("::"), 128).is_some());
    }
}
