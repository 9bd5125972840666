//! The XID check: live events from NVML's event set and, read before NVML
//! registers for events, those the kernel logged since boot — both aged in
//! one history, so a fatal XID survives an agent restart for its window.

use super::kernel_log::{self, LoggedXid};
use super::source::GpuReading;
use super::{GpuDomain, DOMAIN};
use crate::check::{Check, Status};
use crate::metrics::label::LabelValue;
use crate::model::xid;
use std::time::{Duration, Instant};

/// What has been taken from the kernel log.
#[derive(Debug)]
pub(super) struct KernelLog {
    /// Read it before the next NVML initialisation.
    pub(super) due: bool,
    /// Newest record taken (kernel log time): older ones are not taken twice.
    newest: Option<Duration>,
    /// Taken but not yet mapped to a GPU (NVML not answering yet).
    pending: Vec<LoggedXid>,
    error: Option<String>,
    /// NVML answered: XIDs reach the agent live through its event set.
    live: bool,
}

impl KernelLog {
    /// NVML answered this run.
    pub(super) fn nvml_answered(&mut self) {
        self.live = true;
    }

    /// NVML stopped answering: read the kernel log again once it is back,
    /// from now on — what it logged while NVML was live was delivered live
    /// and must not be counted twice.
    pub(super) fn nvml_stopped(&mut self) {
        if std::mem::take(&mut self.live) {
            let now = kernel_log::since_boot();
            self.newest = Some(self.newest.map_or(now, |n| n.max(now)));
        }
        self.due = true;
    }
}

impl Default for KernelLog {
    fn default() -> Self {
        KernelLog {
            due: true,
            newest: None,
            pending: Vec::new(),
            error: None,
            live: false,
        }
    }
}

/// "GPU 3", or the PCI address of a GPU NVML does not list (one that fell
/// off the bus before the agent started).
const UNLISTED: u32 = u32::MAX;

impl GpuDomain {
    pub(super) fn read_kernel_log(&mut self) {
        if !self.kernel.due {
            return;
        }
        self.kernel.due = false;
        match kernel_log::read(&self.host) {
            Ok(all) => {
                let newest = self.kernel.newest;
                let fresh: Vec<LoggedXid> = all
                    .into_iter()
                    .filter(|x| newest.is_none_or(|n| x.at > n))
                    .collect();
                if let Some(last) = fresh.iter().map(|x| x.at).max() {
                    self.kernel.newest = Some(last);
                }
                if !fresh.is_empty() {
                    tracing::info!(
                        count = fresh.len(),
                        "{} XID(s) in the kernel log from before NVML's event registration",
                        fresh.len()
                    );
                }
                self.kernel.pending.extend(fresh);
                self.kernel.error = None;
            }
            Err(e) => {
                if self.kernel.error.is_none() {
                    tracing::warn!("cannot read earlier XIDs from the kernel log: {e}");
                }
                self.kernel.error = Some(e.to_string());
            }
        }
    }

    /// `pci`: the address of a GPU NVML does not list (`gpu` is UNLISTED).
    fn record(&mut self, gpu: u32, pci: Option<(u32, u32, u32)>, xid: u64, at: Instant) {
        let class = xid::classify(xid, &self.cfg.xid_fatal, &self.cfg.xid_ignore);
        let label = if gpu == UNLISTED {
            "unlisted".to_owned()
        } else {
            gpu.to_string()
        };
        self.metrics
            .xid
            .get_or_create(&vec![
                ("gpu", LabelValue::from(label)),
                ("xid", LabelValue::from(xid.to_string())),
                ("class", LabelValue::from(class.as_str().to_owned())),
            ])
            .inc();
        self.history.record(xid::Seen {
            at,
            gpu,
            pci,
            xid,
            class,
        });
    }

