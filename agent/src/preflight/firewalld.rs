//! firewalld's configuration as read from disk: the default zone, the
//! zones bound to interfaces, their ports, services and rich rules, and
//! the services' ports; `/etc/firewalld` overrides `/usr/lib/firewalld`
//! file by file. Whether a zone lets a port in follows firewalld's own
//! order (see [`Firewalld::zone_allows`]).

use super::firewall::{covers, Port};
use crate::host::read_text;
use crate::host::Host;
use std::collections::BTreeMap;

/// The attributes of every `<tag .../>` or `<tag ...>` element in a
/// firewalld XML file (the files are flat and machine-written).
fn elements(xml: &str, tag: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = find_tag(rest, tag) {
        let after = &rest[i + 1 + tag.len()..];
        rest = after;
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
    /// `<port>` and `<service>` of the zone itself (not of its rules).
    pub ports: Vec<(String, String)>,
    pub services: Vec<String>,
    pub interfaces: Vec<String>,
    /// Its rich rules, in file order.
    pub rules: Vec<RichRule>,
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
    let services = load_dir("services")
        .into_iter()
        .map(|(name, (_, xml))| (name, ports_of(&xml)))
        .collect();
    let zones: Vec<Zone> = load_dir("zones")
        .into_iter()
        .map(|(name, (file, xml))| {
            let (own, rules) = split_rules(&xml);
            Zone {
                target: elements(&own, "zone")
                    .first()
                    .and_then(|a| a.get("target").cloned())
                    .unwrap_or_else(|| "default".to_owned()),
                ports: ports_of(&own),
                services: names_of(&own, "service"),
                interfaces: names_of(&own, "interface"),
                rules: rules.iter().map(|r| RichRule::parse(r)).collect(),
                name,
                file,
            }
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

    /// Whether `zone` lets `p` in, and how, in firewalld's order: rich
    /// rules of negative priority; then, at priority 0, the rules that
    /// reject or drop (its `_deny` chain) before the zone's ports and
    /// services and the rules that accept (its `_allow` chain); rules of
    /// positive priority; last the zone's target. A rule limited to some
    /// sources opens the port for those only (said so), and one that
    /// refuses some sources closes it for those only (not a verdict).
    pub fn zone_allows(&self, zone: &Zone, p: &Port) -> ZoneVerdict {
        // (priority, 0 before the zone's own ports and services, 1 after):
        // at priority 0 only accepting rules come after them.
        let rank = |r: &RichRule| {
            (
                r.priority,
                i32::from(r.priority == 0 && r.action == "accept"),
            )
        };
        let mut rules: Vec<&RichRule> = zone
            .rules
            .iter()
            .filter(|r| r.matches(p, &self.services))
            .collect();
        rules.sort_by_key(|r| rank(r));
        let first_after = rules.partition_point(|r| rank(r) < (0, 1));
        let decide = |r: &&RichRule| -> Option<ZoneVerdict> {
            let how = || format!("{} in zone {}", r.describe(), zone.name);
            match (r.action.as_str(), r.source.is_some()) {
                ("accept", _) => Some(ZoneVerdict::Open(how())),
                ("reject" | "drop", false) => Some(ZoneVerdict::Refused(how())),
                _ => None,
            }
        };
        if let Some(v) = rules[..first_after].iter().find_map(decide) {
            return v;
        }
        if zone
            .ports
            .iter()
            .any(|(spec, proto)| proto == p.proto && covers(spec, p.port))
        {
            return ZoneVerdict::Open(format!("port in zone {}", zone.name));
        }
        if let Some(s) = zone
            .services
            .iter()
            .find(|s| service_covers(&self.services, s, p))
        {
            return ZoneVerdict::Open(format!("service {s} in zone {}", zone.name));
        }
        if let Some(v) = rules[first_after..].iter().find_map(decide) {
            return v;
        }
        if zone.target.eq_ignore_ascii_case("ACCEPT") {
            return ZoneVerdict::Open(format!("zone {} accepts everything", zone.name));
        }
        ZoneVerdict::NotListed
    }
}

fn service_covers(
    services: &BTreeMap<String, Vec<(String, String)>>,
    name: &str,
    p: &Port,
) -> bool {
    services.get(name).is_some_and(|ports| {
        ports
            .iter()
            .any(|(spec, proto)| proto == p.proto && covers(spec, p.port))
    })
}

fn ports_of(xml: &str) -> Vec<(String, String)> {
    elements(xml, "port")
        .into_iter()
        .filter_map(|a| Some((a.get("port")?.clone(), a.get("protocol")?.clone())))
        .collect()
}

fn names_of(xml: &str, tag: &str) -> Vec<String> {
    elements(xml, tag)
        .into_iter()
        .filter_map(|a| a.get("name").cloned())
        .collect()
}

/// A zone file without its `<rule>…</rule>` elements, and each rule's
/// text: a `<port>` inside a rule is the rule's, not the zone's.
fn split_rules(xml: &str) -> (String, Vec<String>) {
    let mut own = String::new();
    let mut rules = Vec::new();
    let mut rest = xml;
    while let Some(i) = find_tag(rest, "rule") {
        own.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(head_end) = after.find('>') else {
            rest = "";
            break;
        };
        if after[..head_end].ends_with('/') {
            // `<rule …/>`: no port, no action.
            rest = &after[head_end + 1..];
            continue;
        }
        let end = after
            .find("</rule>")
            .map_or(after.len(), |e| e + "</rule>".len());
        rules.push(after[..end].to_owned());
        rest = &after[end..];
    }
    own.push_str(rest);
    (own, rules)
}

/// Where the element `<tag` starts (not `<tag-…` or `<tagname`).
fn find_tag(xml: &str, tag: &str) -> Option<usize> {
    let open = format!("<{tag}");
    let mut from = 0;
    while let Some(i) = xml[from..].find(&open) {
        let at = from + i;
        let next = xml[at + open.len()..].chars().next();
        if next.is_some_and(|c| c.is_whitespace() || c == '/' || c == '>') {
            return Some(at);
        }
        from = at + open.len();
    }
    None
}

/// What a zone does with a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneVerdict {
    /// Let in, and by what.
    Open(String),
    /// Neither listed nor let in by a rule or the zone's target.
    NotListed,
    /// Rejected or dropped by a rich rule, described.
    Refused(String),
}

/// A firewalld rich rule, as far as letting a port in goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RichRule {
    /// `ipv4`, `ipv6` or empty (both).
    pub family: String,
    pub priority: i32,
    /// `address X`, `not address X`, `ipset N`, `mac M`; `None`: any source.
    pub source: Option<String>,
    pub ports: Vec<(String, String)>,
    pub services: Vec<String>,
    /// `accept`, `reject`, `drop`, `mark`, or empty (a log-only rule).
    pub action: String,
}

impl RichRule {
    fn parse(xml: &str) -> RichRule {
        let head = elements(xml, "rule").into_iter().next().unwrap_or_default();
        let source = elements(xml, "source").into_iter().next().and_then(|a| {
            let inverted = a
                .get("invert")
                .is_some_and(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("yes"));
            let what = ["address", "ipset", "mac"]
                .into_iter()
                .find_map(|k| a.get(k).map(|v| format!("{k} {v}")))?;
            Some(if inverted {
                format!("not {what}")
            } else {
                what
            })
        });
        let action = ["accept", "reject", "drop", "mark"]
            .into_iter()
            .find(|a| find_tag(xml, a).is_some())
            .unwrap_or_default()
            .to_owned();
        RichRule {
            family: head.get("family").cloned().unwrap_or_default(),
            priority: head
                .get("priority")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            source,
            ports: ports_of(xml),
            services: names_of(xml, "service"),
            action,
        }
    }

    fn matches(&self, p: &Port, services: &BTreeMap<String, Vec<(String, String)>>) -> bool {
        self.ports
            .iter()
            .any(|(spec, proto)| proto == p.proto && covers(spec, p.port))
            || self.services.iter().any(|s| service_covers(services, s, p))
    }

    /// `rich rule (ipv4, from address 10.0.0.0/16, priority -1) rejecting`.
    fn describe(&self) -> String {
        let mut what = Vec::new();
        if !self.family.is_empty() {
            what.push(self.family.clone());
        }
        if let Some(s) = &self.source {
            what.push(format!("from {s} only"));
        }
        if self.priority != 0 {
            what.push(format!("priority {}", self.priority));
        }
        let verb = match self.action.as_str() {
            "accept" => "accepting",
            "reject" => "rejecting",
            "drop" => "dropping",
            other => other,
        };
        if what.is_empty() {
            format!("rich rule {verb}")
        } else {
            format!("rich rule ({}) {verb}", what.join(", "))
        }
    }
}
