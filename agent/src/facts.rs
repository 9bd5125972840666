//! Facts one domain learns and others need (the lifecycle phase now; the
//! parsed NodeConfig as it lands), published through watch channels so a
//! consumer sees the latest value and can wait for changes.

use crate::lifecycle::Phase;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Facts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    phase: watch::Sender<Option<Phase>>,
}

impl Default for Facts {
    fn default() -> Self {
        Facts {
            inner: Arc::new(Inner {
                phase: watch::Sender::new(None),
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
