//! Where each key of a NodeConfig is, from the YAML tree itself: a finding
//! about `spec.cluster.name` points at that key, not at the first line that
//! happens to read `name:` (inside a block scalar, or under another
//! mapping). The text search of [`super::parse::locate_key`] stays as the
//! fallback for a key the tree does not hold (one merged in with `<<`).

use super::yaml11::{self, Node, Pos, Value};
use std::collections::BTreeMap;

/// Key positions by dotted path (`spec.cluster.name`, list items as
/// `flags[0]`), compared without case as encoding/json matches field names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPositions(BTreeMap<String, Pos>);

impl KeyPositions {
    /// Every mapping key under `root`.
    pub fn of(root: Option<&Node>) -> Self {
        let mut out = BTreeMap::new();
        if let Some(root) = root {
            walk(root, "", &mut out);
        }
        KeyPositions(out)
    }

    /// Reads `text` for its positions; none when it is not YAML.
    pub fn from_text(text: &str) -> Self {
        yaml11::read(text)
            .map(|doc| Self::of(doc.root.as_ref()))
            .unwrap_or_default()
    }

    /// The key at `path`.
    pub fn get(&self, path: &str) -> Option<Pos> {
        self.0.get(&path.to_ascii_lowercase()).copied()
    }

    /// Where a finding about `field` is shown: at `key`, the last segment
    /// of `field` spelled so (`spec.cluster.name` at `cluster` is the
    /// `cluster:` key), else the sibling `key` of `field`'s last segment.
    pub fn locate(&self, field: &str, key: &str) -> Option<Pos> {
        let segments: Vec<&str> = field.split('.').collect();
        match segments.iter().rposition(|s| s.eq_ignore_ascii_case(key)) {
            Some(i) => self.get(&segments[..=i].join(".")),
            None => {
                let parent = &segments[..segments.len().saturating_sub(1)];
                let path = parent.iter().copied().chain([key]).collect::<Vec<_>>();
                self.get(&path.join("."))
            }
        }
    }
}

fn walk(node: &Node, path: &str, out: &mut BTreeMap<String, Pos>) {
    match &node.value {
        Value::Map(entries) => {
            for e in entries {
                let key = e.key.to_ascii_lowercase();
                let here = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                out.entry(here.clone()).or_insert(e.key_pos);
                walk(&e.value, &here, out);
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_path_not_by_their_text() {
        // `name:` first appears inside a block scalar and under metadata;
        // the cluster's is on line 8.
        let text = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nmetadata:\n  name: x\nspec:\n  containerd:\n    config: |\n      name: not-a-key\n  cluster:\n    Name: c\n  kubelet:\n    flags: [a, b]\n";
        let p = KeyPositions::from_text(text);
        assert_eq!(p.get("spec.cluster.name"), Some((10, 5)));
        assert_eq!(p.locate("spec.cluster.name", "name"), Some((10, 5)));
        assert_eq!(p.locate("spec.cluster.region", "cluster"), Some((9, 3)));
        assert_eq!(p.locate("spec.cluster.region", "region"), None);
        assert_eq!(p.get("spec.containerd.config"), Some((7, 5)));
        assert_eq!(p.get("metadata.name"), Some((4, 3)));
        assert_eq!(p.get("spec.kubelet.flags"), Some((12, 5)));
        assert_eq!(KeyPositions::from_text("a: [").get("a"), None);
    }
}
