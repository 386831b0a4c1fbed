//! Prerequisites behind Samba's BIND9_DLZ backend: BIND evaluates them (RFC 2136 §3.2), not
//! Samba, so the value-dependent prerequisite is the whole RRset again, unlike Samba's internal
//! DNS (tests/interop_samba_prereq.rs). Two writers on a real DC; kmsdns's GSS-TSIG client is
//! the second. Needs root (namespaces) and bind9.

#![cfg(feature = "gss-tsig")]

mod support;

use kmsdns::apply::{CommitError, Committed, RrsetUpdate, UpdateError};
use kmsdns::model::SrvRecord;
use kmsdns::name::DnsName;
use support::SambaLab;
use support::gss_commit::gss_commit;

const VLMCS: &str = "_vlmcs._tcp.corp.test";

fn srv(host: &str) -> SrvRecord {
    SrvRecord {
        target: DnsName::parse(&format!("{host}.corp.test")).unwrap(),
        port: 1688,
        priority: 0,
        weight: 0,
        ttl: 3600,
    }
}

fn add_line(host: &str) -> String {
    format!("update add {VLMCS}. 3600 IN SRV 0 0 1688 {host}.corp.test.")
}

fn conflict(r: &Result<Committed, CommitError>, want: &str) -> bool {
    matches!(r, Err(CommitError::Update { source: UpdateError::Conflict { rcode, .. }, .. }) if rcode == want)
}

#[test]
fn bind_in_front_of_samba_fails_the_prerequisite_for_a_record_added_after_kmsdns_looked() {
    let lab = SambaLab::start_dlz();
    let cc = lab.kinit("Administrator", &lab.admin_password.clone());
    // Kerberos settings for the in-process GSS-TSIG client; this binary holds this one test.
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe {
        std::env::set_var("KRB5_CONFIG", lab.dir.path().join("krb5.conf"));
        std::env::set_var("KRB5CCNAME", format!("FILE:{}", cc.display()));
    }
    let zone = DnsName::parse("corp.test").unwrap();
    let gss = |lines: &[String]| {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        lab.nsupdate_gss(&cc, &lines)
    };
    let state = lab.dir.path().join("kmsdns-state");
    let log = || lab.named_log();

    // "RRset does not exist": kmsdns saw no RRset, another writer created one meanwhile.
    assert_eq!(gss(&[add_line("kms1"), add_line("kms2")]), "NOERROR", "{}", log());
    let created = RrsetUpdate { zone: zone.clone(), expected: vec![], deletes: vec![], adds: vec![srv("kms3")] };
    let r = gss_commit(&lab, created, &state);
    assert!(conflict(&r, "YXRRSET"), "{r:?}\n{}", log());
    assert_eq!(lab.dig(VLMCS, "SRV"), ["0 0 1688 kms1.corp.test.", "0 0 1688 kms2.corp.test."]);

    // kmsdns saw {kms1, kms2} and removes kms2; meanwhile another writer added kms3. BIND
    // compares the whole RRset (where Samba's internal DNS lets this through).
    assert_eq!(gss(&[add_line("kms3")]), "NOERROR");
    let seen = vec![srv("kms1"), srv("kms2")];
    let remove_kms2 = RrsetUpdate { zone: zone.clone(), expected: seen, deletes: vec![srv("kms2")], adds: vec![] };
    let r = gss_commit(&lab, remove_kms2, &state);
    assert!(conflict(&r, "NXRRSET"), "{r:?}\n{}", log());
    let all3 = ["0 0 1688 kms1.corp.test.", "0 0 1688 kms2.corp.test.", "0 0 1688 kms3.corp.test."];
    assert_eq!(lab.dig(VLMCS, "SRV"), all3, "nothing was overwritten");

    // Seen as it is, the same change goes through, and only kms2 goes.
    let seen = vec![srv("kms1"), srv("kms2"), srv("kms3")];
    let remove_kms2 = RrsetUpdate { zone, expected: seen, deletes: vec![srv("kms2")], adds: vec![] };
    let r = gss_commit(&lab, remove_kms2, &state);
    assert!(matches!(r, Ok(Committed::Applied { .. })), "{r:?}\n{}", log());
    assert_eq!(lab.dig(VLMCS, "SRV"), ["0 0 1688 kms1.corp.test.", "0 0 1688 kms3.corp.test."]);
}
