//! Swap: the kubelet refuses to start while swap is on (`failSwapOn`
//! defaults to true), and `nodeadm init` turns swap files off and drops
//! them from /etc/fstab but stops at a swap partition
//! (aws/eks-hybrid internal/system/swap.go, swap_validator.go).

use crate::check::{Check, Status};
use crate::edge::units::escape_path;
use crate::host::Host;

/// The kernel's list of active swap areas.
pub const PROC_SWAPS: &str = "/proc/swaps";
pub const FSTAB: &str = "/etc/fstab";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Partition,
    File,
}

/// One line of /proc/swaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    /// Device or file path (the kernel's `\040` escapes undone).
    pub name: String,
    pub kind: Kind,
    pub size_bytes: u64,
}

/// A line of /proc/swaps that is not `name type size used priority`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{PROC_SWAPS} line {line}: expected 5 fields (Filename Type Size Used Priority), got {fields}"
)]
pub struct ParseError {
    pub line: usize,
    pub fields: usize,
}

/// Parses /proc/swaps: a header line, then one line per active area.
pub fn parse(text: &str) -> Result<Vec<Area>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() != 5 {
            return Err(ParseError {
                line: i + 1,
                fields: f.len(),
            });
        }
        out.push(Area {
            name: f[0].replace("\\040", " "),
            kind: if f[1] == "file" {
                Kind::File
            } else {
                Kind::Partition
            },
            size_bytes: f[2].parse::<u64>().unwrap_or(0).saturating_mul(1024),
        });
    }
    Ok(out)
}

/// Why the active swap areas are not known.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file is there but cannot be read (or is no regular file).
    #[error(transparent)]
    Io(#[from] crate::host::SmallFileError),
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// Reads the active areas under `--root`; no /proc/swaps means none.
pub fn read(host: &Host) -> Result<Vec<Area>, ReadError> {
    match crate::host::read_text(host, PROC_SWAPS) {
        Ok(t) => Ok(parse(&t)?),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(ReadError::Io(e)),
    }
}

/// The /etc/fstab lines that name `area` as swap (by path; a `UUID=` or
/// `LABEL=` line is reported as any swap line).
pub fn fstab_lines(fstab: &str, area: &str) -> Vec<usize> {
    let mut exact = Vec::new();
    let mut any = Vec::new();
    for (i, line) in fstab.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first().is_some_and(|s| s.starts_with('#')) || f.len() < 3 || f[2] != "swap" {
            continue;
        }
        any.push(i + 1);
        if f[0].replace("\\040", " ") == area {
            exact.push(i + 1);
        }
    }
    if exact.is_empty() {
        any
    } else {
        exact
    }
}

/// The verdict, with the steps for each area: any active swap fails,
/// except swap files before init (`before_init`), which `nodeadm init`
/// turns off and drops from /etc/fstab itself: those warn.
pub fn judge(
    domain: &'static str,
    areas: &[Area],
    fstab: Option<&str>,
    before_init: bool,
) -> Check {
    if areas.is_empty() {
        return Check::pass(domain, "swap", "no active swap");
    }
    let total: u64 = areas.iter().map(|a| a.size_bytes).sum();
    let list: Vec<String> = areas
        .iter()
        .map(|a| {
            format!(
                "{} ({}, {})",
                a.name,
                match a.kind {
                    Kind::File => "file",
                    Kind::Partition => "partition",
                },
                human_bytes(a.size_bytes)
            )
        })
        .collect();
    let mut steps = Vec::new();
    for a in areas {
        let lines = fstab.map(|t| fstab_lines(t, &a.name)).unwrap_or_default();
        let fstab_step = if lines.is_empty() {
            format!("make sure no {FSTAB} line turns it back on at boot")
        } else {
            format!(
                "delete its swap line in {FSTAB} (line {})",
                lines
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        steps.push(match a.kind {
            Kind::File => format!(
                "swap file {0}: `swapoff {0}`, {fstab_step}, then `rm {0}`",
                a.name
            ),
            Kind::Partition if a.name.starts_with("/dev/zram") => format!(
                "zram device {0}: `swapoff {0}` and remove the zram swap generator (`apt-get remove systemd-zram-generator zram-tools` or `dnf remove zram-generator-defaults`)",
                a.name
            ),
            Kind::Partition => format!(
                "swap partition {0}: `swapoff {0}`, {fstab_step}, and `systemctl mask {1}.swap` (systemd also activates swap from its own units and, on GPT disks, from the partition type)",
                a.name,
                escape_path(&a.name)
            ),
        });
    }
    let partition = areas.iter().any(|a| a.kind == Kind::Partition);
    let (status, why) = if partition {
        (
            Status::Fail,
            "the kubelet refuses to start with swap on, and `nodeadm init` stops at a swap partition",
        )
    } else if before_init {
        (
            Status::Warn,
            "`nodeadm init` will turn swap files off and drop them from /etc/fstab (the kubelet refuses to start with swap on)",
        )
    } else {
        (
            Status::Fail,
            "the kubelet refuses to start with swap on (`nodeadm init` turns swap files off: still on after init means init did not finish or swap came back)",
        )
    };
    Check::new(
        domain,
        "swap",
        status,
        format!(
            "swap is on: {} ({} in all): {why}",
            list.join(", "),
            human_bytes(total)
        ),
    )
    .with_remedy(steps.join("; "))
}

fn human_bytes(b: u64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    const MIB: f64 = 1024.0 * 1024.0;
    let f = b as f64;
    if f >= GIB {
        format!("{:.1} GiB", f / GIB)
    } else {
        format!("{:.1} MiB", f / MIB)
    }
}
