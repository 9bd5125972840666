//! The containerd domain: compute the effective containerd configuration —
//! as `nodeadm init` would write it before init, from the host's files after
//! — and report the traps that silently break pulls or the CRI plugin.

pub mod checks;
pub mod downgrade;
pub mod effective;
pub mod loadability;
pub mod nodeadm;
pub mod render;
pub mod secrets;
pub mod transfer;

use crate::check::Check;
use crate::config::Config;
use crate::domain::Domain;
use crate::facts::Facts;
use crate::host::Host;
use crate::model::Phase;
use checks::{analyze, Context};
use effective::{Binary, ConfigSet, DOMAIN};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug)]
pub struct ContainerdDomain {
    host: Host,
    interval: Duration,
    config_dir: String,
    binary: String,
    facts: Facts,
    wake: Arc<Notify>,
}

impl ContainerdDomain {
    pub fn new(config: &Config, host: Host, _registry: &mut Registry, facts: Facts) -> Self {
        let wake = Arc::new(Notify::new());
        facts.on_nodeconfig_change(wake.clone());
        ContainerdDomain {
            host,
            interval: config.containerd.interval.get(),
            config_dir: config.containerd.config_dir.to_string_lossy().into_owned(),
            binary: config.containerd.binary.clone(),
            facts,
            wake,
        }
    }
}

impl Domain for ContainerdDomain {
    fn name(&self) -> &'static str {
        DOMAIN
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn after(&self) -> &'static [&'static str] {
        &[
            crate::check::names::LIFECYCLE,
            crate::check::names::NODECONFIG,
        ]
    }

    fn trigger(&self) -> Option<Arc<Notify>> {
        Some(self.wake.clone())
    }

    fn reconfigure(&mut self, config: &Config) {
        self.interval = config.containerd.interval.get();
        self.config_dir = config.containerd.config_dir.to_string_lossy().into_owned();
        self.binary = config.containerd.binary.clone();
    }

    fn run(&mut self) -> Vec<Check> {
        let tool = Binary::find(&self.binary);
        let ctx = Context {
            host: &self.host,
            tool: tool.as_ref().map(|t| t as &dyn effective::ContainerdTool),
        };
        let initialized = self.facts.phase().is_some_and(|p| p >= Phase::Initialized);
        if initialized {
            match ConfigSet::live(&self.host, &self.config_dir) {
                Ok(Some(set)) => return analyze(&set, &ctx),
                Ok(None) => {}
                Err(e) => {
                    return vec![Check::new(
                        DOMAIN,
                        "effective_config",
                        crate::check::Status::Fail,
                        e.to_string(),
                    )
                    .with_remedy("containerd cannot load this config either; fix it")]
                }
            }
        }
        match self.facts.nodeconfig() {
            Some(nc) => analyze(&ConfigSet::projected(nc.config.spec.containerd.config.as_deref()), &ctx),
            None => vec![Check::not_applicable(
                DOMAIN,
                "effective_config",
                "nothing to analyse yet: no good NodeConfig loaded and nodeadm has not configured containerd",
            )],
        }
    }
}
