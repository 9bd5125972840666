//! Does the CRI plugin pull through the transfer service? From containerd
//! 2.1 it does by default, and the transfer service takes `config_path` as
//! one directory: a colon-separated list (nodeadm's
//! `/etc/containerd/certs.d:/etc/docker/certs.d`) finds no hosts.toml.
//!
//! But 2.1 falls back to its local pull, which splits the list, whenever the
//! CRI image config holds an option the transfer service lacks
//! (`CheckLocalImagePullConfigs`, containerd v2.1.0–v2.2.x):
//! `use_local_image_pull = true`, `disable_snapshot_annotations = false`,
//! `discard_unpacked_layers = true`, legacy `registry.mirrors`/`configs`/
//! `auths`, `max_concurrent_downloads` other than 3,
//! `image_pull_with_sync_fs = true`. nodeadm's main config sets
//! `discard_unpacked_layers = true`, so with it intact 2.1.9 pulls locally
//! and honours the list; an import that drops or overrides that setting
//! turns the transfer service on (measured on 2.1.9,
//! `tests/tests/containerd_pulls.rs`).

use super::effective::Version;
use crate::model::containerd::{get, ContainerdConfig, CRI_IMAGES_V3};
use toml_edit::Item;

/// How the CRI plugin pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullPath {
    /// containerd < 2.1: always the local pull (list honoured).
    Local,
    /// 2.1+: local pull because of this option.
    LocalBecause(&'static str),
    /// 2.1+: the transfer service (a colon list is not split).
    Transfer,
}

/// The CRI pull path of an effective config (a `config dump`) on `version`.
pub fn cri_pull_path(eff: &ContainerdConfig, version: Version) -> PullPath {
    if version < Version(2, 1, 0) {
        return PullPath::Local;
    }
    let images = get(eff.doc.as_item(), &["plugins", CRI_IMAGES_V3]);
    let flag = |key: &str, default: bool| {
        images
            .and_then(|i| i.get(key))
            .and_then(Item::as_bool)
            .unwrap_or(default)
    };
    let registry_has = |key: &str| {
        images
            .and_then(|i| get(i, &["registry", key]))
            .and_then(Item::as_table_like)
            .is_some_and(|t| !t.is_empty())
    };
    let downloads = images
        .and_then(|i| i.get("max_concurrent_downloads"))
        .and_then(Item::as_integer)
        .unwrap_or(3);
    let triggers: [(&'static str, bool); 8] = [
        (
            "use_local_image_pull = true",
            flag("use_local_image_pull", false),
        ),
        (
            "disable_snapshot_annotations = false",
            !flag("disable_snapshot_annotations", true),
        ),
        (
            "discard_unpacked_layers = true",
            flag("discard_unpacked_layers", false),
        ),
        ("registry.mirrors", registry_has("mirrors")),
        ("registry.configs", registry_has("configs")),
        ("registry.auths", registry_has("auths")),
        ("max_concurrent_downloads other than 3", downloads != 3),
        (
            "image_pull_with_sync_fs = true",
            flag("image_pull_with_sync_fs", false),
        ),
    ];
    triggers
        .into_iter()
        .find(|(_, on)| *on)
        .map_or(PullPath::Transfer, |(why, _)| PullPath::LocalBecause(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(images: &str) -> ContainerdConfig {
        ContainerdConfig::parse(&format!(
            "version = 3\n[plugins.'io.containerd.cri.v1.images']\n{images}\n"
        ))
        .expect("toml")
    }

    #[test]
    fn the_local_pull_fallbacks_of_2_1() {
        let defaults = "disable_snapshot_annotations = true\ndiscard_unpacked_layers = false\nmax_concurrent_downloads = 3\nuse_local_image_pull = false\n";
        assert_eq!(
            cri_pull_path(&dump(defaults), Version(2, 1, 9)),
            PullPath::Transfer
        );
        assert_eq!(
            cri_pull_path(&dump(defaults), Version(2, 0, 7)),
            PullPath::Local
        );
        assert_eq!(
            cri_pull_path(&dump(defaults), Version(1, 7, 24)),
            PullPath::Local
        );
        let nodeadm = defaults.replace(
            "discard_unpacked_layers = false",
            "discard_unpacked_layers = true",
        );
        assert_eq!(
            cri_pull_path(&dump(&nodeadm), Version(2, 1, 9)),
            PullPath::LocalBecause("discard_unpacked_layers = true")
        );
        let mirrors = format!("{defaults}[plugins.'io.containerd.cri.v1.images'.registry.mirrors.'docker.io']\nendpoint = ['https://m']\n");
        assert_eq!(
            cri_pull_path(&dump(&mirrors), Version(2, 1, 9)),
            PullPath::LocalBecause("registry.mirrors")
        );
        let downloads = defaults.replace(
            "max_concurrent_downloads = 3",
            "max_concurrent_downloads = 10",
        );
        assert_eq!(
            cri_pull_path(&dump(&downloads), Version(2, 2, 0)),
            PullPath::LocalBecause("max_concurrent_downloads other than 3")
        );
    }
}
