//! Samba's internal DNS checks a value-dependent prerequisite record by record
//! (`check_one_prerequisite`, source4/dns_server/dns_update.c): each listed record must exist,
//! where RFC 2136 §3.2.3 asks that the RRset be exactly those records. What that means for
//! kmsdns's compare-and-swap, found with two writers on a real DC. Needs root (namespaces).
//!
//! What the test shows (and the README's interop table records):
//! - A record another writer *added* after kmsdns looked does not fail the prerequisite there
//!   (BIND answers NXRRSET): the update goes through. It does not clobber the addition, because
//!   kmsdns deletes record by record (class NONE, RFC 2136 §2.5.4), never the whole RRset.
//! - A record another writer *removed* or changed does fail it (NXRRSET), as on BIND.
//! - "RRset does not exist" (§2.4.3), kmsdns's guard when it saw no RRset, holds there.

// kmsdns's own GSS-TSIG client is the second writer.
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

#[test]
fn samba_prerequisites_catch_a_removed_record_but_not_an_added_one() {
    let lab = SambaLab::start();
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

    // "RRset does not exist" holds: kmsdns saw no RRset, another writer created one meanwhile.
    assert_eq!(gss(&[add_line("kms1"), add_line("kms2")]), "NOERROR");
    let state = lab.dir.path().join("kmsdns-state");
    let created = RrsetUpdate { zone: zone.clone(), expected: vec![], deletes: vec![], adds: vec![srv("kms3")] };
    let r = gss_commit(&lab, created, &state);
    assert!(
        matches!(&r, Err(CommitError::Update { source: UpdateError::Conflict { rcode, .. }, .. }) if rcode == "YXRRSET"),
        "{r:?}\n{}",
        lab.log()
    );
    assert_eq!(lab.dig(VLMCS, "SRV"), ["0 0 1688 kms1.corp.test.", "0 0 1688 kms2.corp.test."]);

    // kmsdns saw {kms1, kms2} and removes kms2; meanwhile another writer added kms3.
    assert_eq!(gss(&[add_line("kms3")]), "NOERROR");
    let seen = vec![srv("kms1"), srv("kms2")];
    let remove_kms2 =
        RrsetUpdate { zone: zone.clone(), expected: seen.clone(), deletes: vec![srv("kms2")], adds: vec![] };
    let r = gss_commit(&lab, remove_kms2.clone(), &state);
    // BIND would answer NXRRSET (RFC 2136 §3.2.3); Samba takes it, as the listed records exist.
    assert!(matches!(r, Ok(Committed::Applied { .. })), "{r:?}\n{}", lab.log());
    // The other writer's kms3 survives: kmsdns deletes only the records it names.
    assert_eq!(lab.dig(VLMCS, "SRV"), ["0 0 1688 kms1.corp.test.", "0 0 1688 kms3.corp.test."]);

    // kmsdns saw {kms1, kms3} and removes kms3; meanwhile another writer removed kms1.
    assert_eq!(gss(&[format!("update delete {VLMCS}. SRV 0 0 1688 kms1.corp.test.")]), "NOERROR");
    let remove_kms3 =
        RrsetUpdate { zone, expected: vec![srv("kms1"), srv("kms3")], deletes: vec![srv("kms3")], adds: vec![] };
    let r = gss_commit(&lab, remove_kms3, &state);
    assert!(
        matches!(&r, Err(CommitError::Update { source: UpdateError::Conflict { rcode, .. }, .. }) if rcode == "NXRRSET"),
        "{r:?}\n{}",
        lab.log()
    );
    // Nothing was overwritten: kms3, the last record, is still there.
    assert_eq!(lab.dig(VLMCS, "SRV"), ["0 0 1688 kms3.corp.test."]);
}
