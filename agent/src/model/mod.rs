//! Models shared between domains: what one domain learns and another reads
//! (the nodeadm phase, a loaded NodeConfig), and the containerd and registry
//! vocabulary more than one domain speaks. Leaf modules: nothing here
//! imports a domain, so every domain can import them without a circle.

pub mod aws;
pub mod cidr;
pub mod containerd;
pub mod endpoint;
pub mod nodeconfig;
pub mod phase;
pub mod proxy;
pub mod registry_name;
pub mod xid;

pub use phase::Phase;
