//! What hybrid nodeadm (aws/eks-hybrid v1.0.20, `internal/containerd`)
//! writes for containerd and how it reads the result back.
//!
//! nodeadm writes one main config for every containerd line: the version 2
//! template below, for 1.x and 2.x alike (2.x migrates it to version 3 in
//! memory when it loads). The NodeConfig's `containerd.config` goes verbatim
//! to `/etc/containerd/config.d/00-nodeadm.toml`. After starting containerd,
//! nodeadm finds the sandbox image to pre-pull in `containerd config dump`:
//! the first `version = N`, then for N = 2 the first `sandbox_image = "…"`,
//! for N >= 3 (containerd 2.x, and the version 4 that 2.3 migrates to) the
//! first `sandbox = "…"` (`pinned_images.sandbox`); no match fails init.

/// The `config_path` hybrid nodeadm sets.
pub const CONFIG_PATH: &str = "/etc/containerd/certs.d:/etc/docker/certs.d";

/// nodeadm's sandbox image is `<ECR account>.dkr.ecr.<region>.<domain>/eks/pause:3.5`,
/// the account taken from a region manifest downloaded at init. Before init
/// the projection uses the non-opt-in account's image nodeadm falls back
/// to: the checks only ask whether the value survives the imports.
pub const PROJECTED_SANDBOX_IMAGE: &str =
    "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/pause:3.5";

/// nodeadm's `config.template.toml`, with `imports` pointing at
/// `imports_glob` and its `SandboxImage` filled in.
pub fn main_config(imports_glob: &str, sandbox_image: &str) -> String {
    format!(
        r#"version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
# Users can use the following import directory to add additional
# configuration to containerd. The imports do not behave exactly like overrides.
# see: https://github.com/containerd/containerd/blob/main/docs/man/containerd-config.toml.5.md#format
imports = ["{imports_glob}"]

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins]
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    discard_unpacked_layers = true
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{sandbox_image}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{CONFIG_PATH}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
"#
    )
}

/// Why nodeadm's sandbox-image lookup on a dump fails (`nodeadm init` stops).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxLookupError {
    #[error("config version not found in containerd config dump")]
    NoVersion,
    #[error("unsupported containerd config version: {0}")]
    Unsupported(u32),
    #[error("sandbox image could not be found in containerd config (version {0} format)")]
    NotFound(u32),
}

/// The sandbox image nodeadm would pre-pull, found in `dump` the way
/// nodeadm's regular expressions find it (first match wins, anywhere).
pub fn sandbox_lookup(dump: &str) -> Result<String, SandboxLookupError> {
    let version = first_after(dump, "version = ", |rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    })
    .ok_or(SandboxLookupError::NoVersion)?;
    let key = match version {
        v if v >= 3 => "sandbox = ",
        2 => "sandbox_image = ",
        v => return Err(SandboxLookupError::Unsupported(v)),
    };
    first_after(dump, key, |rest| {
        // `['"]([^'"]*)['"]`: the value ends at the first quote of either kind.
        let body = rest.strip_prefix(['"', '\''])?;
        let end = body.find(['"', '\''])?;
        Some(body[..end].to_owned())
    })
    .ok_or(SandboxLookupError::NotFound(version))
}

/// The first occurrence of `needle` whose following text `parse` accepts.
fn first_after<T>(text: &str, needle: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    text.match_indices(needle)
        .find_map(|(i, _)| parse(&text[i + needle.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_reads_each_dump_format() {
        // containerd 1.x dumps version 2 with double quotes.
        let v2 = "version = 2\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    sandbox_image = \"registry.k8s.io/pause:3.6\"\n";
        assert_eq!(
            sandbox_lookup(v2).as_deref(),
            Ok("registry.k8s.io/pause:3.6")
        );
        // containerd 2.x dumps version 3 with single quotes.
        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.images'.pinned_images]\n  sandbox = 'localhost/pause:3.10'\n";
        assert_eq!(sandbox_lookup(v3).as_deref(), Ok("localhost/pause:3.10"));
        assert_eq!(
            sandbox_lookup("version = 4\nsandbox = 'p:4'\n").as_deref(),
            Ok("p:4")
        );
        assert_eq!(
            sandbox_lookup("version = 3\nsandbox_image = 'x'\n"),
            Err(SandboxLookupError::NotFound(3))
        );
        assert_eq!(
            sandbox_lookup("root = '/'\n"),
            Err(SandboxLookupError::NoVersion)
        );
        assert_eq!(
            sandbox_lookup("version = 1\n"),
            Err(SandboxLookupError::Unsupported(1))
        );
    }

    #[test]
    fn the_template_parses_and_carries_nodeadm_settings() {
        let c = crate::model::containerd::ContainerdConfig::parse(&main_config("/x/*.toml", "p:1"))
            .expect("TOML");
        assert_eq!(c.config_path().as_deref(), Some(CONFIG_PATH));
        assert_eq!(c.sandbox_image().as_deref(), Some("p:1"));
        assert_eq!(
            c.default_runtime().and_then(|r| r.systemd_cgroup),
            Some(true)
        );
        assert_eq!(
            sandbox_lookup(&main_config("/x/*.toml", "p:1")).as_deref(),
            Ok("p:1")
        );
    }
}
