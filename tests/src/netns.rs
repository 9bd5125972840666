//! Network namespaces for black-box tests: two namespaces joined by a veth
//! pair, removed when dropped. Needs root (a skip outside CI, a failure
//! under it).

use crate::{in_ci, require_tool, KillOnDrop};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) -> Output {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether namespaces can be made here; `None` means skip.
pub fn available() -> Option<()> {
    require_tool("ip")?;
    if !nix::unistd::Uid::effective().is_root() {
        assert!(!in_ci(), "network namespace tests need root under CI");
        eprintln!("SKIP: network namespaces need root");
        return None;
    }
    Some(())
}

/// A unique suffix for namespace and interface names.
pub fn unique() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// client (`PREFIX.1`) — veth — server (`PREFIX.2`), /24, MTU 9000.
#[derive(Debug)]
pub struct Pair {
    pub client: String,
    pub server: String,
    /// The client's and the server's veth ends.
    pub c0: String,
    pub s0: String,
}

impl Pair {
    /// `prefix`: the first three octets, e.g. "10.79.0".
    pub fn new(prefix: &str) -> Option<Pair> {
        available()?;
        let n = unique();
        let p = Pair {
            client: format!("hna-pc-{n}"),
            server: format!("hna-ps-{n}"),
            c0: format!("pc{n}").chars().take(15).collect(),
            s0: format!("ps{n}").chars().take(15).collect(),
        };
        for ns in [&p.client, &p.server] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link", "add", &p.c0, "netns", &p.client, "type", "veth", "peer", "name", &p.s0,
            "netns", &p.server,
        ]);
        for (ns, dev, host) in [(&p.client, &p.c0, 1), (&p.server, &p.s0, 2)] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{prefix}.{host}/24"),
                "dev",
                dev,
            ]);
            ip(&["-n", ns, "link", "set", dev, "mtu", "9000", "up"]);
        }
        Some(p)
    }

    /// `program ARGS` inside namespace `ns`.
    pub fn exec(&self, ns: &str, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program).args(args);
        c
    }

    /// `hybrid-node-agent --root ROOT --config CONFIG check -o json` in the
    /// client namespace, not yet run (add to its environment first).
    pub fn agent_check(&self, root: &Path, config: &Path) -> Command {
        let mut c = self.exec(&self.client, &crate::agent_bin(), &["--root"]);
        c.arg(root).arg("--config").arg(config);
        c.args(["check", "-o", "json"]).env_remove("RUST_LOG");
        c
    }

    /// dnsmasq serving DNS on `listen` in the server namespace, answering
    /// each `(domain, address)` pair (a domain and all names under it)
    /// and nothing else; stopped when the handle drops.
    pub fn dnsmasq(&self, dnsmasq: &Path, listen: &str, answers: &[(&str, &str)]) -> KillOnDrop {
        let mut args = vec![
            "--keep-in-foreground".to_owned(),
            "--conf-file=/dev/null".to_owned(),
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            "--bind-interfaces".to_owned(),
            format!("--listen-address={listen}"),
            "--pid-file=".to_owned(),
        ];
        args.extend(answers.iter().map(|(d, a)| format!("--address=/{d}/{a}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = KillOnDrop::spawn(&mut self.exec(&self.server, dnsmasq, &args), "dnsmasq");
        // Listening well before anyone asks (it binds within milliseconds).
        std::thread::sleep(std::time::Duration::from_millis(500));
        child
    }

    /// Runs `tc ARGS` in `ns`, panicking on failure.
    pub fn tc(&self, ns: &str, args: &[&str]) {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "tc"])
            .args(args)
            .output()
            .expect("tc");
        assert!(
            out.status.success(),
            "tc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
