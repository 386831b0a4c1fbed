//! Structure-aware fuzzing of the four wire codecs (`kmsdns::wire`), through their public API.
//!
//! Random bytes are rejected by the first header check, so they never reach the parts that
//! read names, ACLs or compression pointers. Each codec is driven here from valid encodings
//! instead: the samples captured from a Samba DC (tests/fixtures/ad/) and values the codecs
//! themselves encode. Three passes per codec:
//!
//! 1. every single mutation at every offset of every seed (bit flips, bytes set to 0x00, 0xff
//!    and length-like values, 16- and 32-bit length fields pointing past the end, truncation,
//!    insertion, deletion): deterministic;
//! 2. stacks of random mutations of the seeds;
//! 3. valid headers with hostile bodies, built field by field.
//!
//! No input may panic, and whatever parses must re-encode and read back the same, as each
//! codec promises. Every pass tallies its outcomes (which value or which error variant) and
//! asserts that both successes and deep errors happen in quantity, so the test fails if the
//! generation degrades to inputs rejected at the first byte. `PROPTEST_CASES` sets the size of
//! passes 2 and 3 (256 by default; .ci/run runs a larger count); `--nocapture` prints the
//! tallies.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::SystemTime;

use base64::Engine;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRng, TestRunner};

use kmsdns::wire::dnsp::{self, DnsProperty, DnsRecord, RecordData, ZoneSettings};
use kmsdns::wire::rpc;
use kmsdns::wire::security::{self, Ace, Acl, OpaqueAce, SdPart, SecurityDescriptor, SecurityError, Sid};
use kmsdns::wire::tkey::{self, Tkey};

// ---------------------------------------------------------------------------------------------
// Mutations

/// One edit of a byte string. Offsets are taken modulo the length, so any value applies.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        value: u8,
    },
    /// A 16-bit length field, little-endian (dnsRecord, ACLs, ACEs, DCE/RPC) or big-endian (DNS).
    U16 {
        at: usize,
        value: u16,
        big_endian: bool,
    },
    /// A 32-bit length or offset field, little-endian (dNSProperty, descriptor offsets).
    U32 {
        at: usize,
        value: u32,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        value: u8,
    },
    Delete {
        at: usize,
    },
    /// Repeats 1 to 64 bytes from `at` (`len` modulo 64, plus one): a label, an ACE, a record twice.
    Duplicate {
        at: usize,
        len: usize,
    },
}

impl Mutation {
    fn apply(self, bytes: &mut Vec<u8>) {
        let n = bytes.len();
        let at = |at: usize| if n == 0 { 0 } else { at % n };
        match self {
            Mutation::FlipBit { at: a, bit } if n > 0 => bytes[at(a)] ^= 1 << (bit % 8),
            Mutation::Set { at: a, value } if n > 0 => bytes[at(a)] = value,
            Mutation::U16 { at: a, value, big_endian } if n >= 2 => {
                let a = at(a).min(n - 2);
                let b = if big_endian { value.to_be_bytes() } else { value.to_le_bytes() };
                bytes[a..a + 2].copy_from_slice(&b);
            }
            Mutation::U32 { at: a, value } if n >= 4 => {
                let a = at(a).min(n - 4);
                bytes[a..a + 4].copy_from_slice(&value.to_le_bytes());
            }
            Mutation::Truncate { at: a } => bytes.truncate(at(a)),
            Mutation::Insert { at: a, value } => bytes.insert(if n == 0 { 0 } else { a % (n + 1) }, value),
            Mutation::Delete { at: a } if n > 0 => {
                bytes.remove(at(a));
            }
            Mutation::Duplicate { at: a, len } if n > 0 => {
                let a = at(a);
                let chunk = bytes[a..(a + len % 64 + 1).min(n)].to_vec();
                bytes.splice(a..a, chunk);
            }
            _ => {}
        }
    }
}

/// Bytes worth writing anywhere: zero, one, small counts, the edges of 6-bit label lengths,
/// a compression pointer, the sign bit, all ones.
const INTERESTING: [u8; 14] = [0x00, 0x01, 0x02, 0x04, 0x05, 0x0f, 0x10, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xfe, 0xff];

/// Every single mutation at every offset of `seed`.
fn every_mutation(seed: &[u8]) -> Vec<Mutation> {
    let n = seed.len();
    let mut all = Vec::new();
    for at in 0..n {
        all.extend((0..8).map(|bit| Mutation::FlipBit { at, bit }));
        all.extend(INTERESTING.iter().map(|&value| Mutation::Set { at, value }));
        // Length-like values: what is left from here (exactly, one short, one past the end), and the whole.
        let left = n - at;
        for value in [n, left, left - 1, left + 1, left + 2] {
            all.push(Mutation::Set { at, value: value as u8 });
        }
        if at + 2 <= n {
            for value in [left - 2, left - 1, left + 1, n + 1, 0xffff] {
                for big_endian in [false, true] {
                    all.push(Mutation::U16 { at, value: value as u16, big_endian });
                }
            }
        }
        if at + 4 <= n {
            for value in [0, left as u32, n as u32 + 1, 0x8000_0000, u32::MAX] {
                all.push(Mutation::U32 { at, value });
            }
        }
        all.push(Mutation::Truncate { at });
        all.push(Mutation::Delete { at });
        all.extend([0x00, 0xff].map(|value| Mutation::Insert { at, value }));
    }
    all.push(Mutation::Insert { at: n, value: 0 });
    all
}

