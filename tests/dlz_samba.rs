//! Samba AD DC with the BIND9_DLZ backend: BIND 9.18 answers DNS and GSS-TSIG for the DC, and
//! Samba's DLZ module writes the directory and checks the signer's rights on the dnsNode. The same
//! KMS site as on Samba's internal DNS: the audit finds exactly what is wrong; a KMS host's
//! account is denied until `repair --acl`, and BIND says so with REFUSED where internal DNS says
//! SERVFAIL; after the fix one Kerberos-signed repair heals the zone and a second sends nothing.
//! Two daemons, as two KMS hosts' accounts, neither flap nor clobber each other through BIND.
//! Needs root (the lab's network namespace) and bind9 + samba (`scripts/install-test-deps`).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{KMS_HOSTS, SambaLab};

const VLMCS: &str = "_vlmcs._tcp.corp.test";

/// kms1 and old answer as KMS hosts, kms2 too (but is not published), kms9 is dead.
const HOSTS: [(&str, &str, bool); 4] = [
    ("kms1", "127.0.0.21", true),
    ("kms2", "127.0.0.22", true),
    ("old", "127.0.0.23", true),
    ("kms9", "127.0.0.29", false),
];

/// kmsdns inside the lab, with the Kerberos ticket cache `cc`.
fn kmsdns(lab: &SambaLab, cc: &Path, args: &[&str]) -> Output {
    lab.command(env!("CARGO_BIN_EXE_kmsdns"))
        .args(args)
        .env("KRB5CCNAME", format!("FILE:{}", cc.display()))
        .env("RUST_LOG", "kmsdns=debug")
        .output()
        .expect("run kmsdns in the lab")
}

fn show(lab: &SambaLab, o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}\n--- named.log ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        lab.named_log()
    )
}

/// The report wraps long lines; compare words.
fn words(b: &[u8]) -> String {
    String::from_utf8_lossy(b).split_whitespace().collect::<Vec<_>>().join(" ")
}

fn srv(host: &str) -> String {
    format!("0 0 1688 {host}.corp.test.")
}

/// KMS stand-ins for kms1, kms2 and old, in that order, inside the lab's namespace.
struct Responders(Vec<Option<kmsdns::demo::responder::KmsResponder>>);

/// The DC behind BIND, KMS1$ and KMS2$ in KMS-Hosts. KMS1$ published kms1, old and kms9 with
/// Kerberos through BIND, so it owns `_vlmcs._tcp`; kms2 is not published yet.
fn site() -> (SambaLab, Responders, PathBuf) {
    let lab = SambaLab::start_dlz();
    lab.add_kms_accounts();
    for (host, ip, _) in HOSTS {
        lab.samba_tool(&["dns", "add", "127.0.0.10", "corp.test", host, "A", ip]);
    }
    let addrs: Vec<std::net::SocketAddr> =
        HOSTS.iter().filter(|h| h.2).map(|(_, ip, _)| format!("{ip}:1688").parse().unwrap()).collect();
    let responders = Responders(lab.in_netns(move || {
        addrs.into_iter().map(|a| Some(kmsdns::demo::responder::KmsResponder::up(a).unwrap())).collect()
    }));
    let cc1 = lab.kinit("KMS1$", "KMS1Passw0rd!");
    for host in ["kms1", "old", "kms9"] {
        let add = format!("update add {VLMCS}. 3600 IN SRV 0 0 1688 {host}.corp.test.");
        assert_eq!(lab.nsupdate_gss(&cc1, &[&add]), "NOERROR", "KMS1$ publishes {host} through BIND");
    }
    assert_eq!(lab.dig(VLMCS, "SRV"), [srv("kms1"), srv("kms9"), srv("old")], "{}", lab.named_log());
    assert_eq!(lab.dlz_commits("corp.test", "KMS"), 3, "{}", lab.named_log());
    let inv = inventory(&lab);
    (lab, responders, inv)
}

fn inventory(lab: &SambaLab) -> PathBuf {
    lab.kms_inventory(&format!(
        "{KMS_HOSTS}\n[[host]]\nname = \"old.corp.test\"\nzones = []\nstate = \"decommissioned\"\n"
    ))
}

/// (code, target) of every finding.
fn findings(lab: &SambaLab, o: &Output) -> BTreeSet<(String, String)> {
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(lab, o)));
    v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array: {v}"))
        .iter()
        .map(|f| (f["code"].as_str().unwrap().to_string(), f["target"].as_str().unwrap_or("").to_string()))
        .collect()
}

