//! XIDs the kernel already logged: `NVRM: Xid (PCI:0000:18:00): 79, pid=…,
//! name=…, GPU has fallen off the bus.` lines since boot. NVML delivers an
//! XID only to event sets registered before it happened, so without this an
//! agent restarted after a fatal XID would report the GPU healthy.
//!
//! Sources, in order: `/dev/kmsg` (under `--root`), read non-blocking to
//! the end of the ring buffer; where the unit's sandbox hides it
//! (`ProtectKernelLogs=yes`, which the unit keeps), the journal's kernel
//! messages of this boot (`journalctl -k -b`), which root reads without
//! CAP_SYSLOG. Timestamps are CLOCK_MONOTONIC microseconds in both, so an
//! event ages exactly like a live one.

use crate::host::Host;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

/// One logged XID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedXid {
    /// Since boot (CLOCK_MONOTONIC).
    pub at: Duration,
    /// PCI (domain, bus, device) of the GPU.
    pub pci: (u32, u32, u32),
    pub xid: u64,
}

/// Why the kernel log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KernelLogError {
    #[error("cannot read {path}: {source}")]
    Kmsg {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Journal(#[from] crate::edge::exec::ExecError),
}

/// The kernel log's ring buffer is bounded (log_buf_len, a few MiB at
/// most); this bounds a file standing in for it.
const MAX_BYTES: usize = 64 << 20;

/// `PCI:0000:18:00` or a full bus id `00000000:18:00.0` → (domain, bus, device).
pub fn pci_address(s: &str) -> Option<(u32, u32, u32)> {
    let s = s.strip_prefix("PCI:").unwrap_or(s);
    let mut it = s.split([':', '.']);
    let domain = u32::from_str_radix(it.next()?, 16).ok()?;
    let bus = u32::from_str_radix(it.next()?, 16).ok()?;
    let device = u32::from_str_radix(it.next()?, 16).ok()?;
    Some((domain, bus, device))
}

/// The XID and PCI address of an NVRM message, wherever it starts in `line`.
fn parse_message(line: &str) -> Option<((u32, u32, u32), u64)> {
    let rest = &line[line.find("NVRM: Xid (")? + "NVRM: Xid (".len()..];
    let (pci, rest) = rest.split_once("):")?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((pci_address(pci)?, digits.parse().ok()?))
}

/// A `/dev/kmsg` record: `prio,seq,usec,flags;message`.
pub fn parse_kmsg(record: &str) -> Option<LoggedXid> {
    let (head, message) = record.split_once(';')?;
    let usec: u64 = head.split(',').nth(2)?.parse().ok()?;
    let (pci, xid) = parse_message(message)?;
    Some(LoggedXid {
        at: Duration::from_micros(usec),
        pci,
        xid,
    })
}

/// A `journalctl -o short-monotonic` line: `[  123.456789] host kernel: …`.
pub fn parse_journal(line: &str) -> Option<LoggedXid> {
    let inner = line.trim_start().strip_prefix('[')?;
    let (secs, rest) = inner.split_once(']')?;
    let (s, us) = secs.trim().split_once('.')?;
    let at = Duration::from_secs(s.parse().ok()?) + Duration::from_micros(us.parse().ok()?);
    let (pci, xid) = parse_message(rest)?;
    Some(LoggedXid { at, pci, xid })
}

/// Every XID record of `/dev/kmsg` under the host root.
fn read_kmsg(host: &Host) -> Result<Vec<LoggedXid>, std::io::Error> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(host.path("/dev/kmsg"))?;
    // /dev/kmsg returns one record per read (a buffer smaller than the
    // record is EINVAL); a plain file returns chunks. Lines serve both.
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending = Vec::new();
    let mut out = Vec::new();
    let mut total = 0;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if let Some(x) = parse_kmsg(&String::from_utf8_lossy(&line)) {
                        out.push(x);
                    }
                }
                if total > MAX_BYTES {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // EPIPE: the record was overwritten while reading; go on.
            Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    if let Some(x) = parse_kmsg(&String::from_utf8_lossy(&pending)) {
        out.push(x);
    }
    Ok(out)
}

/// XIDs logged since boot. The journal is asked only on the real root (a
/// test root has no journal of its own).
pub fn read(host: &Host) -> Result<Vec<LoggedXid>, KernelLogError> {
    match read_kmsg(host) {
        Ok(x) => Ok(x),
        Err(e) if host.root() != std::path::Path::new("/") => Err(KernelLogError::Kmsg {
            path: host.path("/dev/kmsg").display().to_string(),
            source: e,
        }),
        Err(_) => {
            // Bounded: a journal that does not answer must not hold the
            // GPU domain's start.
            let text = crate::edge::exec::output_within(
                std::process::Command::new("journalctl").args([
                    "--dmesg",
                    "--boot",
                    "--output=short-monotonic",
                    "--no-pager",
                    "--quiet",
                ]),
                "journalctl",
                Duration::from_secs(10),
            )?;
            Ok(text.lines().filter_map(parse_journal).collect())
        }
    }
}

/// Now on CLOCK_MONOTONIC, the clock of the kernel log's timestamps.
pub fn since_boot() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_and_journal_records() {
        let r = "4,1523,7371234567,-;NVRM: Xid (PCI:0000:5d:00): 79, pid=1234, name=python3, GPU has fallen off the bus.";
        assert_eq!(
            parse_kmsg(r),
            Some(LoggedXid {
                at: Duration::from_micros(7_371_234_567),
                pci: (0, 0x5d, 0),
                xid: 79
            })
        );
        let r = "4,99,12,-;NVRM: Xid (PCI:0000:cb:00): 13, pid='<unknown>', name=<unknown>, Graphics SM Warp Exception";
        assert_eq!(parse_kmsg(r).map(|x| x.xid), Some(13));
        let j = "[ 7371.234567] gpu-host-1 kernel: NVRM: Xid (PCI:0000:18:00): 48, pid=77, name=train, An uncorrectable double bit error";
        assert_eq!(
            parse_journal(j),
            Some(LoggedXid {
                at: Duration::from_micros(7_371_234_567),
                pci: (0, 0x18, 0),
                xid: 48
            })
        );
        for other in [
            "6,1,2,-;NVRM: loading NVIDIA UNIX Open Kernel Module",
            " SUBSYSTEM=pci",
            "4,1,x,-;NVRM: Xid (PCI:0000:18:00): 48,",
            "4,1,2,-;NVRM: Xid (PCI:zz): 48,",
        ] {
            assert_eq!(parse_kmsg(other), None, "{other}");
        }
        assert_eq!(pci_address("00000000:AB:00.0"), Some((0, 0xab, 0)));
    }

    #[test]
    fn a_file_under_the_root_stands_in_for_kmsg() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        std::fs::create_dir_all(host.path("/dev")).expect("mkdir");
        std::fs::write(
            host.path("/dev/kmsg"),
            "6,1,100,-;Linux version 6.8.0\n SUBSYSTEM=pci\n4,2,200,-;NVRM: Xid (PCI:0000:18:00): 79, pid=1, name=x, GPU has fallen off the bus.\n4,3,300,-;NVRM: Xid (PCI:0000:2a:00): 94, pid=2, name=y, Contained ECC error",
        )
        .expect("write");
        let x = read(&host).expect("read");
        assert_eq!(x.iter().map(|x| x.xid).collect::<Vec<_>>(), [79, 94]);
        std::fs::remove_file(host.path("/dev/kmsg")).expect("rm");
        let e = read(&host).expect_err("missing");
        assert!(e.to_string().contains("/dev/kmsg"), "{e}");
    }
}