fn any_mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    let byte = prop_oneof![3 => proptest::sample::select(INTERESTING.to_vec()), 1 => any::<u8>()];
    prop_oneof![
        (at, 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (at, byte.clone()).prop_map(|(at, value)| Mutation::Set { at, value }),
        (at, prop_oneof![0u16..300, Just(0xffff), any::<u16>()], any::<bool>())
            .prop_map(|(at, value, big_endian)| Mutation::U16 { at, value, big_endian }),
        (at, prop_oneof![0u32..2000, Just(u32::MAX), any::<u32>()]).prop_map(|(at, value)| Mutation::U32 { at, value }),
        at.prop_map(|at| Mutation::Truncate { at }),
        (at, byte).prop_map(|(at, value)| Mutation::Insert { at, value }),
        at.prop_map(|at| Mutation::Delete { at }),
        (at, any::<usize>()).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

/// A seed with one to five random mutations stacked on it.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (proptest::sample::select(seeds), vec(any_mutation(), 1..=5)).prop_map(|(mut bytes, edits)| {
        for edit in edits {
            edit.apply(&mut bytes);
        }
        bytes
    })
}

// ---------------------------------------------------------------------------------------------
// Tallies

/// How many inputs ended in each outcome: `ok <what>` or the error variant.
#[derive(Default)]
struct Tally(BTreeMap<String, usize>);

impl Tally {
    fn add(&mut self, outcome: String) {
        *self.0.entry(outcome).or_default() += 1;
    }

    fn total(&self) -> usize {
        self.0.values().sum()
    }

    fn starting(&self, prefix: &str) -> usize {
        self.0.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, n)| n).sum()
    }

    /// Asserts that successes and each listed outcome happened at least that often, and that the
    /// outcomes of the first header check (`shallow`) are not most of them.
    fn assert_deep(&self, pass: &str, min_ok: usize, wanted: &[(&str, usize)], shallow: &[&str]) {
        let report = self.to_string();
        println!("{pass}: {} inputs\n{report}", self.total());
        assert!(self.starting("ok") >= min_ok, "{pass}: fewer than {min_ok} inputs parsed:\n{report}");
        for (outcome, min) in wanted {
            let n = self.starting(outcome);
            assert!(n >= *min, "{pass}: {outcome:?} reached {n} times, fewer than {min}:\n{report}");
        }
        let shallow: usize = shallow.iter().map(|s| self.starting(s)).sum();
        assert!(shallow * 2 < self.total(), "{pass}: most inputs fail the first header check:\n{report}");
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (outcome, n) in &self.0 {
            writeln!(f, "  {n:>7}  {outcome}")?;
        }
        Ok(())
    }
}

/// The variant of an error or value from its Debug text: `Name(LabelCount { .. })` gives
/// `Name(LabelCount)`, `ShortRecord(23)` gives `ShortRecord`.
fn variant(value: &impl Debug) -> String {
    let text = format!("{value:?}");
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let head = ident(&text);
    match text[head.len()..].strip_prefix('(') {
        Some(inner) if inner.starts_with(|c: char| c.is_ascii_uppercase()) => format!("{head}({})", ident(inner)),
        _ => head,
    }
}

fn outcome<T, E: Debug>(result: &Result<T, E>, ok: impl FnOnce(&T) -> String) -> String {
    match result {
        Ok(value) => format!("ok {}", ok(value)),
        Err(e) => format!("err {}", variant(e)),
    }
}

/// Runs `check` on every `stride`th single mutation of every seed (1: all of them). The list goes
/// offset by offset, so with a stride every offset still gets mutations, of kinds that rotate
/// from one offset to the next.
fn exhaustive(seeds: &[Vec<u8>], stride: usize, check: impl Fn(&[u8]) -> String) -> Tally {
    let mut tally = Tally::default();
    for seed in seeds {
        tally.add(check(seed));
        for edit in every_mutation(seed).into_iter().step_by(stride) {
            let mut bytes = seed.clone();
            edit.apply(&mut bytes);
            tally.add(check(&bytes));
        }
    }
    tally
}

