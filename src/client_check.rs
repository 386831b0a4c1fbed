//! `kmsdns client-check DOMAIN`: KMS discovery as a client does it, without activating.
//!
//! 1. `_vlmcs._tcp.DOMAIN` SRV through the resolver a client uses (the system's, or
//!    `--resolver`), with RD=1: the client's view, the resolver's cache included, not the
//!    authoritative one. The TTL in its answer is what is left of its cached copy.
//! 2. The targets in the order RFC 2782 gives a client: the lowest priority first; within a
//!    priority, a weighted random pick, repeated on what is left ([`client_order`]).
//! 3. Each target's A and AAAA through the same resolver, and each address probed with the
//!    KMS bind ([`crate::observe::probe`]), one after the other in one order a client could
//!    take, with the client's connect timeout and no retry: a refused connection costs the
//!    client nothing, a black hole costs it the whole connect timeout.
//! 4. The verdict ([`judge`], pure): which host a client finds first, the worst case time to a
//!    working host, every target that is stale, and the TTL left.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};
use serde::Serialize;

use crate::audit::{Code, Severity};
use crate::model::{ProbeState, ReadError, Resolution, SrvRecord};
use crate::name::DnsName;
use crate::observe::dns::MAX_ALIASES;
use crate::observe::{DnsReader, probe};

/// The JSON schema of `kmsdns client-check --format json`.
pub const SCHEMA: u32 = 1;

/// What Windows takes to give up a TCP handshake with its default SYN retries: an initial
/// timeout of 3 s, doubled for each of 2 retransmissions (3 + 6 + 12 s; Microsoft KB 2786464).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(21);
/// How long one DNS question to the resolver may take, and how often it is asked again.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a resolver named with `--resolver` listens: its address, or its name's addresses
/// through the system resolver.
pub async fn resolver_addrs(named: &crate::inventory::ServerAddr) -> Result<Vec<SocketAddr>, ReadError> {
    crate::observe::dns::server_socket_addrs(named, DNS_TIMEOUT).await
}
pub const DNS_RETRIES: u8 = 1;

/// A resolver to ask, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolver {
    pub addr: SocketAddr,
    /// `--resolver`, or the file it was read from.
    pub from: String,
}

/// The `nameserver` lines of a resolv.conf, in order, on port 53. A scoped IPv6 address
/// (`fe80::1%eth0`) is left out: it cannot be asked without its interface.
pub fn system_resolvers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()).flatten()
        })
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// What the resolver said of `_vlmcs._tcp.DOMAIN` SRV.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum SrvLookup {
    Records {
        records: Vec<SrvRecord>,
        /// Seconds left of the resolver's cached copy of the RRset.
        ttl_left: u32,
        /// Targets no client can use (RFC 2782's "." target: the service is not offered here).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        unusable: Vec<String>,
    },
    /// The name exists but holds no SRV.
    NoData { negative_ttl_left: Option<u32> },
    /// The name does not exist.
    NxDomain { negative_ttl_left: Option<u32> },
    /// No answer: the resolver failed, refused, or could not be reached.
    Failed { error: ReadError },
}

/// A response of a resolver, once its RCODE is read: the answer section, or a negative
/// answer with the seconds the resolver still caches it (RFC 2308: the SOA's TTL, at most its
/// MINIMUM).
enum Said<'a> {
    Answer(&'a [Record]),
    Negative { nxdomain: bool, ttl: Option<u32> },
}

fn read_response(m: &Message) -> Result<Said<'_>, ReadError> {
    let negative_ttl = || {
        m.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(ttl(r.ttl).min(soa.minimum)),
            _ => None,
        })
    };
    match m.metadata.response_code {
        ResponseCode::NoError if !m.answers.is_empty() => Ok(Said::Answer(&m.answers)),
        // An empty answer from a server that neither recursed nor holds the zone is a referral.
        ResponseCode::NoError if !m.metadata.recursion_available && !m.metadata.authoritative => Err(ReadError::Rcode(
            "a referral (RA=0, AA=0): it does not recurse, so clients cannot use it as their resolver".into(),
        )),
        ResponseCode::NoError => Ok(Said::Negative { nxdomain: false, ttl: negative_ttl() }),
        ResponseCode::NXDomain => Ok(Said::Negative { nxdomain: true, ttl: negative_ttl() }),
        ResponseCode::ServFail => Err(ReadError::ServFail),
        ResponseCode::Refused => Err(ReadError::Refused),
        other => Err(ReadError::Rcode(other.to_string())),
    }
}

/// A TTL as RFC 2181 §8 reads it: a value with the top bit set is 0.
fn ttl(raw: u32) -> u32 {
    if raw > i32::MAX as u32 { 0 } else { raw }
}

