//! DKIM-signs outgoing mail (RFC 6376; rsa-sha256 and RFC 8463
//! ed25519-sha256; relaxed/relaxed) at data-post, for authenticated
//! clients and relay clients, with the key configured for the domain of
//! the message's From address (so the signature aligns for DMARC).
//!
//! Chain position: last. The signature covers the header fields and body
//! as this plugin sees them, so every plugin that edits the message must
//! run before it; a later edit of a signed field or of the body breaks it.
//!
//! Config keys (see README.md): `keys` (required: a list of tables with
//! `domain`, `selector`, `private_key` (PKCS#8 PEM, RSA of at least 1024
//! bits or Ed25519)), `headers` (the fields to sign; default From, To, Cc,
//! Subject, Date, Message-ID, Reply-To, In-Reply-To, References,
//! MIME-Version, Content-Type, Content-Transfer-Encoding),
//! `sign_authenticated` (default true), `sign_relay_clients` (default true),
//! `expire_after_secs` (default none: no x=).
//!
//! Grants: none.

use std::sync::Arc;
use std::time::Duration;

use viadkim::signature::{Canonicalization, CanonicalizationAlgorithm};
use viadkim::signer::{
    BodyLength, Expiration, HeaderSelection, OutputFormat, SignRequest, Signer, Timestamp,
};
use viadkim::{
    DomainName, FieldBody, FieldName, HeaderFields, Selector, SigningAlgorithm, SigningKey,
};
use wasmtp_plugin_sdk::{
    Config, Connection, Hooks, LogLevel, Plugin, Transaction, Verdict, export_plugin, log,
};

/// The body is fed to the signer in pieces of this size.
const BODY_PIECE: u32 = 64 * 1024;

const DEFAULT_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// One configured signing key.
struct Key {
    domain: String,
    selector: Selector,
    algorithm: SigningAlgorithm,
    key: Arc<SigningKey>,
}

struct DkimSign {
    keys: Vec<Key>,
    headers: Vec<FieldName>,
    sign_authenticated: bool,
    sign_relay_clients: bool,
    expire_after: Option<Duration>,
}

/// The domain of the (single) From address, lower case.
fn from_domain(values: &[String]) -> Option<String> {
    let [value] = values else {
        return None;
    };
    let addr = match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.as_str(),
    };
    let (_, domain) = addr.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

fn parse_keys(config: &Config) -> Result<Vec<Key>, String> {
    let Some(list) = config.get("keys").and_then(|v| v.as_array()) else {
        return Err("keys: a list of { domain, selector, private_key } is required".into());
    };
    let mut keys = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("keys[{i}].{name} is required"))
        };
        let domain = field("domain")?.trim_end_matches('.').to_ascii_lowercase();
        DomainName::new(domain.as_str())
            .map_err(|_| format!("keys[{i}].domain {domain:?} is not a domain name"))?;
        let selector = Selector::new(field("selector")?)
            .map_err(|_| format!("keys[{i}].selector is not a selector"))?;
        let key = SigningKey::from_pkcs8_pem(field("private_key")?).map_err(|e| {
            format!("keys[{i}].private_key: not a PKCS#8 PEM RSA or Ed25519 key ({e})")
        })?;
        let algorithm = match key {
            SigningKey::Rsa(_) => SigningAlgorithm::RsaSha256,
            SigningKey::Ed25519(_) => SigningAlgorithm::Ed25519Sha256,
        };
        keys.push(Key {
            domain,
            selector,
            algorithm,
            key: Arc::new(key),
        });
    }
    if keys.is_empty() {
        return Err("keys: at least one key is required".into());
    }
    Ok(keys)
}

impl DkimSign {
    fn wanted(&self, conn: &Connection) -> bool {
        (self.sign_authenticated && conn.auth_user().is_some())
            || (self.sign_relay_clients && conn.relay_client())
    }

