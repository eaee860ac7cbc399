//! Metric handles of one loaded plugin, resolved when the chain is loaded
//! so a hook call never looks a series up by its labels: a table indexed by
//! hook slot ([`super::HOOKS`], the WIT `hooks-wanted` order).
//! Only the hooks the plugin asked for get series. Names and labels are in
//! [`crate::metrics`].

use metrics::{Counter, Histogram};

use super::bindings::HooksWanted;
use super::failure::PluginFailure;
use super::{DELIVERY_SLOT, DENY_SLOT, HOOKS, Hook, Verdict};
use crate::metrics::{FAILURES, HOOK_DURATION, INSTANCES, INSTANTIATE_DURATION, VERDICTS};

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
    slot != Hook::Disconnect.slot() && slot != DENY_SLOT && slot != DELIVERY_SLOT
}

/// The series of one wanted hook.
struct HookMetrics {
    /// `wasmtp_plugin_hook_duration_seconds{plugin, hook}`.
    duration: Histogram,
    /// `wasmtp_plugin_failures_total{plugin, hook, reason}`, by
    /// [`PluginFailure::REASONS`] index.
    failures: Vec<Counter>,
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
    pub(crate) fn new(name: &str, wanted: HooksWanted, pooled: bool) -> Self {
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
                failures: PluginFailure::REASONS
                    .iter()
                    .map(|r| {
                        metrics::counter!(FAILURES, "plugin" => plugin.clone(), "hook" => hook, "reason" => *r)
                    })
                    .collect(),
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
    pub(crate) fn call(&self, slot: usize, seconds: f64) {
        if let Some(Some(h)) = self.hooks.get(slot) {
            h.duration.record(seconds);
        }
    }

    /// Counts a failed call in `slot`, by reason (a [`PluginFailure::reason`]).
    pub(crate) fn failure(&self, slot: usize, reason: &str) {
        if let Some(Some(h)) = self.hooks.get(slot)
            && let Some(i) = PluginFailure::REASONS.iter().position(|r| *r == reason)
            && let Some(c) = h.failures.get(i)
        {
            c.increment(1);
        }
    }

    /// Counts a valid answer in `slot`.
    pub(crate) fn verdict(&self, slot: usize, verdict: &Verdict) {
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
    fn hooks_table_names_every_wit_flag_once() {
        let p = [];
        let hooks = [
            (Hook::Connect, "connect"),
            (Hook::Helo("h"), "helo"),
            (Hook::Ehlo("h"), "ehlo"),
            (Hook::Mail("a", &p), "mail"),
            (Hook::Rcpt("a", &p), "rcpt"),
            (Hook::Data, "data"),
            (Hook::DataHeaders, "data-headers"),
            (Hook::BodyChunk(0, &[]), "body-chunk"),
            (Hook::DataPost, "data-post"),
            (Hook::Queue, "queue"),
            (Hook::Reset, "reset"),
            (Hook::Quit, "quit"),
            (Hook::Disconnect, "disconnect"),
            (Hook::Unrecognized("X", ""), "unrecognized-command"),
            (Hook::Vrfy(""), "vrfy"),
            (Hook::Noop(""), "noop"),
            (Hook::Help(""), "help"),
            (Hook::Auth("PLAIN", "", "u", "p"), "auth"),
        ];
        for (h, name) in &hooks {
            assert_eq!(h.name(), *name);
        }
        assert_eq!(HOOKS[DENY_SLOT].0, "deny");
        assert_eq!(HOOKS[DELIVERY_SLOT].0, "delivery");
        // Each flag once, and together every flag the WIT defines.
        let mut all = HooksWanted::empty();
        for (name, flag) in HOOKS {
            assert!(!all.contains(flag), "{name} repeats a flag");
            all |= flag;
        }
        assert_eq!(all, HooksWanted::all());
        assert!(!has_verdict(Hook::Disconnect.slot()));
    }
}