/// The name `name` stands for in an answer: its CNAME chain followed as far as the answer goes.
fn canonical(answers: &[Record], name: &DnsName) -> DnsName {
    let mut current = name.clone();
    for _ in 0..MAX_ALIASES {
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) if current.is(&r.name) => DnsName::from_hickory(&c.0),
            _ => None,
        });
        match next {
            Some(n) => current = n,
            None => break,
        }
    }
    current
}

/// The SRV lookup a resolver's response to `owner SRV` says.
pub fn srv_lookup(m: &Message, owner: &DnsName) -> SrvLookup {
    let answers = match read_response(m) {
        Ok(Said::Answer(a)) => a,
        Ok(Said::Negative { nxdomain: true, ttl }) => return SrvLookup::NxDomain { negative_ttl_left: ttl },
        Ok(Said::Negative { nxdomain: false, ttl }) => return SrvLookup::NoData { negative_ttl_left: ttl },
        Err(error) => return SrvLookup::Failed { error },
    };
    let owner = canonical(answers, owner);
    let mut records = Vec::new();
    let mut unusable = Vec::new();
    let mut ttl_left = u32::MAX;
    for r in answers.iter().filter(|r| owner.is(&r.name)) {
        let RData::SRV(s) = &r.data else { continue };
        ttl_left = ttl_left.min(ttl(r.ttl));
        match DnsName::from_hickory(&s.target) {
            Some(target) => records.push(SrvRecord {
                target,
                port: s.port,
                priority: s.priority,
                weight: s.weight,
                ttl: ttl(r.ttl),
            }),
            None => unusable.push(format!("SRV {} {} {} {}", s.priority, s.weight, s.port, s.target.to_ascii())),
        }
    }
    records.sort();
    records.dedup_by(|a, b| a.same_rdata(b));
    if records.is_empty() && unusable.is_empty() {
        // Only an alias with nothing at its end.
        return SrvLookup::NoData { negative_ttl_left: None };
    }
    SrvLookup::Records { records, ttl_left, unusable }
}

/// The addresses a resolver's response to `name A` (or AAAA) gives; empty for a negative answer.
fn addresses_in(m: &Message, name: &DnsName) -> Result<Vec<IpAddr>, ReadError> {
    let answers = match read_response(m)? {
        Said::Answer(a) => a,
        Said::Negative { .. } => return Ok(vec![]),
    };
    let name = canonical(answers, name);
    Ok(answers
        .iter()
        .filter(|r| name.is(&r.name))
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect())
}

/// A and AAAA, put together: any address counts (and says what was not read).
fn resolution(a: Result<Vec<IpAddr>, ReadError>, aaaa: Result<Vec<IpAddr>, ReadError>) -> Resolution {
    let mut addresses = Vec::new();
    let mut failed = None;
    for r in [a, aaaa] {
        match r {
            Ok(list) => addresses.extend(list),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    addresses.sort();
    addresses.dedup();
    match (addresses.is_empty(), failed) {
        (false, incomplete) => Resolution::Addresses { addresses, incomplete },
        (true, Some(error)) => Resolution::Failed { error },
        (true, None) => Resolution::NoAddress,
    }
}

/// One priority of the RRset, as a client takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriorityGroup {
    pub priority: u16,
    /// The targets, most often picked first first.
    pub targets: Vec<Pick>,
    /// Every order of these targets is possible (RFC 2782's pick can draw each at each step):
    /// how many there are (saturating).
    pub orders: u64,
    /// Equal weights: every order is as likely as every other.
    pub equal_weights: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pick {
    pub target: DnsName,
    pub port: u16,
    pub weight: u16,
    /// The share of clients that try this target first among its priority.
    pub first_share: f64,
}

/// The RRset as RFC 2782 orders it for a client. Within a priority, the records of weight 0
/// are put first "in any order" (taken here as each order alike), a number is drawn in
/// 0..=S (S the sum of the weights) and the first record whose running sum reaches it is
/// picked: a positive weight w is first with chance w/(S+1), and the draw of 0 goes to the
/// head of the list, so a weight-0 record is picked rarely, but can be.
pub fn client_order(records: &[SrvRecord]) -> Vec<PriorityGroup> {
    let mut groups: BTreeMap<u16, Vec<&SrvRecord>> = BTreeMap::new();
    for r in records {
        groups.entry(r.priority).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(priority, rs)| {
            let sum: u64 = rs.iter().map(|r| u64::from(r.weight)).sum();
            let zeros = rs.iter().filter(|r| r.weight == 0).count() as f64;
            let positives = rs.len() as f64 - zeros;
            let n = rs.len() as f64;
            let share = |w: u16| -> f64 {
                let draws = (sum + 1) as f64;
                match (sum, w) {
                    (0, _) => 1.0 / n,
                    (_, 0) => 1.0 / (draws * zeros),
                    (_, w) if zeros == 0.0 => (f64::from(w) + 1.0 / positives) / draws,
                    (_, w) => f64::from(w) / draws,
                }
            };
            let mut targets: Vec<Pick> = rs
                .iter()
                .map(|r| Pick {
                    target: r.target.clone(),
                    port: r.port,
                    weight: r.weight,
                    first_share: share(r.weight),
                })
                .collect();
            targets.sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| a.target.cmp(&b.target)));
            let orders = (1..=rs.len() as u64).try_fold(1u64, |acc, k| acc.checked_mul(k)).unwrap_or(u64::MAX);
            let equal_weights = rs.iter().all(|r| r.weight == rs[0].weight);
            PriorityGroup { priority, targets, orders, equal_weights }
        })
        .collect()
}

