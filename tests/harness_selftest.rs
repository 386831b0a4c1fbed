//! Proves the BIND harness in tests/support before other tests rely on it.

mod support;

use std::net::TcpListener;
use support::{BindLab, ZoneSpec, free_port, loopback_ip};

fn corp_test() -> ZoneSpec {
    ZoneSpec::new("corp.test")
        .record("_vlmcs._tcp 3600 IN SRV 0 0 1688 kms1.corp.test.")
        .record("kms1 3600 IN A 127.0.0.21")
}

#[test]
fn secondary_follows_primary_updates() {
    let lab = BindLab::primary_secondary(&[corp_test()]);
    for idx in 0..2 {
        assert_eq!(lab.dig(idx, "_vlmcs._tcp.corp.test", "SRV"), ["0 0 1688 kms1.corp.test."], "server {idx}");
        assert_eq!(lab.serial(idx, "corp.test"), Some(1), "server {idx}");
    }

    lab.update(
        0,
        "corp.test",
        &[
            "update add kms9.corp.test. 3600 IN A 127.0.0.29",
            "update add _vlmcs._tcp.corp.test. 3600 IN SRV 0 0 1688 kms9.corp.test.",
        ],
    );
    lab.wait_converged("corp.test");

    assert_eq!(lab.serial(1, "corp.test"), Some(2));
    assert_eq!(lab.dig(1, "_vlmcs._tcp.corp.test", "SRV"), ["0 0 1688 kms1.corp.test.", "0 0 1688 kms9.corp.test."]);
    assert_eq!(lab.dig(1, "kms9.corp.test", "A"), ["127.0.0.29"]);
}

#[test]
fn independent_primaries_diverge_and_stop() {
    let mut lab = BindLab::independent_primaries(&[corp_test()], 2);
    assert_ne!(lab.servers[0].addr, lab.servers[1].addr);
    lab.wait_converged("corp.test");

    lab.update(0, "corp.test", &["update delete _vlmcs._tcp.corp.test. IN SRV 0 0 1688 kms1.corp.test."]);

    assert_eq!(lab.serial(0, "corp.test"), Some(2));
    assert_eq!(lab.serial(1, "corp.test"), Some(1));
    assert!(lab.dig(0, "_vlmcs._tcp.corp.test", "SRV").is_empty());
    assert_eq!(lab.dig(1, "_vlmcs._tcp.corp.test", "SRV"), ["0 0 1688 kms1.corp.test."]);

    lab.servers[1].stop();
    lab.servers[1].stop();
    assert_eq!(lab.serial(1, "corp.test"), None, "a stopped server must not answer");
}

#[test]
fn ports_and_loopback_addresses_are_fresh() {
    let (p1, p2) = (free_port(), free_port());
    assert_ne!(p1, p2);
    let (a, b) = (loopback_ip(), loopback_ip());
    assert_ne!(a, b);
    for ip in [a, b] {
        assert!((100..=199).contains(&ip.octets()[1]), "{ip}");
        let _kms = TcpListener::bind((ip, 1688)).unwrap_or_else(|e| panic!("bind {ip}:1688: {e}"));
    }
}
