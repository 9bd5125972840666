//! Clock synchronisation, as nodeadm's `ntp-sync` validation judges it
//! (aws/eks-hybrid internal/system/ntp.go): chrony's `tracking` must show a
//! reference that is not the host itself and leap status `Normal`; without
//! chrony, `timedatectl` must say the clock is synchronised. The agent also
//! reads the offset and holds it to `preflight.clock_offset_warn`/`_fail`:
//! TLS handshakes, SigV4 (±5 minutes) and certificate validity all fail on
//! a skewed clock.
//!
//! The clock is the machine's whatever `--root` says: the tools ask the
//! running daemon, so the answer is this machine's.

use crate::check::{Check, Status};
use crate::edge::exec::{output_within, ExecError};
use std::process::Command;
use std::time::Duration;

/// The programs that tell the clock's state, behind a trait so tests can
/// drive recorded output.
pub trait TimeSource: Send + std::fmt::Debug {
    /// `chronyc -n -c tracking` (CSV, no DNS lookups).
    fn chrony_tracking(&self) -> Result<String, ExecError>;
    /// `timedatectl show` (`NTPSynchronized=yes`).
    fn timedatectl_show(&self) -> Result<String, ExecError>;
    /// `timedatectl timesync-status` (systemd-timesyncd's offset).
    fn timesync_status(&self) -> Result<String, ExecError>;
}

/// The real programs on the agent's `PATH`, each bounded by `timeout`.
#[derive(Debug, Clone)]
pub struct Tools {
    pub timeout: Duration,
}

impl TimeSource for Tools {
    fn chrony_tracking(&self) -> Result<String, ExecError> {
        output_within(
            Command::new("chronyc").args(["-n", "-c", "tracking"]),
            "chronyc tracking",
            self.timeout,
        )
    }
    fn timedatectl_show(&self) -> Result<String, ExecError> {
        output_within(
            Command::new("timedatectl").arg("show"),
            "timedatectl show",
            self.timeout,
        )
    }
    fn timesync_status(&self) -> Result<String, ExecError> {
        output_within(
            Command::new("timedatectl").arg("timesync-status"),
            "timedatectl timesync-status",
            self.timeout,
        )
    }
}

/// What chrony's `tracking` says, from its CSV form (chronyc(1): the
/// fields of `tracking` in order; field 5, "System time", is the offset of
/// NTP time from the system clock: negative when the clock is fast).
#[derive(Debug, Clone, PartialEq)]
pub struct Tracking {
    pub ref_id: u32,
    /// The reference's address (with `-n`) or name; empty when none.
    pub reference: String,
    pub stratum: u32,
    /// System clock minus NTP time, seconds (positive: fast).
    pub offset: f64,
    /// `Normal`, `Insert second`, `Delete second`, `Not synchronised`.
    pub leap: String,
}

/// A `chronyc -c tracking` line chronyc would not print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected `chronyc -c tracking` output: {0}")]
pub struct TrackingError(pub String);

pub fn parse_tracking(csv: &str) -> Result<Tracking, TrackingError> {
    let line = csv.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let f: Vec<&str> = line.trim().split(',').collect();
    if f.len() < 14 {
        return Err(TrackingError(format!("{} fields, expected 14", f.len())));
    }
    let bad = |what: &str| TrackingError(format!("{what} is not a number"));
    Ok(Tracking {
        ref_id: u32::from_str_radix(f[0], 16).map_err(|_| bad("Reference ID"))?,
        reference: f[1].to_owned(),
        stratum: f[2].parse().map_err(|_| bad("Stratum"))?,
        offset: -f[4].parse::<f64>().map_err(|_| bad("System time"))?,
        leap: f[13].trim().to_owned(),
    })
}

/// A yes/no property of `timedatectl show` (`NTPSynchronized`, `NTP`:
/// synchronisation turned on, `CanNTP`: an NTP service is installed).
pub fn show_property(text: &str, name: &str) -> Option<bool> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix('='))
        .map(|v| v.trim() == "yes")
}

/// `Offset:` of `timedatectl timesync-status`, in seconds: systemd's time
/// span format with a sign (`+1.024ms`, `-312us`, `+2min 3.5s`).
pub fn parse_timesync_offset(text: &str) -> Option<f64> {
    let v = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Offset:"))?
        .trim();
    let (sign, rest) = match v.as_bytes().first()? {
        b'-' => (-1.0, &v[1..]),
        b'+' => (1.0, &v[1..]),
        _ => (1.0, v),
    };
    let mut total = 0.0;
    for part in rest.split_whitespace() {
        let digits = part
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(part.len());
        let n: f64 = part[..digits].parse().ok()?;
        let scale = match &part[digits..] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" | "" => 1.0,
            "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return None,
        };
        total += n * scale;
    }
    Some(sign * total)
}

