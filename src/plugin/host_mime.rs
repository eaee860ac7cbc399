//! Host side of the `mime` interface: the message's MIME view
//! ([`crate::mime`]), parsed once per message and cached on the
//! [`crate::message::Message`] (see [`crate::message::Message::mime`]).
//!
//! Implemented on [`SessionView`] (the session state lent to the store for
//! one hook call), like `session`: the view reads the message that the
//! transaction holds, and every plugin of the chain shares its parse.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::bindings::TransactionHandle;
use super::bindings::WitHeader;
use super::bindings::wasmtp::plugin::mime::{self, MimeError as WitMimeError, Part, PartKind};
use super::host_session::{MAX_READ, SessionView};
use crate::mime::{self as view, MimeError, MimeTree};

type Wit<T> = wasmtime::Result<Result<T, WitMimeError>>;

fn kind(k: view::PartKind) -> PartKind {
    match k {
        view::PartKind::Multipart => PartKind::Multipart,
        view::PartKind::Message => PartKind::Message,
        view::PartKind::Text => PartKind::Text,
        view::PartKind::Binary => PartKind::Binary,
    }
}

fn wit_part(index: usize, p: &view::Part) -> Part {
    Part {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        parent: p.parent,
        depth: p.depth,
        kind: kind(p.kind),
        content_type: p.content_type.clone(),
        charset: p.charset.clone(),
        disposition: p.disposition.clone(),
        filename: p.filename.clone(),
        content_id: p.content_id.clone(),
        transfer_encoding: p.transfer_encoding.clone(),
        encoded_size: p.encoded_size,
        decoded_size: p.content.len() as u64,
        body_range: p.body_range.as_ref().map(|r| (r.start, r.end)),
        encoding_problem: p.encoding_problem,
    }
}

/// The longest prefix of `s` of at most `max` octets ending on a
/// character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl SessionView<'_> {
    /// The cached (or freshly parsed) view of the transaction's message.
    fn mime_tree(&mut self) -> Result<Arc<Result<MimeTree, MimeError>>, WitMimeError> {
        let txn = self
            .ctx
            .txn
            .as_ref()
            .ok_or_else(|| WitMimeError::Unavailable("no transaction is open".into()))?;
        let m = txn.message.as_ref().ok_or_else(|| {
            WitMimeError::Unavailable(
                "the message is not available before the data-headers hook".into(),
            )
        })?;
        Ok(m.mime())
    }

    /// Runs `f` on the view, or answers with why there is none.
    fn with_tree<T>(&mut self, f: impl FnOnce(&MimeTree) -> Result<T, WitMimeError>) -> Wit<T> {
        let tree = match self.mime_tree() {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        Ok(match tree.as_ref() {
            Ok(tree) => f(tree),
            Err(MimeError::TooComplex(m)) => Err(WitMimeError::TooComplex(m.clone())),
            Err(e @ MimeError::Unparsable) => Err(WitMimeError::Unparsable(e.to_string())),
        })
    }
}

fn part(tree: &MimeTree, index: u32) -> Result<&view::Part, WitMimeError> {
    tree.parts
        .get(index as usize)
        .ok_or(WitMimeError::NoSuchPart(index))
}

impl mime::Host for SessionView<'_> {
    fn parts(&mut self, _: Resource<TransactionHandle>) -> Wit<Vec<Part>> {
        self.with_tree(|t| {
            Ok(t.parts
                .iter()
                .enumerate()
                .map(|(i, p)| wit_part(i, p))
                .collect())
        })
    }

    fn part_headers(&mut self, _: Resource<TransactionHandle>, index: u32) -> Wit<Vec<WitHeader>> {
        self.with_tree(|t| {
            Ok(part(t, index)?
                .headers
                .iter()
                .map(|(name, value)| WitHeader {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect())
        })
    }

    fn content(
        &mut self,
        _: Resource<TransactionHandle>,
        index: u32,
        offset: u64,
        len: u32,
    ) -> Wit<Vec<u8>> {
        self.with_tree(|t| {
            let c = &part(t, index)?.content;
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(c.len());
            let end = start
                .saturating_add(len.min(MAX_READ) as usize)
                .min(c.len());
            Ok(c[start..end].to_vec())
        })
    }

    fn text(&mut self, _: Resource<TransactionHandle>, index: u32, max_len: u32) -> Wit<String> {
        self.with_tree(|t| {
            let text = part(t, index)?
                .text
                .as_deref()
                .ok_or(WitMimeError::NotText(index))?;
            Ok(cut(text, max_len as usize).to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        assert_eq!(cut("café", 4), "caf");
        assert_eq!(cut("café", 5), "café");
        assert_eq!(cut("café", 99), "café");
        assert_eq!(cut("", 0), "");
    }
}
