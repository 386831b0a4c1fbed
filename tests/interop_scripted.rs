//! Server behaviours that cannot be had here on demand, imitated by the scripted responder
//! (tests/support/rogue.rs): the SERVFAIL Knot gives part of a burst of updates
//! (stalwartlabs/dns-update#83), and Windows Server 2008's FORMERR to EDNS.

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
    // The old server: after its first FORMERRs (SRV and SOA go out together), no query carries OPT.
    assert!(old.with_edns <= 2 && old.total >= 4, "Windows 2008: {old:?}");
    // The other server never answered FORMERR and is asked with EDNS throughout.
    assert!(new.total > 0 && new.with_edns == new.total, "modern server: {new:?}");
}
