//! Proxy consistency, as nodeadm's `proxy-configuration` validation wants
//! it (aws/eks-hybrid internal/network/proxy_validator.go) and more: when a
//! proxy is set anywhere, the upper- and lower-case variables agree,
//! /etc/environment, the package manager (apt `Acquire::http(s)::Proxy`,
//! yum/dnf `proxy=`) and the environment of the kubelet, containerd and
//! SSM agent units (`Environment=` in the unit or its drop-ins; nodeadm's
//! docs write `<unit>.service.d/http-proxy.conf`) carry the same values,
//! and NO_PROXY covers what must not go through the proxy: the API server
//! endpoint and the registries (not localhost: Go's `httpproxy` never
//! proxies it, whatever NO_PROXY says).
//!
//! nodeadm reads the variables of its own shell; a daemon has no such
//! shell, so /etc/environment (what pam_env gives every login) stands for
//! it. Values are shown with any `user:password@` cut out.

use crate::check::{Check, Status};
use crate::edge::units;
use crate::host::read_text;
use crate::host::Host;
use crate::model::proxy::{host_and_port, NoProxy};
use std::collections::BTreeSet;

pub const ENVIRONMENT: &str = "/etc/environment";
const APT_CONF: &str = "/etc/apt/apt.conf";
const APT_CONF_D: &str = "/etc/apt/apt.conf.d";
const YUM_CONF: &str = "/etc/yum.conf";
const DNF_CONF: &str = "/etc/dnf/dnf.conf";

/// The units whose environment must carry the proxy: (name, required).
/// The SSM agent's (snap on Ubuntu, package on RHEL) only where installed.
const UNITS: [(&str, bool); 4] = [
    ("kubelet.service", true),
    ("containerd.service", true),
    ("amazon-ssm-agent.service", false),
    ("snap.amazon-ssm-agent.amazon-ssm-agent.service", false),
];

/// The three variables, upper-case.
pub const VARS: [&str; 3] = ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"];

/// One proxy setting found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// As written: `https_proxy`, `HTTPS_PROXY`, `Acquire::https::Proxy`.
    pub name: String,
    /// The variable it stands for (`HTTPS_PROXY`).
    pub var: &'static str,
    pub value: String,
    /// `file:line`.
    pub at: String,
}

/// Where settings were found, in the order the reference value is taken.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    /// `/etc/environment`, `kubelet.service`, `apt`, `dnf`.
    pub name: String,
    /// Whether it takes environment variables (both cases) rather than a
    /// package manager's own key.
    pub env: bool,
    /// A unit that must carry the proxy; `None` otherwise.
    pub unit_required: Option<bool>,
    /// Whether the unit file exists (for units).
    pub installed: bool,
    pub settings: Vec<Setting>,
}

impl Source {
    /// The value of `var`, upper case first (as nodeadm's
    /// getEffectiveProxyValue).
    pub fn get(&self, var: &str) -> Option<&Setting> {
        self.settings
            .iter()
            .filter(|s| s.var == var)
            .max_by_key(|s| s.name == var)
    }
}

fn var_of(name: &str) -> Option<&'static str> {
    VARS.iter().copied().find(|v| v.eq_ignore_ascii_case(name))
}

/// `KEY=value` lines of /etc/environment (pam_env's simple form).
pub fn parse_environment(text: &str, file: &str) -> Vec<Setting> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if let Some(var) = var_of(k.trim()) {
            out.push(Setting {
                name: k.trim().to_owned(),
                var,
                value: unquote(v.trim()).to_owned(),
                at: format!("{file}:{}", i + 1),
            });
        }
    }
    out
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(v)
}

/// `Acquire::http::Proxy "URL";` lines of an apt configuration file (apt
/// keys are case-insensitive; per-host `Acquire::http::Proxy::<host>`
/// lines are not the default proxy and are left out).
pub fn parse_apt(text: &str, file: &str) -> Vec<Setting> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with("//") || line.starts_with('#') {
            continue;
        }
        let Some((key, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let var = match key.to_ascii_lowercase().as_str() {
            "acquire::http::proxy" => "HTTP_PROXY",
            "acquire::https::proxy" => "HTTPS_PROXY",
            _ => continue,
        };
        let value = rest.trim().trim_end_matches(';').trim();
        out.push(Setting {
            name: key.to_owned(),
            var,
            value: unquote(value).to_owned(),
            at: format!("{file}:{}", i + 1),
        });
    }
    out
}

/// The SSM agent's unit where nodeadm installs it: the snap on Ubuntu,
/// the package elsewhere (proxy_validator.go `validateSSMProxyConfig`).
fn ssm_unit_for(host: &Host) -> &'static str {
    let ubuntu = read_text(host, "/etc/os-release")
        .is_ok_and(|t| t.lines().any(|l| l.trim() == "ID=ubuntu"));
    if ubuntu {
        UNITS[3].0
    } else {
        UNITS[2].0
    }
}