/// One order a client could take: by priority, and within one the heaviest first.
pub fn probe_order(records: &[SrvRecord]) -> Vec<SrvRecord> {
    let mut v = records.to_vec();
    v.sort_by(|a, b| {
        (a.priority, std::cmp::Reverse(a.weight), &a.target, a.port).cmp(&(
            b.priority,
            std::cmp::Reverse(b.weight),
            &b.target,
            b.port,
        ))
    });
    v
}

/// One address of a target, probed as a client connects.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressSeen {
    pub endpoint: SocketAddr,
    pub state: ProbeState,
    pub elapsed: Duration,
    /// No answer came back within the connect timeout: a black hole, not a refusal.
    pub silent: bool,
}

/// One SRV target as a client meets it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSeen {
    pub record: SrvRecord,
    pub resolution: Resolution,
    pub lookup: Duration,
    pub addresses: Vec<AddressSeen>,
}

/// Everything [`check`] saw, for [`judge`].
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub domain: DnsName,
    /// The resolver whose answer counts; None when there was none to ask.
    pub resolver: Option<Resolver>,
    /// Resolvers asked before it that gave no answer, with why.
    pub resolvers_failed: Vec<String>,
    pub connect_timeout: Duration,
    pub srv: SrvLookup,
    /// In the order probed ([`probe_order`]).
    pub targets: Vec<TargetSeen>,
}

/// `kmsdns client-check --format json`, schema 1.
#[derive(Debug, Clone, Serialize)]
pub struct ClientCheck {
    pub schema: u32,
    pub generated: String,
    pub domain: DnsName,
    /// The name asked: `_vlmcs._tcp.DOMAIN`.
    pub owner: DnsName,
    pub resolver: Option<Resolver>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resolvers_failed: Vec<String>,
    pub connect_timeout_ms: u64,
    pub srv: SrvLookup,
    pub order: Vec<PriorityGroup>,
    /// In one order a client could take, as probed.
    pub targets: Vec<TargetReport>,
    pub verdict: Verdict,
    pub problems: Vec<Problem>,
    pub exit_code: i32,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: DnsName,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
    /// `addresses`, `no-address` or `failed`.
    pub resolution: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ReadError>,
    pub addresses: Vec<AddressReport>,
    /// At least one address accepted the KMS bind.
    pub works: bool,
    /// The time a client loses on this target before it moves on (a working one: on its
    /// failing addresses, were they tried first).
    pub lost_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AddressReport {
    pub endpoint: SocketAddr,
    /// `kms-up`, `not-kms` or `down`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// No answer within the connect timeout: a black hole.
    pub silent: bool,
    pub elapsed_ms: u64,
    /// What a client loses on it: nothing when it answers as KMS.
    pub lost_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The working targets a client can find first: those of the lowest priority that has one.
    pub first: Vec<DnsName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_priority: Option<u16>,
    /// The longest a client can take to reach a working host, in the worst order it could
    /// take; None when no target works.
    pub worst_case_ms: Option<u64>,
    /// The shortest: the failing targets of every lower priority, which always come first.
    pub best_case_ms: Option<u64>,
    /// With no working target: how long a client tries before it gives up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub give_up_after_ms: Option<u64>,
    /// Every target a client cannot use.
    pub stale: Vec<DnsName>,
    /// Seconds left of the resolver's cached answer (positive or negative): how long a
    /// fixed record may take to reach clients that use it, their own cache aside.
    pub ttl_left: Option<u32>,
}

/// One thing a client meets that is wrong. `code` names the audit finding that says the same
/// of the authoritative data, where there is one (`kmsdns explain` and `--audit` use them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<Code>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<DnsName>,
    pub message: String,
    pub fix: String,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn human(d: Duration) -> String {
    let ms = ms(d);
    match ms {
        0 => "nothing".into(),
        1..=999 => format!("{ms}ms"),
        // Milliseconds are noise beyond a second.
        _ => humantime::format_duration(Duration::from_millis(ms / 100 * 100)).to_string(),
    }
}

/// Seconds as a person reads them.
pub fn human_secs(s: u32) -> String {
    humantime::format_duration(Duration::from_secs(u64::from(s))).to_string()
}

impl TargetSeen {
    fn works(&self) -> bool {
        self.addresses.iter().any(|a| a.state == ProbeState::KmsUp)
    }