#[test]
fn the_audit_through_bind_finds_exactly_what_is_wrong_and_nothing_false() {
    let (lab, _kms, inv) = site();
    let cc1 = lab.kinit("KMS1$", "KMS1Passw0rd!");
    let out = kmsdns(&lab, &cc1, &["audit", "--config", inv.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&lab, &out));
    let want: BTreeSet<(String, String)> = [
        ("stale-dead", "kms9.corp.test"),
        ("stale-decommissioned", "old.corp.test"),
        ("missing-record", "kms2.corp.test"),
        // KMS1$ owns the node and KMS-Hosts has no ACE on it yet: KMS2$ could not update it.
        ("update-blocked-acl", "kms2.corp.test"),
        // The zone takes only signed updates (dNSProperty): said, as on internal DNS.
        ("zone-secure-only", ""),
    ]
    .iter()
    .map(|(c, t)| (c.to_string(), t.to_string()))
    .collect();
    assert_eq!(findings(&lab, &out), want, "{}", show(&lab, &out));
    assert_eq!(lab.dlz_commits("corp.test", "KMS"), 3, "an audit sends no UPDATE:\n{}", lab.named_log());
}

#[test]
fn bind_refuses_the_second_kms_host_until_repair_acl_then_one_repair_heals_and_a_second_sends_nothing() {
    let (lab, _kms, inv) = site();
    let inv = inv.to_str().unwrap();
    let cc2 = lab.kinit("KMS2$", "KMS2Passw0rd!");

    // Before the fix the DLZ module denies KMS2$ the node and BIND answers a signed REFUSED.
    let out = kmsdns(&lab, &cc2, &["repair", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&lab, &out));
    let text = words(&out.stdout);
    assert!(text.contains("update denied by 127.0.0.10:53 (REFUSED)"), "{}", show(&lab, &out));
    assert!(text.contains("update-blocked-acl") && text.contains("kmsdns repair --acl"), "{}", show(&lab, &out));
    let log = lab.named_log();
    assert!(log.contains("samba_dlz: disallowing update of signer=KMS2"), "{log}");
    assert!(log.contains("rejected by secure update (REFUSED)"), "{log}");
    assert_eq!(lab.dig(VLMCS, "SRV"), [srv("kms1"), srv("kms9"), srv("old")], "nothing changed");
    assert_eq!(lab.dlz_commits("corp.test", "KMS"), 3);
    let journal = words(&kmsdns(&lab, &cc2, &["journal", "--config", inv]).stdout);
    assert!(
        journal.contains("not applied (REFUSED (denied)) -kms9.corp.test -old.corp.test +kms2.corp.test"),
        "{journal}"
    );

    // The ACL fix (over LDAP), then the same repair as KMS2$ goes through BIND.
    let out = kmsdns(&lab, &cc2, &["repair", "--acl", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&lab, &out));
    let out = kmsdns(&lab, &cc2, &["repair", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&lab, &out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("- SRV 0 0 1688 kms9.corp.test.   (stale-dead)"), "{}", show(&lab, &out));
    assert!(text.contains("- SRV 0 0 1688 old.corp.test.   (stale-decommissioned)"), "{}", show(&lab, &out));
    assert!(text.contains("+ SRV 0 0 1688 kms2.corp.test.   (missing-record)"), "{}", show(&lab, &out));
    assert_eq!(lab.dig(VLMCS, "SRV"), [srv("kms1"), srv("kms2")], "{}", show(&lab, &out));
    assert!(lab.named_log().contains("samba_dlz: allowing update of signer=KMS2"), "{}", lab.named_log());
    assert_eq!(lab.dlz_commits("corp.test", "KMS"), 4, "one UPDATE:\n{}", lab.named_log());

    let out = kmsdns(&lab, &cc2, &["repair", "--apply", "--config", inv, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&lab, &out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["zones"][0]["result"]["result"], "nothing-to-do", "{}", show(&lab, &out));
    assert_eq!(lab.dlz_commits("corp.test", "KMS"), 4, "the second repair sent an UPDATE:\n{}", lab.named_log());
    assert_eq!(lab.dig(VLMCS, "SRV"), [srv("kms1"), srv("kms2")]);
}

#[test]
fn write_access_granted_by_hand_is_not_enough_behind_bind_and_the_audit_says_so() {
    let (lab, _kms, inv) = site();
    let inv = inv.to_str().unwrap();
    // The fix that serves Windows and Samba's internal DNS: read and write for the group.
    let node = format!("DC=_vlmcs._tcp,{}", lab.zone_dn());
    let group = lab.sid("KMS-Hosts");
    lab.samba_tool(&["dsacl", "set", &format!("--objectdn={node}"), &format!("--sddl=(A;;RPWP;;;{group})")]);
    let cc2 = lab.kinit("KMS2$", "KMS2Passw0rd!");
    let add = format!("update add {VLMCS}. 3600 IN SRV 0 0 1688 kms2.corp.test.");
    assert_eq!(lab.nsupdate_gss(&cc2, &[&add]), "REFUSED", "BIND9_DLZ asks for more:\n{}", lab.named_log());

    let out = kmsdns(&lab, &cc2, &["audit", "--config", inv]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&lab, &out));
    let text = words(&out.stdout);
    assert!(text.contains("update-blocked-acl"), "{}", show(&lab, &out));
    assert!(
        text.contains("kms2.corp.test (KMS2$) may write the records of _vlmcs._tcp.corp.test")
            && text.contains("which Samba's BIND9_DLZ module also asks"),
        "{}",
        show(&lab, &out)
    );

    let out = kmsdns(&lab, &cc2, &["repair", "--acl", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&lab, &out));
    let out = kmsdns(&lab, &cc2, &["audit", "--config", inv, "--format", "json"]);
    assert!(!findings(&lab, &out).iter().any(|(c, _)| c == "update-blocked-acl"), "{}", show(&lab, &out));
    assert_eq!(lab.nsupdate_gss(&cc2, &[&add]), "NOERROR", "{}", lab.named_log());
    assert_eq!(lab.dig(VLMCS, "SRV"), [srv("kms1"), srv("kms2"), srv("kms9"), srv("old")]);
}

/// Changes a daemon journaled as applied (its state dir's journal.jsonl).
fn applied(state: &Path) -> usize {
    std::fs::read_to_string(state.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("journal line is JSON"))
        .filter(|l| l["phase"] == "outcome" && l["result"] == "applied")
        .count()
}

#[test]
fn two_daemons_as_two_kms_hosts_neither_flap_nor_clobber_through_bind() {
    let (lab, mut kms, inv) = site();
    let cc1 = lab.kinit("KMS1$", "KMS1Passw0rd!");
    let cc2 = lab.kinit("KMS2$", "KMS2Passw0rd!");
    let inv_s = inv.to_str().unwrap();
    // Start from a healed zone that both accounts may write: kms1 and kms2.
    for args in [&["repair", "--acl", "--apply", "--config", inv_s][..], &["repair", "--apply", "--config", inv_s]] {
        let out = kmsdns(&lab, &cc2, args);
        assert_eq!(out.status.code(), Some(0), "{}", show(&lab, &out));
    }
    let healed = [srv("kms1"), srv("kms2")];
    assert_eq!(lab.dig(VLMCS, "SRV"), healed);

    let config = lab.dir.path().join("daemon.toml");
    let text = std::fs::read_to_string(&inv).unwrap().replace(
        "[daemon]\n",
        "[daemon]\ninterval = \"700ms\"\nprobe_interval = \"150ms\"\nfail_after = 3\nrecover_after = 2\n",
    );
    std::fs::write(&config, text).unwrap();
    let start = |cc: &Path, name: &str| {
        let state = lab.dir.path().join(name);
        let log = std::fs::File::create(lab.dir.path().join(format!("{name}.log"))).unwrap();
        let child = lab
            .command(env!("CARGO_BIN_EXE_kmsdns"))
            .args(["run", "--config", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap()])
            .env("KRB5CCNAME", format!("FILE:{}", cc.display()))
            .env("RUST_LOG", "kmsdns=info")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kmsdns run in the lab");
        (Daemon(child), state)
    };
    let (_a, a_state) = start(&cc1, "daemon-kms1");
    let (_b, b_state) = start(&cc2, "daemon-kms2");
    let logs = || {
        ["daemon-kms1.log", "daemon-kms2.log"]
            .map(|f| std::fs::read_to_string(lab.dir.path().join(f)).unwrap_or_default())
            .join("\n---\n")
    };
    let wait_srv = |want: &[String]| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while lab.dig(VLMCS, "SRV") != want {
            assert!(Instant::now() < deadline, "{:?} instead of {want:?}\n{}", lab.dig(VLMCS, "SRV"), logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Both daemons work: each has found kms1 and kms2 alive.
    let deadline = Instant::now() + Duration::from_secs(20);
    for f in ["daemon-kms1.log", "daemon-kms2.log"] {
        let log = || std::fs::read_to_string(lab.dir.path().join(f)).unwrap_or_default();
        while log().matches("is now alive").count() < 2 {
            assert!(Instant::now() < deadline, "{f}: no 2x \"is now alive\":\n{}", logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // kms2 dies: exactly one daemon removes it.
    kms.0[1] = None;
    wait_srv(&healed[..1]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(applied(&a_state) + applied(&b_state), 1, "exactly one daemon deletes:\n{}", logs());

    // kms2 comes back: exactly one daemon adds it.
    kms.0[1] =
        Some(lab.in_netns(|| kmsdns::demo::responder::KmsResponder::up("127.0.0.22:1688".parse().unwrap()).unwrap()));
    wait_srv(&healed);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(applied(&a_state) + applied(&b_state), 2, "exactly one daemon adds:\n{}", logs());
    assert_eq!(lab.dig(VLMCS, "SRV"), healed);
}

/// `kmsdns run` in the lab, stopped by PID on drop (also when the test fails).
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}
