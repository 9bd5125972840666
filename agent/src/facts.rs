//! Facts one domain learns and others need (the lifecycle phase now; the
//! parsed NodeConfig as it lands), published through watch channels so a
//! consumer sees the latest value and can wait for changes.

use crate::model::nodeconfig::Loaded;
use crate::model::Phase;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{watch, Notify};

#[derive(Debug, Clone)]
pub struct Facts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    phase: watch::Sender<Option<Phase>>,
    nodeconfig: watch::Sender<Option<Arc<Loaded>>>,
    /// Woken when a new good NodeConfig is published.
    nodeconfig_listeners: Mutex<Vec<Arc<Notify>>>,
}

impl Default for Facts {
    fn default() -> Self {
        Facts {
            inner: Arc::new(Inner {
                phase: watch::Sender::new(None),
                nodeconfig: watch::Sender::new(None),
                nodeconfig_listeners: Mutex::new(Vec::new()),
            }),
        }
    }
}

impl Facts {
    /// The last phase the lifecycle domain saw; `None` before its first run.
    pub fn phase(&self) -> Option<Phase> {
        *self.inner.phase.borrow()
    }

    pub fn set_phase(&self, phase: Phase) {
        self.inner.phase.send_if_modified(|p| {
            let changed = *p != Some(phase);
            *p = Some(phase);
            changed
        });
    }

    pub fn subscribe_phase(&self) -> watch::Receiver<Option<Phase>> {
        self.inner.phase.subscribe()
    }

    /// The last good NodeConfig; `None` until one has loaded.
    pub fn nodeconfig(&self) -> Option<Arc<Loaded>> {
        self.inner.nodeconfig.borrow().clone()
    }

    /// Publishes a new good NodeConfig and wakes the domains that use it.
    pub fn set_nodeconfig(&self, loaded: Arc<Loaded>) {
        self.inner.nodeconfig.send_replace(Some(loaded));
        let listeners = self
            .inner
            .nodeconfig_listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for l in listeners.iter() {
            l.notify_one();
        }
    }

    /// `notify` is woken each time a new good NodeConfig is published.
    pub fn on_nodeconfig_change(&self, notify: Arc<Notify>) {
        self.inner
            .nodeconfig_listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(notify);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_changes_are_observed() {
        let facts = Facts::default();
        let mut rx = facts.subscribe_phase();
        assert_eq!(facts.phase(), None);
        facts.set_phase(Phase::Installed);
        assert!(rx.has_changed().unwrap_or(false));
        rx.mark_unchanged();
        facts.set_phase(Phase::Installed);
        assert!(
            !rx.has_changed().unwrap_or(true),
            "same value is not a change"
        );
        assert_eq!(facts.phase(), Some(Phase::Installed));
    }
}
