//! Who the client is: the socket's peer or, when the peer is one of
//! `TRUSTED_PROXIES`, the address it forwards in `X-Forwarded-For`; and the
//! key an address is counted under (an IPv6 client by its network). The
//! throttle, the `Origin` rule and the sessions' recorded address all ask
//! here.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use actix_web::HttpRequest;

/// An address or CIDR range allowed to set `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr.to_canonical(), ip.to_canonical()) {
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

fn trusted(proxies: &[IpNet], ip: IpAddr) -> bool {
    proxies.iter().any(|net| net.contains(ip))
}

/// The client's address (canonical: a v4-mapped address as IPv4): the
/// socket's peer or, when the peer is a trusted proxy, the rightmost
/// `X-Forwarded-For` entry that is not a trusted proxy. When that entry
/// cannot be read, the peer: never an entry further left, which the
/// client may have written.
pub fn client_ip(req: &HttpRequest, proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    if !trusted(proxies, peer) {
        return Some(peer);
    }
    let values: Vec<Option<&str>> = req
        .headers()
        .get_all("x-forwarded-for")
        .map(|value| value.to_str().ok())
        .collect();
    for value in values.into_iter().rev() {
        let Some(value) = value else {
            return Some(peer);
        };
        for entry in value.rsplit(',') {
            match forwarded_address(entry) {
                None => return Some(peer),
                Some(ip) if trusted(proxies, ip) => {}
                Some(ip) => return Some(ip),
            }
        }
    }
    Some(peer)
}

/// Whether the peer is one of `TRUSTED_PROXIES` (whose forwarded headers
/// are believed).
pub fn is_trusted_proxy(req: &HttpRequest, proxies: &[IpNet]) -> bool {
    req.peer_addr()
        .is_some_and(|peer| trusted(proxies, peer.ip().to_canonical()))
}

/// One `X-Forwarded-For` entry as an address: `ip`, `ip:port`, `[ipv6]` or
/// `[ipv6]:port`, canonical.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

/// The key of an address's bucket: an IPv4 address (also when v4-mapped),
/// or the IPv6 network of `ipv6_prefix` bits (`THROTTLE_IPV6_PREFIX`), so
/// that one host's /64 is one client.
pub fn network_key(ip: IpAddr, ipv6_prefix: u8) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let prefix = ipv6_prefix.min(128);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            let net = Ipv6Addr::from(u128::from(v6) & mask);
            format!("{net}/{prefix}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    #[test]
    fn ipv6_is_keyed_by_its_network_and_v4_mapped_as_ipv4() {
        assert_eq!(network_key(ip("2001:db8:1:2::1"), 64), "2001:db8:1:2::/64");
        assert_eq!(
            network_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 64),
            "2001:db8:1:2::/64"
        );
        assert_eq!(network_key(ip("2001:db8:1:3::1"), 64), "2001:db8:1:3::/64");
        assert_eq!(network_key(ip("::ffff:203.0.113.9"), 64), "203.0.113.9");
        assert_eq!(network_key(ip("203.0.113.9"), 64), "203.0.113.9");
        assert_eq!(network_key(ip("2001:db8::1"), 128), "2001:db8::1/128");
        assert_eq!(network_key(ip("2001:db8::1"), 0), "::/0");
        assert_eq!(network_key(ip("2001:db8:1:2::1"), 48), "2001:db8:1::/48");
    }

    #[test]
    fn forwarded_entries_are_read_with_or_without_a_port() {
        assert_eq!(forwarded_address(" 203.0.113.8 "), Some(ip("203.0.113.8")));
        assert_eq!(
            forwarded_address("203.0.113.8:5555"),
            Some(ip("203.0.113.8"))
        );
        assert_eq!(
            forwarded_address("[2001:db8::1]:443"),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(forwarded_address("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(forwarded_address("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(forwarded_address("::ffff:1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(
            forwarded_address("[::ffff:1.2.3.4]:80"),
            Some(ip("1.2.3.4"))
        );
        for unreadable in [
            "",
            "unknown",
            "203.0.113.8:port",
            "[2001:db8::1",
            "1.2.3.4.5",
        ] {
            assert_eq!(forwarded_address(unreadable), None, "{unreadable:?}");
        }
    }

    fn request(peer: &str, forwarded: &[&str]) -> HttpRequest {
        let mut req = actix_web::test::TestRequest::default().peer_addr(peer.parse().unwrap());
        for value in forwarded {
            req = req.append_header(("x-forwarded-for", *value));
        }
        req.to_http_request()
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_entry_or_the_peer() {
        let trusted = [
            IpNet {
                addr: ip("127.0.0.1"),
                prefix: 32,
            },
            IpNet {
                addr: ip("10.0.0.0"),
                prefix: 8,
            },
        ];
        let client = |peer: &str, forwarded: &[&str]| {
            client_ip(&request(peer, forwarded), &trusted)
                .unwrap()
                .to_string()
        };
        // an untrusted peer's header is not believed
        assert_eq!(client("192.0.2.1:1", &["203.0.113.1"]), "192.0.2.1");
        assert_eq!(client("127.0.0.1:1", &[]), "127.0.0.1");
        assert_eq!(
            client("127.0.0.1:1", &["6.6.6.6, 203.0.113.8:5555"]),
            "203.0.113.8"
        );
        assert_eq!(
            client("127.0.0.1:1", &["6.6.6.6, [2001:db8::8]:443"]),
            "2001:db8::8"
        );
        // trusted hops are skipped
        assert_eq!(
            client("127.0.0.1:1", &["6.6.6.6, 203.0.113.8, 10.1.1.1:80"]),
            "203.0.113.8"
        );
        assert_eq!(
            client("127.0.0.1:1", &["6.6.6.6", "203.0.113.8", "10.1.1.1"]),
            "203.0.113.8"
        );
        // an unreadable rightmost untrusted entry: the peer, not what is left of it
        assert_eq!(client("127.0.0.1:1", &["6.6.6.6, garbage"]), "127.0.0.1");
        assert_eq!(
            client("127.0.0.1:1", &["6.6.6.6, garbage, 10.0.0.1"]),
            "127.0.0.1"
        );
        assert_eq!(client("127.0.0.1:1", &["6.6.6.6", "garbage"]), "127.0.0.1");
        assert_eq!(client("127.0.0.1:1", &["6.6.6.6,"]), "127.0.0.1");
        // only proxies: the peer
        assert_eq!(client("127.0.0.1:1", &["10.0.0.1"]), "127.0.0.1");
        // v4-mapped: the peer matches TRUSTED_PROXIES, entries come out as IPv4
        assert_eq!(
            client("[::ffff:127.0.0.1]:1", &["::ffff:203.0.113.8"]),
            "203.0.113.8"
        );
        assert_eq!(
            client("[::ffff:192.0.2.1]:1", &["203.0.113.8"]),
            "192.0.2.1"
        );
        // the full address is kept (the bucket is what takes the /64)
        assert_eq!(client("127.0.0.1:1", &["2001:db8::1:2"]), "2001:db8::1:2");
        assert!(is_trusted_proxy(
            &request("[::ffff:127.0.0.1]:1", &[]),
            &trusted
        ));
        assert!(!is_trusted_proxy(&request("192.0.2.1:1", &[]), &trusted));
    }
}
