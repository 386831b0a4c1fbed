//! Two `kmsdns run` daemons on Samba's internal DNS, as two KMS hosts' accounts (KMS1$ and
//! KMS2$, GSS-TSIG, after `repair --acl`), on the same zone: neither flaps nor clobbers the
//! other, although Samba checks a value-dependent prerequisite record by record (README
//! "Samba's prerequisites"). Needs root (the lab's network namespace) and samba
//! (`scripts/install-test-deps`).
//!
//! The writes are counted three ways: the changes each daemon journaled as applied (its own
//! state dir), the updates each sent (journal intents), and the writes the DC itself made to
//! the `_vlmcs._tcp` dnsNode (the version of its dnsRecord attribute in replPropertyMetaData,
//! which the DC's own `samba_dnsupdate` never touches; the zone's SOA serial it does).
//!
//! What it shows: a delete is sent by one daemon or both, applied once (the other's
//! prerequisite lists the record: NXRRSET); an add is often sent by both (each asserts only the
//! record that stays, and nothing can assert "kms2 is not there"), and the DC writes it once:
//! both journal it as applied. Measured here: both daemons sent the add in 6 runs of 6.
//!
//! Each daemon is its own instance (`[instance] id`), sharing its view of the hosts in
//! `_kmsdns-view.corp.test`: the first to write that name owns its node, Samba denies the other
//! account, and that daemon's warning names the node (not `_vlmcs._tcp`, which `repair --acl`
//! fixes).

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{KMS_HOSTS, SambaLab};

const VLMCS: &str = "_vlmcs._tcp.corp.test";

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
        "exit {:?}\nstdout:\n{}\nstderr:\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        lab.log()
    )
}

fn srv(host: &str) -> String {
    format!("0 0 1688 {host}.corp.test.")
}

/// KMS stand-ins for kms1 and kms2, in that order, inside the lab's namespace.
struct Responders(Vec<Option<kmsdns::demo::responder::KmsResponder>>);

/// The DC with KMS1$ and KMS2$ in KMS-Hosts; kms1 and kms2 answer as KMS hosts, kms9 is dead.
/// KMS1$ published kms1 and kms9, so it owns `_vlmcs._tcp`.
fn site() -> (SambaLab, Responders, PathBuf) {
    let lab = SambaLab::start();
    lab.add_kms_accounts();
    for (host, ip) in [("kms1", "127.0.0.21"), ("kms2", "127.0.0.22"), ("kms9", "127.0.0.29")] {
        lab.samba_tool(&["dns", "add", "127.0.0.10", "corp.test", host, "A", ip]);
    }
    let addrs: Vec<std::net::SocketAddr> =
        ["127.0.0.21:1688", "127.0.0.22:1688"].iter().map(|a| a.parse().unwrap()).collect();
    let responders = Responders(lab.in_netns(move || {
        addrs.into_iter().map(|a| Some(kmsdns::demo::responder::KmsResponder::up(a).unwrap())).collect()
    }));
    let cc1 = lab.kinit("KMS1$", "KMS1Passw0rd!");
    for host in ["kms1", "kms9"] {
        let add = format!("update add {VLMCS}. 3600 IN SRV 0 0 1688 {host}.corp.test.");
        assert_eq!(lab.nsupdate_gss(&cc1, &[&add]), "NOERROR", "KMS1$ publishes {host}:\n{}", lab.log());
    }
    assert_eq!(lab.dig(VLMCS, "SRV"), [srv("kms1"), srv("kms9")]);
    let inv = inventory(&lab);
    (lab, responders, inv)
}

fn inventory(lab: &SambaLab) -> PathBuf {
    lab.kms_inventory(KMS_HOSTS)
}

/// One change a daemon journaled: the targets of the RRset before and after, and what became of it.
#[derive(Debug, Clone, PartialEq)]
struct Change {
    before: Vec<String>,
    after: Vec<String>,
    result: String,
    answer: String,
}

/// The changes in a daemon's journal (its state dir's journal.jsonl), in the order sent.
fn changes(state: &Path) -> Vec<Change> {
    let lines: Vec<Value> = std::fs::read_to_string(state.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("journal line is JSON"))
        .collect();
    let targets = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|r| r["target"].as_str().unwrap().trim_end_matches('.').to_string()).collect()
    };
    lines
        .iter()
        .filter(|l| l["phase"] == "intent")
        .map(|i| {
            // The last outcome line of an entry is the one that counts.
            let outcome = lines.iter().rfind(|l| l["phase"] == "outcome" && l["id"] == i["id"]);
            Change {
                before: targets(&i["before"]),
                after: targets(&i["after"]),
                result: outcome.map_or("none", |o| o["result"].as_str().unwrap()).to_string(),
                answer: outcome.map_or("", |o| o["answer"].as_str().unwrap()).to_string(),
            }
        })
        .collect()
}

