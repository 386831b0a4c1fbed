//! Proves the Samba AD DC harness in tests/support/samba.rs before the LDAP and ACL tests rely on it.
//!
//! Needs root and Samba (`scripts/install-test-deps`); each lab takes about 8–13 s to start.
//! Run with `--nocapture` to see the start times.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::panic::resume_unwind;
use std::process::Output;
use std::time::{Duration, Instant};

use support::SambaLab;

const VLMCS: &str = "_vlmcs._tcp.corp.test";
const PROBE_TEST: &str = "ldaps_probe_inside_lab";
const PROBE_URL_VAR: &str = "KMSDNS_LAB_PROBE_LDAPS_URL";

fn srv_add(host: &str) -> String {
    format!("update add {VLMCS}. 3600 IN SRV 0 0 1688 {host}.corp.test.")
}

fn srv(host: &str) -> String {
    format!("0 0 1688 {host}.corp.test.")
}

/// The reference scenario (test-labs.md §2.6): the first KMS host owns `_vlmcs._tcp`, the second is denied until an
/// ACE grants it write access, directly or through a group.
#[test]
fn second_kms_host_is_denied_until_granted() {
    let lab = SambaLab::start();
    let kms1 = lab.add_computer("KMS1", "KMS1Passw0rd!");
    let kms2 = lab.add_computer("KMS2$", "KMS2Passw0rd!");
    for sid in [&kms1, &kms2] {
        assert!(sid.starts_with(&format!("{}-", lab.domain_sid)), "{sid} is not in domain {}", lab.domain_sid);
    }
    assert_ne!(kms1, kms2);
    let cc1 = lab.kinit("KMS1$", "KMS1Passw0rd!");
    let cc2 = lab.kinit("KMS2$", "KMS2Passw0rd!");

    assert_eq!(lab.nsupdate_unsigned(&[&srv_add("kms9")]), "REFUSED", "unsigned update under `secure only` (G8)");
    assert!(lab.dig(VLMCS, "SRV").is_empty());

    let t = Instant::now();
    assert_eq!(lab.nsupdate_gss(&cc1, &[&srv_add("kms1")]), "NOERROR", "KMS1$ creates the node (G9: rc 2 anyway)");
    eprintln!("one GSS-TSIG update: {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(lab.dig(VLMCS, "SRV"), [srv("kms1")]);

    assert_eq!(lab.nsupdate_gss(&cc2, &[&srv_add("kms2")]), "SERVFAIL", "KMS2$ is denied: Samba says SERVFAIL (G8)");
    assert_eq!(lab.dig(VLMCS, "SRV"), [srv("kms1")], "the denied update must change nothing");

    let node = format!("DC=_vlmcs._tcp,{}", lab.zone_dn());
    assert_eq!(node, "DC=_vlmcs._tcp,DC=corp.test,CN=MicrosoftDNS,DC=DomainDnsZones,DC=corp,DC=test");
    lab.samba_tool(&["dsacl", "set", &format!("--objectdn={node}"), &format!("--sddl=(A;;RPWP;;;{kms2})")]);
    assert_eq!(lab.nsupdate_gss(&cc2, &[&srv_add("kms2")]), "NOERROR", "KMS2$ after the direct ACE");
    assert_eq!(lab.dig(VLMCS, "SRV"), [srv("kms1"), srv("kms2")]);

    // Group ACE: KMS3$ is denied until the KMS-Hosts group it belongs to is granted; kinit after the group change.
    let group = lab.add_group("KMS-Hosts");
    lab.add_computer("KMS3", "KMS3Passw0rd!");
    lab.add_member("KMS-Hosts", "KMS3$");
    let cc3 = lab.kinit("KMS3$@CORP.TEST", "KMS3Passw0rd!");
    assert_eq!(lab.nsupdate_gss(&cc3, &[&srv_add("kms3")]), "SERVFAIL", "KMS3$ before the group ACE");
    lab.samba_tool(&["dsacl", "set", &format!("--objectdn={node}"), &format!("--sddl=(A;;RPWP;;;{group})")]);
    assert_eq!(lab.nsupdate_gss(&cc3, &[&srv_add("kms3")]), "NOERROR", "KMS3$ through the group ACE");
    assert_eq!(lab.dig(VLMCS, "SRV"), [srv("kms1"), srv("kms2"), srv("kms3")]);

    let acl = lab.samba_tool(&["dsacl", "get", &format!("--objectdn={node}")]);
    assert!(acl.contains(&format!("O:{kms1}")), "KMS1$ owns the node:\n{acl}");
    assert!(acl.contains(&format!("(A;;RPWP;;;{kms2})")) && acl.contains(&format!("(A;;RPWP;;;{group})")), "{acl}");
}

/// cargo runs tests in parallel: two labs at once must both come up, each in its own namespace on 127.0.0.10,
/// each serving LDAPS that rustls verifies with that lab's CA only.
#[test]
fn two_labs_start_concurrently_and_answer() {
    let t0 = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(SambaLab::start);
        let b = s.spawn(SambaLab::start);
        (a.join(), b.join())
    });
    // If one start panicked, the other lab is dropped (and stopped) while the panic goes on.
    let labs = match (a, b) {
        (Ok(a), Ok(b)) => [a, b],
        (Err(e), _) | (_, Err(e)) => resume_unwind(e),
    };
    eprintln!(
        "two labs concurrently: {:.1} s wall ({:.1} s and {:.1} s each)",
        t0.elapsed().as_secs_f64(),
        labs[0].start_time.as_secs_f64(),
        labs[1].start_time.as_secs_f64()
    );

    let host_ns = fs::read_link("/proc/self/ns/net").expect("read /proc/self/ns/net");
    let mut namespaces = BTreeSet::new();
    for lab in &labs {
        assert_eq!(lab.dig("dc1.corp.test", "A"), ["127.0.0.10"]);
        assert_eq!(lab.run("hostname", &[]).trim(), "dc1");
        assert!(lab.run("getent", &["hosts", "dc1.corp.test"]).starts_with("127.0.0.10"), "/etc/hosts bind mount");
        let ns = lab.run("readlink", &["/proc/self/ns/net"]).trim().to_string();
        assert_ne!(host_ns.to_string_lossy(), ns, "the lab runs in the host's network namespace");
        namespaces.insert(ns);

        let pw = lab.admin_password_file();
        let meta = fs::metadata(&pw).expect("stat the admin password file");
        assert_eq!(meta.mode() & 0o777, 0o600, "{}", pw.display());
        assert_eq!(fs::read_to_string(&pw).expect("read the admin password file"), lab.admin_password);
        assert!(lab.ca_file().is_file());
    }
    assert_eq!(namespaces.len(), 2, "each lab has its own network namespace");
    assert_ne!(labs[0].domain_sid, labs[1].domain_sid, "two provisions, two domains");

    // A record added in one lab is not seen in the other.
    labs[0].samba_tool(&["dns", "add", "127.0.0.10", "corp.test", "only-in-a", "A", "127.0.0.77"]);
    assert_eq!(labs[0].dig("only-in-a.corp.test", "A"), ["127.0.0.77"]);
    assert!(labs[1].dig("only-in-a.corp.test", "A").is_empty());

    for (i, lab) in labs.iter().enumerate() {
        for url in [lab.ldaps_url(), lab.ldaps_ip_url()] {
            let out = ldaps_probe(lab, &url, &lab.ca_file());
            let text = probe_text(&out);
            assert!(out.status.success() && text.contains("PROBE-OK"), "rustls LDAPS to lab {i} at {url}:\n{text}");
        }
        // The other lab's CA must not verify this DC: the probe really checks the chain.
        let other = labs[1 - i].ca_file();
        let out = ldaps_probe(lab, &lab.ldaps_url(), &other);
        let text = probe_text(&out);
        assert!(
            !out.status.success() && !text.contains("PROBE-OK"),
            "lab {i} verified with lab {}'s CA:\n{text}",
            1 - i
        );
        assert!(text.contains("UnknownIssuer") || text.contains("invalid peer certificate"), "{text}");
    }
}