/// What was learned about the clock.
#[derive(Debug)]
pub enum Reading {
    Chrony(Tracking),
    Timesyncd {
        synchronized: bool,
        /// `NTP=`: synchronisation is turned on.
        ntp: Option<bool>,
        /// `CanNTP=`: an NTP service is installed.
        can_ntp: Option<bool>,
        offset: Option<f64>,
        /// chronyc is installed but failed (chronyd not running: `506
        /// Cannot talk to daemon`). nodeadm's ntp-sync validation returns
        /// that error; it never asks timedatectl then.
        chrony_error: Option<ExecError>,
    },
    /// Neither answered; the errors of each tool tried.
    Nothing(Vec<ExecError>),
    /// chronyc printed something else.
    Garbled(TrackingError),
}

/// Asks chrony first (nodeadm does), then systemd's `timedatectl`.
pub fn read(src: &dyn TimeSource) -> Reading {
    let mut errors: Vec<ExecError> = Vec::new();
    match src.chrony_tracking() {
        Ok(csv) => {
            return match parse_tracking(&csv) {
                Ok(t) => Reading::Chrony(t),
                Err(e) => Reading::Garbled(e),
            }
        }
        // Not installed is no news; installed and silent is worth telling.
        Err(e) if e.is_missing() => {}
        Err(e) => errors.push(e),
    }
    match src.timedatectl_show() {
        Ok(text) => Reading::Timesyncd {
            synchronized: show_property(&text, "NTPSynchronized").unwrap_or(false),
            ntp: show_property(&text, "NTP"),
            can_ntp: show_property(&text, "CanNTP"),
            offset: src
                .timesync_status()
                .ok()
                .and_then(|t| parse_timesync_offset(&t)),
            chrony_error: errors.pop(),
        },
        Err(e) => {
            errors.push(e);
            Reading::Nothing(errors)
        }
    }
}

/// Reference IDs that are the host itself: none yet, and chrony's `local`
/// reference (127.127.1.1, "LOCL").
fn is_local(t: &Tracking) -> bool {
    t.ref_id == 0 || t.ref_id == 0x7F7F_0101 || t.reference.starts_with("127.")
}

const CHRONY_REMEDY: &str = "check the NTP sources in /etc/chrony/chrony.conf (Debian, Ubuntu) or /etc/chrony.conf (RHEL) are reachable over UDP 123 (`chronyc sources -v`); on air-gapped sites point chrony at local NTP servers";
const TIMESYNCD_REMEDY: &str = "turn on synchronisation with `timedatectl set-ntp true` and set NTP= servers in /etc/systemd/timesyncd.conf reachable over UDP 123 (`timedatectl timesync-status`)";

