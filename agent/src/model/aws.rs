//! AWS partitions and the service endpoints a hybrid node talks to.
//!
//! The table is hybrid nodeadm's (aws/eks-hybrid v1.0.20,
//! `internal/aws/partition.go`: `GetPartitionDNSSuffix` and
//! `GetPartitionFromRegionFallback`): eight partitions, each with its DNS
//! suffix, and the region prefixes that select it. One divergence: the
//! aws-iso-e regions are named `eu-isoe-*` in the SDKs' partition data, so
//! that prefix selects aws-iso-e too (nodeadm's fallback knows only
//! `us-isoe-`, and would guess `aws`).

/// One AWS partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// `aws`, `aws-cn`, …: the second field of an ARN.
    pub id: &'static str,
    /// What service host names end with: `sts.<region>.<suffix>`.
    pub dns_suffix: &'static str,
    /// Region name prefixes that belong to the partition.
    pub region_prefixes: &'static [&'static str],
}

/// The partitions nodeadm v1.0.20 knows, the commercial one first. Order
/// matters for [`partition_for_region`]: `us-isob-` before `us-iso-`.
pub const PARTITIONS: [Partition; 8] = [
    Partition {
        id: "aws",
        dns_suffix: "amazonaws.com",
        region_prefixes: &[],
    },
    Partition {
        id: "aws-cn",
        dns_suffix: "amazonaws.com.cn",
        region_prefixes: &["cn-"],
    },
    Partition {
        id: "aws-us-gov",
        dns_suffix: "amazonaws.com",
        region_prefixes: &["us-gov-"],
    },
    Partition {
        id: "aws-iso-b",
        dns_suffix: "sc2s.sgov.gov",
        region_prefixes: &["us-isob-"],
    },
    Partition {
        id: "aws-iso-e",
        dns_suffix: "cloud.adc-e.uk",
        region_prefixes: &["us-isoe-", "eu-isoe-"],
    },
    Partition {
        id: "aws-iso-f",
        dns_suffix: "csp.hci.ic.gov",
        region_prefixes: &["us-isof-"],
    },
    Partition {
        id: "aws-iso",
        dns_suffix: "c2s.ic.gov",
        region_prefixes: &["us-iso-"],
    },
    Partition {
        id: "aws-eusc",
        dns_suffix: "amazonaws.eu",
        region_prefixes: &["eusc-"],
    },
];

/// The partition a region belongs to; `aws` when no prefix matches (as
/// nodeadm falls back).
pub fn partition_for_region(region: &str) -> &'static Partition {
    PARTITIONS
        .iter()
        .find(|p| p.region_prefixes.iter().any(|pre| region.starts_with(pre)))
        .unwrap_or(&PARTITIONS[0])
}

/// `service.region.suffix`, the regional endpoint host of an AWS service
/// (nodeadm's `GetServiceEndpointForPartition`).
pub fn service_host(service: &str, region: &str) -> String {
    format!(
        "{service}.{region}.{}",
        partition_for_region(region).dns_suffix
    )
}

/// The AWS services a hybrid node needs without credentials being checked:
/// the credential provider's and STS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// STS: nodeadm's `aws-auth` check, and the credential chain.
    Sts,
    /// Systems Manager: registration and credentials (hybrid activation).
    Ssm,
    /// Session Manager channels of the SSM agent.
    SsmMessages,
    /// The SSM agent's command channel.
    Ec2Messages,
    /// IAM Roles Anywhere: the signing helper's CreateSession.
    RolesAnywhere,
}

impl Service {
    /// The host name's first label, also the `endpoint` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Sts => "sts",
            Service::Ssm => "ssm",
            Service::SsmMessages => "ssmmessages",
            Service::Ec2Messages => "ec2messages",
            Service::RolesAnywhere => "rolesanywhere",
        }
    }

    /// What a person calls it.
    pub fn title(self) -> &'static str {
        match self {
            Service::Sts => "STS",
            Service::Ssm => "SSM",
            Service::SsmMessages => "SSM messages",
            Service::Ec2Messages => "EC2 messages",
            Service::RolesAnywhere => "IAM Roles Anywhere",
        }
    }

    /// This service's host in `region`.
    pub fn host(self, region: &str) -> String {
        service_host(self.as_str(), region)
    }
}

/// The credential provider a NodeConfig names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialProvider {
    Ssm,
    IamRolesAnywhere,
}

impl CredentialProvider {
    /// The services the provider needs, STS last. The SSM agent keeps
    /// `ssmmessages` and `ec2messages` channels open besides `ssm` (the
    /// endpoints AWS lists for the SSM agent); the Roles Anywhere signing
    /// helper calls only `rolesanywhere`.
    pub fn services(self) -> &'static [Service] {
        match self {
            CredentialProvider::Ssm => &[
                Service::Ssm,
                Service::SsmMessages,
                Service::Ec2Messages,
                Service::Sts,
            ],
            CredentialProvider::IamRolesAnywhere => &[Service::RolesAnywhere, Service::Sts],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_nodeadms_partitions_and_suffixes() {
        for (region, id, host) in [
            ("us-west-2", "aws", "sts.us-west-2.amazonaws.com"),
            ("cn-north-1", "aws-cn", "sts.cn-north-1.amazonaws.com.cn"),
            (
                "us-gov-west-1",
                "aws-us-gov",
                "sts.us-gov-west-1.amazonaws.com",
            ),
            ("us-iso-east-1", "aws-iso", "sts.us-iso-east-1.c2s.ic.gov"),
            (
                "us-isob-east-1",
                "aws-iso-b",
                "sts.us-isob-east-1.sc2s.sgov.gov",
            ),
            (
                "eu-isoe-west-1",
                "aws-iso-e",
                "sts.eu-isoe-west-1.cloud.adc-e.uk",
            ),
            (
                "us-isof-south-1",
                "aws-iso-f",
                "sts.us-isof-south-1.csp.hci.ic.gov",
            ),
            (
                "eusc-de-east-1",
                "aws-eusc",
                "sts.eusc-de-east-1.amazonaws.eu",
            ),
            ("mars-north-1", "aws", "sts.mars-north-1.amazonaws.com"),
        ] {
            assert_eq!(partition_for_region(region).id, id, "{region}");
            assert_eq!(Service::Sts.host(region), host);
        }
        let ids: std::collections::BTreeSet<&str> = PARTITIONS.iter().map(|p| p.id).collect();
        assert_eq!(ids.len(), 8);
    }

    #[test]
    fn providers_need_their_services_and_sts() {
        let ssm: Vec<&str> = CredentialProvider::Ssm
            .services()
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(ssm, ["ssm", "ssmmessages", "ec2messages", "sts"]);
        assert_eq!(
            Service::RolesAnywhere.host("us-east-1"),
            "rolesanywhere.us-east-1.amazonaws.com"
        );
        assert_eq!(
            CredentialProvider::IamRolesAnywhere.services(),
            &[Service::RolesAnywhere, Service::Sts]
        );
    }
}
