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

/// Non-public IPv4 space: every row of IANA's IPv4 Special-Purpose Address Registry that is
/// not globally reachable (`tests/data/iana/`, checked by the `iana_registries` test), plus
/// multicast (224.0.0.0/4, its own registry). Whole blocks are refused even where the registry
/// lists a globally reachable anycast address inside them (192.0.0.9, 192.0.0.10): no webhook
/// receiver lives there.
const V4_NON_PUBLIC: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// Non-public IPv6 space: every row of IANA's IPv6 Special-Purpose Address Registry that is not
/// globally reachable (False, N/A or terminated), plus multicast and the deprecated
/// site-local and IPv4-compatible blocks. `::ffff:0:0/96` (IPv4-mapped) and `::ffff:0:0:0/96`
/// (IPv4-translated) are refused whole, as the registry says, and so are Teredo (inside
/// `2001::/23`) and 6to4 (`2002::/16`, reachability N/A): an IPv4 destination is written as
/// IPv4. `64:ff9b::/96` (globally reachable NAT64) is judged by the IPv4 address it embeds.
const V6_NON_PUBLIC: &[&str] = &[
    "::/96",
    "::ffff:0:0/96",
    "::ffff:0:0:0/96",
    "64:ff9b:1::/48",
    "100::/64",
    "100:0:0:1::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

fn table(rows: &[&str]) -> Vec<IpNet> {
    rows.iter()
        .map(|r| r.parse().expect("the guard's own CIDR table parses"))
        .collect()
}

static V4_TABLE: std::sync::LazyLock<Vec<IpNet>> =
    std::sync::LazyLock::new(|| table(V4_NON_PUBLIC));
static V6_TABLE: std::sync::LazyLock<Vec<IpNet>> =
    std::sync::LazyLock::new(|| table(V6_NON_PUBLIC));

/// Whether an address is outside the public unicast internet.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_non_public(v4),
        IpAddr::V6(v6) => v6_non_public(v6),
    }
}

fn v4_non_public(ip: Ipv4Addr) -> bool {
    let ip = IpAddr::V4(ip);
    V4_TABLE.iter().any(|n| n.contains(&ip))
}

fn v6_non_public(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Globally reachable NAT64 64:ff9b::/96 carries an IPv4 address: that address decides.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return v4_non_public(Ipv4Addr::new(a, b, c, d));
    }
    let ip = IpAddr::V6(ip);
    V6_TABLE.iter().any(|n| n.contains(&ip))
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
            "2002:808:808::1",
            "::ffff:8.8.8.8",
            "::ffff:0:808:808",
            "64:ff9b:1::808:808",
            "100::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "3fff::1",
            "5f00::1",
            "fec0::1",
            "ff02::1",
            "192.88.99.1",
        ] {
            assert!(is_non_public(a.parse().unwrap()), "{a}");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
            "2620:4f:8000::1",
            "2a00:1450:4001::1",
            "192.0.1.1",
        ] {
            assert!(!is_non_public(a.parse().unwrap()), "{a}");
        }
    }

    /// Addresses of `net`: first, last and a spread between them.
    fn samples(net: IpNet) -> Vec<IpAddr> {
        let (first, last) = (net.network(), net.broadcast());
        let (lo, hi) = match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b))),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b)),
            _ => unreachable!("one family per net"),
        };
        let span = hi - lo;
        [
            0,
            1,
            span / 7,
            span / 3,
            span / 2,
            span - span / 5,
            span.saturating_sub(1),
            span,
        ]
        .into_iter()
        .map(|off| lo + off.min(span))
        .map(|n| match first {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap())),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
        })
        .collect()
    }

    /// Every block of IANA's IPv4 and IPv6 Special-Purpose Address Registries that is not
    /// globally reachable (`False`, `N/A`, or blank for a terminated row) is refused, read
    /// from the registries' own CSV downloads (`tests/data/iana/SOURCE.md`).
    #[test]
    fn iana_registries() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/iana");
        let mut checked = 0;
        for file in [
            "iana-ipv4-special-registry.csv",
            "iana-ipv6-special-registry.csv",
        ] {
            let mut rdr = csv::Reader::from_path(dir.join(file)).unwrap();
            let headers = rdr.headers().unwrap().clone();
            let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
            let (block, reachable) = (col("Address Block"), col("Globally Reachable"));
            for row in rdr.records() {
                let row = row.unwrap();
                if row[reachable].trim() == "True" {
                    continue;
                }
                for cidr in row[block].split(',') {
                    // Footnote markers: "192.0.0.0/24 [2]".
                    let cidr = cidr.split_whitespace().next().unwrap();
                    let net: IpNet = cidr.parse().unwrap_or_else(|e| panic!("{cidr}: {e}"));
                    for ip in samples(net) {
                        assert!(is_non_public(ip), "{file}: {cidr}: {ip} is allowed");
                        assert!(AddressGuard::strict(vec![]).check(ip).is_err());
                    }
                    checked += 1;
                }
            }
        }
        // 16 + 16 non-global blocks in the committed registries.
        assert!(checked >= 30, "only {checked} blocks read");
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