/// The verdict; with the synchronised flag and the offset for the metrics.
pub fn judge(
    domain: &'static str,
    reading: &Reading,
    warn: Duration,
    fail: Duration,
) -> (Check, bool, Option<f64>) {
    let id = "clock";
    let offset_verdict = |offset: f64, what: String, remedy: &str| -> Check {
        let abs = offset.abs();
        let text = format!("{what}, offset {}", fmt_offset(offset));
        if abs > fail.as_secs_f64() {
            Check::new(domain, id, Status::Fail, format!("{text}: more than {fail:?} off; TLS, SigV4 and certificate validity fail on a skewed clock"))
                .with_remedy(format!("let the time daemon step the clock (`chronyc makestep`, or restart systemd-timesyncd), then find why it drifted: {remedy}"))
        } else if abs > warn.as_secs_f64() {
            Check::new(
                domain,
                id,
                Status::Warn,
                format!("{text}: more than {warn:?} off"),
            )
            .with_remedy(remedy.to_owned())
        } else {
            Check::pass(domain, id, text)
        }
    };
    match reading {
        Reading::Chrony(t) if t.leap == "Not synchronised" || t.ref_id == 0 => (
            Check::new(domain, id, Status::Fail, format!("the clock is not synchronised: chronyd has no reference (Reference ID {:08X}, leap status {})", t.ref_id, t.leap))
                .with_remedy(CHRONY_REMEDY),
            false,
            Some(t.offset),
        ),
        Reading::Chrony(t) if is_local(t) => (
            Check::new(domain, id, Status::Warn, format!("chronyd follows only this host's own clock (Reference ID {:08X}): nothing keeps it in step with AWS", t.ref_id))
                .with_remedy(CHRONY_REMEDY),
            false,
            Some(t.offset),
        ),
        Reading::Chrony(t) if t.leap != "Normal" => (
            Check::new(domain, id, Status::Warn, format!("chronyd is synchronised to {} but its leap status is {:?}: nodeadm's ntp-sync validation wants Normal", t.reference, t.leap))
                .with_remedy("wait for the leap second to pass, or check the NTP sources (`chronyc sources -v`)"),
            true,
            Some(t.offset),
        ),
        Reading::Chrony(t) => (
            offset_verdict(
                t.offset,
                format!("chronyd synchronises the clock to {} (stratum {})", t.reference, t.stratum),
                CHRONY_REMEDY,
            ),
            true,
            Some(t.offset),
        ),
        Reading::Timesyncd { synchronized: false, ntp, can_ntp, offset, chrony_error } => {
            let (why, remedy) = match (can_ntp, ntp) {
                (Some(false), _) => (
                    "no NTP service is installed (`timedatectl`: CanNTP=no, NTPSynchronized=no)",
                    "install an NTP service: chrony (`apt-get install chrony` / `dnf install chrony`) or systemd-timesyncd, pointed at NTP servers reachable over UDP 123",
                ),
                (_, Some(false)) => (
                    "NTP synchronisation is turned off (`timedatectl`: NTP=no, NTPSynchronized=no)",
                    TIMESYNCD_REMEDY,
                ),
                _ => ("`timedatectl` reports NTPSynchronized=no", TIMESYNCD_REMEDY),
            };
            let chrony = chrony_error
                .as_ref()
                .map_or(String::new(), |e| format!("; chronyc is installed but chronyd does not answer ({e})"));
            (
                Check::new(domain, id, Status::Fail, format!("the clock is not synchronised: {why}{chrony}"))
                    .with_remedy(remedy),
                false,
                *offset,
            )
        }
        // nodeadm's ntp-sync validation returns chronyc's error as soon as
        // chronyc is on the PATH: init fails although the clock is right.
        Reading::Timesyncd { synchronized: true, chrony_error: Some(e), offset, .. } => (
            Check::new(domain, id, Status::Fail, format!("chronyc is installed but chronyd does not answer ({e}): nodeadm's ntp-sync validation asks chrony and fails with that error, although `timedatectl` reports NTPSynchronized=yes"))
                .with_remedy("start chronyd (`systemctl enable --now chronyd` or `chrony`), or remove the chrony package if systemd-timesyncd keeps the time"),
            true,
            *offset,
        ),
        Reading::Timesyncd { synchronized: true, offset: Some(o), .. } => (
            offset_verdict(*o, "systemd-timesyncd synchronises the clock".to_owned(), TIMESYNCD_REMEDY),
            true,
            Some(*o),
        ),
        Reading::Timesyncd { synchronized: true, offset: None, .. } => (
            Check::pass(domain, id, "the clock is synchronised (`timedatectl`: NTPSynchronized=yes; offset not reported)"),
            true,
            None,
        ),
        Reading::Garbled(e) => (
            Check::new(domain, id, Status::Unknown, e.to_string())
                .with_remedy("run `chronyc tracking` by hand and report the output"),
            false,
            None,
        ),
        Reading::Nothing(errors) => {
            let why = if errors.is_empty() {
                "neither chronyc nor timedatectl is installed".to_owned()
            } else {
                errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            };
            (
                Check::new(domain, id, Status::Fail, format!("no time synchronisation answers: {why}"))
                    .with_remedy("install and start chrony (`apt-get install chrony` / `dnf install chrony`, `systemctl enable --now chronyd`) or enable systemd-timesyncd (`timedatectl set-ntp true`)"),
                false,
                None,
            )
        }
    }
}

fn fmt_offset(s: f64) -> String {
    let a = s.abs();
    let sign = if s < 0.0 { "-" } else { "+" };
    if a < 1e-3 {
        format!("{sign}{:.1} µs", a * 1e6)
    } else if a < 1.0 {
        format!("{sign}{:.1} ms", a * 1e3)
    } else {
        format!("{sign}{a:.3} s")
    }
}
