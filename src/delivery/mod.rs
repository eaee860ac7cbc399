//! Delivery of accepted messages: Maildir, synchronous forward (and the
//! spool, in `queue`).
//!
//! SKELETON: the public surface the driver calls.

use serde::Deserialize;

use crate::context::Recipient;
use crate::protocol::Reply;

/// `[delivery]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {}

/// Envelope of a message to deliver.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Queue id (shown in the 250 reply and the Received header).
    pub id: String,
    /// Reverse-path; empty for the null sender.
    pub sender: String,
    /// Recipients.
    pub recipients: Vec<Recipient>,
}

/// Delivers accepted messages according to the config.
#[derive(Debug)]
pub struct Deliverer {}

impl Deliverer {
    /// Builds the deliverer (creates directories, opens nothing yet).
    pub async fn new(_config: &DeliveryConfig) -> anyhow::Result<Self> {
        Ok(Self {})
    }

    /// Delivers one message, given as consecutive parts (e.g. the Received
    /// header, then the message). The reply is what the client gets: 250
    /// only once the message is safe (fsynced, or accepted upstream).
    pub async fn deliver(&self, _envelope: &Envelope, _parts: &[&[u8]]) -> Reply {
        Reply::local_error()
    }
}