/// Runs `check` on `PROPTEST_CASES` inputs from `inputs`; a panic or a failed assertion in
/// `check` fails the test with the input proptest shrank it to.
///
/// A plain `cargo test` draws the same inputs every time, so that its tallies, a few hundred
/// inputs strong, cannot fall under a threshold by bad luck; the CI fuzz step draws new ones on
/// every run.
fn random(inputs: impl Strategy<Value = Vec<u8>>, check: impl Fn(&[u8]) -> String) -> Tally {
    let tally = RefCell::new(Tally::default());
    let config = Config { failure_persistence: None, ..Config::default() };
    let mut runner = if cases() >= FUZZ_STEP_CASES {
        TestRunner::new(config)
    } else {
        let rng = TestRng::deterministic_rng(config.rng_algorithm);
        TestRunner::new_with_rng(config, rng)
    };
    let result = runner.run(&inputs, |bytes| {
        tally.borrow_mut().add(check(&bytes));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    tally.into_inner()
}

fn b64(text: &str) -> Vec<u8> {
    let clean: String = text.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(clean).expect("fixture is base64")
}

/// The base64 values of `attr` in an LDIF file (continuation lines start with a space).
fn ldif_values(ldif: &str, attr: &str) -> Vec<Vec<u8>> {
    let unfolded = ldif.replace("\n ", "");
    let prefix = format!("{attr}:: ");
    unfolded.lines().filter_map(|l| l.strip_prefix(&prefix)).map(b64).collect()
}

const LDIF: &str = include_str!("fixtures/ad/vlmcs_admin_created.ldif");

// ---------------------------------------------------------------------------------------------
// MS-DNSP dnsRecord and dNSProperty

fn record_seeds() -> Vec<Vec<u8>> {
    // The base64 lines of the decoded samples (the indented lines are the decoding).
    let samples = include_str!("fixtures/ad/dnsrecord_samples_decoded.txt");
    let mut seeds: Vec<Vec<u8>> =
        samples.lines().filter(|l| !l.is_empty() && !l.starts_with(char::is_whitespace)).map(b64).collect();
    assert_eq!(seeds.len(), 6, "the six captured dnsRecord samples");
    seeds.extend(ldif_values(LDIF, "dnsRecord"));
    let long_name = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
    let values = [
        RecordData::Srv { priority: 0, weight: 100, port: 1688, target: "kms1.corp.test".into() },
        RecordData::Srv { priority: 10, weight: 0, port: 1688, target: long_name.clone() },
        RecordData::Cname(r"a\.b.\032\255\\.é".into()),
        RecordData::Ptr(".".into()),
        RecordData::Ns(String::new()),
        RecordData::Aaaa("2001:db8::1".parse().expect("an IPv6 address")),
        RecordData::Soa {
            serial: 7,
            refresh: 900,
            retry: 600,
            expire: 86400,
            minimum: 3600,
            mname: "dc1.corp.test".into(),
            rname: long_name,
        },
        RecordData::Unknown { rr_type: 16, bytes: b"\x0bhello world".to_vec() },
    ];
    for data in values {
        seeds.push(DnsRecord::new(data, 3600, 110, 3_733_431).to_bytes().expect("a valid record encodes"));
    }
    seeds.push(DnsRecord::tombstone(SystemTime::UNIX_EPOCH, 3).to_bytes().expect("a tombstone encodes"));
    seeds
}

fn check_record(bytes: &[u8]) -> String {
    let parsed = DnsRecord::parse(bytes);
    if let Ok(record) = &parsed {
        // MS-DNSP values read back as they were written, apart from Reserved and name padding.
        let again = record.to_bytes().unwrap_or_else(|e| panic!("{record:?} read but does not encode: {e}"));
        let reread = DnsRecord::parse(&again).unwrap_or_else(|e| panic!("{record:?} encodes to unreadable bytes: {e}"));
        assert_eq!(&reread, record, "re-encoding changed the record");
        assert_eq!(reread.to_bytes().as_deref(), Ok(again.as_slice()), "encoding is not a fixed point");
        let _ = record.timestamp_time();
    }
    // Every dnsRecord value is also a byte string a dNSProperty reader may be handed.
    check_property(bytes);
    outcome(&parsed, |r| variant(&r.data))
}

fn property_seeds() -> Vec<Vec<u8>> {
    let settings = ZoneSettings {
        allow_update: dnsp::AllowUpdate::SecureOnly,
        aging: true,
        no_refresh_hours: 24,
        refresh_hours: 72,
        aging_enabled_time: 3_733_431,
        skipped: 0,
    };
    let mut seeds: Vec<Vec<u8>> =
        settings.to_properties().iter().map(|p| p.to_bytes().expect("a property encodes")).collect();
    // Samba's torture samples (source4/torture/ndr/dnsp.c): master servers, and a deleted-from
    // property with junk Windows left in NameLength and Name.
    seeds.push(b64("DAAAAAAAAAAAAAAAAQAAAIEAAAACAAAArB9jIawfYywAAAAA"));
    seeds.push(b64("JgAAAAHuxHEAAAAAAQAAAIAAAAB3ADIAawAzAC0AMQA5ADEALgB3ADIAawAzAC4AYgBhAHMAZQAAAMRx7PM="));
    seeds
}

fn check_property(bytes: &[u8]) -> String {
    let parsed = DnsProperty::parse(bytes);
    if let Ok(property) = &parsed {
        // dNSProperty keeps every byte, junk included.
        assert_eq!(property.to_bytes().as_deref(), Ok(bytes), "a dNSProperty did not re-encode byte for byte");
    }
    let settings = ZoneSettings::from_values([bytes]);
    assert!(settings.skipped <= 1);
    let known = [
        dnsp::PROPERTY_ZONE_TYPE,
        dnsp::PROPERTY_ALLOW_UPDATE,
        dnsp::PROPERTY_SECURE_TIME,
        dnsp::PROPERTY_NOREFRESH_INTERVAL,
        dnsp::PROPERTY_SCAVENGING_SERVERS,
        dnsp::PROPERTY_AGING_ENABLED_TIME,
        dnsp::PROPERTY_REFRESH_INTERVAL,
        dnsp::PROPERTY_AGING_STATE,
    ];
    outcome(&parsed, |p| match (known.contains(&p.id), settings.skipped) {
        (true, 0) => format!("applied id {:#x}", p.id),
        (true, _) => format!("skipped id {:#x}", p.id),
        (false, _) => "other id".into(),
    })
}

/// A DNS_COUNT_NAME with every count open to lies: Length, LabelCount, the label lengths, the
/// terminator and pad bytes.
fn hostile_count_name() -> impl Strategy<Value = Vec<u8>> {
    let label = prop_oneof![vec(b'a'..=b'z', 1..8), vec(any::<u8>(), 0..70)];
    (
        vec((label, 0u8..4, any::<u8>()), 0..4),
        0u8..5,
        any::<u8>(),
        0u8..4,
        any::<u8>(),
        prop_oneof![Just(0u8), any::<u8>()],
        vec(any::<u8>(), 0..3),
    )
        .prop_map(|(labels, length_mode, any_length, count_mode, any_count, terminator, pad)| {
            let mut raw = Vec::new();
            for (bytes, mode, any_len) in &labels {
                raw.push(if *mode == 0 { any_len & 0x7f } else { bytes.len() as u8 });
                raw.extend_from_slice(bytes);
            }
            raw.push(terminator);
            raw.extend_from_slice(&pad);
            let exact = (raw.len() - pad.len()) as u8;
            let length = match length_mode {
                0 => exact,
                1 => exact.wrapping_sub(1),
                2 => raw.len() as u8,
                3 => raw.len() as u8 + 1,
                _ => any_length,
            };
            let count = match count_mode {
                0 | 1 => labels.len() as u8,
                2 => labels.len() as u8 + 1,
                _ => any_count,
            };
            let mut out = vec![length, count];
            out.extend_from_slice(&raw);
            out
        })
}

/// A dnsRecord header that fits its data (or lies about its length) over a hostile body.
fn hostile_record() -> impl Strategy<Value = Vec<u8>> {
    let types = [dnsp::TYPE_SRV, dnsp::TYPE_A, dnsp::TYPE_AAAA, dnsp::TYPE_NS, dnsp::TYPE_CNAME, dnsp::TYPE_PTR];
    let rr_type = prop_oneof![
        6 => proptest::sample::select(types.to_vec()),
        1 => Just(dnsp::TYPE_SOA),
        1 => Just(dnsp::TYPE_TOMBSTONE),
        1 => any::<u16>(),
    ];
    let body = prop_oneof![
        vec(any::<u8>(), 0..40),
        hostile_count_name(),
        (any::<[u8; 6]>(), hostile_count_name()).prop_map(|(fixed, name)| [fixed.as_slice(), &name].concat()),
        (any::<[u8; 20]>(), hostile_count_name(), hostile_count_name()).prop_map(|(fixed, m, r)| [
            fixed.as_slice(),
            &m,
            &r
        ]
        .concat()),
    ];
    let version = prop_oneof![4 => Just(dnsp::VERSION), 1 => any::<u8>()];
    (rr_type, version, 0u8..6, any::<u16>(), any::<[u8; 19]>(), body, vec(any::<u8>(), 0..3)).prop_map(
        |(rr_type, version, length_mode, any_length, rest, body, trailer)| {
            let exact = body.len() as u16;
            let length = match length_mode {
                0..=2 => exact,
                3 => exact + 1,
                4 => exact.saturating_sub(1),
                _ => any_length,
            };
            let mut out = length.to_le_bytes().to_vec();
            out.extend_from_slice(&rr_type.to_le_bytes());
            out.push(version);
            out.extend_from_slice(&rest);
            out.extend_from_slice(&body);
            out.extend_from_slice(&trailer);
            out
        },
    )
}

fn hostile_property() -> impl Strategy<Value = Vec<u8>> {
    let ids = [dnsp::PROPERTY_ALLOW_UPDATE, dnsp::PROPERTY_AGING_STATE, dnsp::PROPERTY_REFRESH_INTERVAL];
    (
        prop_oneof![proptest::sample::select(ids.to_vec()), any::<u32>()],
        vec(any::<u8>(), 0..9),
        0u8..4,
        any::<[u32; 3]>(),
    )
        .prop_map(|(id, data, length_mode, [name_length, flag, any_length])| {
            let exact = data.len() as u32;
            let length = match length_mode {
                0 | 1 => exact,
                2 => exact + 1,
                _ => any_length,
            };
            let mut out = Vec::new();
            for v in [length, name_length, flag, 1, id] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&data);
            out
        })
}

const RECORD_SHALLOW: &[&str] = &["err ShortRecord"];
/// What the full single-mutation pass reaches, at a third or less of what it reached when written.
const RECORD_DEEP: &[(&str, usize)] = &[
    ("ok Srv", 5000),
    ("ok Soa", 5000),
    ("ok A", 300),
    ("ok Aaaa", 300),
    ("ok Ns", 300),
    ("ok Cname", 300),
    ("ok Ptr", 200),
    ("ok Tombstone", 500),
    ("ok Unknown", 500),
    ("err RecordDataBeyondValue", 1000),
    ("err DataLength", 20),
    ("err ShortData", 5),
    ("err TrailingData", 20),
    ("err Name(Truncated)", 300),
    ("err Name(LabelCount)", 300),
    ("err Name(NotTerminated)", 300),
    ("err Name(Overrun)", 50),
    ("err Name(LabelTooLong)", 500),
];

#[test]
fn every_mutation_of_every_dns_record_sample() {
    let tally = exhaustive(&record_seeds(), 1, check_record);
    tally.assert_deep("dnsRecord, single mutations", 20_000, RECORD_DEEP, RECORD_SHALLOW);
}

#[test]
fn random_mutations_and_hostile_bodies_of_dns_records() {
    let tally = random(mutated(record_seeds()), check_record);
    tally.assert_deep(
        "dnsRecord, stacked mutations",
        cases() / 20,
        &[("err RecordDataBeyondValue", 1)],
        RECORD_SHALLOW,
    );
    let tally = random(hostile_record(), check_record);
    let wanted = [("err Name", cases() / 20), ("err DataLength", 1)];
    tally.assert_deep("dnsRecord, hostile bodies", cases() / 20, &wanted, RECORD_SHALLOW);
}

#[test]
fn every_mutation_and_hostile_bodies_of_dns_properties() {
    let tally = exhaustive(&property_seeds(), 1, check_property);
    let wanted =
        [("ok applied id 0x2", 20), ("ok skipped", 1), ("ok other id", 100), ("err PropertyDataBeyondValue", 50)];
    tally.assert_deep("dNSProperty, single mutations", 1000, &wanted, &["err ShortProperty"]);
    let tally = random(hostile_property(), check_property);
    let wanted = [("err PropertyDataBeyondValue", cases() / 20), ("ok applied id 0x2", 1), ("ok skipped id 0x2", 1)];
    tally.assert_deep("dNSProperty, hostile bodies", cases() / 4, &wanted, &["err ShortProperty"]);
}

// ---------------------------------------------------------------------------------------------
// Security descriptors (MS-DTYP 2.4.6)

const DOMAIN: [u32; 4] = [21, 2_485_094_039, 1_089_347_830, 3_773_317_622];

fn corp_sid(rid: u32) -> Sid {
    let mut subs = DOMAIN.to_vec();
    subs.push(rid);
    Sid::new(5, &subs).expect("a domain account SID")
}

fn descriptor_seeds() -> Vec<Vec<u8>> {
    let before = b64(include_str!("fixtures/ad/sd_vlmcs_before_fix.b64"));
    let after = b64(include_str!("fixtures/ad/sd_vlmcs_after_fix.b64"));
    let mut seeds = vec![before.clone(), after];
    seeds.extend(ldif_values(LDIF, "nTSecurityDescriptor"));
    // The shapes the samples lack: deny and object ACEs with both GUIDs and padding, an opaque
    // ACE, a SACL, and Windows' layout (SACL, DACL, owner, group).
    let mut sd = SecurityDescriptor::parse(&before).expect("the captured descriptor parses");
    let deny = match Ace::allow(corp_sid(1104), security::rights::WRITE_PROPERTY) {
        Ace::Allow(a) => Ace::Deny(a),
        other => other,
    };
    let deny_object =
        match Ace::allow_object(corp_sid(1106), security::rights::WRITE_PROPERTY, Some(security::DNS_RECORD_ATTRIBUTE))
        {
            Ace::AllowObject(mut o) => {
                o.inherited_object_type = Some(security::DNS_NODE_CLASS);
                o.padding = vec![0; 4];
                Ace::DenyObject(o)
            }
            other => other,
        };
    let opaque = Ace::Other(OpaqueAce {
        ace_type: 0x11,
        flags: 0,
        body: vec![0x01, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 16, 0, 0x30, 0, 0],
    });
    if let Some(dacl) = sd.dacl.as_mut() {
        dacl.aces.splice(0..0, [deny, deny_object, opaque]);
    }
    let audit = Ace::Other(OpaqueAce { ace_type: 0x02, flags: 0xc0, body: Sid::EVERYONE.to_bytes() });
    sd.sacl = Some(Acl::new(vec![audit]));
    sd.control |= security::control::SACL_PRESENT;
    sd.layout = [SdPart::Sacl, SdPart::Dacl, SdPart::Owner, SdPart::Group];
    seeds.push(sd.to_bytes().expect("the edited descriptor encodes"));
    let fixed = sd.with_ace_prepended(Ace::allow(corp_sid(1106), security::rights::FULL_CONTROL));
    seeds.push(fixed.and_then(|sd| sd.to_bytes()).expect("the fixed descriptor encodes"));
    seeds
}

fn check_descriptor(bytes: &[u8]) -> String {
    let parsed = SecurityDescriptor::parse(bytes);
    let mut verdict = String::new();
    if let Ok(sd) = &parsed {
        let again = sd.to_bytes().unwrap_or_else(|e| panic!("a parsed descriptor does not encode: {e}"));
        let reread = SecurityDescriptor::parse(&again).unwrap_or_else(|e| panic!("re-encoding is unreadable: {e}"));
        assert_eq!(&reread, sd, "re-encoding changed the descriptor");
        assert_eq!(reread.to_bytes().as_deref(), Ok(again.as_slice()), "encoding is not a fixed point");
        let _ = sd.to_sddl(Sid::new(5, &DOMAIN).ok().as_ref());
        let token = kmsdns::audit::access::computer_token(corp_sid(1104), &[corp_sid(1106), corp_sid(515)], false);
        let decision = kmsdns::audit::access::may_update(sd, &token);
        let _ = decision.to_string();
        verdict = variant(&decision.verdict);
        if let Ok(fixed) = sd.with_ace_prepended(Ace::allow(corp_sid(1106), security::rights::FULL_CONTROL)) {
            let bytes =
                fixed.to_bytes().unwrap_or_else(|e| panic!("a descriptor with one more ACE does not encode: {e}"));
            assert_eq!(
                SecurityDescriptor::parse(&bytes).as_ref(),
                Ok(&fixed),
                "the fixed descriptor does not read back"
            );
        }
    }
    if let Ok(sid) = Sid::parse(bytes) {
        assert_eq!(sid.to_bytes(), bytes, "a SID value did not re-encode byte for byte");
    }
    match parsed {
        Err(SecurityError::Malformed { reason, .. }) => format!("err Malformed: {reason}"),
        other => outcome(&other, |_| verdict),
    }
}

/// A SID whose revision and sub-authority count may lie.
fn hostile_sid() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => (0u64..1 << 48, vec(any::<u32>(), 0..=5)).prop_map(|(a, s)| Sid::new(a, &s).expect("a SID").to_bytes()),
        1 => (prop_oneof![Just(1u8), any::<u8>()], prop_oneof![0u8..=16, any::<u8>()], vec(any::<u8>(), 6..30))
            .prop_map(|(rev, count, rest)| [&[rev, count][..], &rest].concat()),
    ]
}

