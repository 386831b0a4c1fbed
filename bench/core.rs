//! Microbenchmarks of the pure core (criterion): the inventory load, audit + plan over a
//! synthetic observation, and the wire codecs. No I/O, so the figures are the code's alone.
//!
//! `cargo bench --bench core` measures; `cargo bench --bench core -- --test` runs each once
//! (what `.ci/run` does, so that none of them rots). `ZONES` sets the estate size (10,000).

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kmsdns::inventory::Inventory;
use kmsdns::model::{Observation, PeerViews, ProbeState, Resolution, ServerView, SrvAnswer, SrvRecord, ZoneView};
use kmsdns::name::DnsName;
use kmsdns::wire::dnsp::DnsRecord;
use kmsdns::wire::{rpc, security};

fn zones() -> usize {
    std::env::var("ZONES").ok().and_then(|z| z.parse().ok()).unwrap_or(10_000)
}

/// The benchmark estate's inventory: `n` zones on two servers, three active hosts publishing
/// in every zone (an MSP, or a forest with a long DnsDomainPublishList).
fn inventory_text(n: usize) -> String {
    let mut text = String::from("[defaults]\ntimeout = \"2s\"\nretries = 1\n");
    for i in 0..n {
        text += &format!(
            "[[zone]]\nname = \"zone{i:05}.bench\"\nservers = [\"127.0.0.1:20001\", \"127.0.0.1:20002\"]\npolicy = \"repair\"\nallow_unsigned = true\n"
        );
    }
    let zones: Vec<String> = (0..n).map(|i| format!("\"zone{i:05}.bench\"")).collect();
    for k in 1..=3 {
        text +=
            &format!("[[host]]\nname = \"kms{k}.hosts.bench\"\nzones = [{}]\nstate = \"active\"\n", zones.join(", "));
    }
    text
}

fn name(s: &str) -> DnsName {
    DnsName::parse(s).expect("a valid name")
}

/// What the servers answer: kms1, kms2 and a dead host in every zone, kms3 nowhere; so every
/// zone has two findings (stale-dead, missing-record) and a plan of one delete and one add.
fn observation(inv: &Inventory) -> Observation {
    let srv = |t: &str| SrvRecord { target: name(t), port: 1688, priority: 0, weight: 0, ttl: 3600 };
    let answer =
        SrvAnswer::Records { records: vec![srv("dead.hosts.bench"), srv("kms1.hosts.bench"), srv("kms2.hosts.bench")] };
    let zones = inv
        .zones
        .iter()
        .map(|z| ZoneView {
            zone: z.name.clone(),
            servers: z
                .servers
                .iter()
                .map(|s| ServerView { server: s.clone(), srv: answer.clone(), serial: Ok(7), mname: None })
                .collect(),
        })
        .collect();
    // Every zone's shared view read, and no other instance in it: the peers rail holds no delete.
    let peers = inv.zones.iter().map(|z| (z.name.clone(), PeerViews::Read { entries: vec![] })).collect();
    let mut obs = Observation { zones, peers, ..Default::default() };
    let hosts = [
        ("kms1", ProbeState::KmsUp),
        ("kms2", ProbeState::KmsUp),
        ("kms3", ProbeState::KmsUp),
        ("dead", ProbeState::Down("connect: Connection refused".into())),
    ];
    for (i, (host, state)) in hosts.into_iter().enumerate() {
        let ip = IpAddr::from([127, 0, 0, i as u8 + 1]);
        obs.names.insert(
            name(&format!("{host}.hosts.bench")),
            Resolution::Addresses { addresses: vec![ip], incomplete: None },
        );
        obs.probes.insert(SocketAddr::new(ip, 1688), state);
    }
    obs
}

fn core(c: &mut Criterion) {
    let n = zones();
    let text = inventory_text(n);
    c.bench_function(&format!("inventory load, {n} zones"), |b| {
        b.iter(|| Inventory::from_toml(black_box(&text)).expect("the estate is valid"))
    });

    let inv = Inventory::from_toml(&text).expect("the estate is valid");
    let obs = observation(&inv);
    let findings = kmsdns::audit::audit(&inv, &obs);
    assert_eq!(findings.len(), 2 * n, "a stale-dead and a missing-record per zone");
    let plan = kmsdns::plan::plan(&inv, &obs, &findings);
    assert!(plan.zones.iter().all(|z| z.changes.len() == 2), "one delete and one add per zone");
    c.bench_function(&format!("audit, {n} zones"), |b| b.iter(|| kmsdns::audit::audit(black_box(&inv), &obs)));
    c.bench_function(&format!("plan, {n} zones"), |b| b.iter(|| kmsdns::plan::plan(black_box(&inv), &obs, &findings)));
    c.bench_function(&format!("observation JSON, {n} zones"), |b| {
        b.iter(|| serde_json::to_vec(black_box(&obs)).expect("serialises"))
    });
}

fn codecs(c: &mut Criterion) {
    let record = DnsRecord::srv(0, 100, 1688, "kms1.corp.test", 3600, 110, 3_733_431);
    let bytes = record.to_bytes().expect("a valid record encodes");
    c.bench_function("dnsRecord SRV encode", |b| b.iter(|| black_box(&record).to_bytes()));
    c.bench_function("dnsRecord SRV parse", |b| b.iter(|| DnsRecord::parse(black_box(&bytes))));

    let sd_b64 = include_str!("../tests/fixtures/ad/sd_vlmcs_after_fix.b64");
    let sd_bytes = base64::engine::general_purpose::STANDARD
        .decode(sd_b64.split_whitespace().collect::<String>())
        .expect("the fixture is base64");
    let sd = security::SecurityDescriptor::parse(&sd_bytes).expect("the fixture parses");
    c.bench_function("security descriptor parse", |b| {
        b.iter(|| security::SecurityDescriptor::parse(black_box(&sd_bytes)))
    });
    c.bench_function("security descriptor encode", |b| b.iter(|| black_box(&sd).to_bytes()));

    let ack = rpc::encode_bind_ack(7, true);
    c.bench_function("DCE/RPC bind encode", |b| b.iter(|| rpc::encode_bind(black_box(7))));
    c.bench_function("DCE/RPC bind_ack decode", |b| {
        b.iter_batched(|| ack.clone(), |a| rpc::decode_reply(&a, 7), BatchSize::SmallInput)
    });
}

criterion_group!(benches, core, codecs);
criterion_main!(benches);
