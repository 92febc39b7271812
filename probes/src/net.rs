//! IP networks (`10.0.0.0/8`, `fd00::/8`, a bare address): for allow-lists of where Lookout
//! may connect (`LOOKOUT_TARGET_NETWORKS`, checked by `domain::reach` for the hosts a target
//! names and by the Kafka wire client for the brokers a cluster advertises) and for trusted
//! proxies.

use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network (`addr/prefix`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`, as a dual-stack socket reports IPv4 peers) as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or network"))?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0–{max}"))?,
        };
        Ok(Network { addr, prefix })
    }
}

/// Parses a comma-separated list of networks.
pub fn parse_networks(s: &str) -> Result<Vec<Network>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Network::from_str)
        .collect()
}

/// Whether `ip` may be reached: no list means anywhere.
pub fn allowed(networks: &[Network], ip: IpAddr) -> bool {
    networks.is_empty() || networks.iter().any(|n| n.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_contain() {
        let n = parse_networks("10.0.0.0/8, 192.168.1.7,fd00::/8").unwrap();
        assert_eq!(n.len(), 3);
        assert!(n[0].contains("10.200.3.4".parse().unwrap()));
        assert!(!n[0].contains("11.0.0.1".parse().unwrap()));
        assert!(n[1].contains("192.168.1.7".parse().unwrap()));
        assert!(!n[1].contains("192.168.1.8".parse().unwrap()));
        assert!(n[2].contains("fd12::1".parse().unwrap()));
        assert!(n[0].contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(parse_networks("10.0.0.0/33").is_err());
        assert!(parse_networks("fd00::/129").is_err());
        assert!(parse_networks("example.com").is_err());
        assert!(
            "0.0.0.0/0"
                .parse::<Network>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }
}
