//! DNS lookups through the gateway's resolver (the `dns` interface).
//!
//! The operator grants DNS per plugin with `dns = true` in its `[[plugins]]`
//! entry; without the grant every call fails with [`DnsError::Refused`]
//! (never a trap), so a plugin decides itself what an unusable resolver
//! means. The host caches answers for their TTL and counts each session's
//! queries against `[dns] max_queries_per_session`.
//!
//! The errors tell apart what a DNS-based policy must tell apart: only
//! [`DnsError::NxDomain`] means "this name does not exist" (for a DNSBL:
//! "not listed"); [`DnsError::is_temporary`] is true for SERVFAIL and
//! timeouts, where the right answer is usually "try again later" or "let it
//! through with a note".
//!
//! ```no_run
//! use wasmtp_plugin_sdk::dns::{self, Listing};
//!
//! let ip = "192.0.2.99".parse().unwrap();
//! match dns::dnsbl(ip, "zen.example") {
//!     Ok(Listing::Listed { text, .. }) => println!("listed: {}", text.unwrap_or_default()),
//!     Ok(Listing::NotListed) => println!("clean"),
//!     Err(e) if e.is_temporary() => println!("resolver trouble: {}", e.reason()),
//!     Err(e) => println!("cannot ask: {}", e.reason()),
//! }
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bindings::wasmtp::plugin::dns as raw;

pub use raw::{Answer, DnsError, MxRecord, RecordData, RecordType};

/// Records of `rtype` for `name` (absolute; a trailing dot is optional).
pub fn lookup(name: &str, rtype: RecordType) -> Result<Answer, DnsError> {
    raw::lookup(name, rtype)
}

/// The IPv4 addresses of `name` (its A records; unparsable ones skipped).
pub fn a(name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
    let answer = raw::lookup(name, RecordType::A)?;
    Ok(answer
        .records
        .iter()
        .filter_map(|r| match r {
            RecordData::A(text) => text.parse().ok(),
            _ => None,
        })
        .collect())
}

/// The IPv6 addresses of `name` (its AAAA records).
pub fn aaaa(name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
    let answer = raw::lookup(name, RecordType::Aaaa)?;
    Ok(answer
        .records
        .iter()
        .filter_map(|r| match r {
            RecordData::Aaaa(text) => text.parse().ok(),
            _ => None,
        })
        .collect())
}

/// The TXT records of `name`, each one's character-strings concatenated
/// (RFC 7208 3.3), in the order of the answer.
pub fn txt(name: &str) -> Result<Vec<String>, DnsError> {
    let answer = raw::lookup(name, RecordType::Txt)?;
    Ok(answer
        .records
        .into_iter()
        .filter_map(|r| match r {
            RecordData::Txt(parts) => Some(parts.concat()),
            _ => None,
        })
        .collect())
}

/// The MX records of `name`, most preferred first.
pub fn mx(name: &str) -> Result<Vec<MxRecord>, DnsError> {
    let answer = raw::lookup(name, RecordType::Mx)?;
    let mut out: Vec<MxRecord> = answer
        .records
        .into_iter()
        .filter_map(|r| match r {
            RecordData::Mx(mx) => Some(mx),
            _ => None,
        })
        .collect();
    out.sort_by_key(|m| m.preference);
    Ok(out)
}

/// The PTR names of `ip` (not forward-confirmed).
pub fn reverse(ip: IpAddr) -> Result<Vec<String>, DnsError> {
    let answer = raw::reverse(&ip.to_string())?;
    Ok(answer
        .records
        .into_iter()
        .filter_map(|r| match r {
            RecordData::Ptr(name) => Some(name),
            _ => None,
        })
        .collect())
}

/// The DNSBL label of an address: IPv4 octets reversed (`192.0.2.99` →
/// `99.2.0.192`), IPv6 as 32 reversed nibbles (RFC 5782 section 2.4).
/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.99`) is treated as IPv4.
pub fn reversed_label(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(63);
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0x0f, byte >> 4] {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
                }
            }
            out
        }
    }
}

/// What a DNS blocklist says about an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// The zone has no entry for the address (NXDOMAIN, or a name without A records).
    NotListed,
    /// The zone lists the address.
    Listed {
        /// The A records of the entry (the list's return codes, `127.0.0.x`).
        codes: Vec<Ipv4Addr>,
        /// The entry's TXT text (its records joined with a space), if it has
        /// one and it could be read.
        text: Option<String>,
    },
}

/// Asks the DNS blocklist `zone` about `ip` (RFC 5782): an A lookup of
/// `<reversed label>.<zone>`, then, when listed, its TXT text.
///
/// NXDOMAIN and no-data are [`Listing::NotListed`]; every other failure of
/// the A lookup is returned as the error (the TXT lookup's failure only
/// leaves `text` empty).
pub fn dnsbl(ip: IpAddr, zone: &str) -> Result<Listing, DnsError> {
    let zone = zone.trim().trim_end_matches('.');
    let name = format!("{}.{zone}", reversed_label(ip));
    let codes = match a(&name) {
        Ok(codes) => codes,
        Err(DnsError::NxDomain | DnsError::NoData) => return Ok(Listing::NotListed),
        Err(e) => return Err(e),
    };
    if codes.is_empty() {
        return Ok(Listing::NotListed);
    }
    let text = txt(&name)
        .ok()
        .map(|records| records.join(" "))
        .filter(|t| !t.trim().is_empty());
    Ok(Listing::Listed { codes, text })
}

impl DnsError {
    /// True when the name does not exist (NXDOMAIN) or has no record of
    /// the asked type: a definite "nothing there".
    pub fn is_not_found(&self) -> bool {
        matches!(self, DnsError::NxDomain | DnsError::NoData)
    }

    /// True for failures that may go away: SERVFAIL/REFUSED from the
    /// server, or no answer in time.
    pub fn is_temporary(&self) -> bool {
        matches!(self, DnsError::ServerFailure(_) | DnsError::Timeout)
    }

    /// True when the host refused to ask (not granted, no resolver
    /// configured, or the session's query budget is spent).
    pub fn is_refused(&self) -> bool {
        matches!(self, DnsError::Refused(_))
    }

    /// A short human-readable description, for logs and notes.
    pub fn reason(&self) -> String {
        match self {
            DnsError::NxDomain => "NXDOMAIN".to_string(),
            DnsError::NoData => "no data".to_string(),
            DnsError::ServerFailure(why) => format!("server failure: {why}"),
            DnsError::Timeout => "timeout".to_string(),
            DnsError::Refused(why) => format!("refused: {why}"),
            DnsError::Invalid(why) => format!("invalid: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_labels_are_reversed_octets() {
        assert_eq!(reversed_label("192.0.2.99".parse().unwrap()), "99.2.0.192");
        assert_eq!(
            reversed_label("::ffff:127.0.0.2".parse().unwrap()),
            "2.0.0.127"
        );
    }

    #[test]
    fn ipv6_labels_are_reversed_nibbles() {
        // RFC 5782 section 2.4's example.
        assert_eq!(
            reversed_label("2001:db8:1:2:3:4:567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"
        );
    }
}
