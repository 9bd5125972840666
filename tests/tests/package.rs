//! The .deb and .rpm as a site admin gets them: contents, modes, conffiles
//! and scripts, and a real install → upgrade → remove → purge with `dpkg` on
//! this machine (no systemd as PID 1: the scripts must tolerate that).
//!
//! The packages come from `scripts/package.sh`, which `scripts/test.sh` runs
//! first under `CI=true`.

use hybrid_node_agent_e2e::{in_ci, json_report, require_tool};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn package(dir: &str, ext: &str) -> Option<PathBuf> {
    hybrid_node_agent_e2e::built_package(dir, ext)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const FILES: [(&str, &str); 9] = [
    ("usr/bin/hybrid-node-agent", "-rwxr-xr-x"),
    ("lib/systemd/system/hybrid-node-agent.service", "-rw-r--r--"),
    ("etc/hybrid-node-agent/config.toml", "-rw-r--r--"),
    ("usr/share/man/man8/hybrid-node-agent.8.gz", "-rw-r--r--"),
    (
        "usr/share/bash-completion/completions/hybrid-node-agent",
        "-rw-r--r--",
    ),
    (
        "usr/share/zsh/vendor-completions/_hybrid-node-agent",
        "-rw-r--r--",
    ),
    (
        "usr/share/fish/vendor_completions.d/hybrid-node-agent.fish",
        "-rw-r--r--",
    ),
    ("usr/share/doc/hybrid-node-agent/README.md", "-rw-r--r--"),
    (
        "usr/share/doc/hybrid-node-agent/docs/metrics.md",
        "-rw-r--r--",
    ),
];

#[test]
fn deb_lists_the_expected_files_modes_conffiles_and_scripts() {
    let (Some(deb), Some(_)) = (package("debian", "deb"), require_tool("dpkg-deb")) else {
        return;
    };
    let listing = text(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    for (path, mode) in FILES {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!("./{path}")))
            .unwrap_or_else(|| panic!("{path} missing from the .deb:\n{listing}"));
        assert!(line.starts_with(mode), "{path}: {line}");
        assert!(
            line.contains(" 0/0 ") || line.contains(" root/root "),
            "{path}: {line}"
        );
    }
    let info = text(&run(Command::new("dpkg-deb").arg("-I").arg(&deb)));
    for script in ["postinst", "prerm", "postrm", "conffiles"] {
        assert!(info.contains(script), "{script} missing:\n{info}");
    }
    let name = text(&run(Command::new("dpkg-deb")
        .arg("-f")
        .arg(&deb)
        .arg("Package")));
    assert_eq!(name.trim(), "hybrid-node-agent");
    let dir = tempfile::tempdir().expect("tempdir");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(dir.path()));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("conffiles"))
            .expect("conffiles")
            .trim(),
        "/etc/hybrid-node-agent/config.toml"
    );
}

#[test]
fn rpm_lists_the_expected_files_config_and_scripts() {
    let (Some(rpm_file), Some(rpm)) = (package("generate-rpm", "rpm"), require_tool("rpm")) else {
        return;
    };
    let files = text(&run(Command::new(&rpm).arg("-qlp").arg(&rpm_file)));
    for expected in [
        "/usr/bin/hybrid-node-agent",
        "/usr/lib/systemd/system/hybrid-node-agent.service",
        "/etc/hybrid-node-agent/config.toml",
        "/usr/share/man/man8/hybrid-node-agent.8.gz",
        "/usr/share/bash-completion/completions/hybrid-node-agent",
        "/usr/share/zsh/site-functions/_hybrid-node-agent",
        "/usr/share/fish/vendor_completions.d/hybrid-node-agent.fish",
        "/usr/share/doc/hybrid-node-agent/README.md",
    ] {
        assert!(
            files.lines().any(|l| l == expected),
            "{expected} missing:\n{files}"
        );
    }
    let modes = text(&run(Command::new(&rpm)
        .args([
            "-qp",
            "--queryformat",
            "[%{FILEMODES:perms} %{FILENAMES} %{FILEFLAGS:fflags}\n]",
        ])
        .arg(&rpm_file)));
    let bin = modes
        .lines()
        .find(|l| l.ends_with(" /usr/bin/hybrid-node-agent "))
        .unwrap_or_default();
    assert!(bin.starts_with("-rwxr-xr-x"), "{modes}");
    let conf = modes
        .lines()
        .find(|l| l.contains("/etc/hybrid-node-agent/config.toml"))
        .unwrap_or_default();
    assert!(
        conf.ends_with(" cn"),
        "config must be %config(noreplace): {conf:?}"
    );
    let scripts = text(&run(Command::new(&rpm)
        .args(["-qp", "--scripts"])
        .arg(&rpm_file)));
    for needle in [
        "postinstall scriptlet",
        "systemctl enable hybrid-node-agent.service",
        "preuninstall scriptlet",
        "systemctl stop hybrid-node-agent.service",
        "postuninstall scriptlet",
        "daemon-reload",
    ] {
        assert!(scripts.contains(needle), "{needle} missing:\n{scripts}");
    }
    assert!(!scripts.contains("%{"), "unexpanded rpm macros:\n{scripts}");
}

