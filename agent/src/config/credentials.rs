//! `[credentials]`: how often the credentials domain looks, and when a
//! certificate or an AWS credentials file is too close to its end.
//!
//! The age defaults come from how the refreshers really behave:
//! - the SSM agent rotates its hybrid-activation credentials (1 h lifetime)
//!   at half their lifetime, every 30 minutes
//!   (aws/amazon-ssm-agent `core/app/credentialrefresher/credentialrefresher.go`,
//!   `durationUntilRefresh`: "Set the expiration window to be half of the
//!   token's lifetime");
//! - `aws_signing_helper update` (IAM Roles Anywhere, 1 h sessions by
//!   default; nodeadm passes no `--session-duration`) rewrites the file 5
//!   minutes before the credentials expire, every 55 minutes
//!   (aws/rolesanywhere-credential-helper `aws_signing_helper/update.go`,
//!   `UpdateRefreshTime`).
//!
//! A file older than one lifetime holds credentials that have expired.

use super::Interval;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialsConfig {
    /// How often certificates and credential files are re-read.
    pub interval: Interval,
    /// Warn when a certificate expires within this many days.
    pub warn_days: u32,
    /// Warn when the SSM credentials file is older than this (the agent
    /// rewrites it every 30 minutes).
    pub ssm_warn_age: Interval,
    /// Warn when the IAM Roles Anywhere credentials file is older than this
    /// (`aws_signing_helper update` rewrites it every 55 minutes).
    pub iam_ra_warn_age: Interval,
    /// Fail when a credentials file is older than this: the credentials in
    /// it have expired.
    pub max_age: Interval,
}

impl Default for CredentialsConfig {
    fn default() -> Self {
        CredentialsConfig {
            interval: Interval(Duration::from_secs(60)),
            warn_days: 30,
            ssm_warn_age: Interval(Duration::from_secs(45 * 60)),
            iam_ra_warn_age: Interval(Duration::from_secs(58 * 60)),
            max_age: Interval(Duration::from_secs(3600)),
        }
    }
}

/// A `[credentials]` setting that cannot work; names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CredentialsError(pub String);

impl CredentialsConfig {
    pub fn validate(&self) -> Result<(), CredentialsError> {
        if self.warn_days == 0 || self.warn_days > 3650 {
            return Err(CredentialsError(format!(
                "credentials.warn_days must be between 1 and 3650 days, got {}",
                self.warn_days
            )));
        }
        for (key, warn) in [
            ("ssm_warn_age", self.ssm_warn_age),
            ("iam_ra_warn_age", self.iam_ra_warn_age),
        ] {
            if warn > self.max_age {
                return Err(CredentialsError(format!(
                    "credentials.{key} ({warn}) must not exceed credentials.max_age ({})",
                    self.max_age
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_thresholds_name_their_key() {
        assert_eq!(CredentialsConfig::default().validate(), Ok(()));
        let mut c = CredentialsConfig {
            warn_days: 0,
            ..CredentialsConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .0
            .contains("credentials.warn_days"));
        c.warn_days = 30;
        c.ssm_warn_age = Interval(Duration::from_secs(7200));
        let e = c.validate().unwrap_err().0;
        assert!(
            e.contains("credentials.ssm_warn_age") && e.contains("max_age"),
            "{e}"
        );
    }
}
