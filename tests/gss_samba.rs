//! GSS-TSIG against a real Samba AD DC under the default "allow dns updates = secure only":
//! Kerberos-signed repairs by a KMS host's account, denied before the ACL fix, one security
//! context for several updates, and the failover runbook in this mode. Needs root.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::SambaLab;

const VLMCS: &str = "_vlmcs._tcp.corp.test";

fn srv_add(zone: &str, host: &str) -> String {
    format!("update add _vlmcs._tcp.{zone}. 3600 IN SRV 0 0 1688 {host}.corp.test.")
}

/// kmsdns inside the lab, with the Kerberos ticket cache `cc`.
fn kmsdns(lab: &SambaLab, cc: &Path, args: &[&str]) -> Output {
    lab.command(env!("CARGO_BIN_EXE_kmsdns"))
        .args(args)
        .env("KRB5CCNAME", format!("FILE:{}", cc.display()))
        .env("RUST_LOG", "kmsdns=debug")
        .output()
        .expect("run kmsdns in the lab")
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Responders(Vec<kmsdns::demo::responder::KmsResponder>);

/// The DC with KMS1$ and KMS2$ in KMS-Hosts; kms1 and kms2 answer as KMS hosts, kms9 is dead.
/// KMS1$ published kms1 and kms9 in corp.test and branch.test, so it owns both nodes.
fn estate() -> (SambaLab, Responders, PathBuf) {
    let lab = SambaLab::start();
    lab.add_kms_accounts();
    lab.samba_tool(&["dns", "zonecreate", "127.0.0.10", "branch.test"]);
    for (host, ip) in [("kms1", "127.0.0.21"), ("kms2", "127.0.0.22"), ("kms9", "127.0.0.29")] {
        lab.samba_tool(&["dns", "add", "127.0.0.10", "corp.test", host, "A", ip]);
    }
    let addrs: Vec<std::net::SocketAddr> =
        ["127.0.0.21:1688", "127.0.0.22:1688"].iter().map(|a| a.parse().unwrap()).collect();
    let responders =
        Responders(lab.in_netns(move || {
            addrs.into_iter().map(|a| kmsdns::demo::responder::KmsResponder::up(a).unwrap()).collect()
        }));
    let cc1 = lab.kinit("KMS1$", "KMS1Passw0rd!");
    for zone in ["corp.test", "branch.test"] {
        for host in ["kms1", "kms9"] {
            let lines = [format!("zone {zone}"), srv_add(zone, host)];
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            assert_eq!(lab.nsupdate_gss(&cc1, &lines), "NOERROR", "KMS1$ publishes {host} in {zone}");
        }
    }
    let inv = inventory(&lab);
    (lab, responders, inv)
}

fn inventory(lab: &SambaLab) -> PathBuf {
    let path = lab.dir.path().join("kmsdns.toml");
    let zone = |name: &str| {
        format!(
            "[[zone]]\nname = \"{name}\"\nservers = [\"127.0.0.10\"]\nprimary = \"dc1.corp.test\"\nupdate_auth = \"gss-tsig\"\npolicy = \"repair\"\n"
        )
    };
    let hosts: String = ["kms1", "kms2", "kms9"]
        .iter()
        .map(|h| format!("\n[[host]]\nname = \"{h}.corp.test\"\nzones = [\"corp.test\", \"branch.test\"]\nstate = \"active\"\naccount = \"{}$\"\n", h.to_uppercase()))
        .collect();
    let text = format!(
        "[defaults]\ntimeout = \"2s\"\nretries = 1\npropagation_timeout = \"10s\"\n\n[daemon]\nstate_dir = \"{state}\"\n\n[ad]\nurls = [\"{url}\"]\nca_file = \"{ca}\"\nbind_dn = \"{dn}\"\npassword_file = \"{pw}\"\nkms_group = \"KMS-Hosts\"\n\n{z1}\n{z2}{hosts}",
        state = lab.dir.path().join("state").display(),
        url = lab.ldaps_url(),
        ca = lab.ca_file().display(),
        dn = lab.admin_bind_dn(),
        pw = lab.admin_password_file().display(),
        z1 = zone("corp.test"),
        z2 = zone("branch.test"),
    )
    .replace("account = \"KMS9$\"\n", "");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_kms_group_member_repairs_with_kerberos_after_the_acl_fix_and_one_context_serves_both_zones() {
    let (lab, _kms, inv) = estate();
    let inv = inv.to_str().unwrap();
    let cc2 = lab.kinit("KMS2$", "KMS2Passw0rd!");

    // Before the ACL fix KMS2$ may not write the nodes: the repair is denied, and the audit says why.
    let out = kmsdns(&lab, &cc2, &["repair", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("update denied by") && text.contains("SERVFAIL"), "{}", show(&out));
    assert!(text.contains("update-blocked-acl"), "{}", show(&out));
    assert_eq!(lab.dig(VLMCS, "SRV").len(), 2, "nothing changed");

    // The fix, then the same repair as KMS2$ goes through: kms9 out, kms2 in, one update per zone.
    let out = kmsdns(&lab, &cc2, &["repair", "--acl", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = kmsdns(&lab, &cc2, &["repair", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    for zone in ["corp.test", "branch.test"] {
        assert_eq!(
            lab.dig(&format!("_vlmcs._tcp.{zone}"), "SRV"),
            ["0 0 1688 kms1.corp.test.", "0 0 1688 kms2.corp.test."],
            "{zone}"
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("GSS-TSIG context with dc1.corp.test").count(),
        1,
        "one context for both zones:\n{stderr}"
    );
    assert!(
        stderr.contains("covers the request MAC without its length (Samba"),
        "Samba's answers are recognised:\n{stderr}"
    );
    let journal = String::from_utf8_lossy(&kmsdns(&lab, &cc2, &["journal", "--config", inv]).stdout).to_string();
    assert_eq!(journal.matches("  applied").count(), 4, "one ACL change and one update per zone:\n{journal}");
}

#[test]
fn no_ticket_is_a_clear_error_and_the_failover_runbook_works_with_kerberos() {
    let (lab, _kms, inv) = estate();
    let inv = inv.to_str().unwrap();
    let nowhere = lab.dir.path().join("no-such-ccache");
    let out = kmsdns(&lab, &nowhere, &["repair", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no Kerberos ticket"), "{}", show(&out));

    // KMS1$ owns the nodes: it may run the failover from the dead kms9 to kms2 itself.
    let cc1 = lab.kinit("KMS1$", "KMS1Passw0rd!");
    let out = kmsdns(
        &lab,
        &cc1,
        &["failover", "--config", inv, "--from", "kms9.corp.test", "--to", "kms2.corp.test", "--apply"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("done: every server serves the new records"), "{}", show(&out));
    assert!(
        text.contains("zone corp.test in the directory (ldaps://dc1.corp.test): ok: [kms1.corp.test, kms2.corp.test]"),
        "{}",
        show(&out)
    );
    // The new host's account cannot write the nodes KMS1$ owns: the runbook says so, and how to fix it.
    assert!(
        text.contains("check that kms2.corp.test (KMS2$) may update _vlmcs._tcp in Active Directory: WARNING"),
        "{}",
        show(&out)
    );
    assert!(
        text.contains("KMS2$ may NOT update _vlmcs._tcp") && text.contains("kmsdns repair --acl --apply"),
        "{}",
        show(&out)
    );
    let out = kmsdns(&lab, &cc1, &["repair", "--acl", "--apply", "--config", inv]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = kmsdns(&lab, &cc1, &["failover", "--config", inv, "--from", "kms9.corp.test", "--to", "kms2.corp.test"]);
    let text = String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("(KMS2$) may update _vlmcs._tcp in Active Directory: OK"), "{}", show(&out));
    assert_eq!(lab.dig(VLMCS, "SRV"), ["0 0 1688 kms1.corp.test.", "0 0 1688 kms2.corp.test."]);
}

#[test]
fn the_daemon_negotiates_a_new_context_after_the_dc_restarts() {
    let (mut lab, mut kms, inv) = estate();
    let text = std::fs::read_to_string(&inv).unwrap().replace(
        "[daemon]\n",
        "[daemon]\ninterval = \"1s\"\nprobe_interval = \"300ms\"\nfail_after = 2\nrecover_after = 1\n",
    );
    std::fs::write(&inv, text).unwrap();
    let cc1 = lab.kinit("KMS1$", "KMS1Passw0rd!");
    let log_path = lab.dir.path().join("daemon.log");
    let mut daemon = lab
        .command(env!("CARGO_BIN_EXE_kmsdns"))
        .args(["run", "--config", inv.to_str().unwrap()])
        .env("KRB5CCNAME", format!("FILE:{}", cc1.display()))
        .env("RUST_LOG", "kmsdns=debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let wait_for = |lab: &SambaLab, want: &[&str], what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while lab.dig(VLMCS, "SRV") != want {
            assert!(std::time::Instant::now() < deadline, "{what}: {:?}\n{}", lab.dig(VLMCS, "SRV"), log());
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    // The daemon replaces the dead kms9 by kms2 with its first context.
    wait_for(&lab, &["0 0 1688 kms1.corp.test.", "0 0 1688 kms2.corp.test."], "kms9 out, kms2 in");
    lab.restart();
    // kms2 dies: the daemon's next update meets a DC that forgot the context.
    kms.0.pop();
    wait_for(&lab, &["0 0 1688 kms1.corp.test."], "kms2 out after the restart");
    let _ = std::process::Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
    let _ = daemon.wait();
    let log = log();
    assert!(log.contains("forgot the GSS-TSIG context"), "{log}");
    assert!(log.matches("GSS-TSIG context with dc1.corp.test").count() >= 2, "{log}");
}
