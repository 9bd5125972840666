//! hybrid-node-agent: preflight and continuous health of an Amazon EKS
//! hybrid node — nodeadm lifecycle, NodeConfig, containerd registries and
//! trust, NVIDIA GPUs, and the network path — exposed as a `check` report,
//! Prometheus metrics and systemd status.
//!
//! Layout: [`check`] is the result model; each domain implements
//! [`domain::Domain`]; [`daemon`] schedules them and [`metrics`] serves the
//! cached results; [`host`] puts every host path under a configurable root.

// deny, not forbid: agent/src/gpu/nvml_raw.rs alone allows it (one NVML call
// nvml-wrapper has no safe method for); tests/architecture.rs checks that.
#![deny(unsafe_code)]

pub mod app;
pub mod assemble;
pub mod bandwidth;
pub mod check;
pub mod cli;
pub mod commands;
pub mod config;
pub mod containerd;
pub mod credentials;
pub mod daemon;
pub mod deadline;
pub mod dns;
pub mod domain;
pub mod edge;
pub mod endpoints;
pub mod facts;
pub mod gpu;
pub mod host;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod net;
pub mod nodeconfig;
pub mod path;
pub mod pki;
pub mod ports;
pub mod preflight;
pub mod registry;
pub mod report;
pub mod state;
pub mod systemd;
pub mod time;
pub mod tls;
