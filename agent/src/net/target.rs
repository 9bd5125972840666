//! One run for one target: resolve, route and interface MTU, path MTU on
//! its schedule, the echo loop's windows against the Direct Connect
//! thresholds, TCP connect time — each exported and judged.

use super::*;

impl NetworkDomain {
    pub(super) fn run_target(&mut self, t: &Target, checks: &mut Vec<Check>) {
        let name = t.spec.name.clone();
        let label = TargetLabel {
            target: name.as_str().into(),
        };
        let m = self.metrics.clone();
        m.expected_mtu
            .get_or_create(&label)
            .set(i64::from(t.expected_mtu));
        let st = self.state.entry(name.clone()).or_default();

        // DNS.
        let ip = match tcp::resolve(&t.spec.address) {
            Ok((ip, took)) => {
                if let Some(d) = took {
                    m.dns.get_or_create(&label).set(d.as_secs_f64());
                    checks.push(Check::pass(
                        DOMAIN,
                        format!("dns/{name}"),
                        format!(
                            "{} resolves to {ip} in {} ms",
                            t.spec.address,
                            d.as_millis()
                        ),
                    ));
                }
                ip
            }
            Err(e) => {
                checks.push(
                    Check::new(DOMAIN, format!("dns/{name}"), Status::Fail, e.to_string())
                        .with_remedy(
                            "check /etc/resolv.conf and the DNS servers reachable from this host",
                        ),
                );
                return;
            }
        };
        if st.ip != Some(ip) {
            st.ip = Some(ip);
            st.echo = None;
            st.pmtu = None;
        }

        // Interface MTU on the route.
        let route = route::lookup(ip);
        let iface_mtu = route.as_ref().ok().and_then(|r| r.mtu);
        checks.push(match &route {
            Err(e) => Check::new(DOMAIN, format!("mtu/{name}"), Status::Fail, e.to_string()).with_remedy("add a route toward the target (Direct Connect / VPN)"),
            Ok(r) => {
                let mtu = r.mtu.unwrap_or(0);
                m.interface_mtu.get_or_create(&IfaceLabels { target: name.as_str().into(), interface: r.interface.as_str().into() }).set(i64::from(mtu));
                let expected = t.expected_mtu;
                if !route::nodeadm_accepts(mtu) {
                    Check::new(DOMAIN, format!("mtu/{name}"), Status::Fail, format!("{} (toward {name}) has MTU {mtu}, outside what nodeadm accepts (68–1500 or 8000–9001)", r.interface))
                        .with_remedy("set the interface MTU to 1500 or to 8000–9001 (9000 for jumbo frames)")
                } else if mtu < expected {
                    Check::new(DOMAIN, format!("mtu/{name}"), Status::Warn, format!("{} (toward {name}) has MTU {mtu}; {expected} is expected on this path", r.interface))
                        .with_remedy(format!("set the MTU of {} to {expected} (netplan mtu:, nmcli 802-3-ethernet.mtu); VXLAN overlays take 50 bytes of it", r.interface))
                } else {
                    Check::pass(DOMAIN, format!("mtu/{name}"), format!("{} (source {}) has MTU {mtu} toward {name} (expected {expected})", r.interface, r.source))
                }
            }
        });

        // TCP connect.
        if let Some(port) = t.spec.tcp_port {
            let addr = SocketAddr::new(ip, port);
            for r in tcp::ConnectFailure::ALL {
                let _ = m.tcp_failures.get_or_create(&ReasonLabels {
                    target: name.as_str().into(),
                    reason: r.as_str(),
                });
            }
            checks.push(match tcp::connect_time(addr, Duration::from_secs(3)) {
                Ok(d) => {
                    m.tcp_connect.get_or_create(&label).set(d.as_secs_f64());
                    Check::pass(
                        DOMAIN,
                        format!("tcp/{name}"),
                        format!(
                            "TCP connect to {addr} in {:.2} ms",
                            d.as_secs_f64() * 1000.0
                        ),
                    )
                }
                Err((reason, e)) => {
                    m.tcp_failures
                        .get_or_create(&ReasonLabels {
                            target: name.as_str().into(),
                            reason: reason.as_str(),
                        })
                        .inc();
                    Check::new(DOMAIN, format!("tcp/{name}"), Status::Fail, e)
                        .with_remedy("check routes, security groups and firewalls on the path")
                }
            });
        }

        if !t.spec.icmp {
            return;
        }
        let IpAddr::V4(v4) = ip else {
            checks.push(Check::new(
                DOMAIN,
                format!("latency/{name}"),
                Status::Unknown,
                format!("{ip}: ICMP probing of IPv6 targets is not implemented yet"),
            ));
            return;
        };

        // Echo loop; a new one gets a moment to collect replies, so that a
        // one-shot `check` judges real samples.
        if st.echo.is_none() {
            match EchoLoop::start(v4, self.cfg.echo_rate, self.cfg.echo_timeout.get(), self.id) {
                Ok(l) => {
                    let deadline = Instant::now() + Duration::from_millis(1500);
                    while l.shared.replies.load(Ordering::Relaxed) < 5 && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    st.echo = Some(l);
                    st.echo_error = None;
                    st.reported_requests = 0;
                    st.reported_replies = 0;
                }
                Err(e) => st.echo_error = Some(format!("cannot open an ICMP socket: {e} (allow it with net.ipv4.ping_group_range or CAP_NET_RAW)")),
            }
        }

        // Path MTU: on schedule, and when a jumbo-size DF probe fails.
        // An IPv4 packet is at most 65535 bytes (lo reports 65536).
        let ceiling = iface_mtu.unwrap_or(1500).min(65_535);
        let due = st
            .pmtu_at
            .is_none_or(|at| at.elapsed() >= self.cfg.pmtu_interval.get());
        let regressed = matches!(&st.pmtu, Some(Ok(r)) if r.pmtu >= ceiling.min(t.expected_mtu))
            && pmtu::RawProber::new(v4, self.id.wrapping_add(1))
                .map(|mut p| {
                    pmtu::Prober::probe(&mut p, ceiling.min(t.expected_mtu)) != pmtu::Outcome::Reply
                })
                .unwrap_or(false);
        if due || regressed {
            st.pmtu = Some(
                pmtu::RawProber::new(v4, self.id.wrapping_add(1))
                    .map_err(pmtu::PmtuError::Sockets)
                    .and_then(|mut p| pmtu::discover(&mut p, pmtu::FLOOR_V4, ceiling)),
            );
            st.pmtu_at = Some(Instant::now());
        }
        checks.push(match &st.pmtu {
            Some(Ok(r)) => {
                m.path_mtu.get_or_create(&label).set(i64::from(r.pmtu));
                m.blackhole.get_or_create(&label).set(i64::from(r.blackhole));
                if r.blackhole {
                    Check::new(DOMAIN, format!("pmtu/{name}"), Status::Fail, format!("PMTU black hole toward {name}: packets above {} bytes vanish without \"fragmentation needed\" (small ones pass)", r.pmtu))
                        .with_remedy("a hop drops large frames and does not say so: fix its MTU, or allow ICMP type 3 code 4 through the firewalls on the path")
                } else if r.pmtu < t.expected_mtu {
                    Check::new(DOMAIN, format!("pmtu/{name}"), Status::Warn, format!("path MTU toward {name} is {} bytes; {} expected", r.pmtu, t.expected_mtu))
                        .with_remedy("a hop on the path has a smaller MTU: Direct Connect transit VIFs and Transit Gateway carry 8500; check every device on the path")
                } else {
                    Check::pass(DOMAIN, format!("pmtu/{name}"), format!("path MTU toward {name} is {} bytes (expected {})", r.pmtu, t.expected_mtu))
                }
            }
            Some(Err(e)) => Check::new(DOMAIN, format!("pmtu/{name}"), Status::Unknown, e.to_string()),
            None => Check::new(DOMAIN, format!("pmtu/{name}"), Status::Unknown, "not measured yet"),
        });

        // Echo statistics.
        let Some(l) = &st.echo else {
            checks.push(Check::new(
                DOMAIN,
                format!("latency/{name}"),
                Status::Unknown,
                st.echo_error.clone().unwrap_or_default(),
            ));
            return;
        };
        let requests = l.shared.requests.load(Ordering::Relaxed);
        let replies = l.shared.replies.load(Ordering::Relaxed);
        m.requests
            .get_or_create(&label)
            .inc_by(requests - st.reported_requests);
        m.replies
            .get_or_create(&label)
            .inc_by(replies - st.reported_replies);
        st.reported_requests = requests;
        st.reported_replies = replies;
        let fresh: Vec<Duration> = std::mem::take(
            &mut *l
                .shared
                .fresh
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let h = m.rtt.get_or_create(&label);
        for r in fresh {
            h.observe(r.as_secs_f64());
        }
        let now = l.now();
        let series = l
            .shared
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut by_window = Vec::new();
        for (w, len) in WINDOWS {
            if let Some(s) = series.stats(now, len) {
                for (stat, v) in [
                    ("min", s.min),
                    ("avg", s.avg),
                    ("p50", s.p50),
                    ("p99", s.p99),
                    ("max", s.max),
                    ("stddev", s.stddev),
                ] {
                    m.rtt_window
                        .get_or_create(&WindowStat {
                            target: name.as_str().into(),
                            window: w,
                            stat,
                        })
                        .set(v.as_secs_f64());
                }
                m.jitter
                    .get_or_create(&WindowLabel {
                        target: name.as_str().into(),
                        window: w,
                    })
                    .set(s.jitter.as_secs_f64());
                m.loss
                    .get_or_create(&WindowLabel {
                        target: name.as_str().into(),
                        window: w,
                    })
                    .set(s.loss());
                by_window.push((w, s));
            }
        }
        drop(series);
        // Verdicts over 5 minutes (1 minute until there is that much data).
        let pick = by_window
            .iter()
            .find(|(w, _)| *w == "5m")
            .or(by_window.first())
            .copied();
        let Some((w, s)) = pick.filter(|(_, s)| s.received > 0) else {
            checks.push(Check::new(DOMAIN, format!("latency/{name}"), Status::Fail, format!("no echo replies from {name} ({requests} sent)"))
                .with_remedy("check the route and that ICMP echo is allowed to the target; set icmp = false to rely on TCP only"));
            return;
        };
        let grade = |v: Duration, warn: Duration, crit: Duration| {
            if v > crit {
                Status::Fail
            } else if v > warn {
                Status::Warn
            } else {
                Status::Pass
            }
        };
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
        let c = &self.cfg;
        let lat = grade(s.p50, c.latency_warn.get(), c.latency_critical.get());
        checks.push(
            Check::new(DOMAIN, format!("latency/{name}"), lat, format!("RTT to {name} over {w}: p50 {}, p99 {}, min {}, max {} (ok < {}, critical > {})", ms(s.p50), ms(s.p99), ms(s.min), ms(s.max), ms(c.latency_warn.get()), ms(c.latency_critical.get())))
                .with_remedy("check the Direct Connect / VPN link and on-premises devices for congestion"),
        );
        let jit = grade(s.jitter, c.jitter_warn.get(), c.jitter_critical.get());
        checks.push(
            Check::new(
                DOMAIN,
                format!("jitter/{name}"),
                jit,
                format!(
                    "jitter to {name} over {w}: {} (stddev {})",
                    ms(s.jitter),
                    ms(s.stddev)
                ),
            )
            .with_remedy(
                "jitter this high hurts the control plane and pods: look for queueing on the path",
            ),
        );
        let loss_window = by_window
            .iter()
            .rev()
            .find(|(_, s)| s.sent > 0)
            .map(|(_, s)| *s)
            .unwrap_or(s);
        let (status, summary) = match loss_verdict(loss_window.sent, loss_window.received, c.loss_warn, c.loss_critical) {
            LossVerdict::Ok => (Status::Pass, format!("loss to {name} {:.4} % over {} echoes", loss_window.loss() * 100.0, loss_window.sent)),
            LossVerdict::Warn => (Status::Warn, format!("loss to {name} {:.4} % over {} echoes (warn > {} %)", loss_window.loss() * 100.0, loss_window.sent, c.loss_warn * 100.0)),
            LossVerdict::Critical => (Status::Fail, format!("loss to {name} {:.4} % over {} echoes (critical > {} %)", loss_window.loss() * 100.0, loss_window.sent, c.loss_critical * 100.0)),
            LossVerdict::InsufficientData { needed } => (Status::Unknown, format!("loss to {name} {:.4} % over {} echoes: insufficient data to tell it is below {} % ({needed} echoes needed)", loss_window.loss() * 100.0, loss_window.sent, c.loss_warn * 100.0)),
        };
        checks.push(
            Check::new(DOMAIN, format!("loss/{name}"), status, summary).with_remedy(
                "check the link for errors and drops (interface counters, DX connection metrics)",
            ),
        );
    }
}
