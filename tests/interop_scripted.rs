//! Server behaviours that cannot be had here on demand, imitated by the scripted responder
//! (tests/support/rogue.rs): the SERVFAIL Knot gives part of a burst of updates
//! (stalwartlabs/dns-update#83), Windows Server 2008's FORMERR to EDNS, and a Windows DC's
//! signed REFUSED to a secure update the ACL denies, reached through the `gss.microsoft.com`
//! TKEY name (tests/support/windows_dc.rs: a real GSS acceptor, so that test needs the Samba
//! lab's KDC and root).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{OpCode, ResponseCode};
use hickory_proto::rr::RecordType;
use kmsdns::apply::{Auth, CommitError, Committed, Mode, RrsetUpdate, UpdateError, commit};
use kmsdns::demo::responder::{Behaviour, KmsResponder};
use kmsdns::journal::{Applied, Journal};
use kmsdns::model::SrvRecord;
use kmsdns::name::DnsName;
use support::run::{kmsdns, show};
use support::{Reply, RogueDns, RogueZone, loopback_ip};

fn srv(target: &str) -> SrvRecord {
    SrvRecord { target: DnsName::parse(target).unwrap(), port: 1688, priority: 0, weight: 0, ttl: 600 }
}

/// A server answering the first `failures` UPDATEs with SERVFAIL and later ones with NOERROR
/// (unsigned: the update goes out unsigned). Returns it and the count of UPDATEs it saw.
fn servfail_first(failures: usize) -> (RogueDns, Arc<AtomicUsize>) {
    let updates = Arc::new(AtomicUsize::new(0));
    let seen = updates.clone();
    let rogue = RogueDns::start(
        RogueZone::new("corp.test"),
        Box::new(move |name, rtype, tcp, _| {
            // The zone section of an UPDATE reads as a question for the zone's SOA, over TCP.
            (name == "corp.test" && rtype == RecordType::SOA && tcp).then(|| {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let rcode = if n < failures { ResponseCode::ServFail } else { ResponseCode::NoError };
                Reply::Bent(Box::new(move |m| {
                    m.metadata.op_code = OpCode::Update;
                    m.metadata.response_code = rcode;
                    m.answers.clear();
                }))
            })
        }),
    );
    (rogue, updates)
}

fn update() -> RrsetUpdate {
    RrsetUpdate {
        zone: DnsName::parse("corp.test").unwrap(),
        expected: vec![srv("kms1.corp.test"), srv("kms2.corp.test")],
        deletes: vec![srv("kms2.corp.test")],
        adds: vec![],
    }
}