/// Reads every source under `--root`. `ssm`: the NodeConfig registers
/// through SSM, so the SSM agent's unit must carry the proxy even before
/// `nodeadm install` puts it there.
pub fn gather(host: &Host, ssm: bool) -> Vec<Source> {
    let ssm_unit = ssm_unit_for(host);
    let mut sources = Vec::new();
    let read = |p: &str| read_text(host, p).ok();
    sources.push(Source {
        name: ENVIRONMENT.to_owned(),
        env: true,
        settings: read(ENVIRONMENT)
            .map(|t| parse_environment(&t, ENVIRONMENT))
            .unwrap_or_default(),
        ..Source::default()
    });
    for (name, required) in UNITS {
        let unit = units::load(host, name, "Service");
        let mut settings = Vec::new();
        for a in unit.all("Environment") {
            for (k, v) in units::environment_pairs(&a.value) {
                if let Some(var) = var_of(&k) {
                    settings.push(Setting {
                        name: k,
                        var,
                        value: v,
                        at: a.at(),
                    });
                }
            }
        }
        sources.push(Source {
            name: name.to_owned(),
            env: true,
            unit_required: Some(required || (ssm && name == ssm_unit)),
            installed: unit.file.is_some(),
            settings,
        });
    }
    if host.path("/etc/apt").is_dir() {
        let mut files = vec![APT_CONF.to_owned()];
        if let Ok(entries) = std::fs::read_dir(host.path(APT_CONF_D)) {
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            files.extend(names.into_iter().map(|n| format!("{APT_CONF_D}/{n}")));
        }
        let settings = files
            .iter()
            .filter_map(|f| read(f).map(|t| parse_apt(&t, f)))
            .flatten()
            .collect();
        sources.push(Source {
            name: "apt".to_owned(),
            settings,
            ..Source::default()
        });
    }
    for (name, file) in [("yum", YUM_CONF), ("dnf", DNF_CONF)] {
        let Some(text) = read(file) else { continue };
        let settings = units::parse_section(&text, "main", file)
            .into_iter()
            .filter(|a| a.key == "proxy")
            .map(|a| Setting {
                name: "proxy".to_owned(),
                var: "HTTP_PROXY",
                value: a.value.clone(),
                at: a.at(),
            })
            .collect();
        sources.push(Source {
            name: name.to_owned(),
            settings,
            ..Source::default()
        });
    }
    sources
}

/// `scheme://user:password@host:port` → `scheme://***@host:port`: a
/// proxy's credentials are never shown. Everything before the last `@`
/// is hidden, even past a `/`: a password may hold one unescaped
/// (`user:pa/ss@proxy`), and hiding a path by mistake costs nothing.
pub fn redact(v: &str) -> String {
    let (scheme, rest) = match v.find("://") {
        Some(i) => v.split_at(i + 3),
        None => ("", v),
    };
    match rest.rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => v.to_owned(),
    }
}

fn no_proxy_set(v: &str) -> BTreeSet<String> {
    v.split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .collect()
}

fn same(var: &str, a: &str, b: &str) -> bool {
    if var == "NO_PROXY" {
        no_proxy_set(a) == no_proxy_set(b)
    } else {
        a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
    }
}

/// Whether NO_PROXY's value keeps `authority` (`host[:port]`, 443 when
/// no port is written) off the proxy, as Go's `httpproxy` decides
/// ([`NoProxy::bypasses`]).
pub fn bypasses(no_proxy: &str, authority: &str) -> bool {
    let (host, port) = host_and_port(authority);
    NoProxy::parse(no_proxy).bypasses(host, port)
}

/// The outcome: the consistency check, the NO_PROXY check, and for the
/// metrics whether a proxy is set and whether the sources agree.
#[derive(Debug)]
pub struct Verdict {
    pub proxy: Check,
    pub no_proxy: Check,
    pub configured: bool,
    pub consistent: bool,
    /// Destinations NO_PROXY should cover and does not.
    pub uncovered: usize,
}

