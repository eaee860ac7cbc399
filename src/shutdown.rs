//! A one-shot signal many tasks wait on: the server's "stop accepting"
//! and "grace period over" (the sessions' 421 at their next read).

use tokio::sync::watch;

/// Fires the [`Signal`]s made with it (once; firing again does nothing).
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// Waits for its [`Trigger`]; cheap to clone, one per task.
#[derive(Debug, Clone)]
pub struct Signal(watch::Receiver<bool>);

/// A new trigger and its signal.
pub fn channel() -> (Trigger, Signal) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Signal(rx))
}

impl Trigger {
    /// Fires every signal, now and for good.
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Signal {
    /// True once the trigger fired.
    pub fn fired(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when the trigger fires (at once if it did); never when the
    /// trigger is dropped unfired (the server side is gone, nothing to stop).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn fires_once_for_every_waiter() {
        let (trigger, signal) = channel();
        let other = signal.clone();
        assert!(!signal.fired());
        let waiter = tokio::spawn(async move { other.wait().await });
        trigger.fire();
        trigger.fire();
        assert!(signal.fired());
        signal.wait().await;
        let joined = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(joined, Ok(Ok(()))));
    }

    #[tokio::test]
    async fn a_dropped_trigger_never_fires() {
        let (trigger, signal) = channel();
        drop(trigger);
        let waited = tokio::time::timeout(Duration::from_millis(50), signal.wait()).await;
        assert!(waited.is_err());
        assert!(!signal.fired());
    }
}
