//! A private OCI registry for pull tests: `docker-registry` serving TLS
//! with a test CA on loopback, and a one-layer image pushed with the
//! registry API (curl), so no other image tooling is needed.

use crate::{eventually, KillOnDrop, Pki};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    assert!(
        eventually(timeout, || f().then_some(())).is_some(),
        "{what} not ready within {timeout:?}"
    );
}

/// `docker-registry` on 127.0.0.1:`port` with the given PKI.
pub fn start_registry(bin: &Path, dir: &Path, port: u16, pki: &Pki) -> KillOnDrop {
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    std::fs::write(dir.join("server.crt"), &pki.server_pem).expect("write");
    std::fs::write(dir.join("server.key"), &pki.server_key).expect("write");
    let cfg = dir.join("registry.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {}\n    key: {}\n",
            dir.join("data").display(),
            dir.join("server.crt").display(),
            dir.join("server.key").display()
        ),
    )
    .expect("write");
    let p = KillOnDrop::spawn(
        Command::new(bin).arg("serve").arg(&cfg),
        "start docker-registry",
    );
    wait_until("docker-registry", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    p
}

fn sha256_hex(data: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(data)?;
            c.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-fsS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pushes a one-layer OCI image `test/app:v1` with the registry API.
pub fn push_image(dir: &Path, port: u16, ca: &Path) {
    let base = format!("https://127.0.0.1:{port}/v2/test/app");
    let cacert = ca.to_str().expect("utf-8");
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).expect("mkdir");
    std::fs::write(
        rootfs.join("hello.txt"),
        "pulled through hybrid-node-agent\n",
    )
    .expect("write");
    let tar_path = dir.join("layer.tar");
    assert!(Command::new("tar")
        .arg("-cf")
        .arg(&tar_path)
        .arg("-C")
        .arg(&rootfs)
        .arg(".")
        .status()
        .expect("tar")
        .success());
    let tar = std::fs::read(&tar_path).expect("read");
    assert!(Command::new("gzip")
        .arg("-kn")
        .arg(&tar_path)
        .status()
        .expect("gzip")
        .success());
    let gz = std::fs::read(dir.join("layer.tar.gz")).expect("read");
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}},"config":{{}}}}"#,
        sha256_hex(&tar)
    );
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, &config).expect("write");
    for (blob, path) in [
        (gz.as_slice(), dir.join("layer.tar.gz")),
        (config.as_bytes(), config_path.clone()),
    ] {
        let digest = format!("sha256:{}", sha256_hex(blob));
        let headers = curl(&[
            "--cacert",
            cacert,
            "-X",
            "POST",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!("{base}/blobs/uploads/"),
        ]);
        let location = headers
            .lines()
            .find_map(|l| {
                l.strip_prefix("Location: ")
                    .or_else(|| l.strip_prefix("location: "))
            })
            .expect("upload location")
            .trim()
            .to_owned();
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = if location.starts_with("http") {
            location.clone()
        } else {
            format!("https://127.0.0.1:{port}{location}")
        };
        curl(&[
            "--cacert",
            cacert,
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", path.display()),
            &format!("{url}{sep}digest={digest}"),
        ]);
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{}","size":{}}}]}}"#,
        sha256_hex(config.as_bytes()),
        config.len(),
        sha256_hex(&gz),
        gz.len()
    );
    let mpath = dir.join("manifest.json");
    std::fs::write(&mpath, manifest).expect("write");
    curl(&[
        "--cacert",
        cacert,
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", mpath.display()),
        &format!("{base}/manifests/v1"),
    ]);
}
