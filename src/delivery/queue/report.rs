//! Delivery outcome reports, for plugins (the WIT `delivery` hook) and logs.

use serde::Serialize;

/// What happened to one recipient (mirrors WIT `delivery-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// The upstream accepted the message for this recipient.
    Delivered,
    /// A temporary failure: the gateway will try again later.
    Deferred,
    /// A permanent failure or expiry: a bounce was queued for the sender,
    /// unless the backscatter guard held it back (see [`crate::delivery`]).
    Bounced,
}

/// One recipient's outcome of one attempt (mirrors WIT `delivery-report`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// Queue id given in the 250 reply.
    pub queue_id: String,
    /// Envelope sender ("" for the null sender).
    pub sender: String,
    /// The recipient this report is about.
    pub recipient: String,
    /// What happened.
    pub status: DeliveryStatus,
    /// The upstream's reply code, or 0 when there was no reply.
    pub code: u16,
    /// The upstream's reply text, or a description of the failure.
    pub text: String,
    /// Attempts made so far, this one included.
    pub attempts: u32,
}
