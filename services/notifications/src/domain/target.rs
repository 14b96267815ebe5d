//! Where a webhook may point: https (http only to loopback in development mode), no user info,
//! and no private, link-local or otherwise internal address unless it is allow-listed, so that a
//! subscription cannot make the service call into the cluster (SSRF). The addresses are checked
//! when the subscription is made and again on every delivery (after DNS resolution).

use std::net::IpAddr;

use reqwest::Url;

/// An allow-listed network, e.g. `10.20.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has no valid prefix length"))?
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
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

/// The rules for webhook targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Development mode (`zvv up`): http and loopback addresses are allowed.
    pub development: bool,
    /// Internal networks that may be called all the same.
    pub allowed: Vec<Network>,
}

fn internal(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
            {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || o[0] >= 240
            {
                Some("not a unicast address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            let first = seg[0];
            // NAT64 (64:ff9b::/96), 6to4 (2002::/16), IPv4-compatible (::/96) and Teredo
            // (2001::/32) carry an IPv4 address that may be internal
            let embeds_v4 = (seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0])
                || first == 0x2002
                || (seg[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified())
                || (first == 0x2001 && seg[1] == 0);
            if embeds_v4 {
                Some("an address that embeds an IPv4 address")
            } else if v6.is_loopback() {
                Some("a loopback address")
            } else if (first & 0xfe00) == 0xfc00 {
                Some("a private address")
            } else if (first & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("not a unicast address")
            } else {
                None
            }
        }
    }
}

impl TargetPolicy {
    /// Checks the URL's form (not its addresses): https, or http in development mode; a host;
    /// no user info; at most 2,048 characters.
    pub fn check_url(&self, text: &str) -> Result<Url, String> {
        if text.len() > 2048 {
            return Err("must be at most 2048 characters".into());
        }
        let url = Url::parse(text).map_err(|_| "must be an absolute http(s) URL".to_owned())?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must name a host".into());
        }
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if self.development && loopback => {}
            "http" => {
                return Err("must use https (http only to loopback in development mode)".into());
            }
            _ => return Err("must be an https URL".into()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry user info; use the authorization field".into());
        }
        if url.fragment().is_some() {
            return Err("must not have a fragment".into());
        }
        Ok(url)
    }

    /// Whether a delivery may connect to `ip`.
    pub fn check_addr(&self, ip: IpAddr) -> Result<(), String> {
        if self.allowed.iter().any(|n| n.contains(ip)) {
            return Ok(());
        }
        match internal(ip) {
            None => Ok(()),
            Some("a loopback address") if self.development => Ok(()),
            Some(why) => Err(format!(
                "resolves to {why}, which is refused unless allow-listed"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let strict = TargetPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "::10.0.0.1",
            "198.18.0.1",
            "224.0.0.1",
        ] {
            assert!(strict.check_addr(ip.parse().unwrap()).is_err(), "{ip}");
        }
        assert!(strict.check_addr("93.184.216.34".parse().unwrap()).is_ok());
        assert!(strict.check_addr("2a00:1450::1".parse().unwrap()).is_ok());
        let dev = TargetPolicy {
            development: true,
            allowed: vec![Network::parse("10.20.0.0/16").unwrap()],
        };
        assert!(dev.check_addr("127.0.0.1".parse().unwrap()).is_ok());
        assert!(dev.check_addr("10.20.3.4".parse().unwrap()).is_ok());
        assert!(dev.check_addr("10.21.3.4".parse().unwrap()).is_err());
        assert!(dev.check_addr("169.254.169.254".parse().unwrap()).is_err());
    }

    #[test]
    fn urls_are_https_without_user_info() {
        let strict = TargetPolicy::default();
        assert!(strict.check_url("https://hooks.example.org/zvv").is_ok());
        assert!(strict.check_url("http://hooks.example.org/zvv").is_err());
        assert!(
            strict
                .check_url("https://user:pw@hooks.example.org/")
                .is_err()
        );
        assert!(strict.check_url("ftp://hooks.example.org/").is_err());
        assert!(strict.check_url("/relative").is_err());
        let dev = TargetPolicy {
            development: true,
            ..Default::default()
        };
        assert!(dev.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(dev.check_url("http://hooks.example.org/zvv").is_err());
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("nope").is_err());
    }
}