/// An ACE of any type whose AceSize, object flags and GUIDs may lie.
fn hostile_ace() -> impl Strategy<Value = Vec<u8>> {
    let ace_type = prop_oneof![4 => proptest::sample::select(vec![0u8, 1, 5, 6]), 1 => any::<u8>()];
    let object_flags = prop_oneof![6 => 0u32..4, 1 => any::<u32>()];
    let guids = prop_oneof![6 => proptest::sample::select(vec![0usize, 16, 32]), 1 => 0usize..=32]
        .prop_flat_map(|n| vec(any::<u8>(), n));
    (ace_type, any::<u8>(), any::<u32>(), object_flags, guids, hostile_sid(), 0u8..10, any::<u16>()).prop_map(
        |(ace_type, flags, mask, object_flags, guids, sid, size_mode, any_size)| {
            let mut body = mask.to_le_bytes().to_vec();
            if matches!(ace_type, 5 | 6) {
                body.extend_from_slice(&object_flags.to_le_bytes());
                body.extend_from_slice(&guids);
            }
            body.extend_from_slice(&sid);
            let exact = (4 + body.len()) as u16;
            let size = match size_mode {
                0..=6 => exact,
                7 => exact + 2,
                8 => exact.saturating_sub(1),
                _ => any_size,
            };
            [&[ace_type, flags][..], &size.to_le_bytes(), &body].concat()
        },
    )
}

