//! MAIL and RCPT parameters: which are supported and what they mean
//! (RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 3030 BINARYMIME, RFC 6531
//! SMTPUTF8, RFC 4954 AUTH=).

use super::command::xtext_decode;
use super::event::EngineConfig;
use super::replies;
use super::reply::Reply;
use crate::context::Param;

/// The message body type declared with `BODY=` (kept with spooled messages,
/// so the relay can tell its upstream the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum BodyType {
    /// `7BIT` or nothing.
    #[default]
    #[serde(rename = "7bit")]
    SevenBit,
    /// `8BITMIME`.
    #[serde(rename = "8bitmime")]
    EightBitMime,
    /// `BINARYMIME` (BDAT only).
    #[serde(rename = "binarymime")]
    BinaryMime,
}

impl BodyType {
    /// The body type of a `BODY=` value (any case); 7BIT for anything else.
    pub fn from_param(value: Option<&str>) -> Self {
        match value {
            Some(v) if v.eq_ignore_ascii_case("8BITMIME") => BodyType::EightBitMime,
            Some(v) if v.eq_ignore_ascii_case("BINARYMIME") => BodyType::BinaryMime,
            _ => BodyType::SevenBit,
        }
    }
}

/// What the MAIL parameters asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=` as declared.
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: BodyType,
    /// `SMTPUTF8` was given.
    pub smtputf8: bool,
    /// The parameters as the event carries them: keys upper-cased, `BODY`
    /// value upper-cased, `AUTH` value xtext-decoded.
    pub normalized: Vec<Param>,
}

/// Checks MAIL parameters against what we offer. `ehlo` is false after
/// HELO, where no parameter is allowed.
pub fn mail_params(
    params: &[Param],
    config: &EngineConfig,
    ehlo: bool,
) -> Result<MailParams, Reply> {
    let mut out = MailParams::default();
    for p in params {
        if !ehlo {
            return Err(replies::unsupported_param(&p.key));
        }
        let value = p.value.as_deref();
        let mut norm = p.clone();
        match (p.key.as_str(), value) {
            ("SIZE", Some(v)) => {
                if v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(replies::syntax("invalid SIZE value"));
                }
                let n: u64 = v.parse().map_err(|_| replies::too_big())?;
                if n > config.max_message_size {
                    return Err(replies::too_big());
                }
                out.size = Some(n);
            }
            ("BODY", Some(v)) => {
                let upper = v.to_ascii_uppercase();
                out.body = match upper.as_str() {
                    "7BIT" => BodyType::SevenBit,
                    "8BITMIME" => BodyType::EightBitMime,
                    "BINARYMIME" if config.chunking => BodyType::BinaryMime,
                    _ => return Err(replies::unsupported_param("BODY value")),
                };
                norm.value = Some(upper);
            }
            ("SMTPUTF8", None) if config.smtputf8 => out.smtputf8 = true,
            ("AUTH", Some(v)) if config.auth => {
                let decoded =
                    xtext_decode(v).ok_or_else(|| replies::syntax("invalid AUTH value"))?;
                norm.value = Some(decoded);
            }
            _ => return Err(replies::unsupported_param(&p.key)),
        }
        out.normalized.push(norm);
    }
    Ok(out)
}

/// Checks RCPT parameters: none are supported (no DSN).
pub fn rcpt_params(params: &[Param]) -> Result<Vec<Param>, Reply> {
    match params.first() {
        Some(p) => Err(replies::unsupported_param(&p.key)),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: Option<&str>) -> Param {
        Param {
            key: k.into(),
            value: v.map(Into::into),
        }
    }

    #[test]
    fn table() {
        let cfg = EngineConfig {
            max_message_size: 1000,
            auth: true,
            ..EngineConfig::default()
        };
        let no_chunk = EngineConfig {
            chunking: false,
            smtputf8: false,
            ..cfg.clone()
        };
        // (params, config, ehlo, Ok(body, smtputf8, size) or Err(code))
        type Want = Result<(BodyType, bool, Option<u64>), u16>;
        let cases: Vec<(Vec<Param>, &EngineConfig, bool, Want)> = vec![
            (vec![], &cfg, true, Ok((BodyType::SevenBit, false, None))),
            (vec![], &cfg, false, Ok((BodyType::SevenBit, false, None))),
            (
                vec![p("SIZE", Some("1000"))],
                &cfg,
                true,
                Ok((BodyType::SevenBit, false, Some(1000))),
            ),
            (vec![p("SIZE", Some("1001"))], &cfg, true, Err(552)),
            (
                vec![p("SIZE", Some("99999999999999999999"))],
                &cfg,
                true,
                Err(552),
            ),
            (vec![p("SIZE", Some("x"))], &cfg, true, Err(501)),
            (vec![p("SIZE", None)], &cfg, true, Err(555)),
            (vec![p("SIZE", Some("10"))], &cfg, false, Err(555)),
            (
                vec![p("BODY", Some("8bitmime"))],
                &cfg,
                true,
                Ok((BodyType::EightBitMime, false, None)),
            ),
            (
                vec![p("BODY", Some("7BIT"))],
                &cfg,
                true,
                Ok((BodyType::SevenBit, false, None)),
            ),
            (
                vec![p("BODY", Some("BINARYMIME"))],
                &cfg,
                true,
                Ok((BodyType::BinaryMime, false, None)),
            ),
            (
                vec![p("BODY", Some("BINARYMIME"))],
                &no_chunk,
                true,
                Err(555),
            ),
            (vec![p("BODY", Some("9BIT"))], &cfg, true, Err(555)),
            (
                vec![p("SMTPUTF8", None)],
                &cfg,
                true,
                Ok((BodyType::SevenBit, true, None)),
            ),
            (vec![p("SMTPUTF8", None)], &no_chunk, true, Err(555)),
            (vec![p("SMTPUTF8", Some("x"))], &cfg, true, Err(555)),
            (
                vec![p("AUTH", Some("a+2Bb@x"))],
                &cfg,
                true,
                Ok((BodyType::SevenBit, false, None)),
            ),
            (vec![p("AUTH", Some("a+2"))], &cfg, true, Err(501)),
            (vec![p("RET", Some("FULL"))], &cfg, true, Err(555)),
        ];
        for (params, config, ehlo, want) in cases {
            let got = mail_params(&params, config, ehlo)
                .map(|m| (m.body, m.smtputf8, m.size))
                .map_err(|r| r.code());
            assert_eq!(got, want, "{params:?}");
        }
        let m = mail_params(
            &[p("AUTH", Some("a+2Bb")), p("BODY", Some("8bitmime"))],
            &cfg,
            true,
        )
        .unwrap();
        assert_eq!(
            m.normalized,
            vec![p("AUTH", Some("a+b")), p("BODY", Some("8BITMIME"))]
        );
        assert_eq!(
            rcpt_params(&[p("NOTIFY", Some("NEVER"))]).map_err(|r| r.code()),
            Err(555)
        );
    }
}