async fn send(server: SocketAddr, journal: &Journal) -> Result<Committed, CommitError> {
    commit(
        Mode::Apply(journal),
        kmsdns::apply::Authority::Policy(kmsdns::inventory::Policy::Repair),
        server,
        &Auth::Unsigned,
        &update(),
        vec![],
        None,
        Duration::from_secs(2),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_servfail_under_a_burst_is_sent_again_after_a_pause_and_journaled_once() {
    let (rogue, updates) = servfail_first(2);
    let state = tempfile::tempdir().unwrap();
    let journal = Journal::open(state.path()).unwrap();
    let start = Instant::now();
    let result = send(rogue.addr, &journal).await;
    assert!(matches!(result, Ok(Committed::Applied { id: 1 })), "{result:?}");
    assert_eq!(updates.load(Ordering::SeqCst), 3, "two SERVFAILs, then the NOERROR");
    // Pauses of 200 ms and 400 ms before the second and third attempts.
    assert!(start.elapsed() >= Duration::from_millis(600), "{:?}", start.elapsed());
    let entries = journal.entries().unwrap();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let outcome = entries[0].outcome.as_ref().unwrap();
    assert_eq!((outcome.result, outcome.answer.as_str()), (Applied::Applied, "NOERROR"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_keeps_failing_is_reported_after_four_attempts_never_as_a_conflict() {
    let (rogue, updates) = servfail_first(usize::MAX);
    let state = tempfile::tempdir().unwrap();
    let journal = Journal::open(state.path()).unwrap();
    let result = send(rogue.addr, &journal).await;
    let Err(CommitError::Update { id: 1, source }) = result else { panic!("{result:?}") };
    assert!(matches!(source, UpdateError::ServFail { attempts: 4, .. }), "{source:?}");
    assert!(!source.is_conflict() && !source.outcome_unknown(), "{source:?}");
    assert!(source.to_string().contains("SERVFAIL, 4 attempt(s)"), "{source}");
    assert_eq!(updates.load(Ordering::SeqCst), 4);
    let entries = journal.entries().unwrap();
    let outcome = entries[0].outcome.as_ref().unwrap();
    assert_eq!((outcome.result, outcome.answer.as_str()), (Applied::NotApplied, "SERVFAIL"));
}

/// Windows Server 2008 answers FORMERR to EDNS. kmsdns asks it again without OPT and remembers
/// that for this server only: a healthy server of the same zone is still asked with EDNS.
#[test]
fn formerr_to_edns_is_remembered_per_server() {
    let (ip, listener) = loopback_ip();
    let _kms = KmsResponder::from_listener(listener, Behaviour::Kms).expect("KMS responder");
    let zone = || RogueZone::new("corp.test").a("kms1", ip).srv("kms1.corp.test", 600);
    let windows2008 = RogueDns::start(
        zone(),
        Box::new(|_, _, _, edns| {
            edns.then(|| {
                Reply::Bent(Box::new(|m| {
                    m.metadata.response_code = ResponseCode::FormErr;
                    m.metadata.authoritative = false;
                    m.queries.clear();
                    m.answers.clear();
                }))
            })
        }),
    );
    let modern = RogueDns::start(zone(), Box::new(|_, _, _, _| None));
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("kmsdns.toml");
    let text = format!(
        "[defaults]\ntimeout = \"1s\"\nretries = 1\n\n[[zone]]\nname = \"corp.test\"\nservers = [\"{}\", \"{}\"]\n\n\
         [[host]]\nname = \"kms1.corp.test\"\nzones = [\"corp.test\"]\nstate = \"active\"\n",
        windows2008.addr, modern.addr
    );
    std::fs::write(&inv, text).unwrap();
    let out = kmsdns(&["audit", "--config", inv.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let (old, new) = (windows2008.asked(), modern.asked());
    // The old server: after its first FORMERRs (one read's SRV, SOA and shared-view TXT go
    // out together), no query carries OPT.
    assert!(old.with_edns <= 3 && old.total >= 6, "Windows 2008: {old:?}");
    // The other server never answered FORMERR and is asked with EDNS throughout.
    assert!(new.total > 0 && new.with_edns == new.total, "modern server: {new:?}");
}

#[cfg(feature = "gss-tsig")]
const WINDOWS_DC_TEST: &str = "windows_dc_inside_lab";
#[cfg(feature = "gss-tsig")]
const WINDOWS_DC_ADDR_VAR: &str = "KMSDNS_WINDOWS_DC_ADDR";

/// Not a test of its own: the scripted Windows DC (tests/support/windows_dc.rs), run by
/// [`a_windows_secure_update_the_acl_denies_is_a_signed_refused_named_as_the_acl_after_the_gss_microsoft_com_fallback`]
/// inside the lab's namespace with the DC's DNS keytab in `KRB5_KTNAME`. Serves until its stdin
/// closes (or 120 s pass); does nothing when the variable is not set.
#[cfg(feature = "gss-tsig")]
#[test]
#[ignore = "helper: run inside a Samba lab's namespace by a_windows_secure_update_the_acl_denies_…"]
fn windows_dc_inside_lab() {
    let Ok(addr) = std::env::var(WINDOWS_DC_ADDR_VAR) else { return };
    let listener = std::net::TcpListener::bind(&addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    println!("windows-dc: listening on {addr}");
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = closed.clone();
    std::thread::spawn(move || {
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        flag.store(true, Ordering::SeqCst);
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    support::windows_dc::serve(listener, deadline, || closed.load(Ordering::SeqCst), &mut std::io::stdout());
}

/// Windows DNS answers a secure update the node's ACL denies with REFUSED, signed with the
/// GSS-TSIG context; Windows 2000-era servers know the TKEY algorithm only as
/// `gss.microsoft.com`. Against a scripted DC that does both, with a real Kerberos context
/// (the Samba lab's KDC; the ticket is for DNS/dc1.corp.test, whose key is in the DLZ keytab):
/// kmsdns asks again under the old name, checks the REFUSED's signature, names the ACL and its
/// fix, and journals the change as not applied.
#[cfg(feature = "gss-tsig")]
#[test]
fn a_windows_secure_update_the_acl_denies_is_a_signed_refused_named_as_the_acl_after_the_gss_microsoft_com_fallback() {
    use std::io::BufRead;
    use std::process::Stdio;

    let lab = support::SambaLab::start_dlz();
    lab.add_computer("KMS1", "KMS1Passw0rd!");
    lab.samba_tool(&["dns", "add", "127.0.0.10", "corp.test", "kms1", "A", "127.0.0.21"]);
    let _kms = lab.in_netns(|| KmsResponder::up("127.0.0.21:1688".parse().unwrap()).unwrap());
    let cc1 = lab.kinit("KMS1$", "KMS1Passw0rd!");

    // The scripted DC answers updates for dc1.corp.test on port 5300; BIND still serves reads.
    let keytab = lab.dir.path().join("dc/bind-dns/dns.keytab");
    let mut dc = lab
        .command(std::env::current_exe().expect("path of the test binary"))
        .args([WINDOWS_DC_TEST, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(WINDOWS_DC_ADDR_VAR, "127.0.0.10:5300")
        .env("KRB5_KTNAME", format!("FILE:{}", keytab.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the scripted Windows DC in the lab");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = dc.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        // libtest prints "test windows_dc_inside_lab ... " in front of the first line.
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let Some(at) = line.find("windows-dc: ") else { continue };
            if line[at..].starts_with("windows-dc: listening") {
                let _ = tx.send(());
            }
            lines.push(line[at..].to_string());
        }
        lines
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = dc.kill();
        panic!("the scripted Windows DC did not start: {:?}", reader.join());
    }

    let inv = lab.dir.path().join("windows.toml");
    let text = format!(
        "[defaults]\ntimeout = \"2s\"\nretries = 1\n\n[daemon]\nstate_dir = \"{}\"\n\n[[zone]]\nname = \"corp.test\"\n\
         servers = [\"127.0.0.10\"]\nprimary = \"dc1.corp.test:5300\"\nupdate_auth = \"gss-tsig\"\npolicy = \"repair\"\n\n\
         [[host]]\nname = \"kms1.corp.test\"\nzones = [\"corp.test\"]\nstate = \"active\"\n",
        lab.dir.path().join("state").display()
    );
    std::fs::write(&inv, text).unwrap();
    let run = |args: &[&str]| {
        lab.command(env!("CARGO_BIN_EXE_kmsdns"))
            .args(args)
            .env("KRB5CCNAME", format!("FILE:{}", cc1.display()))
            .env("RUST_LOG", "kmsdns=debug")
            .output()
            .expect("run kmsdns in the lab")
    };
    let inv = inv.to_str().unwrap();
    let out = run(&["repair", "--apply", "--config", inv]);
    let journal = run(&["journal", "--config", inv]);
    drop(dc.stdin.take());
    let _ = dc.wait();
    let events: Vec<String> = reader.join().unwrap();

    assert_eq!(out.status.code(), Some(2), "{}\n{events:#?}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("update denied by 127.0.0.10:5300 (REFUSED): the Kerberos account may not write _vlmcs._tcp")
            && text.contains("`kmsdns repair --acl` fixes it"),
        "{}\n{events:#?}",
        show(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("GSS-TSIG context with dc1.corp.test (gss.microsoft.com)"), "{stderr}");
    // The REFUSED's MAC verified in the RFC 8945 form, not by one of Samba's workarounds.
    assert!(!stderr.contains("against RFC 8945") && !stderr.contains("echoes the request's MAC"), "{stderr}");
    assert_eq!(
        events,
        [
            "windows-dc: listening on 127.0.0.10:5300",
            "windows-dc: TKEY gss-tsig: BADALG",
            "windows-dc: TKEY gss.microsoft.com: accepted, context complete",
            "windows-dc: UPDATE signed with the gss.microsoft.com context: REFUSED, signed",
        ],
        "{}",
        show(&out)
    );
    let journal = String::from_utf8_lossy(&journal.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(journal.contains("not applied (REFUSED (denied)) +kms1.corp.test"), "{journal}");
}