/// An ACL whose AclSize and AceCount may lie.
fn hostile_acl() -> impl Strategy<Value = Vec<u8>> {
    let revision =
        prop_oneof![2 => Just(security::ACL_REVISION), 2 => Just(security::ACL_REVISION_DS), 1 => any::<u8>()];
    (revision, vec(hostile_ace(), 0..4), vec(any::<u8>(), 0..4), 0u8..10, 0u8..8, any::<u16>()).prop_map(
        |(revision, aces, slack, size_mode, count_mode, any_value)| {
            let body = [aces.concat(), slack].concat();
            let exact = (8 + body.len()) as u16;
            let size = match size_mode {
                0..=6 => exact,
                7 => exact + 4,
                8 => any_value % 8,
                _ => any_value,
            };
            let count = match count_mode {
                0..=5 => aces.len() as u16,
                6 => aces.len() as u16 + 1,
                _ => any_value,
            };
            [&[revision, 0][..], &size.to_le_bytes(), &count.to_le_bytes(), &[0, 0], &body].concat()
        },
    )
}

/// A descriptor header (revision 1) whose four offsets point at hostile parts, or past them.
fn hostile_descriptor() -> impl Strategy<Value = Vec<u8>> {
    let part = |p: BoxedStrategy<Vec<u8>>| proptest::option::weighted(0.8, p);
    let offset_mode = || prop_oneof![12 => Just(0u8), 1 => 1u8..4];
    (
        (
            part(hostile_sid().boxed()),
            part(hostile_sid().boxed()),
            part(hostile_acl().boxed()),
            part(hostile_acl().boxed()),
        ),
        Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
        (offset_mode(), offset_mode(), offset_mode(), offset_mode()),
        any::<u16>(),
        prop_oneof![16 => Just(1u8), 1 => any::<u8>()],
        any::<u32>(),
    )
        .prop_map(|((owner, group, sacl, dacl), order, modes, control, revision, any_offset)| {
            let parts = [owner, group, sacl, dacl];
            let modes = [modes.0, modes.1, modes.2, modes.3];
            let mut out = vec![revision, 0];
            out.extend_from_slice(&(control | security::control::DACL_PRESENT).to_le_bytes());
            out.extend_from_slice(&[0; 16]);
            let mut offsets = [0u32; 4];
            for i in order {
                if let Some(bytes) = &parts[i] {
                    offsets[i] = out.len() as u32;
                    out.extend_from_slice(bytes);
                }
            }
            for i in 0..4 {
                let lie = match modes[i] {
                    0 => offsets[i],
                    1 => out.len() as u32,
                    2 => 19,
                    _ => any_offset % (out.len() as u32 + 8),
                };
                out[4 + 4 * i..8 + 4 * i].copy_from_slice(&lie.to_le_bytes());
            }
            out
        })
}

