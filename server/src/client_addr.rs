//! Who is on the other end: the client address used by the per-address sign-in throttle and
//! written to the audit log.
//!
//! `X-Forwarded-For` is written by whoever sends the request, so only the hops added by
//! proxies we trust mean anything. With `LOOKOUT_TRUSTED_PROXIES` unset the socket peer is
//! the client and the header is ignored. Otherwise the chain is the header's addresses (all
//! `X-Forwarded-For` headers, in order) followed by the socket peer, and it is walked from
//! the right, past the trusted proxies, to the first address that is not one of ours:
//! - a count `N`: the right-most `N` addresses of the chain are our proxies (the socket
//!   peer is the first of them), so the client is the `N+1`-th from the right;
//! - a list of networks (`10.0.0.0/8, 192.168.1.7, fd00::/8`): every address inside them is
//!   a proxy of ours.
//!
//! An entry that is not an IP address stops the walk: the last address vouched for by a
//! trusted proxy is used (never the forged text), and a chain shorter than the count ends at
//! its left-most address.

use axum::http::HeaderMap;
use domain::reach::{Network, canonical, parse_networks};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Which forwarded hops to believe (`LOOKOUT_TRUSTED_PROXIES`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TrustedProxies {
    /// Ignore forwarding headers: the socket peer is the client.
    #[default]
    None,
    /// This many proxies stand in front of Lookout.
    Hops(u8),
    /// Addresses in these networks are our proxies.
    Networks(Vec<Network>),
}

impl FromStr for TrustedProxies {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s == "0" || s.eq_ignore_ascii_case("none") {
            return Ok(TrustedProxies::None);
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= 20)
                .map(TrustedProxies::Hops)
                .ok_or_else(|| "a count of proxies must be 0–20".to_string());
        }
        Ok(TrustedProxies::Networks(parse_networks(s)?))
    }
}

/// The client address of a request (see the module docs).
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trusted: &TrustedProxies,
) -> String {
    let peer_ip = peer.map(|p| canonical(p.ip()));
    let Some(peer_ip) = peer_ip else {
        return String::new();
    };
    if *trusted == TrustedProxies::None {
        return peer_ip.to_string();
    }
    // The forwarded hops, left (the original client, as claimed) to right (the nearest).
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer_ip;
    let mut hops = hops.iter().rev();
    let mut walked: usize = 1; // the socket peer is the first hop from the right
    loop {
        let trusted_here = match trusted {
            TrustedProxies::None => false,
            TrustedProxies::Hops(n) => walked <= usize::from(*n),
            TrustedProxies::Networks(nets) => nets.iter().any(|n| n.contains(client)),
        };
        if !trusted_here {
            break;
        }
        // `client` is one of our proxies: believe the hop it added.
        match hops.next().map(|h| parse_hop(h)) {
            Some(Some(ip)) => {
                client = ip;
                walked += 1;
            }
            // A forged or broken entry, or the chain's end: stop at what we know.
            _ => break,
        }
    }
    client.to_string()
}

/// One X-Forwarded-For entry: an address, optionally with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_hop(h: &str) -> Option<IpAddr> {
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    h.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn parsing_the_setting() {
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::None));
        assert_eq!("0".parse::<TrustedProxies>(), Ok(TrustedProxies::None));
        assert_eq!("2".parse::<TrustedProxies>(), Ok(TrustedProxies::Hops(2)));
        assert!("99".parse::<TrustedProxies>().is_err());
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("fd00::/129".parse::<TrustedProxies>().is_err());
        assert!("proxy.example".parse::<TrustedProxies>().is_err());
        assert!(matches!(
            "10.0.0.0/8, 192.168.1.7,fd00::/8".parse::<TrustedProxies>(),
            Ok(TrustedProxies::Networks(n)) if n.len() == 3
        ));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let peer: SocketAddr = "10.0.0.2:5555".parse().unwrap();
        let nets: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        type Case<'a> = (&'a [&'a str], TrustedProxies, &'a str);
        let cases: Vec<Case> = vec![
            // Not configured: the header is ignored, whatever it says.
            (&["203.0.113.9"], TrustedProxies::None, "10.0.0.2"),
            (&[], TrustedProxies::None, "10.0.0.2"),
            // One proxy: the hop it added, not the client-chosen left-most one.
            (
                &["1.1.1.1, 203.0.113.9"],
                TrustedProxies::Hops(1),
                "203.0.113.9",
            ),
            (&["203.0.113.9"], TrustedProxies::Hops(1), "203.0.113.9"),
            // Two proxies: the second from the right of the header.
            (
                &["1.1.1.1, 203.0.113.9, 10.0.0.7"],
                TrustedProxies::Hops(2),
                "203.0.113.9",
            ),
            // Several headers are one chain.
            (
                &["1.1.1.1", "203.0.113.9"],
                TrustedProxies::Hops(1),
                "203.0.113.9",
            ),
            // A chain shorter than the count ends at its left-most address.
            (&["203.0.113.9"], TrustedProxies::Hops(3), "203.0.113.9"),
            (&[], TrustedProxies::Hops(1), "10.0.0.2"),
            // A forged entry where a real one should be: stop at the last vouched-for address.
            (&["not-an-ip"], TrustedProxies::Hops(1), "10.0.0.2"),
            (&["203.0.113.9, evil"], TrustedProxies::Hops(2), "10.0.0.2"),
            (&["<script>"], TrustedProxies::Hops(1), "10.0.0.2"),
            // Ports are allowed in entries.
            (
                &["203.0.113.9:4711"],
                TrustedProxies::Hops(1),
                "203.0.113.9",
            ),
            (
                &["[2001:db8::1]:443"],
                TrustedProxies::Hops(1),
                "2001:db8::1",
            ),
            // Networks: walk left past every address of ours.
            (
                &["1.1.1.1, 203.0.113.9, 10.9.9.9"],
                nets.clone(),
                "203.0.113.9",
            ),
            (&["10.1.1.1, 10.9.9.9"], nets.clone(), "10.1.1.1"),
            (
                &["1.1.1.1, 203.0.113.9, 198.51.100.1"],
                nets.clone(),
                "198.51.100.1",
            ),
        ];
        for (headers, trusted, want) in cases {
            assert_eq!(
                client_ip(&xff(headers), Some(peer), &trusted),
                want,
                "{headers:?} with {trusted:?}"
            );
        }
        // A peer outside the trusted networks sent the header itself: ignored.
        let outside: SocketAddr = "198.51.100.7:1".parse().unwrap();
        assert_eq!(
            client_ip(&xff(&["203.0.113.9"]), Some(outside), &nets),
            "198.51.100.7"
        );
        // A dual-stack socket's IPv4-mapped peer is shown as IPv4.
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:80".parse().unwrap();
        assert_eq!(
            client_ip(&HeaderMap::new(), Some(mapped), &TrustedProxies::None),
            "127.0.0.1"
        );
    }
}