    /// What a client loses on this target: every failing address (a working target's failing
    /// addresses as if tried first), and the lookup when it gave no address.
    fn lost(&self) -> Duration {
        let probes: Duration = self.addresses.iter().filter(|a| a.state != ProbeState::KmsUp).map(|a| a.elapsed).sum();
        match self.resolution {
            Resolution::Addresses { .. } => probes,
            _ => self.lookup,
        }
    }
}

/// The verdict on what a client met. Pure.
pub fn judge(seen: &Seen, generated: String) -> ClientCheck {
    let owner = seen.domain.vlmcs_owner();
    let resolver = seen.resolver.as_ref().map(|r| r.addr.to_string()).unwrap_or_else(|| "no resolver".into());
    let mut problems = Vec::new();
    let (records, ttl_left): (&[SrvRecord], Option<u32>) = match &seen.srv {
        SrvLookup::Records { records, ttl_left, .. } => (records, Some(*ttl_left)),
        SrvLookup::NoData { negative_ttl_left } | SrvLookup::NxDomain { negative_ttl_left } => {
            (&[], *negative_ttl_left)
        }
        SrvLookup::Failed { .. } => (&[], None),
    };
    match &seen.srv {
        SrvLookup::Records { unusable, .. } if !unusable.is_empty() => problems.push(Problem {
            severity: if records.is_empty() { Severity::Critical } else { Severity::Warning },
            code: records.is_empty().then_some(Code::NoHealthyHost),
            target: None,
            message: format!(
                "{owner} holds {} (RFC 2782: a '.' target says the service is not offered in this domain); clients skip it",
                unusable.join(", ")
            ),
            fix: format!("delete it from _vlmcs._tcp.{}, or publish a real KMS host", seen.domain),
        }),
        SrvLookup::Records { .. } => {}
        SrvLookup::NoData { .. } | SrvLookup::NxDomain { .. } => {
            let what = if matches!(seen.srv, SrvLookup::NxDomain { .. }) { "does not exist (NXDOMAIN)" } else { "holds no SRV record" };
            let cached = ttl_left
                .map(|t| format!("; {resolver} keeps this answer for {} more, so a record published now reaches its clients after that", human_secs(t)))
                .unwrap_or_default();
            problems.push(Problem {
                severity: Severity::Critical,
                code: Some(Code::NoHealthyHost),
                target: None,
                message: format!(
                    "{owner} {what} as {resolver} answers it: clients in {} cannot find a KMS host and get 0x8007232B (DNS name does not exist){cached}",
                    seen.domain
                ),
                fix: format!(
                    "publish a KMS host (`kmsdns --audit` shows what the authoritative servers hold, `kmsdns repair --apply` adds the active hosts' records); a client also asks in its DNS suffix search list, so check that {} is its domain",
                    seen.domain
                ),
            });
        }
        SrvLookup::Failed { error } => {
            let code = if *error == ReadError::ServFail { " and get 0x8007232A (DNS server failure)" } else { "" };
            problems.push(Problem {
                severity: Severity::Critical,
                code: None,
                target: None,
                message: format!("{resolver} gave no answer for {owner} SRV: {error}; clients that use it cannot find a KMS host{code}"),
                fix: "check the resolver and what it forwards to; `kmsdns --audit` shows whether the zone's authoritative servers answer (server-unreachable)".into(),
            });
        }
    }

    let timeout = human(seen.connect_timeout);
    let targets: Vec<TargetReport> = seen
        .targets
        .iter()
        .map(|t| {
            let (resolution, error) = match &t.resolution {
                Resolution::Addresses { incomplete, .. } => ("addresses", incomplete.clone()),
                Resolution::NoAddress => ("no-address", None),
                Resolution::Failed { error } => ("failed", Some(error.clone())),
            };
            let addresses = t
                .addresses
                .iter()
                .map(|a| {
                    let (state, detail) = match &a.state {
                        ProbeState::KmsUp => ("kms-up", None),
                        ProbeState::NotKms(d) => ("not-kms", Some(d.clone())),
                        ProbeState::Down(d) => ("down", Some(d.clone())),
                    };
                    let lost = if a.state == ProbeState::KmsUp { 0 } else { ms(a.elapsed) };
                    AddressReport {
                        endpoint: a.endpoint,
                        state,
                        detail,
                        silent: a.silent,
                        elapsed_ms: ms(a.elapsed),
                        lost_ms: lost,
                    }
                })
                .collect();
            let r = &t.record;
            TargetReport {
                target: r.target.clone(),
                port: r.port,
                priority: r.priority,
                weight: r.weight,
                resolution,
                error,
                addresses,
                works: t.works(),
                lost_ms: ms(t.lost()),
            }
        })
        .collect();

    for t in seen.targets.iter().filter(|t| !t.works()) {
        let r = &t.record;
        let lost = human(t.lost());
        let (severity, code, message) = match &t.resolution {
            Resolution::NoAddress => (
                Severity::Critical,
                Some(Code::StaleUnresolvable),
                format!("{r}: {} has no A or AAAA as {resolver} answers it; a client skips it", r.target),
            ),
            Resolution::Failed { error } => (
                Severity::Warning,
                None,
                format!(
                    "{r}: the addresses of {} could not be looked up through {resolver} ({error}); clients that use it cannot reach it now",
                    r.target
                ),
            ),
            Resolution::Addresses { .. } => {
                let not_kms = t.addresses.iter().find_map(|a| match &a.state {
                    ProbeState::NotKms(d) => Some(format!("{}: {d}", a.endpoint)),
                    _ => None,
                });
                match not_kms {
                    Some(why) => (
                        Severity::Critical,
                        Some(Code::NotKms),
                        format!("{r}: the port answers, but not as a KMS host ({why}); a client loses {lost} on it"),
                    ),
                    None if t.addresses.iter().any(|a| a.silent) => (
                        Severity::Critical,
                        Some(Code::StaleDead),
                        format!(
                            "{r}: {} does not answer on port {} and nothing refuses the connection either (a black hole: a firewall that drops, a host that is gone): each client that tries it waits out its connect timeout ({timeout}) before it moves on, and gets 0x800706BA if no other host works",
                            r.target, r.port
                        ),
                    ),
                    None => (
                        Severity::Critical,
                        Some(Code::StaleDead),
                        format!(
                            "{r}: {} refuses connections on port {} ({}); a client loses {lost} on it, but gets 0x800706BA if no other host works",
                            r.target,
                            r.port,
                            t.addresses
                                .iter()
                                .filter_map(|a| match &a.state {
                                    ProbeState::Down(d) => Some(d.as_str()),
                                    _ => None,
                                })
                                .next()
                                .unwrap_or("down"),
                        ),
                    ),
                }
            }
        };
        problems.push(Problem {
            severity,
            code,
            target: Some(r.target.clone()),
            message,
            fix: format!(
                "delete `_vlmcs._tcp.{}. IN {r}` (`kmsdns --audit` and `kmsdns repair` judge it on the authoritative servers), or bring the KMS service on {} back",
                seen.domain, r.target
            ),
        });
    }

    // The verdict: groups in priority order, each tried whole before the next.
    let mut verdict = Verdict {
        first: vec![],
        first_priority: None,
        worst_case_ms: None,
        best_case_ms: None,
        give_up_after_ms: None,
        stale: seen.targets.iter().filter(|t| !t.works()).map(|t| t.record.target.clone()).collect(),
        ttl_left,
    };
    verdict.stale.dedup();
    let mut groups: BTreeMap<u16, Vec<&TargetSeen>> = BTreeMap::new();
    for t in &seen.targets {
        groups.entry(t.record.priority).or_default().push(t);
    }
    let mut before = Duration::ZERO;
    for (priority, ts) in &groups {
        let failing: Duration = ts.iter().filter(|t| !t.works()).map(|t| t.lost()).sum();
        let working: Vec<&&TargetSeen> = ts.iter().filter(|t| t.works()).collect();
        if working.is_empty() {
            before += failing;
            continue;
        }
        let own = working.iter().map(|t| t.lost()).max().unwrap_or_default();
        verdict.first = working.iter().map(|t| t.record.target.clone()).collect();
        verdict.first.dedup();
        verdict.first_priority = Some(*priority);
        verdict.best_case_ms = Some(ms(before));
        verdict.worst_case_ms = Some(ms(before + failing + own));
        break;
    }
    if verdict.first.is_empty() && !seen.targets.is_empty() {
        verdict.give_up_after_ms = Some(ms(before));
        problems.push(Problem {
            severity: Severity::Critical,
            code: Some(Code::NoHealthyHost),
            target: None,
            message: format!(
                "none of the {} target(s) of {owner} answers as a KMS host: a client tries them all for {} and gets 0xC004F074 (no KMS could be contacted)",
                seen.targets.len(),
                human(before)
            ),
            fix: "bring a KMS host up, or publish a working one (`kmsdns --audit`, `kmsdns repair`); `slmgr /dlv` on a host shows its state".into(),
        });
    }

    let exit_code = match problems.iter().map(|p| p.severity).max() {
        Some(Severity::Critical) => 2,
        Some(Severity::Warning) => 1,
        _ => 0,
    };
    ClientCheck {
        schema: SCHEMA,
        generated,
        domain: seen.domain.clone(),
        owner,
        resolver: seen.resolver.clone(),
        resolvers_failed: seen.resolvers_failed.clone(),
        connect_timeout_ms: ms(seen.connect_timeout),
        srv: seen.srv.clone(),
        order: client_order(records),
        targets,
        verdict,
        problems,
        exit_code,
    }
}

/// How the check asks and probes.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Asked in order; the next only when one gives no answer at all (a timeout, a network
    /// error), as a stub resolver does.
    pub resolvers: Vec<Resolver>,
    pub connect_timeout: Duration,
    pub dns_timeout: Duration,
    pub dns_retries: u8,
}