    /// `listed`: `readings` are every GPU NVML lists, so a kernel-log XID
    /// of another PCI address can be told unlisted; otherwise it waits.
    pub(super) fn xid_check(&mut self, readings: &[GpuReading], listed: bool) -> Check {
        let now = Instant::now();
        // Kernel-log XIDs: mapped by PCI address, aged from when they were logged.
        let boot_now = kernel_log::since_boot();
        let pending = std::mem::take(&mut self.kernel.pending);
        let (mapped, waiting): (Vec<LoggedXid>, Vec<LoggedXid>) =
            pending.into_iter().partition(|x| {
                listed
                    || readings
                        .iter()
                        .any(|g| kernel_log::pci_address(&g.pci_bus_id) == Some(x.pci))
            });
        self.kernel.pending = waiting;
        for x in mapped {
            let gpu = readings
                .iter()
                .find(|g| kernel_log::pci_address(&g.pci_bus_id) == Some(x.pci))
                .map_or(UNLISTED, |g| g.index);
            if gpu == UNLISTED {
                tracing::warn!(
                    xid = x.xid,
                    "XID {} logged for PCI {:04x}:{:02x}:{:02x}, a GPU NVML does not list",
                    x.xid,
                    x.pci.0,
                    x.pci.1,
                    x.pci.2
                );
            }
            if let Some(at) = now.checked_sub(boot_now.saturating_sub(x.at)) {
                let pci = (gpu == UNLISTED).then_some(x.pci);
                self.record(gpu, pci, x.xid, at);
            }
        }
        let mut new: Vec<String> = Vec::new();
        let mut count = 0usize;
        for e in self.source.xids() {
            if xid::classify(e.xid, &self.cfg.xid_fatal, &self.cfg.xid_ignore)
                != xid::Class::Ignored
            {
                count += 1;
                let s = format!("XID {} on GPU {}", e.xid, e.gpu);
                if new.len() < 10 && !new.contains(&s) {
                    new.push(s);
                }
            }
            self.record(e.gpu, None, e.xid, now);
        }
        // One line per run, however many events a storm brought.
        if count > 0 {
            tracing::warn!(count, "{count} new XID event(s): {}", new.join(", "));
        }
        let window = self.cfg.xid_window.get();
        let current = self.history.current(now, window);
        let list = |c: xid::Class| -> Vec<String> {
            current
                .iter()
                .filter(|s| s.class == c)
                .map(|s| match (s.gpu, s.pci) {
                    (UNLISTED, Some((d, b, dev))) => format!(
                        "XID {} on PCI {d:04x}:{b:02x}:{dev:02x}, a GPU NVML does not list",
                        s.xid
                    ),
                    (UNLISTED, None) => format!("XID {} on a GPU NVML does not list", s.xid),
                    (g, _) => format!("XID {} on GPU {g}", s.xid),
                })
                .collect()
        };
        let (fatal, warn) = (list(xid::Class::Fatal), list(xid::Class::Warn));
        let shown = |l: &[String]| {
            let mut v: Vec<String> = Vec::new();
            for s in l {
                if !v.contains(s) {
                    v.push(s.clone());
                }
            }
            let more = v.len().saturating_sub(10);
            v.truncate(10);
            let mut text = v.join(", ");
            if more > 0 {
                text.push_str(&format!(" and {more} more"));
            }
            format!("{text} ({} events)", l.len())
        };
        let window_text = humantime(window);
        if !fatal.is_empty() {
            Check::new(DOMAIN, "xid", Status::Fail, format!("fatal XIDs within {window_text}: {}", shown(&fatal)))
                .with_remedy("drain the node; reset or replace the GPU per NVIDIA's XID catalogue (clears after the window)")
        } else if !warn.is_empty() {
            Check::new(
                DOMAIN,
                "xid",
                Status::Warn,
                format!("XIDs within {window_text}: {}", shown(&warn)),
            )
            .with_remedy("see dmesg and NVIDIA's XID catalogue")
        } else {
            let note = self
                .kernel
                .error
                .as_ref()
                .map(|e| format!(" (earlier XIDs unknown: {e})"))
                .unwrap_or_default();
            Check::pass(
                DOMAIN,
                "xid",
                format!("no XID events within {window_text}{note}"),
            )
        }
    }
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