const DESCRIPTOR_SHALLOW: &[&str] = &["err ShortDescriptor", "err DescriptorRevision"];

#[test]
fn every_mutation_of_every_security_descriptor_sample() {
    let stride = descriptor_stride();
    let tally = exhaustive(&descriptor_seeds(), stride, check_descriptor);
    let wanted = [
        ("ok Granted", 10_000),
        ("ok NotGranted", 20_000),
        ("ok Denied", 20_000),
        ("ok NoDacl", 10),
        ("err BadOffset", 2000),
        ("err Truncated", 2000),
        ("err SidRevision", 5000),
        ("err TooManySubAuthorities", 1000),
        ("err Malformed: its AceSize does not fit in the ACL", 5000),
        ("err Malformed: its header runs past the end of the ACL", 300),
        ("err Malformed: its SID runs past its AceSize", 500),
        ("err Malformed: its body is shorter than its fields", 200),
        ("err Malformed: its GUIDs run past its AceSize", 100),
        ("err Malformed: its AclSize is under 8 bytes", 50),
    ];
    let wanted: Vec<(&str, usize)> = wanted.iter().map(|&(o, n): &(&str, usize)| (o, n.div_ceil(stride))).collect();
    let min_ok = 100_000usize.div_ceil(stride);
    tally.assert_deep("security descriptor, single mutations", min_ok, &wanted, DESCRIPTOR_SHALLOW);
}

#[test]
fn random_mutations_and_hostile_bodies_of_security_descriptors() {
    let tally = random(mutated(descriptor_seeds()), check_descriptor);
    tally.assert_deep(
        "security descriptor, stacked mutations",
        cases() / 20,
        &[("err Malformed", 1)],
        DESCRIPTOR_SHALLOW,
    );
    let tally = random(hostile_descriptor(), check_descriptor);
    let wanted = [("err Malformed", cases() / 20), ("err BadOffset", 1)];
    tally.assert_deep("security descriptor, hostile bodies", cases() / 20, &wanted, DESCRIPTOR_SHALLOW);
}

// ---------------------------------------------------------------------------------------------
// DCE/RPC bind replies (C706 ch. 12)

const CALL_ID: u32 = 1;

fn reply_seeds() -> Vec<Vec<u8>> {
    let mut nak = vec![5, 0, 13, 3, 0x10, 0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 5, 0, 0, 0, 0];
    nak[12..16].copy_from_slice(&CALL_ID.to_le_bytes());
    vec![rpc::encode_bind_ack(CALL_ID, true), rpc::encode_bind_ack(CALL_ID, false), nak, rpc::encode_bind(CALL_ID)]
}

