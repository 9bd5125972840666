//! The host firewall: when firewalld or ufw is on, the kubelet's port
//! (10250/tcp, which `nodeadm init` opens: aws/eks-hybrid
//! internal/system/ports.go) and the CNI's VXLAN port (8472/udp Cilium,
//! 4789/udp Calico, which nodeadm does not open) must be let in. Read from
//! their configuration on disk, so a tree under `--root` is judged too:
//!
//! - firewalld: `DefaultZone=` in /etc/firewalld/firewalld.conf; zones and
//!   services from /etc/firewalld (which overrides) and /usr/lib/firewalld;
//!   a port is open in a zone whose target is ACCEPT, or that lists it as
//!   a `<port>` or through a `<service>`. The default zone and every zone
//!   bound to an interface are judged. Rich rules are not read.
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
fn covers(spec: &str, port: u16) -> bool {
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

/// The attributes of every `<tag .../>` or `<tag ...>` element in a
/// firewalld XML file (the files are flat and machine-written).
fn elements(xml: &str, tag: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let open = format!("<{tag}");
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        rest = after;
        if !after.starts_with(|c: char| c.is_whitespace() || c == '/' || c == '>') {
            continue;
        }
        let Some(end) = after.find('>') else { break };
        let mut attrs = BTreeMap::new();
        let mut s = after[..end].trim_end_matches('/');
        while let Some(eq) = s.find('=') {
            let name = s[..eq].trim().to_owned();
            let v = s[eq + 1..].trim_start();
            let Some(q) = v.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                break;
            };
            let Some(close) = v[1..].find(q) else { break };
            attrs.insert(name, v[1..1 + close].to_owned());
            s = &v[close + 2..];
        }
        out.push(attrs);
    }
    out
}

/// A firewalld zone as read from disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    /// Host path of the file it came from.
    pub file: String,
    pub target: String,
    pub ports: Vec<(String, String)>,
    pub services: Vec<String>,
    pub interfaces: Vec<String>,
}

/// firewalld's configuration on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Firewalld {
    pub default_zone: String,
    /// The default zone and those bound to interfaces (see
    /// [`Firewalld::judged`] for which of them are judged).
    pub zones: Vec<Zone>,
    /// Service name → its (port spec, protocol) pairs.
    pub services: BTreeMap<String, Vec<(String, String)>>,
}

/// Reads firewalld's configuration; `None` when it is not installed.
pub fn read_firewalld(host: &Host) -> Option<Firewalld> {
    let conf = read_text(host, "/etc/firewalld/firewalld.conf").ok();
    if conf.is_none() && !host.path("/usr/lib/firewalld").is_dir() {
        return None;
    }
    let default_zone = conf
        .as_deref()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.trim().strip_prefix("DefaultZone="))
                .map(|z| z.trim().to_owned())
        })
        .filter(|z| !z.is_empty())
        .unwrap_or_else(|| "public".to_owned());
    let load_dir = |kind: &str| -> BTreeMap<String, (String, String)> {
        let mut m = BTreeMap::new();
        for base in ["/etc/firewalld", "/usr/lib/firewalld"] {
            let dir = format!("{base}/{kind}");
            let Ok(entries) = std::fs::read_dir(host.path(&dir)) else {
                continue;
            };
            for e in entries.filter_map(|e| e.ok()) {
                let n = e.file_name().to_string_lossy().into_owned();
                if let Some(name) = n.strip_suffix(".xml") {
                    if !m.contains_key(name) {
                        let path = format!("{dir}/{n}");
                        if let Ok(text) = read_text(host, &path) {
                            m.insert(name.to_owned(), (path, text));
                        }
                    }
                }
            }
        }
        m
    };
    let ports_of = |xml: &str| -> Vec<(String, String)> {
        elements(xml, "port")
            .into_iter()
            .filter_map(|a| Some((a.get("port")?.clone(), a.get("protocol")?.clone())))
            .collect()
    };
    let services = load_dir("services")
        .into_iter()
        .map(|(name, (_, xml))| (name, ports_of(&xml)))
        .collect();
    let zones: Vec<Zone> = load_dir("zones")
        .into_iter()
        .map(|(name, (file, xml))| Zone {
            target: elements(&xml, "zone")
                .first()
                .and_then(|a| a.get("target").cloned())
                .unwrap_or_else(|| "default".to_owned()),
            ports: ports_of(&xml),
            services: elements(&xml, "service")
                .into_iter()
                .filter_map(|a| a.get("name").cloned())
                .collect(),
            interfaces: elements(&xml, "interface")
                .into_iter()
                .filter_map(|a| a.get("name").cloned())
                .collect(),
            name,
            file,
        })
        .filter(|z| z.name == default_zone || !z.interfaces.is_empty())
        .collect();
    Some(Firewalld {
        default_zone,
        zones,
        services,
    })
}

impl Firewalld {
    /// The zones judged, then the others. nodeadm opens its ports only in
    /// the default zone (`firewall-cmd --permanent --add-port` without
    /// `--zone`, internal/firewall/firewalld.go), so that one is judged,
    /// and the zone of `node_interface` (the node IP's, where the cluster's
    /// traffic arrives) when it is bound to another. A second NIC in a
    /// `drop` or `block` zone is no concern of the cluster's.
    pub fn judged(&self, node_interface: Option<&str>) -> (Vec<&Zone>, Vec<&Zone>) {
        self.zones.iter().partition(|z| {
            z.name == self.default_zone
                || node_interface.is_some_and(|i| z.interfaces.iter().any(|n| n == i))
        })
    }

    /// Whether `zone` lets `p` in, and how.
    pub fn zone_allows(&self, zone: &Zone, p: &Port) -> Option<String> {
        if zone.target.eq_ignore_ascii_case("ACCEPT") {
            return Some(format!("zone {} accepts everything", zone.name));
        }
        if zone
            .ports
            .iter()
            .any(|(spec, proto)| proto == p.proto && covers(spec, p.port))
        {
            return Some(format!("port in zone {}", zone.name));
        }
        zone.services.iter().find_map(|s| {
            self.services.get(s).and_then(|ports| {
                ports
                    .iter()
                    .any(|(spec, proto)| proto == p.proto && covers(spec, p.port))
                    .then(|| format!("service {s} in zone {}", zone.name))
            })
        })
    }
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
            for p in ports {
                match fw.zone_allows(z, p) {
                    Some(how) => fine.push(format!("{} ({how})", p.spec())),
                    None => {
                        open.insert(*p, false);
                        missing.push(*p);
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
