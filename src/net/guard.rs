//! SSRF guard: which addresses a webhook may reach.
//!
//! A destination is refused when it resolves to loopback, private, link-local (which holds
//! the cloud metadata address 169.254.169.254), carrier-grade NAT, multicast, reserved or
//! otherwise non-public space — IPv4 embedded in IPv6 (mapped, NAT64, 6to4) included — unless
//! an allow-list CIDR covers it. The check runs on the resolved addresses, at connect time,
//! so a DNS answer that changes between check and use cannot slip through; IP-literal hosts
//! are checked before the request.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use ipnet::IpNet;

/// Which destinations are allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressGuard {
    /// Everything allowed (Crossbar on a private PBX network).
    pub permissive: bool,
    /// Non-public ranges allowed anyway.
    pub allow: Vec<IpNet>,
}

/// A refused destination.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("destination address {0} is not public and not allow-listed")]
pub struct Forbidden(pub IpAddr);

impl AddressGuard {
    /// A guard that allows every address.
    pub fn permissive() -> Self {
        Self {
            permissive: true,
            allow: Vec::new(),
        }
    }

    /// A strict guard with an allow-list.
    pub fn strict(allow: Vec<IpNet>) -> Self {
        Self {
            permissive: false,
            allow,
        }
    }

    /// Whether `ip` may be reached.
    ///
    /// # Errors
    /// [`Forbidden`] for a non-public address outside the allow-list.
    pub fn check(&self, ip: IpAddr) -> Result<(), Forbidden> {
        if self.permissive || !is_non_public(ip) || self.allow.iter().any(|n| n.contains(&ip)) {
            Ok(())
        } else {
            Err(Forbidden(ip))
        }
    }
}

/// Whether an address is outside the public unicast internet.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_non_public(v4),
        IpAddr::V6(v6) => v6_non_public(v6),
    }
}

fn v4_non_public(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF 192.0.0/24
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240 // reserved 240/4
}

fn v6_non_public(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_non_public(v4);
    }
    // NAT64 64:ff9b::/96 and 6to4 2002::/16 carry an IPv4 address.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return v4_non_public(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    if s[0] == 0x2002 {
        return v4_non_public(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::/96
}

/// A resolver for hyper's connector that drops forbidden addresses (and fails when none is
/// left).
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    guard: Arc<AddressGuard>,
}

impl GuardedResolver {
    /// A resolver applying `guard`.
    pub fn new(guard: Arc<AddressGuard>) -> Self {
        Self { guard }
    }
}

type Addrs = std::vec::IntoIter<SocketAddr>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = Addrs;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Addrs, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::task::spawn_blocking(move || (host.as_str(), 0).to_socket_addrs())
                    .await
                    .map_err(std::io::Error::other)??
                    .collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match guard.check(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused = Some(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(e)) => {
                    Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))
                }
                _ => Ok(allowed.into_iter()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_ranges() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:c0a8:101::1",
        ] {
            assert!(is_non_public(a.parse().unwrap()), "{a}");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_non_public(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn allow_list_and_permissive() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(AddressGuard::strict(vec![]).check(lo), Err(Forbidden(lo)));
        assert!(AddressGuard::strict(vec!["127.0.0.1/32".parse().unwrap()])
            .check(lo)
            .is_ok());
        assert!(AddressGuard::permissive().check(lo).is_ok());
        assert!(AddressGuard::strict(vec![])
            .check("8.8.8.8".parse().unwrap())
            .is_ok());
    }
}
