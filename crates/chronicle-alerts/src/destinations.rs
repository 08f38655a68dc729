//! Where webhooks may send patient data: HTTPS to a public address, unless the operator names
//! a destination in the allow-list (`--webhook-allow`). Checked when a webhook is registered,
//! and again for every connection: the dispatcher's resolver hands the HTTP client only
//! vetted addresses, so a name that later resolves to an internal address (DNS rebinding)
//! reaches nothing.

use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Why a destination is refused, in words for the administrator who registered it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("the webhook URL is not an absolute URL with a host")]
    NotAUrl,
    #[error("webhooks are sent over https only (plain http only to an allow-listed destination)")]
    NotHttps,
    #[error(
        "the webhook's host is a loopback, private, link-local or otherwise internal address; \
         only an operator's allow-list (--webhook-allow) opens such a destination"
    )]
    Internal,
}

/// Destinations the operator allows beyond public HTTPS: host names (optionally with a port)
/// and networks; they may be plain http and internal.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    hosts: Vec<(String, Option<u16>)>,
    networks: Vec<IpNet>,
}

impl Destinations {
    /// Parses `--webhook-allow`: comma-separated `host`, `host:port`, IP addresses and CIDR
    /// networks (`10.20.0.0/16`, `[::1]`).
    pub fn parse(list: &str) -> Result<Destinations, String> {
        let mut allowed = Destinations::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(network) = entry.parse::<IpNet>() {
                allowed.networks.push(network);
            } else if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
                allowed.networks.push(IpNet::from(ip));
            } else {
                let (host, port) = match entry.rsplit_once(':') {
                    Some((host, port)) => (
                        host,
                        Some(port.parse::<u16>().map_err(|_| {
                            format!("{entry:?} is not a host, host:port, address or network")
                        })?),
                    ),
                    None => (entry, None),
                };
                allowed.hosts.push((host.to_ascii_lowercase(), port));
            }
        }
        Ok(allowed)
    }

    fn allows_host(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        self.hosts
            .iter()
            .any(|(h, p)| *h == host && p.is_none_or(|p| Some(p) == port))
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// Whether a webhook may be registered for, and sent to, `url` as far as its text says
    /// (the addresses a name resolves to are vetted at connection time).
    pub fn check(&self, url: &str) -> Result<Url, DestinationError> {
        let parsed = Url::parse(url).map_err(|_| DestinationError::NotAUrl)?;
        // A name's trailing dot (the absolute form) names the same host.
        let host = parsed
            .host_str()
            .ok_or(DestinationError::NotAUrl)?
            .trim_end_matches('.');
        let port = parsed.port_or_known_default();
        // The URL parser writes every IP spelling (decimal, hex, bracketed IPv6) canonically.
        let literal = host.trim_matches(['[', ']']).parse::<IpAddr>().ok();
        let allowed = match literal {
            Some(ip) => self.allows_ip(ip) || self.allows_host(host, port),
            None => self.allows_host(host, port),
        };
        match parsed.scheme() {
            "https" => {}
            "http" if allowed => {}
            "http" => return Err(DestinationError::NotHttps),
            _ => return Err(DestinationError::NotAUrl),
        }
        let internal_name = host == "localhost" || host.ends_with(".localhost");
        if !allowed && (internal_name || literal.is_some_and(|ip| !is_public(ip))) {
            return Err(DestinationError::Internal);
        }
        Ok(parsed)
    }

    /// The resolver the dispatcher's HTTP client uses: a name's addresses, less those it may
    /// not reach.
    pub fn resolver(self: &Arc<Self>) -> Arc<VettedResolver> {
        Arc::new(VettedResolver {
            allowed: Arc::clone(self),
        })
    }
}

/// Resolves names with the system resolver and keeps only the addresses a webhook may reach.
#[derive(Debug)]
pub struct VettedResolver {
    allowed: Arc<Destinations>,
}

impl Resolve for VettedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = Arc::clone(&self.allowed);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let host_allowed = allowed.allows_host(&host, None);
            let vetted: Vec<SocketAddr> = found
                .filter(|a| host_allowed || allowed.allows_ip(a.ip()) || is_public(a.ip()))
                .collect();
            if vetted.is_empty() {
                return Err(Box::new(DestinationError::Internal)
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(vetted.into_iter()) as Addrs)
        })
    }
}

/// Whether `ip` is an address on the public internet: not loopback, private, link-local,
/// unspecified, multicast, broadcast, shared (CGNAT), documentation, benchmarking or reserved,
/// also when written as an IPv4-mapped or NAT64 IPv6 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || in_v6(v6, "fec0::/10")
                || in_v6(v6, "2001:db8::/32")
                || in_v6(v6, "::/96"))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || [
            "0.0.0.0/8",
            "100.64.0.0/10",
            "192.0.0.0/24",
            "198.18.0.0/15",
            "240.0.0.0/4",
        ]
        .iter()
        .any(|net| net.parse::<ipnet::Ipv4Net>().is_ok_and(|n| n.contains(&ip))))
}

fn in_v6(ip: Ipv6Addr, network: &str) -> bool {
    network
        .parse::<ipnet::Ipv6Net>()
        .is_ok_and(|n| n.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_and_plain_destinations_are_refused_unless_allowed() {
        let none = Destinations::default();
        for url in [
            "http://example.org/hook",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://localhost/",
            "https://api.localhost/",
            "https://169.254.169.254/latest/meta-data",
            "https://10.1.2.3/",
            "https://192.168.0.10/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://[fd00::1]/",
            "ftp://example.org/",
            "not a url",
        ] {
            assert!(none.check(url).is_err(), "{url} is accepted");
        }
        assert!(none.check("https://hooks.example.org/chronicle").is_ok());
        assert!(none.check("https://93.184.215.14/").is_ok());

        let allowed = Destinations::parse("127.0.0.1, receiver.internal:8443, 10.20.0.0/16")
            .expect("allow-list");
        assert!(allowed.check("http://127.0.0.1:9000/hook").is_ok());
        assert!(allowed.check("http://receiver.internal:8443/").is_ok());
        assert!(allowed.check("http://receiver.internal:9999/").is_err());
        assert!(allowed.check("https://10.20.3.4/").is_ok());
        assert!(allowed.check("https://10.21.0.1/").is_err());
        assert!(Destinations::parse("host:notaport").is_err());
        assert!(none.check("https://localhost./").is_err());
    }

    /// The resolver is what stops a public-looking name that resolves to an internal address
    /// (DNS rebinding): the connection never gets such an address.
    #[tokio::test]
    async fn names_resolving_to_internal_addresses_reach_nothing() {
        let none = Arc::new(Destinations::default());
        let name: Name = "localhost".parse().expect("a name");
        assert!(none.resolver().resolve(name).await.is_err());
        let allowed = Arc::new(Destinations::parse("127.0.0.1").expect("allow-list"));
        let name: Name = "localhost".parse().expect("a name");
        let addresses: Vec<SocketAddr> = allowed
            .resolver()
            .resolve(name)
            .await
            .expect("allowed")
            .collect();
        assert!(
            addresses
                .iter()
                .all(|a| a.ip() == IpAddr::from([127, 0, 0, 1])),
            "{addresses:?}"
        );
        assert!(!addresses.is_empty());
    }
}
