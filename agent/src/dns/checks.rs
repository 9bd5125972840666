//! Pure verdicts on what a resolver answered.

use super::query::{QueryError, Transport};
use super::wire::{rcode_name, Answer};
use crate::check::Status;
use crate::model::cidr::Cidr;
use std::net::IpAddr;
use std::time::Duration;

/// The outcome of asking one resolver one name over one transport (A and
/// AAAA together).
#[derive(Debug)]
pub enum Asked {
    Answered { answer: Answer, took: Duration },
    Failed(QueryError),
}

/// Verdict and summary for one name.
pub fn judge(
    resolver: &str,
    server: &str,
    transport: Transport,
    name: &str,
    asked: &Asked,
    ranges: &[Cidr],
) -> (Status, String) {
    let t = transport.as_str().to_uppercase();
    match asked {
        Asked::Failed(e) => (
            Status::Fail,
            format!("{resolver} ({server}) gave no answer for {name} over {t}: {e}"),
        ),
        Asked::Answered { answer, .. } if answer.rcode != 0 => (
            Status::Fail,
            format!(
                "{resolver} ({server}) answered {} for {name} over {t}",
                rcode_name(answer.rcode)
            ),
        ),
        Asked::Answered { answer, .. } if answer.addresses.is_empty() => (
            Status::Fail,
            format!("{resolver} ({server}) has no A or AAAA record for {name} (over {t})"),
        ),
        Asked::Answered { answer, took } => {
            let outside: Vec<&IpAddr> = answer
                .addresses
                .iter()
                .filter(|a| !Cidr::any_contains(ranges, **a))
                .collect();
            let list = |v: &mut dyn Iterator<Item = &IpAddr>| {
                v.map(ToString::to_string).collect::<Vec<_>>().join(", ")
            };
            if outside.is_empty() {
                (
                    Status::Pass,
                    format!(
                        "{resolver} ({server}) resolves {name} over {t} to {} in {:.1} ms",
                        list(&mut answer.addresses.iter()),
                        took.as_secs_f64() * 1000.0
                    ),
                )
            } else {
                (
                    Status::Fail,
                    format!(
                        "{resolver} ({server}) resolves {name} over {t} to {}, outside the expected ranges ({}): traffic to it would leave the Direct Connect / VPN path",
                        list(&mut outside.into_iter()),
                        ranges.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    ),
                )
            }
        }
    }
}

pub fn remedy(status: Status, transport: Transport, asked: &Asked) -> Option<&'static str> {
    match (status, transport, asked) {
        (Status::Pass, ..) => None,
        (_, Transport::Tcp, Asked::Failed(_)) => Some(
            "open TCP 53 to the resolver (security group of the Route 53 Resolver inbound endpoint, on-premises firewalls): large answers and retries use TCP",
        ),
        (_, Transport::Udp, Asked::Failed(_)) => Some(
            "open UDP 53 to the resolver and check the route to it (Route 53 Resolver inbound endpoint security group, on-premises firewalls)",
        ),
        _ => Some(
            "a private cluster endpoint must resolve to VPC addresses: check the Route 53 private hosted zone association and the on-premises conditional forwarders toward the inbound endpoints",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(addrs: &[&str], rcode: u8) -> Asked {
        Asked::Answered {
            answer: Answer {
                rcode,
                truncated: false,
                addresses: addrs.iter().map(|a| a.parse().expect("ip")).collect(),
                cname: false,
            },
            took: Duration::from_millis(2),
        }
    }

    #[test]
    fn private_answers_pass_public_ones_fail() {
        let r = crate::config::dns::private_ranges();
        let (s, m) = judge(
            "inbound",
            "10.0.1.100:53",
            Transport::Udp,
            "api.x",
            &answered(&["10.0.1.20"], 0),
            &r,
        );
        assert_eq!(s, Status::Pass, "{m}");
        assert!(m.contains("to 10.0.1.20 in 2.0 ms"), "{m}");
        let (s, m) = judge(
            "inbound",
            "10.0.1.100:53",
            Transport::Tcp,
            "api.x",
            &answered(&["10.0.1.20", "54.1.2.3"], 0),
            &r,
        );
        assert_eq!(s, Status::Fail);
        assert!(
            m.contains("to 54.1.2.3, outside the expected ranges"),
            "{m}"
        );
        let (s, m) = judge(
            "inbound",
            "x",
            Transport::Udp,
            "api.x",
            &answered(&[], 3),
            &r,
        );
        assert_eq!(s, Status::Fail);
        assert!(m.contains("NXDOMAIN"), "{m}");
    }

    #[test]
    fn a_silent_tcp_resolver_fails_with_the_port_to_open() {
        let asked = Asked::Failed(QueryError::Timeout(Duration::from_secs(2)));
        let (s, m) = judge(
            "inbound",
            "10.0.1.100:53",
            Transport::Tcp,
            "api.x",
            &asked,
            &[],
        );
        assert_eq!(s, Status::Fail);
        assert!(
            m.contains("no answer for api.x over TCP: no answer within 2s"),
            "{m}"
        );
        assert!(remedy(s, Transport::Tcp, &asked).is_some_and(|r| r.contains("TCP 53")));
    }
}