/// Does what a KMS client does for `domain`, short of activating. The only I/O here.
pub async fn check(domain: &DnsName, settings: &Settings) -> Seen {
    let reader = DnsReader::new(settings.dns_timeout, settings.dns_retries);
    let owner = domain.vlmcs_owner();
    let mut seen = Seen {
        domain: domain.clone(),
        resolver: None,
        resolvers_failed: vec![],
        connect_timeout: settings.connect_timeout,
        srv: SrvLookup::Failed { error: ReadError::Network("no resolver is configured".into()) },
        targets: vec![],
    };
    for (i, r) in settings.resolvers.iter().enumerate() {
        let srv = match reader.recursive(r.addr, &owner, RecordType::SRV).await {
            Ok(m) => srv_lookup(&m, &owner),
            Err(error) => SrvLookup::Failed { error },
        };
        let last = i + 1 == settings.resolvers.len();
        if let SrvLookup::Failed { error: e @ (ReadError::Timeout | ReadError::Network(_)) } = &srv
            && !last
        {
            seen.resolvers_failed.push(format!("{}: {e}", r.addr));
            continue;
        }
        seen.resolver = Some(r.clone());
        seen.srv = srv;
        break;
    }
    let (Some(resolver), SrvLookup::Records { records, .. }) = (&seen.resolver, &seen.srv) else {
        return seen;
    };
    let resolver = resolver.addr;
    for record in probe_order(records) {
        let started = Instant::now();
        let (a, aaaa) = tokio::join!(
            reader.recursive(resolver, &record.target, RecordType::A),
            reader.recursive(resolver, &record.target, RecordType::AAAA)
        );
        let resolution = resolution(
            a.and_then(|m| addresses_in(&m, &record.target)),
            aaaa.and_then(|m| addresses_in(&m, &record.target)),
        );
        let lookup = started.elapsed();
        let mut addresses = Vec::new();
        if let Resolution::Addresses { addresses: list, .. } = &resolution {
            for ip in list {
                let endpoint = SocketAddr::new(*ip, record.port);
                let started = Instant::now();
                // One attempt, as a client makes it: a retry would double a black hole's cost.
                let state = probe::probe(endpoint, settings.connect_timeout, 0).await;
                let elapsed = started.elapsed();
                let silent = state != ProbeState::KmsUp && elapsed >= settings.connect_timeout;
                addresses.push(AddressSeen { endpoint, state, elapsed, silent });
            }
        }
        seen.targets.push(TargetSeen { record, resolution, lookup, addresses });
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::{A, CNAME, SOA, SRV};
    use hickory_proto::rr::{Name, RecordType};
    use std::net::Ipv4Addr;

    fn name(s: &str) -> DnsName {
        DnsName::parse(s).unwrap()
    }

    fn hname(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn srv(target: &str, priority: u16, weight: u16) -> SrvRecord {
        SrvRecord { target: name(target), port: 1688, priority, weight, ttl: 600 }
    }

    fn response(q: &str, rtype: RecordType, rcode: ResponseCode, answers: Vec<Record>) -> Message {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.metadata.recursion_available = true;
        m.metadata.response_code = rcode;
        m.add_query(Query::query(hname(q), rtype));
        m.answers = answers;
        m
    }

    #[test]
    fn resolv_conf_nameservers_in_order() {
        let conf = "# generated\nsearch corp.test\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\n  nameserver ::1\noptions ndots:1\n";
        let want: Vec<SocketAddr> = vec!["10.0.0.53:53".parse().unwrap(), "[::1]:53".parse().unwrap()];
        assert_eq!(system_resolvers(conf), want);
        assert!(system_resolvers("search corp.test\n").is_empty());
    }

    #[test]
    fn equal_weights_make_every_order_equally_likely() {
        let order =
            client_order(&[srv("c.test", 0, 0), srv("a.test", 0, 0), srv("b.test", 0, 0), srv("z.test", 10, 5)]);
        assert_eq!(order.len(), 2);
        let g = &order[0];
        assert_eq!((g.priority, g.orders, g.equal_weights), (0, 6, true));
        assert!(g.targets.iter().all(|p| (p.first_share - 1.0 / 3.0).abs() < 1e-9));
        let names: Vec<&str> = g.targets.iter().map(|p| p.target.as_str()).collect();
        assert_eq!(names, ["a.test", "b.test", "c.test"]);
        assert_eq!((order[1].priority, order[1].orders), (10, 1));
        assert!((order[1].targets[0].first_share - 1.0).abs() < 1e-9);
    }

    #[test]
    fn weights_share_the_first_pick_as_rfc_2782_draws_it() {
        // Draws 0..=100: kms1 takes 75 of them, kms2 25, and 0 goes to the weight-0 record.
        let order = client_order(&[srv("kms1.test", 0, 75), srv("kms2.test", 0, 25), srv("spare.test", 0, 0)]);
        let share = |t: &str| order[0].targets.iter().find(|p| p.target.as_str() == t).unwrap().first_share;
        assert!((share("kms1.test") - 75.0 / 101.0).abs() < 1e-9);
        assert!((share("kms2.test") - 25.0 / 101.0).abs() < 1e-9);
        assert!((share("spare.test") - 1.0 / 101.0).abs() < 1e-9);
        assert!(!order[0].equal_weights);
        assert_eq!(order[0].orders, 6);
        // Without a weight-0 record, the draw of 0 falls to whichever positive record heads the list.
        let order = client_order(&[srv("kms1.test", 0, 3), srv("kms2.test", 0, 1)]);
        let total: f64 = order[0].targets.iter().map(|p| p.first_share).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!((order[0].targets[0].first_share - 3.5 / 5.0).abs() < 1e-9);
    }

    fn seen(targets: Vec<TargetSeen>) -> Seen {
        let records: Vec<SrvRecord> = targets.iter().map(|t| t.record.clone()).collect();
        Seen {
            domain: name("corp.test"),
            resolver: Some(Resolver { addr: "127.0.0.1:53".parse().unwrap(), from: "--resolver".into() }),
            resolvers_failed: vec![],
            connect_timeout: Duration::from_secs(21),
            srv: SrvLookup::Records { records, ttl_left: 300, unusable: vec![] },
            targets,
        }
    }

    fn target(record: SrvRecord, states: &[(ProbeState, u64)]) -> TargetSeen {
        let addresses: Vec<AddressSeen> = states
            .iter()
            .enumerate()
            .map(|(i, (state, ms))| AddressSeen {
                endpoint: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8)), record.port),
                state: state.clone(),
                elapsed: Duration::from_millis(*ms),
                silent: *ms >= 21_000,
            })
            .collect();
        let resolution =
            Resolution::Addresses { addresses: addresses.iter().map(|a| a.endpoint.ip()).collect(), incomplete: None };
        TargetSeen { record, resolution, lookup: Duration::from_millis(1), addresses }
    }

    fn up() -> (ProbeState, u64) {
        (ProbeState::KmsUp, 2)
    }

    fn refused() -> (ProbeState, u64) {
        (ProbeState::Down("connect: Connection refused".into()), 0)
    }

    fn hole() -> (ProbeState, u64) {
        (ProbeState::Down("no answer within 21s".into()), 21_000)
    }

    #[test]
    fn the_worst_case_puts_every_failing_target_of_the_working_priority_first() {
        let s = seen(vec![
            target(srv("kms1.corp.test", 0, 0), &[up()]),
            target(srv("dead.corp.test", 0, 0), &[refused()]),
            target(srv("hole.corp.test", 0, 0), &[hole()]),
            target(srv("kms2.corp.test", 10, 0), &[up()]),
        ]);
        let c = judge(&s, "now".into());
        assert_eq!(c.verdict.first, [name("kms1.corp.test")]);
        assert_eq!(c.verdict.first_priority, Some(0));
        assert_eq!(c.verdict.best_case_ms, Some(0));
        assert_eq!(c.verdict.worst_case_ms, Some(21_000));
        assert_eq!(c.verdict.stale, [name("dead.corp.test"), name("hole.corp.test")]);
        assert_eq!(c.verdict.ttl_left, Some(300));
        let codes: Vec<(Option<Code>, Option<&str>)> =
            c.problems.iter().map(|p| (p.code, p.target.as_ref().map(DnsName::as_str))).collect();
        assert_eq!(
            codes,
            [(Some(Code::StaleDead), Some("dead.corp.test")), (Some(Code::StaleDead), Some("hole.corp.test"))]
        );
        assert!(c.problems[1].message.contains("black hole"), "{:?}", c.problems[1]);
        assert!(c.problems[0].message.contains("refuses connections"), "{:?}", c.problems[0]);
        assert_eq!(c.exit_code, 2);
    }

    #[test]
    fn a_lower_priority_that_all_fails_is_always_paid() {
        let s = seen(vec![
            target(srv("hole.corp.test", 0, 0), &[hole()]),
            target(srv("kms2.corp.test", 10, 50), &[up()]),
            target(srv("kms3.corp.test", 10, 50), &[hole(), up()]),
        ]);
        let c = judge(&s, "now".into());
        assert_eq!(c.verdict.first, [name("kms2.corp.test"), name("kms3.corp.test")]);
        assert_eq!(c.verdict.best_case_ms, Some(21_000));
        // kms3's own black-holed address, if it comes first.
        assert_eq!(c.verdict.worst_case_ms, Some(42_000));
        assert_eq!(c.verdict.stale, [name("hole.corp.test")]);
    }

    #[test]
    fn no_working_target_means_0xc004f074_after_every_cost() {
        let s = seen(vec![
            target(srv("hole.corp.test", 0, 0), &[hole()]),
            target(srv("dead.corp.test", 0, 0), &[refused()]),
        ]);
        let c = judge(&s, "now".into());
        assert!(c.verdict.first.is_empty());
        assert_eq!((c.verdict.worst_case_ms, c.verdict.give_up_after_ms), (None, Some(21_000)));
        let last = c.problems.last().unwrap();
        assert_eq!(last.code, Some(Code::NoHealthyHost));
        assert!(last.message.contains("0xC004F074"), "{last:?}");
    }

    #[test]
    fn a_clean_rrset_exits_0_and_an_absent_one_2() {
        let c = judge(&seen(vec![target(srv("kms1.corp.test", 0, 0), &[up()])]), "now".into());
        assert_eq!((c.exit_code, c.problems.len()), (0, 0));
        let mut s = seen(vec![]);
        s.srv = SrvLookup::NxDomain { negative_ttl_left: Some(60) };
        let c = judge(&s, "now".into());
        assert_eq!(c.exit_code, 2);
        assert_eq!(c.problems[0].code, Some(Code::NoHealthyHost));
        assert!(c.problems[0].message.contains("0x8007232B"));
        assert!(c.problems[0].message.contains("1m"), "{}", c.problems[0].message);
        assert_eq!(c.verdict.ttl_left, Some(60));
        s.srv = SrvLookup::Failed { error: ReadError::ServFail };
        let c = judge(&s, "now".into());
        assert!(c.problems[0].message.contains("0x8007232A"), "{:?}", c.problems[0]);
        assert_eq!((c.exit_code, c.verdict.ttl_left), (2, None));
    }

    #[test]
    fn a_resolvers_answer_is_read_with_its_ttl_and_aliases() {
        let owner = name("_vlmcs._tcp.corp.test");
        let rec = |n: &str, ttl, data| Record::from_rdata(hname(n), ttl, data);
        let m = response(
            "_vlmcs._tcp.corp.test.",
            RecordType::SRV,
            ResponseCode::NoError,
            vec![
                rec("_vlmcs._tcp.corp.test.", 300, RData::CNAME(CNAME(hname("_vlmcs._tcp.hq.test.")))),
                rec("_vlmcs._tcp.hq.test.", 41, RData::SRV(SRV::new(0, 0, 1688, hname("KMS1.hq.test.")))),
                rec("_vlmcs._tcp.hq.test.", 41, RData::SRV(SRV::new(0, 0, 1688, Name::root()))),
            ],
        );
        let SrvLookup::Records { records, ttl_left, unusable } = srv_lookup(&m, &owner) else { panic!() };
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].target, name("kms1.hq.test"));
        assert_eq!(ttl_left, 41);
        assert_eq!(unusable, ["SRV 0 0 1688 ."]);

        let mut nx = response("_vlmcs._tcp.corp.test.", RecordType::SRV, ResponseCode::NXDomain, vec![]);
        let mut soa = SOA::new(hname("ns1.corp.test."), hname("h.corp.test."), 1, 2, 1, 86400, 60);
        soa.minimum = 60;
        nx.authorities.push(rec("corp.test.", 3600, RData::SOA(soa.clone())));
        assert_eq!(srv_lookup(&nx, &owner), SrvLookup::NxDomain { negative_ttl_left: Some(60) });
        nx.authorities[0].ttl = 12;
        assert_eq!(srv_lookup(&nx, &owner), SrvLookup::NxDomain { negative_ttl_left: Some(12) });

        let mut referral = response("_vlmcs._tcp.corp.test.", RecordType::SRV, ResponseCode::NoError, vec![]);
        referral.metadata.recursion_available = false;
        assert!(matches!(srv_lookup(&referral, &owner), SrvLookup::Failed { error: ReadError::Rcode(_) }));
        let servfail = response("_vlmcs._tcp.corp.test.", RecordType::SRV, ResponseCode::ServFail, vec![]);
        assert_eq!(srv_lookup(&servfail, &owner), SrvLookup::Failed { error: ReadError::ServFail });

        let a = response(
            "kms.corp.test.",
            RecordType::A,
            ResponseCode::NoError,
            vec![
                rec("kms.corp.test.", 60, RData::CNAME(CNAME(hname("host.corp.test.")))),
                rec("host.corp.test.", 60, RData::A(A(Ipv4Addr::new(10, 0, 0, 7)))),
            ],
        );
        assert_eq!(addresses_in(&a, &name("kms.corp.test")).unwrap(), [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))]);
        let none = response("kms.corp.test.", RecordType::AAAA, ResponseCode::NoError, vec![]);
        assert!(addresses_in(&none, &name("kms.corp.test")).unwrap().is_empty());
        assert_eq!(resolution(Ok(vec![]), Ok(vec![])), Resolution::NoAddress);
        assert_eq!(resolution(Ok(vec![]), Err(ReadError::Timeout)), Resolution::Failed { error: ReadError::Timeout });
    }
}
