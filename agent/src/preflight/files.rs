//! How the preflight families read host files: through
//! [`Host::read_small`], so a FIFO planted in a scanned directory
//! (`/etc/apt/apt.conf.d`, firewalld's zones, unit drop-ins) fails at once
//! instead of blocking the domain, and a huge file is refused instead of
//! read whole. Works for `/proc` files too (they report size 0; the read
//! itself is capped).

use crate::host::{Host, SmallFileError};

/// The most a configuration or `/proc` file read here may hold: real ones
/// are a few KiB (`/proc/swaps` with thousands of areas stays below).
pub const MAX_TEXT_FILE: u64 = 256 * 1024;

/// The host file `path` as text (invalid UTF-8 replaced), at most
/// [`MAX_TEXT_FILE`] bytes, only if it is a regular file.
pub fn read_text(host: &Host, path: &str) -> Result<String, SmallFileError> {
    host.read_small(path, MAX_TEXT_FILE)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_huge_file_is_refused_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        std::fs::create_dir_all(host.path("/etc")).expect("mkdir");
        nix::unistd::mkfifo(&host.path("/etc/fifo"), nix::sys::stat::Mode::S_IRWXU)
            .expect("mkfifo");
        std::fs::write(
            host.path("/etc/big"),
            vec![b'#'; MAX_TEXT_FILE as usize + 1],
        )
        .expect("write");
        std::fs::write(host.path("/etc/ok"), "a=b\n").expect("write");
        assert!(matches!(
            read_text(&host, "/etc/fifo"),
            Err(SmallFileError::NotRegular { kind: "a FIFO", .. })
        ));
        assert!(matches!(
            read_text(&host, "/etc/big"),
            Err(SmallFileError::TooLarge { .. })
        ));
        assert_eq!(read_text(&host, "/etc/ok").expect("read"), "a=b\n");
    }
}
