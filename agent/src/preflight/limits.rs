//! Resource limits of the services that matter: nodeadm's `ulimit`
//! validation wants at least 1024 open files and 4096 processes
//! (aws/eks-hybrid internal/system/ulimit_validator.go). nodeadm reads the
//! limits of its own shell; what the kubelet and containerd get is their
//! unit's `LimitNOFILE=`/`LimitNPROC=` (file and drop-ins), else the
//! manager's `DefaultLimitNOFILE=`/`DefaultLimitNPROC=` from
//! /etc/systemd/system.conf and system.conf.d, else systemd's built-in
//! default: 1024 soft open files (systemd ≥ 240), and for processes the
//! kernel's own (half of `kernel.threads-max`). The soft limit is the one
//! a process runs into, so that is what is judged.

use crate::check::{Check, Status};
use crate::edge::units::{self, parse_section, Unit};
use crate::host::read_text;
use crate::host::Host;

/// The units judged, with the `unit` label.
pub const SERVICES: [(&str, &str); 2] = [
    ("kubelet", "kubelet.service"),
    ("containerd", "containerd.service"),
];

/// Where the manager's defaults live, lowest precedence first for the
/// directories (a later file of the same name is masked by an earlier
/// directory's; all are applied after system.conf).
const SYSTEM_CONF: &str = "/etc/systemd/system.conf";
const SYSTEM_CONF_D: [&str; 4] = [
    "/etc/systemd/system.conf.d",
    "/run/systemd/system.conf.d",
    "/usr/local/lib/systemd/system.conf.d",
    "/usr/lib/systemd/system.conf.d",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Nofile,
    Nproc,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Nofile => "nofile",
            Resource::Nproc => "nproc",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Resource::Nofile => "LimitNOFILE",
            Resource::Nproc => "LimitNPROC",
        }
    }
}

/// A soft limit and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// `None`: infinity.
    pub soft: Option<u64>,
    /// `file:line`, or a description of the built-in default.
    pub from: String,
}

impl Limit {
    /// The value exported: infinity as the kernel's RLIM_INFINITY (2^64 -
    /// 1), since the exposition formats disagree on how to spell +Inf
    /// (prometheus-client writes `inf`, OpenMetrics wants `+Inf`).
    pub fn value(&self) -> f64 {
        self.soft.unwrap_or(u64::MAX) as f64
    }
}

/// `N`, `infinity`, or `soft:hard` → the soft limit (`None`: infinity).
pub fn parse_value(v: &str) -> Option<Option<u64>> {
    let soft = v.split(':').next()?.trim();
    if soft == "infinity" {
        Some(None)
    } else {
        soft.parse().ok().map(Some)
    }
}

/// The manager's defaults, from system.conf and its drop-ins.
pub fn manager_default(host: &Host, r: Resource) -> Option<Limit> {
    let key = format!("Default{}", r.key());
    let mut files = vec![SYSTEM_CONF.to_owned()];
    let mut dropins = std::collections::BTreeMap::new();
    for d in SYSTEM_CONF_D {
        if let Ok(entries) = std::fs::read_dir(host.path(d)) {
            for e in entries.filter_map(|e| e.ok()) {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".conf") {
                    dropins.entry(n.clone()).or_insert(format!("{d}/{n}"));
                }
            }
        }
    }
    files.extend(dropins.into_values());
    let mut found = None;
    for f in &files {
        let Ok(text) = read_text(host, f) else {
            continue;
        };
        for a in parse_section(&text, "Manager", f) {
            if a.key == key {
                found = parse_value(&a.value).map(|soft| Limit { soft, from: a.at() });
            }
        }
    }
    found
}

/// systemd's built-in default when nothing is configured.
fn builtin(host: &Host, r: Resource) -> Option<Limit> {
    match r {
        Resource::Nofile => Some(Limit {
            soft: Some(1024),
            from: "systemd's built-in default (1024:524288)".to_owned(),
        }),
        Resource::Nproc => read_text(host, "/proc/sys/kernel/threads-max")
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map(|t| Limit {
                soft: Some(t / 2),
                from: "the kernel's default (kernel.threads-max / 2)".to_owned(),
            }),
    }
}

/// The limit `unit` runs with.
pub fn effective(host: &Host, unit: &Unit, r: Resource) -> Option<Limit> {
    if let Some(a) = unit.last(r.key()) {
        if let Some(soft) = parse_value(&a.value) {
            return Some(Limit { soft, from: a.at() });
        }
    }
    manager_default(host, r).or_else(|| builtin(host, r))
}

/// The verdict on one service: both limits against the minimums.
pub fn judge(
    domain: &'static str,
    label: &str,
    unit_name: &str,
    unit: &Unit,
    limits: &[(Resource, Option<Limit>)],
    min_nofile: u64,
    min_nproc: u64,
) -> Check {
    let id = format!("limits/{label}");
    let installed = if unit.file.is_some() {
        String::new()
    } else {
        " (unit not installed yet: judged by what systemd would give it)".to_owned()
    };
    let mut low = Vec::new();
    let mut fine: Vec<String> = Vec::new();
    let mut unknown = Vec::new();
    for (r, l) in limits {
        let min = match r {
            Resource::Nofile => min_nofile,
            Resource::Nproc => min_nproc,
        };
        match l {
            None => unknown.push(r.key()),
            Some(l) => {
                let shown = l.soft.map_or("infinity".to_owned(), |v| v.to_string());
                if l.soft.is_some_and(|v| v < min) {
                    low.push((r.key(), shown, min, l.from.clone()));
                } else {
                    fine.push(format!("{}={shown}", r.key()));
                }
            }
        }
    }
    if !low.is_empty() {
        let what: Vec<String> = low
            .iter()
            .map(|(k, v, min, from)| format!("{k} soft limit {v} (from {from}) is below {min}"))
            .collect();
        let set: Vec<String> = low
            .iter()
            .map(|(k, _, min, _)| format!("{k}={min}"))
            .collect();
        let rest = if fine.is_empty() {
            String::new()
        } else {
            format!(" ({})", fine.join(", "))
        };
        return Check::new(
            domain,
            id,
            Status::Fail,
            format!("{unit_name}: {}{rest}{installed}", what.join("; ")),
        )
        .with_remedy(format!(
            "add a drop-in /etc/systemd/system/{unit_name}.d/limits.conf with `[Service]` and {}, then `systemctl daemon-reload && systemctl restart {label}`",
            set.join(" and ")
        ));
    }
    // Only LimitNPROC can be unknown: set nowhere, and no
    // /proc/sys/kernel/threads-max under the root to work out the kernel's
    // default from (a tree rather than a running host).
    for k in unknown {
        fine.push(format!("{k} not set (the kernel's default)"));
    }
    Check::pass(
        domain,
        id,
        format!("{unit_name}: {}{installed}", fine.join(", ")),
    )
}

/// Loads the unit and both of its limits.
pub fn read(host: &Host, unit_name: &str) -> (Unit, Vec<(Resource, Option<Limit>)>) {
    let unit = units::load(host, unit_name, "Service");
    let limits = [Resource::Nofile, Resource::Nproc]
        .into_iter()
        .map(|r| (r, effective(host, &unit, r)))
        .collect();
    (unit, limits)
}
