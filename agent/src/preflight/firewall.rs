//! The host firewall: when firewalld or ufw is on, the kubelet's port
//! (10250/tcp, which `nodeadm init` opens: aws/eks-hybrid
//! internal/system/ports.go) and the CNI's VXLAN port (8472/udp Cilium,
//! 4789/udp Calico, which nodeadm does not open) must be let in. Read from
//! their configuration on disk, so a tree under `--root` is judged too:
//!
//! - firewalld: `DefaultZone=` in /etc/firewalld/firewalld.conf; zones and
//!   services from /etc/firewalld (which overrides) and /usr/lib/firewalld;
//!   a port is open in a zone that lists it as a `<port>` or through a
//!   `<service>`, lets it in by a rich rule, or whose target is ACCEPT,
//!   unless a rich rule rejects or drops it first ([`super::firewalld`]).
//!   The default zone and the node IP interface's zone are judged.
//! - ufw: `ENABLED=yes` in /etc/ufw/ufw.conf; the `### tuple ###` lines
//!   `ufw` writes to /etc/ufw/user.rules and user6.rules, first match wins;
//!   no match falls to `DEFAULT_INPUT_POLICY` in /etc/default/ufw.
//!
//! Whether the firewall runs comes from `systemctl is-active` on this host,
//! and from the unit being enabled for a tree under `--root`.

use crate::check::{Check, Status};
use crate::edge::units;
use crate::host::read_text;
use crate::host::Host;
use std::collections::BTreeMap;

pub use super::firewalld::{read_firewalld, Firewalld, RichRule, Zone, ZoneVerdict};

/// A port the node needs let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    pub port: u16,
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// Who needs it (`kubelet`, `cilium VXLAN`).
    pub why: &'static str,
}

impl Port {
    /// The `port` label and what firewall commands take: `8472/udp`.
    pub fn spec(&self) -> String {
        format!("{}/{}", self.port, self.proto)
    }
}

/// `80`, `30000-32767` (firewalld) or `30000:32767` (ufw), `80,443`.
pub(super) fn covers(spec: &str, port: u16) -> bool {
    spec.split(',').any(|part| {
        let part = part.trim();
        match part.split_once(['-', ':']) {
            Some((a, b)) => match (a.parse::<u16>(), b.parse::<u16>()) {
                (Ok(a), Ok(b)) => (a..=b).contains(&port),
                _ => false,
            },
            None => part.parse::<u16>() == Ok(port),
        }
    })
}

/// One `### tuple ###` line of ufw's user rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UfwRule {
    /// `allow`, `deny`, `reject`, `limit`.
    pub action: String,
    /// `tcp`, `udp`, `any`.
    pub proto: String,
    pub dport: String,
    pub src: String,
    pub at: String,
}

/// ufw's configuration on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ufw {
    pub enabled: bool,
    /// `DROP`, `REJECT`, `ACCEPT` (`DEFAULT_INPUT_POLICY`).
    pub default_input: String,
    pub rules: Vec<UfwRule>,
}

/// `### tuple ### ACTION PROTO DPORT DST SPORT SRC [APPS] DIRECTION`: the
/// comment ufw writes above each rule it generates (ufw's
/// `UFWRule.get_app_tuple`); only incoming rules are kept.
pub fn parse_ufw_rules(text: &str, file: &str) -> Vec<UfwRule> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(t) = line.trim().strip_prefix("### tuple ###") else {
            continue;
        };
        let f: Vec<&str> = t.split_whitespace().collect();
        if f.len() < 7 || f[0].starts_with("route:") {
            continue;
        }
        let direction = f[f.len() - 1];
        if !direction.starts_with("in") {
            continue;
        }
        out.push(UfwRule {
            action: f[0].split('_').next().unwrap_or(f[0]).to_owned(),
            proto: f[1].to_owned(),
            dport: f[2].to_owned(),
            src: f[5].to_owned(),
            at: format!("{file}:{}", i + 1),
        });
    }
    out
}

/// Reads ufw's configuration; `None` when it is not installed.
pub fn read_ufw(host: &Host) -> Option<Ufw> {
    let conf = read_text(host, "/etc/ufw/ufw.conf").ok()?;
    let enabled = conf.lines().any(|l| {
        l.trim()
            .strip_prefix("ENABLED=")
            .is_some_and(|v| v.trim().trim_matches('"').eq_ignore_ascii_case("yes"))
    });
    let default_input = read_text(host, "/etc/default/ufw")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("DEFAULT_INPUT_POLICY=")
                    .map(|v| v.trim().trim_matches('"').to_ascii_uppercase())
            })
        })
        .unwrap_or_else(|| "DROP".to_owned());
    let mut rules = Vec::new();
    for f in ["/etc/ufw/user.rules", "/etc/ufw/user6.rules"] {
        if let Ok(t) = read_text(host, f) {
            rules.extend(parse_ufw_rules(&t, f));
        }
    }
    Some(Ufw {
        enabled,
        default_input,
        rules,
    })
}

/// Whether a port is let in, and by what (a rule's `file:line`, the
/// default policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Open(String),
    Closed(String),
}

impl Ufw {
    /// Whether ufw lets `p` in: the first rule for the port decides.
    pub fn allows(&self, p: &Port) -> Decision {
        let hit = self
            .rules
            .iter()
            .find(|r| (r.proto == p.proto || r.proto == "any") && covers(&r.dport, p.port));
        match hit {
            Some(r) if r.action == "allow" || r.action == "limit" => {
                let from = if r.src.starts_with("0.0.0.0/0") || r.src.starts_with("::/0") {
                    String::new()
                } else {
                    format!(" from {}", r.src)
                };
                Decision::Open(format!("{} {}{from}", r.at, r.action))
            }
            Some(r) => Decision::Closed(format!("{} {}s it", r.at, r.action)),
            None if self.default_input == "ACCEPT" => {
                Decision::Open("default incoming policy ACCEPT".to_owned())
            }
            None => Decision::Closed(format!(
                "no rule, default incoming policy {}",
                self.default_input
            )),
        }
    }
}

