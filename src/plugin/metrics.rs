//! Metric handles of one loaded plugin, resolved when the chain is loaded
//! so a hook call never looks a series up by its labels: a table indexed by
//! hook slot (the position of the hook in the WIT `hooks-wanted` flags).
//! Only the hooks the plugin asked for get series. Names and labels are in
//! [`crate::metrics`].

use metrics::{Counter, Histogram};

use super::bindings::HooksWanted;
use super::{Hook, Verdict};
use crate::metrics::{FAILURES, HOOK_DURATION, INSTANCES, INSTANTIATE_DURATION, VERDICTS};

/// Every hook the host calls, in `hooks-wanted` order: WIT name and flag.
/// [`slot`] indexes it.
const HOOKS: [(&str, HooksWanted); 20] = [
    ("connect", HooksWanted::CONNECT),
    ("helo", HooksWanted::HELO),
    ("ehlo", HooksWanted::EHLO),
    ("mail", HooksWanted::MAIL),
    ("rcpt", HooksWanted::RCPT),
    ("data", HooksWanted::DATA),
    ("data-headers", HooksWanted::DATA_HEADERS),
    ("body-chunk", HooksWanted::BODY_CHUNK),
    ("data-post", HooksWanted::DATA_POST),
    ("queue", HooksWanted::QUEUE),
    ("reset", HooksWanted::RESET),
    ("quit", HooksWanted::QUIT),
    ("disconnect", HooksWanted::DISCONNECT),
    ("unrecognized-command", HooksWanted::UNRECOGNIZED_COMMAND),
    ("vrfy", HooksWanted::VRFY),
    ("noop", HooksWanted::NOOP),
    ("help", HooksWanted::HELP),
    ("auth", HooksWanted::AUTH),
    ("deny", HooksWanted::DENY),
    ("delivery", HooksWanted::DELIVERY),
];

/// Slot of `disconnect`.
const DISCONNECT: usize = 12;
/// Slot of the `deny` notification.
pub(crate) const DENY: usize = 18;
/// Slot of the `delivery` report.
pub(crate) const DELIVERY: usize = 19;

/// The slot of a protocol hook in [`HOOKS`].
pub(crate) fn slot(hook: &Hook<'_>) -> usize {
    match hook {
        Hook::Connect => 0,
        Hook::Helo(_) => 1,
        Hook::Ehlo(_) => 2,
        Hook::Mail(..) => 3,
        Hook::Rcpt(..) => 4,
        Hook::Data => 5,
        Hook::DataHeaders => 6,
        Hook::BodyChunk(..) => 7,
        Hook::DataPost => 8,
        Hook::Queue => 9,
        Hook::Reset => 10,
        Hook::Quit => 11,
        Hook::Disconnect => DISCONNECT,
        Hook::Unrecognized(..) => 13,
        Hook::Vrfy(_) => 14,
        Hook::Noop(_) => 15,
        Hook::Help(_) => 16,
        Hook::Auth(..) => 17,
    }
}

/// `verdict` label values, indexed by [`verdict_index`].
const VERDICT_NAMES: [&str; 7] = [
    "declined",
    "ok",
    "deny",
    "deny-soft",
    "deny-disconnect",
    "deny-soft-disconnect",
    "done",
];

fn verdict_index(v: &Verdict) -> usize {
    match v {
        Verdict::Declined => 0,
        Verdict::Ok => 1,
        Verdict::Deny(_) => 2,
        Verdict::DenySoft(_) => 3,
        Verdict::DenyDisconnect(_) => 4,
        Verdict::DenySoftDisconnect(_) => 5,
        Verdict::Done(_) => 6,
    }
}

/// Whether calls in `slot` answer with a verdict (`disconnect`, `deny` and
/// `delivery` do not).
fn has_verdict(slot: usize) -> bool {
    !matches!(slot, DISCONNECT | DENY | DELIVERY)
}

