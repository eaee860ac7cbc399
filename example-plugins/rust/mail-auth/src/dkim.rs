//! DKIM verification (RFC 6376, RFC 8463 ed25519-sha256) through
//! `viadkim`, with key records looked up through the host's `dns` interface.

use std::future::{Ready, ready};
use std::io;

use viadkim::verifier::{Config as DkimConfig, LookupTxt, Verifier};
use viadkim::{DkimResult, FieldBody, FieldName, HeaderFields, encode_base64};
use wasmtp_plugin_sdk::Transaction;
use wasmtp_plugin_sdk::dns::{self, DnsError};

use crate::results::quote_value;

/// Most DKIM-Signature fields evaluated per message (the rest are ignored).
pub const MAX_SIGNATURES: usize = 8;
/// The body is fed to the verifier in pieces of this size.
const BODY_PIECE: u32 = 64 * 1024;

/// The host's `dns` interface as a `viadkim` resolver (a blocking host
/// call, so the future is ready at once).
#[derive(Clone, Copy)]
pub struct HostTxt;

impl LookupTxt for HostTxt {
    type Answer = Vec<io::Result<Vec<u8>>>;
    type Query<'a> = Ready<io::Result<Self::Answer>>;

    fn lookup_txt(&self, domain: &str) -> Self::Query<'_> {
        ready(match dns::txt(domain) {
            Ok(records) if records.is_empty() => Err(io::ErrorKind::NotFound.into()),
            Ok(records) => Ok(records.into_iter().map(|r| Ok(r.into_bytes())).collect()),
            Err(DnsError::NxDomain | DnsError::NoData) => Err(io::ErrorKind::NotFound.into()),
            Err(DnsError::Invalid(_)) => Err(io::ErrorKind::InvalidInput.into()),
            Err(DnsError::Timeout) => Err(io::ErrorKind::TimedOut.into()),
            Err(other) => Err(io::Error::other(other.reason())),
        })
    }
}

/// The result of one signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureResult {
    /// RFC 8601 result name (`pass`, `fail`, `neutral`, `policy`,
    /// `temperror`, `permerror`).
    pub result: &'static str,
    /// The signing domain (`d=`), lower case, if the signature had one.
    pub domain: Option<String>,
    /// The RFC 8601 resinfo.
    pub resinfo: String,
}

fn result_name(r: DkimResult) -> &'static str {
    match r {
        DkimResult::None => "none",
        DkimResult::Pass => "pass",
        DkimResult::Fail => "fail",
        DkimResult::Policy => "policy",
        DkimResult::Neutral => "neutral",
        DkimResult::Temperror => "temperror",
        DkimResult::Permerror => "permerror",
    }
}

/// The header fields as viadkim takes them, from the fields exactly as
/// received (`raw-headers`: folding and spacing kept, so simple header
/// canonicalization works). A field that is not `name:value` is skipped.
pub fn header_fields(raw: &[Vec<u8>]) -> Option<HeaderFields> {
    let fields: Vec<(FieldName, FieldBody)> = raw
        .iter()
        .filter_map(|f| {
            let colon = f.iter().position(|&b| b == b':')?;
            let name = std::str::from_utf8(&f[..colon]).ok()?.trim_end();
            let name = FieldName::new(name).ok()?;
            let body = FieldBody::new(f[colon + 1..].to_vec()).ok()?;
            Some((name, body))
        })
        .collect();
    HeaderFields::new(fields).ok()
}

/// Verifies every DKIM signature of the transaction's message (at most
/// [`MAX_SIGNATURES`]). Empty when the message has none.
pub fn verify(txn: &Transaction) -> Vec<SignatureResult> {
    if txn.header("DKIM-Signature").is_empty() {
        return Vec::new();
    }
    let Some(fields) = header_fields(&txn.raw_headers()) else {
        return Vec::new();
    };
    let config = DkimConfig {
        max_signatures: MAX_SIGNATURES,
        // l= that leaves content unsigned gives "policy", never "pass".
        forbid_unsigned_content: true,
        ..DkimConfig::default()
    };
    // viadkim runs its key lookups as tokio tasks; a current-thread runtime
    // polls them (the host lookups finish at once, so no timer ever waits).
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return Vec::new();
    };
    let verifier = rt.block_on(Verifier::verify_header(&HostTxt, &fields, &config));
    let Some(mut verifier) = verifier else {
        return Vec::new();
    };
    let size = txn.body_size();
    let mut offset = 0u64;
    while offset < size {
        let piece = txn.read_body(offset, BODY_PIECE);
        if piece.is_empty() {
            break;
        }
        offset += piece.len() as u64;
        // Fed whole even when the hasher says it is done: with
        // `forbid_unsigned_content` it must see content past an l= limit.
        let _stance = verifier.process_body_chunk(&piece);
    }
    verifier
        .finish()
        .into_iter()
        .map(|r| {
            let result = result_name(r.status.to_dkim_result());
            let mut resinfo = format!("dkim={result}");
            let mut domain = None;
            if let Some(sig) = &r.signature {
                let d = sig.domain.to_ascii().to_ascii_lowercase();
                resinfo.push_str(&format!(" header.d={}", quote_value(&d)));
                if let Some(i) = &sig.identity {
                    resinfo.push_str(&format!(" header.i={}", quote_value(&i.to_string())));
                }
                resinfo.push_str(&format!(
                    " header.s={} header.a={}",
                    quote_value(&sig.selector.to_ascii()),
                    sig.algorithm
                ));
                // RFC 6008: the first 8 characters of b= tell signatures apart.
                let b: String = encode_base64(&sig.signature_data).chars().take(8).collect();
                resinfo.push_str(&format!(" header.b={}", quote_value(&b)));
                domain = Some(d);
            }
            SignatureResult {
                result,
                domain,
                resinfo,
            }
        })
        .collect()
}