/// Whether each firewall runs: `Some` from systemd on this host; for a
/// tree under `--root`, from its unit being enabled (and ufw's ENABLED).
/// Without an answer from systemd (a tree under `--root`, or a machine
/// not booted with systemd), a `firewalld` process under the root's /proc
/// says it runs; with no /proc there, the enabled unit does.
pub fn firewalld_on(host: &Host, active: Option<bool>) -> bool {
    active.unwrap_or_else(|| match std::fs::read_dir(host.path("/proc")) {
        Ok(entries) => entries.filter_map(|e| e.ok()).any(|e| {
            let comm = format!("/proc/{}/comm", e.file_name().to_string_lossy());
            read_text(host, &comm).is_ok_and(|c| c.trim() == "firewalld")
        }),
        Err(_) => units::enabled(host, "firewalld.service"),
    })
}

pub fn ufw_on(host: &Host, ufw: &Ufw, active: Option<bool>) -> bool {
    ufw.enabled && active.unwrap_or_else(|| !masked(host, "ufw.service"))
}

fn masked(host: &Host, unit: &str) -> bool {
    std::fs::read_link(host.path(format!("/etc/systemd/system/{unit}")))
        .is_ok_and(|t| t == std::path::Path::new("/dev/null"))
}

/// The verdict, with (port, open) for the metrics.
pub fn judge(
    domain: &'static str,
    firewalld: Option<(&Firewalld, bool)>,
    ufw: Option<(&Ufw, bool)>,
    ports: &[Port],
    node_interface: Option<&str>,
) -> (Check, Vec<(Port, bool)>) {
    let id = "firewall";
    let mut open: BTreeMap<Port, bool> = ports.iter().map(|p| (*p, true)).collect();
    let mut closed = Vec::new();
    let mut fine = Vec::new();
    let mut remedies = Vec::new();
    let mut on = Vec::new();
    let mut not_judged = String::new();
    if let Some((fw, true)) = firewalld {
        on.push("firewalld");
        let (judged, others) = fw.judged(node_interface);
        if !others.is_empty() {
            not_judged = format!(
                " (not judged: {}; nodeadm opens ports only in the default zone {}{})",
                others
                    .iter()
                    .map(|z| format!("zone {} on {}", z.name, z.interfaces.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; "),
                fw.default_zone,
                node_interface.map_or(String::new(), |i| format!(
                    ", and the node IP's interface is {i}"
                )),
            );
        }
        for z in judged {
            let mut missing = Vec::new();
            let mut refused = Vec::new();
            for p in ports {
                match fw.zone_allows(z, p) {
                    ZoneVerdict::Open(how) => fine.push(format!("{} ({how})", p.spec())),
                    ZoneVerdict::NotListed => {
                        open.insert(*p, false);
                        missing.push(*p);
                    }
                    ZoneVerdict::Refused(why) => {
                        open.insert(*p, false);
                        refused.push(format!("{} ({}): {why}", p.spec(), p.why));
                    }
                }
            }
            if !missing.is_empty() {
                closed.push(format!(
                    "firewalld zone {} ({}) does not let in {}",
                    z.name,
                    z.file,
                    missing
                        .iter()
                        .map(|p| format!("{} ({})", p.spec(), p.why))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                remedies.push(format!(
                    "firewall-cmd --permanent --zone={} {} && firewall-cmd --reload",
                    z.name,
                    missing
                        .iter()
                        .map(|p| format!("--add-port={}", p.spec()))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
            if !refused.is_empty() {
                closed.push(format!(
                    "firewalld zone {} ({}) refuses {}",
                    z.name,
                    z.file,
                    refused.join(", ")
                ));
                remedies.push(format!(
                    "remove or narrow the rich rule (firewall-cmd --permanent --zone={} --list-rich-rules, then --remove-rich-rule='…' and firewall-cmd --reload)",
                    z.name
                ));
            }
        }
    }
    if let Some((u, true)) = ufw {
        on.push("ufw");
        for p in ports {
            match u.allows(p) {
                Decision::Open(how) => fine.push(format!("{} ({how})", p.spec())),
                Decision::Closed(why) => {
                    open.insert(*p, false);
                    closed.push(format!(
                        "ufw does not let in {} ({}): {why}",
                        p.spec(),
                        p.why
                    ));
                    remedies.push(format!("ufw allow {}", p.spec()));
                }
            }
        }
    }
    let series = open.into_iter().collect();
    if on.is_empty() {
        let installed: Vec<&str> = [firewalld.map(|_| "firewalld"), ufw.map(|_| "ufw")]
            .into_iter()
            .flatten()
            .collect();
        let summary = if installed.is_empty() {
            "no host firewall (firewalld, ufw) is installed".to_owned()
        } else {
            format!(
                "{} installed but not running: no port to open",
                installed.join(" and ")
            )
        };
        return (Check::pass(domain, id, summary), series);
    }
    if closed.is_empty() {
        fine.dedup();
        return (
            Check::pass(
                domain,
                id,
                format!(
                    "{} lets in {}{not_judged}",
                    on.join(" and "),
                    fine.join(", ")
                ),
            ),
            series,
        );
    }
    (
        Check::new(domain, id, Status::Fail, format!("{}: the kubelet (10250/tcp) and the CNI's VXLAN overlay must be reachable from the cluster{not_judged}", closed.join("; ")))
            .with_remedy(remedies.join("; ")),
        series,
    )
}
