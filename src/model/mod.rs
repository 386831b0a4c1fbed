//! The world as kmsdns sees it, as plain types: what [`crate::observe`] fills and the pure
//! core ([`crate::audit`], [`crate::plan`]) judges. No I/O here, and no module of the core
//! imports the code that reads.
//!
//! Unknown is a value, never a missing one or a bool: a server that could not be read is
//! [`SrvAnswer::Failed`], a name whose servers did not all answer is [`Resolution::Failed`]
//! or carries `incomplete`, a directory that could not be read is [`ad::AdRead::Failed`].
//! Nothing built from these types may turn such a value into "empty".

pub mod ad;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::inventory::ServerAddr;
use crate::name::DnsName;
/// The instances' shared view of a zone: defined beside its codec, in [`crate::peers`].
pub use crate::peers::{Entry as PeerEntry, PeerViews, Sight};

/// Everything one audit run saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Observation {
    /// One entry per inventory zone, in inventory order.
    pub zones: Vec<ZoneView>,
    /// Addresses of every SRV target and inventory host, each looked up once.
    pub names: BTreeMap<DnsName, Resolution>,
    /// One probe per distinct (address, port).
    pub probes: BTreeMap<SocketAddr, ProbeState>,
    /// What Active Directory holds, when `[ad]` is configured. Not part of a plan's
    /// fingerprint: a plan changes DNS records, which the fingerprint covers.
    #[serde(skip)]
    pub ad: Option<ad::AdRead>,
    /// When the observation was made: "now" for the audit's age checks.
    #[serde(skip)]
    pub observed_at: Option<std::time::SystemTime>,
    /// Each zone's shared view of the instances ([`crate::peers`]); a zone missing here was
    /// not read, which is unknown. Not part of a plan's fingerprint: it changes with every
    /// instance's heartbeat.
    #[serde(skip)]
    pub peers: BTreeMap<DnsName, PeerViews>,
}

/// A zone as each of its servers answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneView {
    pub zone: DnsName,
    pub servers: Vec<ServerView>,
}

/// One authoritative server's answers for a zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerView {
    pub server: ServerAddr,
    pub srv: SrvAnswer,
    /// The zone's SOA serial there, or why it could not be read.
    pub serial: Result<u32, ReadError>,
    /// The SOA MNAME there: the primary, where updates go by default.
    pub mname: Option<DnsName>,
}

/// The outcome of asking one server for `_vlmcs._tcp.<zone>` SRV.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum SrvAnswer {
    /// The RRset, sorted.
    Records { records: Vec<SrvRecord> },
    /// The name exists but holds no SRV (NOERROR, empty answer).
    NoData,
    /// The name does not exist.
    NxDomain,
    /// Unknown: the server could not be read. Never treated as empty.
    Failed { error: ReadError },
}

impl SrvAnswer {
    /// The records the server vouches for; `None` when the read failed and nothing is known.
    pub fn known_records(&self) -> Option<&[SrvRecord]> {
        match self {
            SrvAnswer::Records { records } => Some(records),
            SrvAnswer::NoData | SrvAnswer::NxDomain => Some(&[]),
            SrvAnswer::Failed { .. } => None,
        }
    }
}

/// One SRV record of `_vlmcs._tcp` (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct SrvRecord {
    pub target: DnsName,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
    pub ttl: u32,
}

impl SrvRecord {
    /// Equal as clients use it: the TTL does not count.
    pub fn same_rdata(&self, other: &SrvRecord) -> bool {
        (self.target.as_str(), self.port, self.priority, self.weight)
            == (other.target.as_str(), other.port, other.priority, other.weight)
    }
}

/// Two RRsets equal as clients see them: the same records by rdata, TTL aside.
pub fn same_rrset(a: &[SrvRecord], b: &[SrvRecord]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| y.same_rdata(x)))
}

impl std::fmt::Display for SrvRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SRV {} {} {} {}", self.priority, self.weight, self.port, self.target.fqdn())
    }
}

/// A name's addresses.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Resolution {
    Addresses {
        addresses: Vec<IpAddr>,
        /// Some server of the name's zone could not be read: there may be more addresses,
        /// so "every address is down" cannot be said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        incomplete: Option<ReadError>,
    },
    /// The name has no A or AAAA: every server of its zone said so authoritatively (NXDOMAIN
    /// or NODATA), or the system resolver did for a name in no declared zone.
    NoAddress,
    /// The lookup failed: unknown.
    Failed { error: ReadError },
}

/// What a probe found at one address and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "kebab-case")]
pub enum ProbeState {
    /// The bind to the KMS interface was accepted.
    KmsUp,
    /// Something answers on the port, but not the KMS interface (a rejected context, a
    /// bind_nak, or a reply that is not DCE/RPC).
    NotKms(String),
    /// Nothing answers: refused, reset, or no reply in time.
    Down(String),
}

impl ProbeState {
    pub fn code(&self) -> &'static str {
        match self {
            ProbeState::KmsUp => "kms-up",
            ProbeState::NotKms(_) => "not-kms",
            ProbeState::Down(_) => "down",
        }
    }
}

/// Why a server's answer is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum ReadError {
    #[error("no answer within the timeout (after every retry)")]
    Timeout,
    #[error("the server refused the query (REFUSED)")]
    Refused,
    #[error("the server failed (SERVFAIL)")]
    ServFail,
    #[error("the server is not authoritative for the zone")]
    NotAuthoritative,
    #[error("the server answered {0}")]
    Rcode(String),
    #[error("network error: {0}")]
    Network(String),
    #[error("malformed answer: {0}")]
    Malformed(String),
}