/// Re-runs this test binary inside the lab's namespace, trusting only `ca` (rustls-native-certs reads
/// SSL_CERT_FILE), so ldap3 + rustls verify the DC exactly as kmsdns will.
fn ldaps_probe(lab: &SambaLab, url: &str, ca: &std::path::Path) -> Output {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut cmd = lab.command(&exe);
    cmd.args([PROBE_TEST, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(PROBE_URL_VAR, url)
        .env("KMSDNS_LAB_PROBE_PASSWORD", &lab.admin_password)
        .env("KMSDNS_LAB_PROBE_BASE", lab.zone_dn())
        .env("SSL_CERT_FILE", ca)
        .env_remove("SSL_CERT_DIR");
    cmd.output().expect("run the LDAPS probe inside the lab")
}

fn probe_text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Helper of `two_labs_start_concurrently_and_answer`, run inside a lab namespace; does nothing elsewhere.
#[test]
#[ignore = "helper: run inside a lab's namespace by two_labs_start_concurrently_and_answer"]
fn ldaps_probe_inside_lab() {
    let Ok(url) = std::env::var(PROBE_URL_VAR) else {
        return;
    };
    let password = std::env::var("KMSDNS_LAB_PROBE_PASSWORD").expect("KMSDNS_LAB_PROBE_PASSWORD");
    let base = std::env::var("KMSDNS_LAB_PROBE_BASE").expect("KMSDNS_LAB_PROBE_BASE");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let names = rt.block_on(async {
        let settings = ldap3::LdapConnSettings::new().set_conn_timeout(Duration::from_secs(10));
        let (conn, mut ldap) =
            ldap3::LdapConnAsync::with_settings(settings, &url).await.unwrap_or_else(|e| panic!("connect {url}: {e}"));
        ldap3::drive!(conn);
        ldap.simple_bind("Administrator@corp.test", &password)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("bind to {url}: {e}"));
        let (entries, _) = ldap
            .search(&base, ldap3::Scope::OneLevel, "(objectClass=dnsNode)", vec!["name"])
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("search {base}: {e}"));
        let _ = ldap.unbind().await;
        entries
            .into_iter()
            .filter_map(|e| ldap3::SearchEntry::construct(e).attrs.remove("name")?.pop())
            .collect::<BTreeSet<String>>()
    });
    assert!(names.contains("dc1") && names.contains("_ldap._tcp"), "dnsNodes under {base}: {names:?}");
    println!("PROBE-OK {url}: {} dnsNodes", names.len());
}
