//! The client's address, for rate limits and the authentication events: the TCP peer, which a
//! client cannot forge. Only when the peer is a proxy the operator named
//! (`--http-trusted-proxies`) does `X-Forwarded-For` count: its entries are read from the
//! right (the ones the trusted proxies appended) and the first that is not itself a trusted
//! proxy is the client. Anything left of that was written by the client and is ignored.

use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

const FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address; `None` when the server was not given the peer (a router driven
/// without a listener), which the rate limits treat as one client.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientAddress(peer.map(|peer| {
            client_behind(peer, &parts.headers, &state.trusted_proxies)
        })))
    }
}

/// The client a request came from, given its TCP peer.
fn client_behind(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    let trusted = |a: &IpAddr| trusted_proxies.iter().any(|t| canonical(*t) == *a);
    let peer = canonical(peer);
    if !trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in forwarded.into_iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(address) => {
                client = canonical(address);
                if !trusted(&client) {
                    break;
                }
            }
            // Garbage from here leftwards: the nearest address named so far stands.
            Err(_) => break,
        }
    }
    client
}

/// IPv4 seen through an IPv6 socket (`::ffff:a.b.c.d`) as plain IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(FORWARDED_FOR, value.parse().expect("header value"));
        headers
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_headers_say() {
        let headers = forwarded("203.0.113.9");
        assert_eq!(
            client_behind(ip("198.51.100.1"), &headers, &[]),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_address_is_the_client() {
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        // The client forged the first entry; the proxies appended the rest.
        let headers = forwarded("1.2.3.4, 203.0.113.9, 10.0.0.2");
        assert_eq!(
            client_behind(ip("10.0.0.1"), &headers, &proxies),
            ip("203.0.113.9")
        );
        // A peer that is not a trusted proxy is believed over its header.
        assert_eq!(
            client_behind(ip("198.51.100.1"), &headers, &proxies),
            ip("198.51.100.1")
        );
        // Nothing usable: the proxy itself.
        assert_eq!(
            client_behind(ip("10.0.0.1"), &forwarded("garbage"), &proxies),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_behind(ip("::ffff:10.0.0.1"), &forwarded("203.0.113.9"), &proxies),
            ip("203.0.113.9")
        );
    }
}