    fn sign(&self, txn: &Transaction, key: &Key) -> Result<String, String> {
        // The fields exactly as they will be written (folding kept).
        let fields: Vec<(FieldName, FieldBody)> = txn
            .raw_headers()
            .iter()
            .filter_map(|f| {
                let colon = f.iter().position(|&b| b == b':')?;
                let name = std::str::from_utf8(&f[..colon]).ok()?.trim_end();
                let name = FieldName::new(name).ok()?;
                let body = FieldBody::new(f[colon + 1..].to_vec()).ok()?;
                Some((name, body))
            })
            .collect();
        let fields = HeaderFields::new(fields).map_err(|e| format!("header fields: {e}"))?;
        let domain = DomainName::new(key.domain.as_str()).map_err(|e| e.to_string())?;
        let mut request =
            SignRequest::new(domain, key.selector.clone(), key.algorithm, key.key.clone());
        request.canonicalization = Canonicalization {
            header: CanonicalizationAlgorithm::Relaxed,
            body: CanonicalizationAlgorithm::Relaxed,
        };
        request.header_selection = HeaderSelection::Manual(self.headers.clone());
        request.body_length = BodyLength::NoLimit;
        request.timestamp = Timestamp::Now;
        request.expiration = match self.expire_after {
            Some(d) => Expiration::After(d),
            None => Expiration::Never,
        };
        // One line: the host folds added fields itself.
        request.format = OutputFormat {
            line_width: usize::MAX.try_into().map_err(|_| "line width")?,
            ..OutputFormat::default()
        };
        let mut signer = Signer::prepare_signing(fields, [request]).map_err(|e| e.to_string())?;
        let size = txn.body_size();
        let mut offset = 0u64;
        while offset < size {
            let piece = txn.read_body(offset, BODY_PIECE);
            if piece.is_empty() {
                break;
            }
            offset += piece.len() as u64;
            let _stance = signer.process_body_chunk(&piece);
        }
        let result = pollster::block_on(signer.sign())
            .into_iter()
            .next()
            .ok_or("no signing result")?;
        let output = result.map_err(|e| e.to_string())?;
        Ok(output.header_value.replace("\r\n", "").trim().to_string())
    }
}

impl Plugin for DkimSign {
    fn init(config: &Config) -> Result<Self, String> {
        let keys = parse_keys(config)?;
        let mut names = config.strings("headers");
        if names.is_empty() {
            names = DEFAULT_HEADERS.iter().map(|s| s.to_string()).collect();
        }
        let headers = names
            .iter()
            .map(|n| {
                FieldName::new(n.as_str())
                    .map_err(|_| format!("headers: {n:?} is not a field name"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !headers.iter().any(|h| *h == "From") {
            return Err("headers: From must be signed (RFC 6376 5.4)".into());
        }
        Ok(Self {
            keys,
            headers,
            sign_authenticated: config.bool("sign_authenticated").unwrap_or(true),
            sign_relay_clients: config.bool("sign_relay_clients").unwrap_or(true),
            expire_after: config.u64("expire_after_secs").map(Duration::from_secs),
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::DATA_POST
    }

    fn data_post(&mut self, conn: &Connection, txn: &Transaction) -> Verdict {
        if !self.wanted(conn) {
            return Verdict::Declined;
        }
        let Some(domain) = from_domain(&txn.header("From")) else {
            log(LogLevel::Info, "not signed: no single From address", &[]);
            return Verdict::Declined;
        };
        let Some(key) = self.keys.iter().find(|k| k.domain == domain) else {
            log(
                LogLevel::Debug,
                "not signed: no key for the From domain",
                &[("domain", &domain)],
            );
            return Verdict::Declined;
        };
        match self.sign(txn, key) {
            Ok(value) => {
                if let Err(e) = txn.prepend_header("DKIM-Signature", &value) {
                    log(
                        LogLevel::Error,
                        "could not add DKIM-Signature",
                        &[("error", &e)],
                    );
                }
            }
            Err(e) => log(
                LogLevel::Error,
                "signing failed",
                &[("domain", &domain), ("error", &e)],
            ),
        }
        Verdict::Declined
    }
}

export_plugin!(DkimSign);
