//! Where the program is put together: every domain, with the real host
//! edges it runs against. Only the entry points (`app`, `daemon`) import
//! this module; domains never do, nor each other.

use crate::config::Config;
use crate::domain::Domain;
use crate::edge::systemctl::{NotThisHost, ServiceManager, Systemctl};
use crate::facts::Facts;
use crate::host::Host;
use prometheus_client::registry::Registry;

/// Builds every domain, registering their metrics in `registry`. `mode`
/// says whether domains that manage files may change the host.
pub fn build_all(
    config: &Config,
    host: &Host,
    registry: &mut Registry,
    facts: &Facts,
    mode: crate::domain::Mode,
) -> Vec<Box<dyn Domain>> {
    vec![
        Box::new(crate::lifecycle::Lifecycle::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
        )),
        Box::new(crate::nodeconfig::NodeConfigDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
        )),
        Box::new(crate::containerd::ContainerdDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
        )),
        Box::new(crate::registry::RegistryDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
            mode,
            registry_edges(host),
        )),
        Box::new(crate::gpu::GpuDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
            Box::new(crate::gpu::nvml::NvmlSource::new(&config.gpu.nvml_library)),
            services(host),
        )),
        Box::new(crate::net::NetworkDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
        )),
        Box::new(crate::ports::PortsDomain::new(
            config,
            host.clone(),
            facts.clone(),
        )),
        Box::new(crate::path::PathDomain::new(
            config,
            registry,
            Box::new(crate::path::probe::UdpTracer),
        )),
        Box::new(crate::dns::DnsDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
            Box::new(crate::dns::query::NetLookup),
        )),
        Box::new(crate::endpoints::EndpointsDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
            Box::new(crate::endpoints::probe::RealNetwork::from_env()),
        )),
        Box::new(crate::bandwidth::BandwidthDomain::new(
            config,
            host.clone(),
            registry,
        )),
        Box::new(crate::credentials::CredentialsDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
            services(host),
        )),
        Box::new(crate::preflight::PreflightDomain::new(
            config,
            host.clone(),
            registry,
            facts.clone(),
            preflight_edges(host),
        )),
    ]
}

/// The preflight domain's programs: the time tools and systemd's view of
/// running services, only when the checked root is this host's (they
/// answer for this machine, not for a tree under `--root`).
fn preflight_edges(host: &Host) -> crate::preflight::Edges {
    if host.root() == std::path::Path::new("/") {
        crate::preflight::Edges {
            time: Some(Box::new(crate::preflight::time::Tools {
                timeout: std::time::Duration::from_secs(5),
            })),
            services: services(host),
            node_interface: crate::edge::route::node_interface,
        }
    } else {
        crate::preflight::Edges {
            time: None,
            services: services(host),
            node_interface: || None,
        }
    }
}

/// The registry domain's programs: the distribution's trust tool, and
/// `systemctl`, unless the checked root is not this host's.
fn registry_edges(host: &Host) -> crate::registry::Edges {
    crate::registry::Edges {
        trust_tool: Box::new(crate::registry::trust::SystemTool),
        services: services(host),
    }
}

/// `systemctl`, unless the checked root is not this host's.
fn services(host: &Host) -> Box<dyn ServiceManager> {
    if host.root() == std::path::Path::new("/") {
        Box::new(Systemctl)
    } else {
        Box::new(NotThisHost)
    }
}
