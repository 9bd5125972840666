//! The preflight metric families (prefix `hybrid_node_preflight_`).

use crate::metrics::label::LabelValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type FGauge = Gauge<f64, AtomicU64>;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct LimitLabels {
    /// `kubelet`, `containerd`.
    pub unit: &'static str,
    /// `nofile`, `nproc`.
    pub resource: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FirewallLabel {
    /// `firewalld`, `ufw`.
    pub firewall: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PortLabel {
    /// `10250/tcp`, `8472/udp`: from the CNI setting, a bounded set.
    pub port: LabelValue,
}

#[derive(Debug, Clone)]
pub struct Metrics {
    pub clock_synchronized: Gauge,
    pub clock_offset: FGauge,
    pub swap_areas: Gauge,
    pub swap_bytes: Gauge,
    pub service_limit: Family<LimitLabels, FGauge>,
    pub proxy_configured: Gauge,
    pub proxy_consistent: Gauge,
    pub no_proxy_uncovered: Gauge,
    pub firewall_active: Family<FirewallLabel, Gauge>,
    pub firewall_port_open: Family<PortLabel, Gauge>,
    pub leftovers: Gauge,
}

impl Metrics {
    /// Registers the families under `preflight_` in `r`.
    pub fn register(r: &mut Registry) -> Self {
        let m = Metrics {
            clock_synchronized: Gauge::default(),
            clock_offset: FGauge::default(),
            swap_areas: Gauge::default(),
            swap_bytes: Gauge::default(),
            service_limit: Family::default(),
            proxy_configured: Gauge::default(),
            proxy_consistent: Gauge::default(),
            no_proxy_uncovered: Gauge::default(),
            firewall_active: Family::default(),
            firewall_port_open: Family::default(),
            leftovers: Gauge::default(),
        };
        // NaN until a time source reports an offset.
        m.clock_offset.set(f64::NAN);
        let r = r.sub_registry_with_prefix("preflight");
        r.register(
            "clock_synchronized",
            "1 if chrony or systemd-timesyncd reports the clock synchronised to a source other than the host itself",
            m.clock_synchronized.clone(),
        );
        r.register(
            "clock_offset_seconds",
            "System clock minus the time source's time (positive: fast); NaN when no source reports it",
            m.clock_offset.clone(),
        );
        r.register(
            "swap_areas",
            "Active swap areas (/proc/swaps); the kubelet does not start while any is on",
            m.swap_areas.clone(),
        );
        r.register(
            "swap_bytes",
            "Total size of the active swap areas",
            m.swap_bytes.clone(),
        );
        r.register(
            "service_limit",
            "Soft resource limit the unit runs with (LimitNOFILE, LimitNPROC; infinity as RLIM_INFINITY, 2^64-1)",
            m.service_limit.clone(),
        );
        r.register(
            "proxy_configured",
            "1 if an HTTP(S) proxy is set in the environment, the package manager or the kubelet, containerd or SSM agent units",
            m.proxy_configured.clone(),
        );
        r.register(
            "proxy_consistent",
            "1 if every proxy setting agrees (always 1 without a proxy)",
            m.proxy_consistent.clone(),
        );
        r.register(
            "no_proxy_uncovered",
            "Destinations (API endpoint, registries) NO_PROXY does not cover while a proxy is set",
            m.no_proxy_uncovered.clone(),
        );
        r.register(
            "firewall_active",
            "1 if the host firewall runs (on this host) or is enabled (a tree under --root)",
            m.firewall_active.clone(),
        );
        r.register(
            "firewall_port_open",
            "1 if the port the node needs is let in by every active host firewall (or none runs)",
            m.firewall_port_open.clone(),
        );
        r.register(
            "leftover_artifacts",
            "Pieces of an earlier install not removed by nodeadm uninstall (kubelet environment, /etc/kubernetes, a running kubelet)",
            m.leftovers.clone(),
        );
        m
    }
}
