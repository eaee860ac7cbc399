//! DMARC (RFC 7489): policy discovery with the organizational domain from
//! the Public Suffix List compiled into the `psl` crate, SPF and DKIM
//! identifier alignment (relaxed and strict), `p=`, `sp=` and `pct=`.

use wasmtp_plugin_sdk::dns::{self, DnsError};

use crate::results::quote_value;

/// A requested policy (`p=` / `sp=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Monitor only.
    None,
    /// Treat as suspicious.
    Quarantine,
    /// Refuse.
    Reject,
}

impl Policy {
    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Some(Self::None),
            "quarantine" => Some(Self::Quarantine),
            "reject" => Some(Self::Reject),
            _ => None,
        }
    }

    /// The RFC 7489 name.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Quarantine => "quarantine",
            Self::Reject => "reject",
        }
    }

    /// The policy one step weaker (RFC 7489 6.6.4, for `pct=` sampling).
    fn weaker(self) -> Self {
        match self {
            Self::Reject => Self::Quarantine,
            Self::Quarantine | Self::None => Self::None,
        }
    }
}

/// A DMARC record (the tags this receiver uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `p=`.
    pub p: Policy,
    /// `sp=` (defaults to `p=`).
    pub sp: Policy,
    /// `pct=` (0 to 100).
    pub pct: u8,
    /// `adkim=s`.
    pub strict_dkim: bool,
    /// `aspf=s`.
    pub strict_spf: bool,
}

/// Parses a DMARC TXT record. `None` if it is not one (RFC 7489 6.6.3:
/// records without `v=DMARC1` first are ignored; an invalid or missing
/// `p=` makes the record `p=none` when `rua=` is present, else ignored).
pub fn parse_record(txt: &str) -> Option<Record> {
    let mut tags = txt.split(';').map(str::trim).filter(|t| !t.is_empty());
    let first = tags.next()?;
    let (k, v) = first.split_once('=')?;
    if !k.trim().eq_ignore_ascii_case("v") || v.trim() != "DMARC1" {
        return None;
    }
    let (mut p, mut sp, mut pct, mut adkim, mut aspf, mut rua) =
        (None, None, 100u8, false, false, false);
    for tag in tags {
        let Some((k, v)) = tag.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "p" => p = Some(Policy::parse(v)),
            "sp" => sp = Policy::parse(v),
            "pct" => pct = v.parse::<u8>().ok().filter(|n| *n <= 100).unwrap_or(100),
            "adkim" => adkim = v.eq_ignore_ascii_case("s"),
            "aspf" => aspf = v.eq_ignore_ascii_case("s"),
            "rua" => rua = !v.is_empty(),
            _ => {}
        }
    }
    let p = match p.flatten() {
        Some(p) => p,
        None if rua => Policy::None,
        None => return None,
    };
    Some(Record {
        p,
        sp: sp.unwrap_or(p),
        pct,
        strict_dkim: adkim,
        strict_spf: aspf,
    })
}

/// The organizational domain of `domain` (RFC 7489 3.2), lower case.
pub fn org_domain(domain: &str) -> String {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&domain).map_or(domain.clone(), str::to_string)
}

/// Whether `a` and `b` are aligned.
pub fn aligned(a: &str, b: &str, strict: bool) -> bool {
    let a = a.trim_end_matches('.');
    let b = b.trim_end_matches('.');
    if strict {
        a.eq_ignore_ascii_case(b)
    } else {
        org_domain(a) == org_domain(b)
    }
}

/// The RFC5322.From domain: exactly one From field with exactly one
/// address, else an error text (RFC 7489 6.6.1).
pub fn from_domain(from_values: &[String]) -> Result<String, &'static str> {
    let [value] = from_values else {
        return Err(if from_values.is_empty() {
            "no From field"
        } else {
            "several From fields"
        });
    };
    // Drop quoted display names and comments, then look at the addresses.
    let mut plain = String::with_capacity(value.len());
    let (mut quoted, mut depth, mut escaped) = (false, 0usize, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => escaped = true,
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            c if !quoted && depth == 0 => plain.push(c),
            _ => {}
        }
    }
    if plain.contains(',') {
        return Err("several From addresses");
    }
    let addr = match (plain.find('<'), plain.rfind('>')) {
        (Some(a), Some(b)) if a < b => &plain[a + 1..b],
        _ => plain.as_str(),
    };
    let domain = addr
        .rsplit_once('@')
        .map(|(_, d)| d.trim().trim_end_matches('.').to_ascii_lowercase())
        .ok_or("From address has no domain")?;
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(domain)
    } else {
        Err("From domain is not a domain name")
    }
}

/// What policy discovery found.
enum Discovery {
    /// A record, and whether it came from the organizational domain
    /// (then `sp=` applies to a subdomain).
    Found(Record, bool),
    /// No record.
    None,
    /// A DNS failure.
    TempError,
}