/// Judges the sources; `must_bypass` are (what, `host[:port]`) pairs
/// NO_PROXY must cover (the API endpoint, the registries).
pub fn judge(
    domain: &'static str,
    sources: &[Source],
    must_bypass: &[(String, String)],
) -> Verdict {
    let proxied = |s: &Source| {
        s.get("HTTPS_PROXY")
            .or_else(|| s.get("HTTP_PROXY"))
            .is_some()
    };
    if !sources.iter().any(proxied) {
        return Verdict {
            proxy: Check::pass(domain, "proxy", "no HTTP(S) proxy is set (environment, package manager, kubelet, containerd and SSM agent units)"),
            no_proxy: Check::not_applicable(domain, "no_proxy", "no proxy is set"),
            configured: false,
            consistent: true,
            uncovered: 0,
        };
    }
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    // Upper and lower case within one source.
    for s in sources.iter().filter(|s| s.env) {
        for var in VARS {
            let set: Vec<&Setting> = s.settings.iter().filter(|x| x.var == var).collect();
            if let (Some(u), Some(l)) = (
                set.iter().rev().find(|x| x.name == var),
                set.iter().rev().find(|x| x.name != var),
            ) {
                if !same(var, &u.value, &l.value) {
                    problems.push(format!(
                        "{} {}={} and {} {}={} differ",
                        u.at,
                        u.name,
                        redact(&u.value),
                        l.at,
                        l.name,
                        redact(&l.value)
                    ));
                }
            }
        }
    }
    // Every source against the first that sets each variable.
    for var in VARS {
        let Some(reference) = sources.iter().find_map(|s| s.get(var)) else {
            continue;
        };
        for s in sources {
            if let Some(x) = s.get(var) {
                if !same(var, &x.value, &reference.value) {
                    problems.push(format!(
                        "{var}: {} has {} but {} has {}",
                        x.at,
                        redact(&x.value),
                        reference.at,
                        redact(&reference.value)
                    ));
                }
            }
        }
    }
    let reference = |var: &str| sources.iter().find_map(|s| s.get(var));
    let https = reference("HTTPS_PROXY").or_else(|| reference("HTTP_PROXY"));
    let mut fixes = Vec::new();
    for s in sources {
        match s.unit_required {
            Some(required) if required || s.installed => {
                // What the environment and the other units set; a
                // package manager's own proxy key asks nothing of a unit.
                let missing: Vec<&str> = VARS
                    .iter()
                    .copied()
                    .filter(|v| {
                        sources.iter().any(|o| o.env && o.get(v).is_some()) && s.get(v).is_none()
                    })
                    .collect();
                if !missing.is_empty() {
                    let dropin = format!("/etc/systemd/system/{}.d/http-proxy.conf", s.name);
                    problems.push(format!("{} does not set {}", s.name, missing.join(", ")));
                    fixes.push(format!(
                        "write {dropin} with `[Service]` and {} lines, then `systemctl daemon-reload` and restart it",
                        missing
                            .iter()
                            .map(|v| format!("Environment=\"{v}=…\""))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ));
                }
            }
            None if !s.env && s.settings.is_empty() => {
                let key = if s.name == "apt" {
                    "Acquire::http::Proxy and Acquire::https::Proxy in /etc/apt/apt.conf.d/proxy.conf"
                } else {
                    "proxy= in the [main] section of its configuration"
                };
                warnings.push(format!(
                    "{} has no proxy set ({key}): `nodeadm install` and package updates go direct",
                    s.name
                ));
            }
            _ => {}
        }
    }
    let shown = https.map(|s| redact(&s.value)).unwrap_or_default();
    let proxy = if !problems.is_empty() {
        let mut remedy = "make every file carry the same HTTP_PROXY, HTTPS_PROXY and NO_PROXY (upper and lower case alike)".to_owned();
        if !fixes.is_empty() {
            remedy.push_str("; ");
            remedy.push_str(&fixes.join("; "));
        }
        Check::new(
            domain,
            "proxy",
            Status::Fail,
            format!("proxy settings disagree: {}", problems.join("; ")),
        )
        .with_remedy(remedy)
    } else if !warnings.is_empty() {
        Check::new(domain, "proxy", Status::Warn, warnings.join("; "))
            .with_remedy("set the same proxy for the package manager (nodeadm's docs: /etc/apt/apt.conf.d/proxy.conf, or proxy= in /etc/yum.conf / /etc/dnf/dnf.conf)")
    } else {
        Check::pass(domain, "proxy", format!("proxy {shown} is set alike in the environment, the package manager and the kubelet, containerd and SSM agent units"))
    };
    // NO_PROXY as the kubelet sees it, else the reference.
    let no_proxy = sources
        .iter()
        .find(|s| s.name == "kubelet.service")
        .and_then(|s| s.get("NO_PROXY"))
        .or_else(|| reference("NO_PROXY"));
    let missing: Vec<String> = must_bypass
        .iter()
        .filter(|(_, h)| !no_proxy.is_some_and(|n| bypasses(&n.value, h)))
        .map(|(what, h)| format!("{h} ({what})"))
        .collect();
    let no_proxy_check = if must_bypass.is_empty() {
        Check::not_applicable(
            domain,
            "no_proxy",
            "nothing NO_PROXY must cover is known yet (no API server endpoint, no registry configured)",
        )
    } else if missing.is_empty() {
        Check::pass(
            domain,
            "no_proxy",
            format!(
                "NO_PROXY keeps {} off the proxy",
                must_bypass
                    .iter()
                    .map(|(_, h)| h.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else {
        let at = no_proxy.map_or_else(
            || "no NO_PROXY is set".to_owned(),
            |n| format!("NO_PROXY at {}", n.at),
        );
        Check::new(domain, "no_proxy", Status::Warn, format!("{at} does not cover {}: that traffic goes through the proxy {shown}", missing.join(", ")))
            .with_remedy("add them to NO_PROXY (and no_proxy) in /etc/environment and the kubelet, containerd and SSM agent drop-ins; a private API endpoint and on-premises registries are reached directly over the Direct Connect / VPN path")
    };
    Verdict {
        configured: true,
        consistent: problems.is_empty(),
        uncovered: missing.len(),
        proxy,
        no_proxy: no_proxy_check,
    }
}