fn dpkg(args: &[&str]) -> Output {
    let out = Command::new("dpkg")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .expect("dpkg");
    let all = text(&out);
    assert!(out.status.success(), "dpkg {args:?} failed:\n{all}");
    assert!(
        !all.contains("returned error exit status") && !all.to_lowercase().contains("error"),
        "dpkg {args:?} reported a script problem:\n{all}"
    );
    out
}

#[test]
fn deb_installs_upgrades_and_removes_cleanly_keeping_the_admins_config() {
    let (Some(deb), Some(_), Some(_)) = (
        package("debian", "deb"),
        require_tool("dpkg"),
        require_tool("dpkg-deb"),
    ) else {
        return;
    };
    if !nix::unistd::Uid::effective().is_root() {
        assert!(!in_ci(), "package install test needs root under CI");
        eprintln!("SKIP: installing packages needs root");
        return;
    }
    let _ = Command::new("dpkg")
        .args(["-P", "hybrid-node-agent"])
        .output();
    let deb = deb.to_str().expect("utf-8").to_owned();

    // Install.
    dpkg(&["-i", &deb]);
    let bin = PathBuf::from("/usr/bin/hybrid-node-agent");
    assert!(bin.is_file());
    let out = Command::new(&bin)
        .args(["check", "-o", "json"])
        .output()
        .expect("check");
    let report: serde_json::Value = json_report(&out);
    assert!(matches!(out.status.code(), Some(0..=2)), "{}", text(&out));
    assert!(report["checks"].as_array().is_some_and(|c| !c.is_empty()));
    // The installed unit verifies (the binary and the man page are there now).
    if let Some(analyze) = require_tool("systemd-analyze") {
        let unit = "/lib/systemd/system/hybrid-node-agent.service";
        let v = Command::new(&analyze)
            .args(["verify", unit])
            .output()
            .expect("verify");
        assert!(
            text(&v).trim().is_empty() && v.status.success(),
            "systemd-analyze verify: {}",
            text(&v)
        );
        let s = Command::new(&analyze)
            .args(["security", "--offline=true", unit])
            .output()
            .expect("security");
        let score: f64 = text(&s)
            .lines()
            .find_map(|l| l.split("hybrid-node-agent.service: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("exposure score");
        assert!(score <= 2.0, "exposure {score}");
    }

    // The admin edits the config.
    let conf = PathBuf::from("/etc/hybrid-node-agent/config.toml");
    let mut edited = std::fs::read_to_string(&conf).expect("config installed");
    edited.push_str("\n# site change\n[agent]\nlog_level = \"debug\"\n");
    std::fs::write(&conf, &edited).expect("edit");

    // Upgrade to a newer version of the same package.
    let work = tempfile::tempdir().expect("tempdir");
    let tree = work.path().join("pkg");
    run(Command::new("dpkg-deb").arg("-R").arg(&deb).arg(&tree));
    let control = tree.join("DEBIAN/control");
    let c = std::fs::read_to_string(&control).expect("control");
    let version = c
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .expect("version")
        .to_owned();
    std::fs::write(
        &control,
        c.replace(
            &format!("Version: {version}"),
            &format!("Version: {version}+upgrade1"),
        ),
    )
    .expect("write");
    let newer = work.path().join("newer.deb");
    run(Command::new("dpkg-deb")
        .args(["-Zgzip", "-b"])
        .arg(&tree)
        .arg(&newer));
    dpkg(&["-i", newer.to_str().expect("utf-8")]);
    let status = text(&run(Command::new("dpkg-query").args([
        "-W",
        "-f=${Version} ${Status}",
        "hybrid-node-agent",
    ])));
    assert_eq!(status, format!("{version}+upgrade1 install ok installed"));
    assert_eq!(
        std::fs::read_to_string(&conf).expect("config after upgrade"),
        edited
    );

    // Remove: the binary goes, the admin's config stays.
    dpkg(&["-r", "hybrid-node-agent"]);
    assert!(!bin.exists());
    assert_eq!(
        std::fs::read_to_string(&conf).expect("config after remove"),
        edited
    );

    // Purge: the agent's own config goes.
    dpkg(&["-P", "hybrid-node-agent"]);
    assert!(!conf.exists());
    assert!(!PathBuf::from("/etc/hybrid-node-agent").exists());
}
