//! The client's address: the TCP peer, or, when the peer is one of `server.trusted_proxies`,
//! the address that proxy names in `X-Forwarded-For` (the rightmost one not itself a trusted
//! proxy, since a client can put anything at the left of that header).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::Request;
use ipnet::IpNet;

/// The client address of `request`, or 0.0.0.0 when the connection's peer is unknown (a
/// request handed to the router in-process).
pub fn client_ip<B>(request: &Request<B>, trusted: &[IpNet]) -> IpAddr {
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    from_parts(
        peer,
        request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok()),
        trusted,
    )
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    trusted.iter().any(|net| net.contains(&ip))
}

fn from_parts<'a>(
    peer: IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).collect();
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            // Garbage the proxy passed on: trust nothing left of it.
            return peer;
        };
        if !is_trusted(ip, trusted) {
            return ip;
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_peer() {
        let proxy: IpAddr = "172.17.0.1".parse().unwrap();
        let stranger: IpAddr = "192.168.1.50".parse().unwrap();
        let trusted = nets(&["172.17.0.0/16"]);
        let header = ["203.0.113.9"];
        assert_eq!(
            from_parts(proxy, header.iter().copied(), &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            from_parts(stranger, header.iter().copied(), &trusted),
            stranger,
            "anyone else's header is ignored"
        );
        assert_eq!(from_parts(proxy, header.iter().copied(), &[]), proxy);
    }

    #[test]
    fn a_spoofed_left_part_is_skipped() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        // The client wrote "1.2.3.4" itself; the proxy appended the address it saw.
        let header = ["1.2.3.4, 198.51.100.7", "10.0.0.3"];
        assert_eq!(
            from_parts(proxy, header.iter().copied(), &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            from_parts(proxy, ["nonsense"].iter().copied(), &trusted),
            proxy
        );
    }
}
