//! Who the client is, and what the backend is told about it:
//! `X-Forwarded-For`, `X-Forwarded-Proto` and (opt-in) RFC 7239 `Forwarded`.
//!
//! What a client says about itself is believed only from a peer in
//! `[server] trusted_proxies`. From any other peer the three fields are
//! dropped and rebuilt, so a client cannot make the backend (or a plugin's
//! rate limit) see another address. From a trusted peer the client is the
//! nearest address in `X-Forwarded-For` that is not itself trusted, and the
//! chain is kept, with the peer appended, as one comma-separated field.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName, HeaderValue};
use ipnet::IpNet;

/// `X-Forwarded-For`.
pub const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// What the request's hops said, as far as they are believed.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// The connection's peer.
    pub peer: SocketAddr,
    /// The client: the peer, or the address a trusted peer forwarded for.
    pub client: SocketAddr,
    /// The scheme the client used with this host: "https" on the TLS
    /// listener, else "http" (set by the caller; `take` starts with "http").
    pub scheme: &'static str,
    /// A trusted peer's `X-Forwarded-For` chain (comma-joined).
    chain: Option<String>,
    /// A trusted peer's `X-Forwarded-Proto`.
    proto: Option<String>,
    /// A trusted peer's `Forwarded` elements (comma-joined).
    forwarded: Option<String>,
}

fn trusted(ip: IpAddr, nets: &[IpNet]) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

/// Every field line of `name`, comma-joined (RFC 9110 §5.3), if any is text.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let parts: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

impl Forwarding {
    /// Read (and remove) the forwarding fields of a request from `peer`.
    pub fn take(peer: SocketAddr, headers: &mut HeaderMap, nets: &[IpNet]) -> Self {
        let mut this = Self {
            peer,
            client: peer,
            scheme: "http",
            chain: None,
            proto: None,
            forwarded: None,
        };
        // Most requests carry none of the three: one pass over the names,
        // with no hashing, instead of six lookups.
        if !headers
            .keys()
            .any(|n| *n == XFF || *n == XFP || *n == FORWARDED)
        {
            return this;
        }
        let believed = trusted(peer.ip(), nets);
        let chain = joined(headers, &XFF).filter(|_| believed);
        let proto = joined(headers, &XFP).filter(|_| believed);
        let forwarded = joined(headers, &FORWARDED).filter(|_| believed);
        headers.remove(XFF);
        headers.remove(XFP);
        headers.remove(FORWARDED);
        if let Some(c) = &chain {
            // From the nearest hop outwards: the first address not trusted
            // is the client; a malformed entry ends what can be believed.
            for hop in c.rsplit(',').map(str::trim) {
                let Ok(ip) = hop.parse::<IpAddr>() else { break };
                this.client = SocketAddr::new(ip, 0);
                if !trusted(ip, nets) {
                    break;
                }
            }
        }
        this.chain = chain;
        this.proto = proto;
        this.forwarded = forwarded;
        this
    }

    /// Set the fields a backend is sent: `X-Forwarded-For` (the believed
    /// chain and the peer, one field), `X-Forwarded-Proto`, and with
    /// `forwarded` also `Forwarded`.
    pub fn apply(&self, headers: &mut HeaderMap, scheme: &str, forwarded: bool) {
        let peer = self.peer.ip().to_string();
        let xff = match &self.chain {
            Some(c) => format!("{c}, {peer}"),
            None => peer,
        };
        let proto = self.proto.as_deref().unwrap_or(scheme);
        if let Ok(v) = HeaderValue::from_str(&xff) {
            headers.insert(XFF, v);
        }
        if let Ok(v) = HeaderValue::from_str(proto) {
            headers.insert(XFP, v);
        }
        if forwarded {
            let node = match self.peer.ip() {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("\"[{ip}]\""),
            };
            let element = format!("for={node};proto={scheme}");
            let value = match &self.forwarded {
                Some(prior) => format!("{prior}, {element}"),
                None => element,
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(FORWARDED, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_client() {
        let peer: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        let mut h = headers(&[(&XFF, "1.2.3.4"), (&XFP, "https")]);
        let f = Forwarding::take(peer, &mut h, &[]);
        assert_eq!(f.client, peer);
        assert!(h.get(&XFF).is_none() && h.get(&XFP).is_none());
        let mut out = HeaderMap::new();
        f.apply(&mut out, "http", true);
        assert_eq!(out[&XFF], "198.51.100.7");
        assert_eq!(out[&XFP], "http");
        assert_eq!(out[FORWARDED], "for=198.51.100.7;proto=http");
    }

    #[test]
    fn a_trusted_chain_is_joined_and_names_the_nearest_untrusted_hop() {
        let nets: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let mut h = headers(&[
            (&XFF, "203.0.113.9, 192.0.2.1"),
            (&XFF, "10.1.1.1"),
            (&XFP, "https"),
            (&FORWARDED, "for=192.0.2.1"),
        ]);
        let f = Forwarding::take(peer, &mut h, &nets);
        // 10.1.1.1 is trusted; 192.0.2.1 is not: it is the client, not the
        // spoofable leftmost entry.
        assert_eq!(f.client.ip().to_string(), "192.0.2.1");
        let mut out = HeaderMap::new();
        f.apply(&mut out, "http", true);
        assert_eq!(out.get_all(&XFF).iter().count(), 1);
        assert_eq!(out[&XFF], "203.0.113.9, 192.0.2.1, 10.1.1.1, 10.0.0.2");
        assert_eq!(out[&XFP], "https");
        assert_eq!(out[FORWARDED], "for=192.0.2.1, for=10.0.0.2;proto=http");
    }

    #[test]
    fn a_malformed_hop_ends_the_believed_chain_and_v6_is_quoted() {
        let nets: Vec<IpNet> = vec!["::1/128".parse().unwrap()];
        let peer: SocketAddr = "[::1]:80".parse().unwrap();
        let mut h = headers(&[(&XFF, "192.0.2.5, junk")]);
        let f = Forwarding::take(peer, &mut h, &nets);
        assert_eq!(f.client, peer);
        let mut out = HeaderMap::new();
        f.apply(&mut out, "http", true);
        assert_eq!(out[FORWARDED], "for=\"[::1]\";proto=http");
    }
}