fn check_reply(bytes: &[u8]) -> String {
    let decoded = rpc::decode_reply(bytes, CALL_ID);
    if let Ok(reply) = &decoded {
        // A reader stops at frag_length: what follows belongs to the next PDU.
        let len = rpc::frag_length(bytes).expect("a decoded reply has a fragment length");
        assert!(len <= bytes.len());
        assert_eq!(
            rpc::decode_reply(&bytes[..len], CALL_ID).as_ref(),
            Ok(reply),
            "the bytes after frag_length counted"
        );
        let longer = [bytes, b"trailing"].concat();
        assert_eq!(rpc::decode_reply(&longer, CALL_ID).as_ref(), Ok(reply), "the bytes after the reply counted");
    }
    outcome(&decoded, variant)
}

/// A DCE/RPC header that is right or nearly right, over a hostile bind_ack or bind_nak body.
fn hostile_reply() -> impl Strategy<Value = Vec<u8>> {
    let ptype = prop_oneof![4 => Just(12u8), 2 => Just(13u8), 1 => any::<u8>()];
    let drep = prop_oneof![8 => Just(0x10u8), 1 => any::<u8>()];
    let call_id = prop_oneof![8 => Just(CALL_ID), 1 => any::<u32>()];
    let sec_addr = prop_oneof![vec(any::<u8>(), 0..12), Just(b"1688\0".to_vec())];
    (ptype, drep, call_id, sec_addr, 0u8..5, any::<u16>(), 0u8..3, vec(any::<u8>(), 0..28), any::<u16>()).prop_map(
        |(ptype, drep, call_id, sec_addr, len_mode, any_len, sec_mode, rest, any_sec)| {
            let mut p = vec![5, 0, ptype, 3, drep, 0, 0, 0, 0, 0, 0, 0];
            p.extend_from_slice(&call_id.to_le_bytes());
            p.extend_from_slice(&[0xd0, 0x16, 0xd0, 0x16, 0, 0, 0, 0]);
            let sec_len = if sec_mode == 0 { any_sec } else { sec_addr.len() as u16 };
            p.extend_from_slice(&sec_len.to_le_bytes());
            p.extend_from_slice(&sec_addr);
            p.extend_from_slice(&rest);
            let len = match len_mode {
                0 | 1 => p.len() as u16,
                2 => p.len() as u16 + 1,
                3 => 16,
                _ => any_len,
            };
            p[8..10].copy_from_slice(&len.to_le_bytes());
            p
        },
    )
}

const REPLY_SHALLOW: &[&str] = &["err NotRpc"];

#[test]
fn every_mutation_of_every_bind_reply() {
    let tally = exhaustive(&reply_seeds(), 1, check_reply);
    let wanted = [
        ("ok Accepted", 500),
        ("ok Rejected", 500),
        ("ok Nak", 200),
        ("err Short", 300),
        ("err UnexpectedType", 1000),
        ("err CallId", 100),
        ("err DataRepresentation", 100),
        ("err NoResult", 20),
    ];
    tally.assert_deep("bind reply, single mutations", 3000, &wanted, REPLY_SHALLOW);
}

#[test]
fn random_mutations_and_hostile_bodies_of_bind_replies() {
    let tally = random(mutated(reply_seeds()), check_reply);
    tally.assert_deep("bind reply, stacked mutations", cases() / 20, &[("err Short", 1)], REPLY_SHALLOW);
    let tally = random(hostile_reply(), check_reply);
    let wanted = [("err Short", cases() / 20), ("ok Rejected", 1)];
    tally.assert_deep("bind reply, hostile bodies", cases() / 20, &wanted, REPLY_SHALLOW);
}

// ---------------------------------------------------------------------------------------------
// TKEY answers (RFC 2930, RFC 3645)

fn sample_tkey() -> Tkey {
    Tkey {
        algorithm: "gss-tsig".into(),
        inception: 1_700_000_000,
        expiration: 1_700_086_400,
        mode: tkey::MODE_GSSAPI,
        error: 0,
        key: vec![0xa1, 0x81, 0x9b, 0x30, 0x81, 0x98, 0xa0, 0x03, 0x0a, 0x01, 0x00],
    }
}

/// A response with the question and, in the answer section, `before` A records and then the
/// TKEY record, all names uncompressed.
fn tkey_message(t: &Tkey, before: u16) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x84, 0x00, 0, 1];
    m.extend_from_slice(&(before + 1).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(b"\x04k123\x03dc1\x04corp\x04test\x00\x00\xf9\x00\xff");
    for _ in 0..before {
        m.extend_from_slice(b"\x03dc1\x04corp\x04test\x00\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\x7f\x00\x00\x15");
    }
    m.extend_from_slice(b"\x04k123\x03dc1\x04corp\x04test\x00\x00\xf9\x00\xff\x00\x00\x00\x00");
    let rdata = tkey::encode_rdata(t);
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(&rdata);
    m
}

fn tkey_seeds() -> Vec<Vec<u8>> {
    let t = sample_tkey();
    let mut compressed = vec![0x12, 0x34, 0x84, 0x00, 0, 1, 0, 2, 0, 0, 0, 0];
    compressed.extend_from_slice(b"\x04k123\x03dc1\x04corp\x04test\x00\x00\xf9\x00\xff");
    let alg_at = compressed.len() as u8;
    compressed.extend_from_slice(b"\x08gss-tsig\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04\x7f\x00\x00\x01");
    compressed.extend_from_slice(&[0xc0, 12, 0, 249, 0, 255, 0, 0, 0, 0]);
    let full = tkey::encode_rdata(&t);
    let alg_len = full.iter().position(|b| *b == 0).unwrap_or(0) + 1;
    let rdata = [&[0xc0, alg_at][..], &full[alg_len..]].concat();
    compressed.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    compressed.extend_from_slice(&rdata);
    vec![tkey_message(&t, 0), tkey_message(&t, 2), compressed]
}

