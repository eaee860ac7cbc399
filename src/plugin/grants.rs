//! Capability grants of one plugin (`dns`, `kv`, `connect`, `http` in its
//! `[[plugins]]` entry): what the plugin may use beyond its session. The
//! default is nothing. Grants are checked when the config is read (a
//! malformed one names its key and position) and travel with the loaded
//! chain, so a reload with new grants applies to new sessions.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// Longest bucket name.
pub const MAX_BUCKET_NAME: usize = 64;

/// The parsed grants of one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// `dns = true`: the `dns` interface answers.
    pub dns: bool,
    /// `kv = ["bucket", ...]`: the buckets the plugin may use.
    pub kv: Vec<String>,
    /// `connect = ["127.0.0.1:783", "10.0.0.0/8:25", "[::1]:783"]`: TCP
    /// destinations (address or network, and port) of `wasi:sockets`.
    pub connect: Vec<ConnectGrant>,
    /// `http = ["http://127.0.0.1:11333"]`: origins of `wasi:http`
    /// outgoing requests.
    pub http: Vec<HttpOrigin>,
}

impl Grants {
    /// Whether the plugin may use `bucket`.
    pub fn kv_bucket(&self, bucket: &str) -> bool {
        self.kv.iter().any(|b| b == bucket)
    }

    /// Whether the plugin may open a TCP connection to `addr`.
    pub fn connect_to(&self, addr: SocketAddr) -> bool {
        self.connect.iter().any(|g| g.allows(addr))
    }

    /// Whether the plugin may send an HTTP request to this origin.
    pub fn http_to(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.http.iter().any(|o| o.matches(scheme, host, port))
    }
}

/// One `connect` entry: an address or network and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectGrant {
    /// The addresses allowed.
    pub net: IpNet,
    /// The port allowed.
    pub port: u16,
}

impl ConnectGrant {
    /// Parses `ip:port`, `cidr:port`, `[v6]:port` or `[v6/len]:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid connect grant {s:?}: expected \"ip:port\", \"cidr:port\" or \"[ipv6]:port\""
            )
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 {
            return Err(format!("invalid connect grant {s:?}: port 0"));
        }
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let net = match host.parse::<IpNet>() {
            Ok(n) => n.trunc(),
            Err(_) => IpNet::from(host.parse::<IpAddr>().map_err(|_| bad())?),
        };
        Ok(Self { net, port })
    }

    /// Whether `addr` is within this grant.
    pub fn allows(&self, addr: SocketAddr) -> bool {
        let ip = match addr.ip() {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        addr.port() == self.port && self.net.contains(&ip)
    }
}

/// One `http` entry: an origin (scheme, host, port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOrigin {
    /// `http` or `https`.
    pub scheme: String,
    /// IP address, as written (IPv6 without brackets).
    pub host: String,
    /// Port (the scheme's default when not written).
    pub port: u16,
}

impl HttpOrigin {
    /// Parses `http://host[:port]` or `https://host[:port]` (a trailing `/`
    /// is allowed; no path, query, user info or fragment).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid http origin {s:?}: {why}");
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad("expected \"http://host[:port]\""))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad("an origin has a host and a port only, no path"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = match after {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad("invalid port"))?,
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("invalid port"))?),
                None => (rest.to_string(), default_port),
            }
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        if !host_ok || port == 0 {
            return Err(bad("invalid host or port"));
        }
        // The gateway never asks the system resolver, and wasi:http would
        // resolve a name there: origins are addresses.
        if host.parse::<std::net::IpAddr>().is_err() {
            return Err(bad(
                "the host must be an IP address (names would need the system resolver, \
                 which the gateway never uses)",
            ));
        }
        Ok(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether a request to `scheme://host:port` is to this origin.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let same_ip = match (
            self.host.parse::<std::net::IpAddr>(),
            host.parse::<std::net::IpAddr>(),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        self.scheme.eq_ignore_ascii_case(scheme) && same_ip && self.port == port
    }
}

/// Checks a bucket name: 1 to [`MAX_BUCKET_NAME`] of `A-Z a-z 0-9 _ . -`.
pub fn check_bucket(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_BUCKET_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid bucket name {name:?}: 1 to {MAX_BUCKET_NAME} letters, digits, '_', '.' or '-'"
        ))
    }
}

/// Parses the raw grant keys of a `[[plugins]]` entry. The error names the
/// key (`kv[1]`, `connect[0]`, `http[2]`) and what is wrong.
pub fn parse(
    dns: bool,
    kv: &[String],
    connect: &[String],
    http: &[String],
) -> Result<Grants, (String, String)> {
    let mut g = Grants {
        dns,
        ..Grants::default()
    };
    for (i, b) in kv.iter().enumerate() {
        check_bucket(b).map_err(|m| (format!("kv[{i}]"), m))?;
        if g.kv.contains(b) {
            return Err((format!("kv[{i}]"), format!("bucket {b:?} is listed twice")));
        }
        g.kv.push(b.clone());
    }
    for (i, c) in connect.iter().enumerate() {
        g.connect
            .push(ConnectGrant::parse(c).map_err(|m| (format!("connect[{i}]"), m))?);
    }
    for (i, h) in http.iter().enumerate() {
        g.http
            .push(HttpOrigin::parse(h).map_err(|m| (format!("http[{i}]"), m))?);
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_grants() {
        let g = ConnectGrant::parse("127.0.0.1:783").unwrap();
        assert!(g.allows("127.0.0.1:783".parse().unwrap()));
        assert!(!g.allows("127.0.0.1:784".parse().unwrap()));
        assert!(!g.allows("127.0.0.2:783".parse().unwrap()));
        let g = ConnectGrant::parse("10.0.0.0/8:25").unwrap();
        assert!(g.allows("10.1.2.3:25".parse().unwrap()));
        let g = ConnectGrant::parse("[::1]:783").unwrap();
        assert!(g.allows("[::1]:783".parse().unwrap()));
        for bad in [
            "127.0.0.1",
            "127.0.0.1:0",
            "host:25",
            "1.2.3.4:x",
            "[::1:783",
        ] {
            assert!(ConnectGrant::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_origins() {
        let o = HttpOrigin::parse("http://127.0.0.1:11333").unwrap();
        assert!(o.matches("http", "127.0.0.1", 11333));
        assert!(!o.matches("https", "127.0.0.1", 11333));
        assert!(!o.matches("http", "127.0.0.1", 80));
        let o = HttpOrigin::parse("https://192.0.2.7/").unwrap();
        assert!(o.matches("https", "192.0.2.7", 443));
        assert!(!o.matches("https", "scanner.example", 443));
        let o = HttpOrigin::parse("http://[::1]:8080").unwrap();
        assert!(o.matches("http", "[::1]", 8080));
        for bad in [
            "ftp://x",
            "http://",
            "http://x/path",
            "127.0.0.1:80",
            "http://u@x",
            "https://Scanner.example/",
            "http://localhost:8080",
        ] {
            assert!(HttpOrigin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_names_the_key() {
        let err = parse(false, &["ok".into(), "bad name".into()], &[], &[]).unwrap_err();
        assert_eq!(err.0, "kv[1]");
        let err = parse(false, &[], &["nope".into()], &[]).unwrap_err();
        assert_eq!(err.0, "connect[0]");
        let g = parse(true, &["grey".into()], &["127.0.0.1:783".into()], &[]).unwrap();
        assert!(g.dns && g.kv_bucket("grey") && !g.kv_bucket("other"));
    }
}