fn lookup_record(domain: &str) -> Result<Option<Record>, ()> {
    match dns::txt(&format!("_dmarc.{domain}")) {
        Ok(txts) => {
            let records: Vec<Record> = txts.iter().filter_map(|t| parse_record(t)).collect();
            // RFC 7489 6.6.3: several records mean none.
            Ok(match records.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            })
        }
        Err(DnsError::NxDomain | DnsError::NoData) => Ok(None),
        Err(_) => Err(()),
    }
}

fn discover(from: &str) -> Discovery {
    match lookup_record(from) {
        Ok(Some(r)) => return Discovery::Found(r, false),
        Ok(None) => {}
        Err(()) => return Discovery::TempError,
    }
    let org = org_domain(from);
    if org == from {
        return Discovery::None;
    }
    match lookup_record(&org) {
        Ok(Some(r)) => Discovery::Found(r, true),
        Ok(None) => Discovery::None,
        Err(()) => Discovery::TempError,
    }
}

/// The DMARC outcome of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcOutcome {
    /// `pass`, `fail`, `none`, `temperror` or `permerror`.
    pub result: &'static str,
    /// The policy to apply (after `pct=` sampling); `None` unless failed.
    pub disposition: Policy,
    /// The From domain, if one was found.
    pub from: Option<String>,
    /// The RFC 8601 resinfo.
    pub resinfo: String,
}

/// Evaluates DMARC for a message. `spf` is the SPF result and checked
/// domain, `dkim` the result and `d=` of every signature; `sample` (0..100)
/// decides `pct=`.
pub fn evaluate(
    from_values: &[String],
    spf: Option<(&str, &str)>,
    dkim: &[(&str, &str)],
    sample: u8,
) -> DmarcOutcome {
    let from = match from_domain(from_values) {
        Ok(d) => d,
        Err(why) => {
            return DmarcOutcome {
                result: "permerror",
                disposition: Policy::None,
                from: None,
                resinfo: format!("dmarc=permerror ({why})"),
            };
        }
    };
    let header_from = format!("header.from={}", quote_value(&from));
    let (record, at_org) = match discover(&from) {
        Discovery::Found(r, at_org) => (r, at_org),
        Discovery::None => {
            return DmarcOutcome {
                result: "none",
                disposition: Policy::None,
                from: Some(from),
                resinfo: format!("dmarc=none {header_from}"),
            };
        }
        Discovery::TempError => {
            return DmarcOutcome {
                result: "temperror",
                disposition: Policy::None,
                from: Some(from),
                resinfo: format!("dmarc=temperror {header_from}"),
            };
        }
    };
    let spf_aligned = spf.is_some_and(|(result, domain)| {
        result == "pass" && aligned(domain, &from, record.strict_spf)
    });
    let dkim_aligned = dkim
        .iter()
        .any(|(result, d)| *result == "pass" && aligned(d, &from, record.strict_dkim));
    let requested = if at_org { record.sp } else { record.p };
    let pass = spf_aligned || dkim_aligned;
    let disposition = if pass {
        Policy::None
    } else if sample < record.pct {
        requested
    } else {
        requested.weaker()
    };
    let result = if pass { "pass" } else { "fail" };
    DmarcOutcome {
        result,
        disposition,
        from: Some(from),
        resinfo: format!(
            "dmarc={result} (p={} dis={}) {header_from}",
            requested.name(),
            disposition.name()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse() {
        let r = parse_record("v=DMARC1; p=reject; sp=quarantine; pct=50; adkim=s").unwrap();
        assert_eq!(r.p, Policy::Reject);
        assert_eq!(r.sp, Policy::Quarantine);
        assert_eq!(r.pct, 50);
        assert!(r.strict_dkim && !r.strict_spf);
        assert_eq!(
            parse_record("v=DMARC1; p=bogus; rua=mailto:a@b").unwrap().p,
            Policy::None
        );
        assert!(parse_record("v=DMARC1; p=bogus").is_none());
        assert!(parse_record("v=spf1 -all").is_none());
        assert!(parse_record("p=reject; v=DMARC1").is_none());
        assert_eq!(parse_record("v=DMARC1;p=none;pct=500").unwrap().pct, 100);
    }

    #[test]
    fn org_domains_and_alignment() {
        assert_eq!(org_domain("mail.example.co.uk"), "example.co.uk");
        assert_eq!(org_domain("a.b.example.com."), "example.com");
        assert!(aligned("mail.example.com", "example.com", false));
        assert!(!aligned("mail.example.com", "example.com", true));
        assert!(!aligned("example.co.uk", "other.co.uk", false));
    }

    #[test]
    fn from_domains() {
        let one = |s: &str| from_domain(&[s.to_string()]);
        assert_eq!(one("Alice <alice@Example.COM>").unwrap(), "example.com");
        assert_eq!(
            one("\"a@evil.test, x\" <alice@example.com>").unwrap(),
            "example.com"
        );
        assert_eq!(
            one("alice@example.com (a@evil.test)").unwrap(),
            "example.com"
        );
        assert!(one("a@example.com, b@example.net").is_err());
        assert!(one("undisclosed").is_err());
        assert!(from_domain(&[]).is_err());
        assert!(from_domain(&["a@x.test".into(), "b@y.test".into()]).is_err());
    }
}
