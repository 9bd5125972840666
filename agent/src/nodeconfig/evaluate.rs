//! A NodeConfig text judged as `check` and the daemon judge it: decoded,
//! validated, then init's later rules and what nodeadm lets through.

use super::*;

/// Checks a NodeConfig text as `check` and the daemon do: parse, then
/// validate. `Ok` carries the config and the checks (pass or warn): nodeadm
/// would accept it. `Err` when nodeadm would reject it.
pub fn evaluate(
    text: &str,
    path: &std::path::Path,
    host: &Host,
    now: SystemTime,
) -> Result<(NodeConfig, Vec<Check>), Vec<Check>> {
    evaluate_with(text, path, host, now, &init::SystemProbe)
}

/// [`evaluate`] with the DNS and kubelet lookups given.
pub fn evaluate_with(
    text: &str,
    path: &std::path::Path,
    host: &Host,
    now: SystemTime,
    probe: &dyn init::InitProbe,
) -> Result<(NodeConfig, Vec<Check>), Vec<Check>> {
    let shown = path.display();
    let parsed = match parse::parse_full(text) {
        Ok(p) => p,
        Err(e) => {
            let at = e
                .position
                .map(|(l, c)| format!("{shown}:{l}:{c}"))
                .unwrap_or_else(|| shown.to_string());
            let mut checks = vec![Check::new(
                DOMAIN,
                "parse",
                Status::Fail,
                format!("{at}: {}", e.message),
            )
            .with_remedy("fix the file; nodeadm init would reject it the same way")];
            checks.extend(validate::AREAS.iter().map(|a| {
                Check::not_applicable(DOMAIN, *a, "not evaluated: the file does not parse")
            }));
            return Err(checks);
        }
    };
    let findings = validate::validate_full(&parsed, text, host, now, probe);
    let config = parsed.config;
    let mut checks = vec![Check::pass(
        DOMAIN,
        "parse",
        format!(
            "{shown} decodes strictly as nodeadm does ({} {})",
            model::API_VERSION,
            model::KIND
        ),
    )];
    let failed = findings
        .iter()
        .any(|f| f.severity == validate::Severity::Fail);
    for area in validate::AREAS {
        let in_area = |sev| {
            findings
                .iter()
                .filter(move |f: &&validate::Finding| f.area == area && f.severity == sev)
        };
        let fails: Vec<&validate::Finding> = in_area(validate::Severity::Fail).collect();
        let warns: Vec<&validate::Finding> = in_area(validate::Severity::Warn).collect();
        let (status, found, remedy) = if !fails.is_empty() {
            (
                Status::Fail,
                fails,
                "fix the NodeConfig; nodeadm init rejects it",
            )
        } else {
            (
                Status::Warn,
                warns,
                "nodeadm accepts this, but fix it before nodeadm init",
            )
        };
        checks.push(match found.first() {
            None => Check::pass(DOMAIN, area, pass_summary(area, &config)),
            Some(first) => {
                let at = first
                    .position
                    .map(|(l, c)| format!("{shown}:{l}:{c}: "))
                    .unwrap_or_default();
                let more = match found.len() {
                    1 => String::new(),
                    n => format!(" (+{} more)", n - 1),
                };
                Check::new(DOMAIN, area, status, format!("{at}{}{more}", first.message))
                    .with_remedy(remedy)
            }
        });
    }
    // Every message quotes at most a field's position and name, but a value
    // nodeadm echoes (a wrong apiVersion, a flag) may itself contain the
    // activation code: never let it through.
    if let Some(code) = config
        .spec
        .hybrid
        .as_ref()
        .and_then(|h| h.ssm.as_ref())
        .map(|s| s.activation_code.expose())
    {
        scrub(&mut checks, code);
    }
    if failed {
        Err(checks)
    } else {
        Ok((config, checks))
    }
}

/// Cuts `secret` out of every summary and remedy (codes shorter than six
/// characters would match ordinary words; nodeadm requires twenty).
fn scrub(checks: &mut [Check], secret: &str) {
    if secret.chars().count() < 6 {
        return;
    }
    for c in checks {
        if c.summary.contains(secret) {
            c.summary = c.summary.replace(secret, "<activation code>");
        }
        if let Some(r) = c.remedy.as_mut().filter(|r| r.contains(secret)) {
            *r = r.replace(secret, "<activation code>");
        }
    }
}

pub(super) fn pass_summary(area: &str, c: &NodeConfig) -> String {
    match area {
        "schema" => "no unknown fields; keys, scalars and documents read as written".to_owned(),
        "cluster" => format!(
            "cluster {} in {}",
            c.spec.cluster.name, c.spec.cluster.region
        ),
        "credentials" => match c.spec.hybrid.as_ref() {
            Some(h) if h.ssm.is_some() => format!(
                "SSM hybrid activation {}",
                h.ssm
                    .as_ref()
                    .map(|s| s.activation_id.as_str())
                    .unwrap_or("")
            ),
            Some(h) => format!(
                "IAM Roles Anywhere as node {}",
                h.iam_roles_anywhere
                    .as_ref()
                    .map(|r| r.node_name.as_str())
                    .unwrap_or("")
            ),
            None => String::new(),
        },
        "kubelet_flags" => format!(
            "{} kubelet flags, no --hostname-override",
            c.spec.kubelet.flags.len()
        ),
        _ => match &c.spec.containerd.config {
            Some(_) => "the embedded containerd config is valid TOML".to_owned(),
            None => "no embedded containerd config".to_owned(),
        },
    }
}