#[test]
fn two_daemons_as_two_kms_hosts_neither_flap_nor_clobber_on_samba_internal_dns() {
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
    let base = lab.dns_record_writes("_vlmcs._tcp");
    eprintln!("dnsRecord of _vlmcs._tcp written {base} time(s) before the daemons start");

    let daemon = std::fs::read_to_string(&inv).unwrap().replace(
        "[daemon]\n",
        "[daemon]\ninterval = \"700ms\"\nprobe_interval = \"150ms\"\nfail_after = 3\nrecover_after = 2\n",
    );
    // Each daemon is its own instance (the lab's one host name would give both the id "dc1").
    let start = |cc: &Path, name: &str| {
        let config = lab.dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, format!("[instance]\nid = \"{name}\"\n\n{daemon}")).unwrap();
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
    let log = |f: &str| std::fs::read_to_string(lab.dir.path().join(format!("{f}.log"))).unwrap_or_default();
    let logs = || format!("{}\n---\n{}", log("daemon-kms1"), log("daemon-kms2"));
    let writes = || lab.dns_record_writes("_vlmcs._tcp") - base;
    let sent = || [changes(&a_state), changes(&b_state)].concat();
    let counts = || {
        format!(
            "the DC wrote the node {} time(s) since the daemons started; kms1 sent {:#?}\nkms2 sent {:#?}",
            writes(),
            changes(&a_state),
            changes(&b_state)
        )
    };
    // Waits until both daemons' logs say `what` at least `n` times.
    let wait_logged = |what: &str, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        for f in ["daemon-kms1", "daemon-kms2"] {
            while log(f).matches(what).count() < n {
                assert!(Instant::now() < deadline, "{f}: not {n}x {what:?}:\n{}", logs());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    let wait_srv = |want: &[String]| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while lab.dig(VLMCS, "SRV") != want {
            assert!(Instant::now() < deadline, "{:?} instead of {want:?}\n{}", lab.dig(VLMCS, "SRV"), logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // For 3 s (over four audit intervals of each daemon) the zone serves `want` at every look:
    // a record removed and added again, or overwritten, would show.
    let hold = |want: &[String]| {
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            assert_eq!(lab.dig(VLMCS, "SRV"), want, "{}\n{}", counts(), logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (both, kms1_only) =
        (vec!["kms1.corp.test".to_string(), "kms2.corp.test".to_string()], vec!["kms1.corp.test".to_string()]);

    // Both daemons work (each found kms1 and kms2 alive) and, the zone being right, send nothing.
    wait_logged("is now alive", 2);
    hold(&healed);
    assert_eq!((sent(), writes()), (vec![], 0), "{}", logs());
    // The shared view (README "Running two sites"): the first instance to write
    // _kmsdns-view.corp.test owns the new node, and Samba denies the other account (SERVFAIL;
    // `repair --acl` gave KMS-Hosts write on _vlmcs._tcp only). That daemon says which node.
    let denied: Vec<String> = ["daemon-kms1", "daemon-kms2"]
        .map(log)
        .into_iter()
        .filter(|l| l.contains("this instance's view could not be written"))
        .collect();
    assert_eq!(denied.len(), 1, "one instance's view is denied:\n{}", logs());
    assert!(
        denied[0].contains("may not write _kmsdns-view.corp.test") && !denied[0].contains("may not write _vlmcs._tcp"),
        "the warning names the view's node:\n{}",
        denied[0]
    );
    assert_eq!(lab.dig("_kmsdns-view.corp.test", "TXT").len(), 1, "{}", logs());

    // kms2 dies: exactly one daemon removes it. The other's update, if it sent one, lists kms2
    // in its prerequisite, which Samba checks record by record: NXRRSET, nothing written.
    kms.0[1] = None;
    wait_srv(&healed[..1]);
    wait_logged("127.0.0.22:1688 is now dead", 1);
    hold(&healed[..1]);
    let deletes = sent();
    eprintln!("after kms2 died: {}", counts());
    assert!(deletes.iter().all(|c| c.before == both && c.after == kms1_only), "{}\n{}", counts(), logs());
    assert_eq!(deletes.iter().filter(|c| c.result == "applied").count(), 1, "one delete: {}\n{}", counts(), logs());
    assert!(
        deletes.iter().filter(|c| c.result != "applied").all(|c| c.result == "not-applied" && c.answer == "NXRRSET"),
        "the other daemon's delete fails its prerequisite: {}\n{}",
        counts(),
        logs()
    );
    assert_eq!(writes(), 1, "the DC wrote the node once: {}\n{}", counts(), logs());

    // kms2 comes back: the DC adds it once. Both daemons may send the add: Samba cannot be
    // asked "kms2 is not there" (no RFC 2136 prerequisite says it), and checks the listed
    // kms1 only; the second add finds kms2 there and writes nothing (README "Samba's
    // prerequisites"). Nothing is removed, nothing overwritten.
    kms.0[1] =
        Some(lab.in_netns(|| kmsdns::demo::responder::KmsResponder::up("127.0.0.22:1688".parse().unwrap()).unwrap()));
    wait_srv(&healed);
    wait_logged("127.0.0.22:1688 is now alive", 2);
    hold(&healed);
    eprintln!("after kms2 came back: {}", counts());
    let adds: Vec<Change> = sent().into_iter().filter(|c| c.after == both).collect();
    assert!(!adds.is_empty() && adds.len() <= 2, "one add from each daemon at most: {}\n{}", counts(), logs());
    assert!(
        adds.iter().all(|c| c.before == kms1_only && c.result == "applied"),
        "each add asserted kms1 and was taken: {}\n{}",
        counts(),
        logs()
    );
    assert_eq!(sent().len(), deletes.len() + adds.len(), "nothing else was sent: {}\n{}", counts(), logs());
    assert_eq!(writes(), 2, "the DC wrote the node once more: {}\n{}", counts(), logs());
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
