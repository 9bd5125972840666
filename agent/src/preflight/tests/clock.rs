//! The clock verdict on recorded chronyc and timedatectl output.

use super::*;

#[test]
fn chrony_synced_to_a_server_passes_with_its_offset() {
    let t = time::parse_tracking(SYNCED).expect("parse");
    assert_eq!(t.reference, "10.88.0.2");
    // "0.000003381 seconds fast of NTP time": positive, the clock is fast.
    assert!((t.offset - 0.00000338).abs() < 1e-8, "{}", t.offset);
    let (c, synced, offset) = clock(
        &Recorded {
            chrony: Some(SYNCED),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.summary.contains("10.88.0.2 (stratum 9)"), "{}", c.summary);
    assert!(c.summary.contains("+3.4 µs"), "{}", c.summary);
    assert!(synced);
    assert!(offset.is_some());
}

#[test]
fn chrony_without_a_reference_fails() {
    let (c, synced, _) = clock(
        &Recorded {
            chrony: Some(UNSYNCED),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("Not synchronised"), "{}", c.summary);
    assert!(c.remedy.as_deref().unwrap_or("").contains("chrony.conf"));
    assert!(!synced);
}

#[test]
fn chrony_offsets_past_the_thresholds_warn_then_fail() {
    // The recorded state with its offset moved (chronyc prints NTP time
    // minus system time in field 5).
    let line = |offset: &str| -> &'static str {
        let mut f: Vec<String> = SYNCED.trim().split(',').map(str::to_owned).collect();
        f[4] = offset.to_owned();
        Box::leak(f.join(",").into_boxed_str())
    };
    let (c, ..) = clock(
        &Recorded {
            chrony: Some(line("-0.250")),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.summary.contains("+250.0 ms"), "{}", c.summary);
    let (c, _, off) = clock(
        &Recorded {
            chrony: Some(line("2.5")),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.summary.contains("-2.500 s"), "{}", c.summary);
    assert_eq!(off, Some(-2.5));
}

#[test]
fn chrony_on_its_own_local_clock_warns() {
    let local = "7F7F0101,,8,1795862264.1,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.5,Normal";
    let (c, synced, _) = clock(
        &Recorded {
            chrony: Some(local),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(!synced);
    assert!(matches!(
        time::parse_tracking("A,b"),
        Err(time::TrackingError(_))
    ));
}

#[test]
fn timedatectl_answers_when_chrony_is_not_there() {
    let show_yes = "Timezone=Etc/UTC\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized=yes\n";
    let status = "       Server: 10.0.0.1 (10.0.0.1)\nPoll interval: 34min 8s (min: 32s; max 34min 8s)\n         Leap: normal\n       Offset: -1.024ms\n        Delay: 512us\n";
    let (c, synced, off) = clock(
        &Recorded {
            show: Some(show_yes),
            timesync: Some(status),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(synced);
    assert!((off.expect("offset") + 0.001024).abs() < 1e-9);
    assert_eq!(
        time::parse_timesync_offset("Offset: +2min 1.5s"),
        Some(121.5)
    );
    assert_eq!(
        time::parse_timesync_offset("Offset: -312µs"),
        Some(-0.000312)
    );
    let (c, synced, _) = clock(
        &Recorded {
            show: Some("CanNTP=yes\nNTP=no\nNTPSynchronized=no\n"),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("turned off"), "{}", c.summary);
    assert!(c
        .remedy
        .as_deref()
        .unwrap_or("")
        .contains("timedatectl set-ntp true"));
    assert!(!synced);
    // Recorded from a booted Debian 12 without an NTP service.
    let (c, synced, _) = clock(
        &Recorded {
            show: Some(SHOW_NO_NTP),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.summary.contains("no NTP service is installed"),
        "{}",
        c.summary
    );
    assert!(c
        .remedy
        .as_deref()
        .unwrap_or("")
        .contains("install an NTP service"));
    assert!(!synced);
}

#[test]
fn no_time_daemon_fails_and_says_what_each_tool_said() {
    let (c, ..) = clock(&NO_TOOLS, 100, 1000);
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("timedatectl show"), "{}", c.summary);
    let (c, ..) = clock(
        &Recorded {
            chrony_missing: false,
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert!(
        c.summary.contains("506 Cannot talk to daemon"),
        "{}",
        c.summary
    );
}

#[test]
fn chrony_installed_but_silent_is_not_hidden_by_timedatectl() {
    // chronyd stopped (506), timesyncd keeps the time: nodeadm asks
    // chrony first and fails with its error (internal/system/ntp.go).
    let (c, synced, off) = clock(
        &Recorded {
            chrony_missing: false,
            show: Some("CanNTP=yes\nNTP=yes\nNTPSynchronized=yes\n"),
            timesync: Some("Offset: +1.0ms\n"),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.summary
            .contains("chronyc is installed but chronyd does not answer"),
        "{}",
        c.summary
    );
    assert!(
        c.summary.contains("506 Cannot talk to daemon"),
        "{}",
        c.summary
    );
    assert!(synced);
    assert_eq!(off, Some(0.001));
    // Not synchronised either: the Fail names both.
    let (c, ..) = clock(
        &Recorded {
            chrony_missing: false,
            show: Some("CanNTP=yes\nNTP=no\nNTPSynchronized=no\n"),
            ..NO_TOOLS
        },
        100,
        1000,
    );
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.summary.contains("chronyd does not answer"),
        "{}",
        c.summary
    );
}
