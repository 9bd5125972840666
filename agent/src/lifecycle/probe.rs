//! Asking the kubelet whether it is healthy: `GET /healthz` on its healthz
//! address, within one deadline.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// Asks the kubelet whether it is healthy.
pub trait KubeletProbe: Send + std::fmt::Debug {
    /// `Ok` when the health endpoint answered `ok`; otherwise what went wrong.
    fn healthz(&self) -> Result<(), HealthzError>;
}

/// Why the kubelet is not known to be healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthzError {
    /// Nothing answers (the kubelet is not running, or not there yet).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The exchange broke off or overran its deadline.
    #[error("{addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// It answered with another status.
    #[error("http://{addr}/healthz answered {status_line:?}")]
    Status {
        addr: SocketAddr,
        status_line: String,
    },
    /// It answered 200 with something other than `ok`.
    #[error("http://{addr}/healthz answered 200 with {body:?} instead of \"ok\"")]
    Body { addr: SocketAddr, body: String },
}

/// The real probe: `GET /healthz` on the kubelet's healthz address.
#[derive(Debug, Clone)]
pub struct HttpHealthz {
    pub addr: SocketAddr,
    pub timeout: Duration,
}

impl KubeletProbe for HttpHealthz {
    fn healthz(&self) -> Result<(), HealthzError> {
        let addr = self.addr;
        // One deadline for the whole exchange, not per read.
        let deadline = std::time::Instant::now() + self.timeout;
        let mut stream = crate::deadline::DeadlineStream::connect(&addr, deadline)
            .map_err(|source| HealthzError::Connect { addr, source })?;
        let io_err = |source| HealthzError::Io { addr, source };
        let request = format!(
            "GET /healthz HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: hybrid-node-agent\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).map_err(io_err)?;
        let mut response = Vec::with_capacity(256);
        stream
            .take(4096)
            .read_to_end(&mut response)
            .map_err(io_err)?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status_line = head.lines().next().unwrap_or("");
        let code = status_line.split_whitespace().nth(1).unwrap_or("");
        if code != "200" {
            return Err(HealthzError::Status {
                addr,
                status_line: status_line.trim().to_owned(),
            });
        }
        if body.trim() != "ok" {
            return Err(HealthzError::Body {
                addr,
                body: body.trim().chars().take(64).collect(),
            });
        }
        Ok(())
    }
}
