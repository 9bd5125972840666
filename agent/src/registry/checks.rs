//! The registry domain's verdicts: one run's plan, file outcome and probes
//! turned into checks with their remedies.

use super::*;

pub(super) fn verdicts(
    merged: &desired::Merged,
    plan: &Plan,
    outcome: &Outcome,
    probes: &[(String, String, ProbeResult, bool)],
    family: Option<OsFamily>,
    d: &RegistryDomain,
    applied: bool,
) -> Vec<Check> {
    let mut out = Vec::new();
    let regs = &merged.registries;
    if !merged.rejected.is_empty() {
        let kept: Vec<String> = regs
            .iter()
            .map(|r| format!("{} ({})", r.host, r.source.as_str()))
            .collect();
        let kept = if kept.is_empty() {
            String::new()
        } else {
            format!("; configured: {}", kept.join(", "))
        };
        out.push(
            Check::new(
                DOMAIN,
                "sources",
                Status::Fail,
                merged
                    .rejected
                    .iter()
                    .chain(&merged.conflicts)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
                    + &kept,
            )
            .with_remedy(format!(
                "name each registry as {} (the certs.d directory name), and put credentials in the \
                 registry's auth settings, never in a URL",
                crate::model::registry_name::EXPECTED
            )),
        );
    } else if regs.is_empty() {
        out.push(Check::not_applicable(
            DOMAIN,
            "sources",
            "no registries configured ([[registry]] in the agent config, or registry settings in the NodeConfig)",
        ));
    } else {
        let list: Vec<String> = regs
            .iter()
            .map(|r| format!("{} ({})", r.host, r.source.as_str()))
            .collect();
        let summary = format!(
            "{} registr{}: {}",
            regs.len(),
            if regs.len() == 1 { "y" } else { "ies" },
            list.join(", ")
        );
        out.push(if merged.conflicts.is_empty() {
            Check::pass(DOMAIN, "sources", summary)
        } else {
            Check::new(
                DOMAIN,
                "sources",
                Status::Warn,
                format!("{summary}; {}", merged.conflicts.join("; ")),
            )
            .with_remedy("declare each registry in one place")
        });
    }

    let certs_d = d.certs_d();
    let files = if !d.settings.manage {
        Check::not_applicable(
            DOMAIN,
            "files",
            "registries.manage = false: the agent only reports",
        )
    } else if !outcome.errors.is_empty() {
        Check::new(
            DOMAIN,
            "files",
            Status::Fail,
            format!(
                "{}; the files already on disk stay in force",
                outcome.errors.join("; ")
            ),
        )
        .with_remedy(format!(
            "make {certs_d} and the trust store writable for the agent (check the file system \
             and its owner); under systemd a directory created after the agent started (say by \
             installing ca-certificates) stays read-only in its sandbox until \
             `systemctl restart hybrid-node-agent`"
        ))
    } else if !outcome.conflicts.is_empty() {
        Check::new(DOMAIN, "files", Status::Warn, outcome.conflicts.join("; "))
            .with_remedy("remove or rename the files the agent does not own, or let the registry be configured elsewhere")
    } else {
        let (verb, managed) = if applied {
            ("wrote", "managed files")
        } else {
            ("would write", "files")
        };
        let mut summary = format!(
            "{} {managed} under {certs_d} and the trust store",
            outcome.managed_files
        );
        if !outcome.written.is_empty() || !outcome.removed.is_empty() {
            let removed = if applied { "removed" } else { "would remove" };
            summary.push_str(&format!(
                "; {verb} {}, {removed} {}",
                outcome.written.len(),
                outcome.removed.len()
            ));
        }
        if !outcome.drift_restored.is_empty() {
            summary.push_str(&format!(
                "; restored {} edited by hand",
                outcome.drift_restored.len()
            ));
        }
        if regs.is_empty() && outcome.managed_files == 0 {
            Check::not_applicable(DOMAIN, "files", "nothing to manage")
        } else {
            Check::pass(DOMAIN, "files", summary)
        }
    };
    out.push(files);

    out.push(match (wants_trust(regs, plan), family, &d.trust_update) {
        (false, _, _) => Check::not_applicable(DOMAIN, "trust_store", "no CA to install in the OS trust store"),
        (true, None, _) => Check::new(DOMAIN, "trust_store", Status::Warn, "OS family not recognised from /etc/os-release: CAs not installed in the OS trust store")
            .with_remedy("install the CA with the distribution's tool, or set system_trust = false"),
        (true, Some(_), Some(Err(e))) => Check::new(DOMAIN, "trust_store", Status::Fail, e.clone())
            .with_remedy("install the distribution's ca-certificates package (update-ca-certificates / update-ca-trust)"),
        (true, Some(f), _) => Check::pass(
            DOMAIN,
            "trust_store",
            format!(
                "registry CAs are in the {} trust store; containerd caches it until restarted, and pulls use the CA from hosts.toml meanwhile",
                f.as_str()
            ),
        ),
    });

    for r in regs {
        let id = format!("ca/{}", r.host);
        out.push(if let Some(e) = plan.failed.get(&r.host) {
            Check::new(
                DOMAIN,
                id,
                Status::Fail,
                format!("{e}; the registry's files on disk are left as they were"),
            )
            .with_remedy(
                "give the PEM certificate of the CA that issued the registry's certificate",
            )
        } else if let Some((_, ca)) = plan.cas.iter().find(|(h, _)| *h == r.host) {
            let notes = plan.notes.get(&r.host).cloned().unwrap_or_default();
            let until = rfc3339(
                SystemTime::UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(ca.not_after).unwrap_or(0)),
            );
            if notes.is_empty() {
                Check::pass(
                    DOMAIN,
                    id,
                    format!("CA {} valid until {until}", ca.short_id()),
                )
            } else {
                Check::new(DOMAIN, id, Status::Warn, notes.join("; "))
            }
        } else {
            Check::not_applicable(DOMAIN, id, "no CA configured: the OS trust store decides")
        });

        let mine: Vec<&(String, String, ProbeResult, bool)> =
            probes.iter().filter(|(h, ..)| *h == r.host).collect();
        let id = format!("probe/{}", r.host);
        if mine.is_empty() {
            if !plan.failed.contains_key(&r.host) {
                out.push(Check::not_applicable(
                    DOMAIN,
                    id,
                    "no endpoint to probe (_default has no registry of its own)",
                ));
            }
            continue;
        }
        let up: Vec<_> = mine.iter().filter(|(_, _, p, _)| p.up).collect();
        let first_err = mine
            .iter()
            .find_map(|(_, url, p, _)| p.error.as_ref().map(|e| format!("{url}: {e}")))
            .unwrap_or_default();
        let slowest = mine
            .iter()
            .map(|(_, _, p, _)| p.duration)
            .max()
            .unwrap_or_default();
        let soon = mine.iter().find_map(|(_, url, p, _)| {
            let t = p.server_cert_not_after?;
            let now = i64::try_from(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .ok()?
                    .as_secs(),
            )
            .ok()?;
            (t - now < 30 * 86_400)
                .then(|| format!("{url} presents a certificate that expires within 30 days"))
        });
        out.push(if up.is_empty() {
            Check::new(
                DOMAIN,
                id,
                Status::Fail,
                format!("no endpoint answers: {first_err}"),
            )
            .with_remedy("check the endpoint URL, the network path and the CA")
        } else if r.skip_verify {
            Check::new(
                DOMAIN,
                id,
                Status::Warn,
                format!(
                    "{}/{} endpoints up, TLS verification disabled (skip_verify)",
                    up.len(),
                    mine.len()
                ),
            )
            .with_remedy("configure the registry's CA and remove skip_verify")
        } else if up.len() < mine.len() {
            Check::new(
                DOMAIN,
                id,
                Status::Warn,
                format!("{}/{} endpoints up; {first_err}", up.len(), mine.len()),
            )
            .with_remedy("pulls fall back to the next endpoint; fix the one that is down")
        } else if let Some(msg) = soon {
            Check::new(DOMAIN, id, Status::Warn, msg)
                .with_remedy("renew the registry's certificate")
        } else {
            Check::pass(
                DOMAIN,
                id,
                format!(
                    "{} endpoint{} up, TLS verified ({} ms)",
                    up.len(),
                    if up.len() == 1 { "" } else { "s" },
                    slowest.as_millis()
                ),
            )
        });
    }
    out
}