/// The series of one wanted hook.
struct HookMetrics {
    /// `wasmtp_plugin_hook_duration_seconds{plugin, hook}`.
    duration: Histogram,
    /// `wasmtp_plugin_failures_total{plugin, hook}`.
    failures: Counter,
    /// `wasmtp_plugin_verdicts_total{plugin, hook, verdict}`, by
    /// [`verdict_index`]; empty for hooks without a verdict.
    verdicts: Vec<Counter>,
}

/// One plugin's handles (present only when metrics are on).
pub(crate) struct PluginMetrics {
    /// `wasmtp_plugin_instantiate_duration_seconds{plugin}`.
    pub instantiate: Histogram,
    /// `wasmtp_plugin_instances_total{plugin, source="fresh"}`.
    pub fresh: Counter,
    /// `wasmtp_plugin_instances_total{plugin, source="pooled"}`; only for
    /// pooled plugins (a noop handle otherwise).
    pub pooled: Counter,
    /// By hook slot; `None` for hooks the plugin did not ask for.
    hooks: [Option<HookMetrics>; HOOKS.len()],
}

impl PluginMetrics {
    /// Registers the series of plugin `name` for its `wanted` hooks.
    pub fn new(name: &str, wanted: HooksWanted, pooled: bool) -> Self {
        let plugin = name.to_string();
        let hooks = std::array::from_fn(|slot| {
            let (hook, flag) = HOOKS[slot];
            if !wanted.contains(flag) {
                return None;
            }
            let labels = [("plugin", plugin.clone()), ("hook", hook.to_string())];
            let verdicts = if has_verdict(slot) {
                VERDICT_NAMES
                    .iter()
                    .map(|v| {
                        metrics::counter!(VERDICTS, "plugin" => plugin.clone(), "hook" => hook, "verdict" => *v)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Some(HookMetrics {
                duration: metrics::histogram!(HOOK_DURATION, &labels),
                failures: metrics::counter!(FAILURES, &labels),
                verdicts,
            })
        });
        Self {
            instantiate: metrics::histogram!(INSTANTIATE_DURATION, "plugin" => plugin.clone()),
            fresh: metrics::counter!(INSTANCES, "plugin" => plugin.clone(), "source" => "fresh"),
            pooled: if pooled {
                metrics::counter!(INSTANCES, "plugin" => plugin, "source" => "pooled")
            } else {
                Counter::noop()
            },
            hooks,
        }
    }

    /// Records the wall time of one call in `slot`.
    pub fn call(&self, slot: usize, seconds: f64) {
        if let Some(Some(h)) = self.hooks.get(slot) {
            h.duration.record(seconds);
        }
    }

    /// Counts a failed call in `slot`.
    pub fn failure(&self, slot: usize) {
        if let Some(Some(h)) = self.hooks.get(slot) {
            h.failures.increment(1);
        }
    }

    /// Counts a valid answer in `slot`.
    pub fn verdict(&self, slot: usize, verdict: &Verdict) {
        if let Some(Some(h)) = self.hooks.get(slot)
            && let Some(c) = h.verdicts.get(verdict_index(verdict))
        {
            c.increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_wit_names_and_flags() {
        let p = [];
        let hooks = [
            Hook::Connect,
            Hook::Helo("h"),
            Hook::Ehlo("h"),
            Hook::Mail("a", &p),
            Hook::Rcpt("a", &p),
            Hook::Data,
            Hook::DataHeaders,
            Hook::BodyChunk(0, &[]),
            Hook::DataPost,
            Hook::Queue,
            Hook::Reset,
            Hook::Quit,
            Hook::Disconnect,
            Hook::Unrecognized("X", ""),
            Hook::Vrfy(""),
            Hook::Noop(""),
            Hook::Help(""),
            Hook::Auth("PLAIN", "", "u", "p"),
        ];
        for h in &hooks {
            let (name, flag) = HOOKS[slot(h)];
            assert_eq!(name, h.name());
            assert_eq!(flag, h.flag());
        }
        assert_eq!(HOOKS[DENY], ("deny", HooksWanted::DENY));
        assert_eq!(HOOKS[DELIVERY], ("delivery", HooksWanted::DELIVERY));
        assert!(!has_verdict(slot(&Hook::Disconnect)));
    }
}