fn check_tkey(bytes: &[u8]) -> String {
    let found = tkey::find_in_answer(bytes);
    if let Ok(t) = &found {
        let longer = [bytes, &[0xff; 3]].concat();
        assert_eq!(tkey::find_in_answer(&longer).as_ref(), Ok(t), "bytes after the TKEY record counted");
        // encode_rdata writes the algorithm as dot-separated labels: whatever read as such comes back.
        if t.algorithm.split('.').all(|l| !l.is_empty() && l.len() <= 63) {
            assert_eq!(tkey::find_in_answer(&tkey_message(t, 1)).as_ref(), Ok(t), "a TKEY read did not round-trip");
        }
    }
    outcome(&found, |t| if t.algorithm == "gss-tsig" { "gss-tsig".into() } else { "other algorithm".into() })
}

/// A DNS header with small counts over names that may point anywhere, loop or use the reserved
/// label types, and records whose RDLENGTH may lie.
fn hostile_tkey() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        8 => Just(b"\x04k123\x03dc1\x04corp\x04test\x00".to_vec()),
        2 => (0xc0u8..=0xff, any::<u8>()).prop_map(|(hi, lo)| vec![hi, lo % 80]),
        1 => (0x40u8..0xc0, vec(any::<u8>(), 0..4)).prop_map(|(len, rest)| [&[len][..], &rest].concat()),
        1 => vec(0u8..64, 0..12),
    ];
    let rtype = prop_oneof![3 => Just(tkey::TYPE_TKEY), 1 => Just(1u16), 1 => any::<u16>()];
    let algorithm = prop_oneof![
        4 => Just(b"\x08gss-tsig\x00".to_vec()),
        1 => any::<u8>().prop_map(|lo| vec![0xc0, lo % 80]),
        1 => vec(any::<u8>(), 0..4),
    ];
    // Algorithm, inception, expiration, mode, error, key size (which may lie), key, other size.
    let tkey_rdata = (algorithm, any::<[u8; 12]>(), vec(any::<u8>(), 0..16), 0u8..4, any::<u16>()).prop_map(
        |(algorithm, fixed, key, size_mode, any_size)| {
            let size = if size_mode < 3 { key.len() as u16 } else { any_size };
            [algorithm, fixed.to_vec(), size.to_be_bytes().to_vec(), key, vec![0, 0]].concat()
        },
    );
    let rdata = prop_oneof![
        4 => tkey_rdata,
        1 => Just(tkey::encode_rdata(&sample_tkey())),
        1 => vec(any::<u8>(), 0..24),
    ];
    let record = (name.clone(), rtype, rdata, 0u8..6, any::<u16>());
    (0u16..3, name, vec(record, 1..4), 0u8..6).prop_map(|(qdcount, qname, records, ancount_mode)| {
        let ancount = match ancount_mode {
            0..=3 => records.len() as u16,
            4 => records.len() as u16 + 1,
            _ => 0,
        };
        let mut m = vec![0x12, 0x34, 0x84, 0x00];
        m.extend_from_slice(&qdcount.to_be_bytes());
        m.extend_from_slice(&ancount.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        for _ in 0..qdcount {
            m.extend_from_slice(&qname);
            m.extend_from_slice(&[0, 249, 0, 255]);
        }
        for (owner, rtype, rdata, len_mode, any_len) in records {
            m.extend_from_slice(&owner);
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&[0, 255, 0, 0, 0, 0]);
            let len = match len_mode {
                0..=3 => rdata.len() as u16,
                4 => rdata.len() as u16 + 1,
                _ => any_len,
            };
            m.extend_from_slice(&len.to_be_bytes());
            m.extend_from_slice(&rdata);
        }
        m
    })
}

const TKEY_SHALLOW: &[&str] = &[];

#[test]
fn every_mutation_of_every_tkey_answer() {
    let tally = exhaustive(&tkey_seeds(), 1, check_tkey);
    let wanted = [
        ("ok gss-tsig", 3000),
        ("ok other algorithm", 300),
        ("err Short", 500),
        ("err BadName", 500),
        ("err Missing", 200),
    ];
    tally.assert_deep("TKEY answer, single mutations", 5000, &wanted, TKEY_SHALLOW);
}

#[test]
fn random_mutations_and_hostile_bodies_of_tkey_answers() {
    let tally = random(mutated(tkey_seeds()), check_tkey);
    tally.assert_deep("TKEY answer, stacked mutations", cases() / 20, &[("err", 1)], TKEY_SHALLOW);
    let tally = random(hostile_tkey(), check_tkey);
    let wanted = [("err Short", cases() / 20), ("err BadName", 1)];
    tally.assert_deep("TKEY answer, hostile bodies", cases() / 20, &wanted, TKEY_SHALLOW);
}

/// How many inputs each random pass draws (proptest reads `PROPTEST_CASES`).
fn cases() -> usize {
    Config::default().cases as usize
}

/// Security descriptors are the one codec whose samples (1.3 KiB, 20 ACEs each) make the full
/// single-mutation pass slow (a minute unoptimised): it takes all of them from 10,000 cases up
/// (the CI fuzz step), and every 16th in a plain `cargo test`.
fn descriptor_stride() -> usize {
    if cases() >= FUZZ_STEP_CASES { 1 } else { 16 }
}

/// From this many cases up the run is the CI fuzz step's, not a plain `cargo test`.
const FUZZ_STEP_CASES: usize = 10_000;
