//! Reading DNS from authoritative servers: one question at a time to one server, and every
//! answer checked against its question before it counts as evidence.
//!
//! Questions go with RD=0 (we want the server's own authoritative data, never a recursion;
//! the one exception is [`DnsReader::recursive`], a client's question for `client-check`),
//! over one shared UDP socket per server ([`crate::net::ServerSocket`]), repeated over TCP
//! when the answer is truncated, with our own timeout and retries.
//!
//! An answer is evidence only for the question it answers (as BIND and Unbound treat a
//! "question section mismatch"): it must carry the ID asked, come from the address asked (the
//! socket is connected, so the kernel drops anything else), be a response, and hold exactly the
//! question asked (name case-insensitively, type, class), under opcode QUERY. Anything else, an
//! answer that does not parse, octets after its last record, or TC=1 over TCP, is
//! [`ReadError::Malformed`], reported at once: unknown, never empty. A plain answer (exactly
//! the question asked, every record of a type kmsdns knows) is read in place
//! (`super::reply`); any other goes to hickory: an answer that holds what was asked has its
//! answer section decoded whole and its authority and additional sections stepped over
//! record by record (`Reply`), so a message cut short anywhere still does not parse, and an
//! extended RCODE is still read; any other answer is read whole.
//!
//! Questions carry EDNS (RFC 6891). A server that answers FORMERR to EDNS (Windows Server
//! 2008/2008 R2 DNS does, on an EDNS option) is asked again without it, and from then on.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::reply::{Data, Rec, read_plain};
use crate::inventory::{ServerAddr, ServerHost};
use crate::model::{ReadError, Resolution, SrvAnswer, SrvRecord};
use crate::name::DnsName;
use crate::net::{ExchangeError, ServerSocket, TcpPipe};

/// The EDNS UDP payload size we offer (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

/// The longest alias chain followed for an SRV target (Windows clients follow aliases).
pub const MAX_ALIASES: usize = 8;

/// Asks authoritative servers questions with a fixed timeout and retry budget. Clones share
/// the per-server sockets (a UDP socket, and a TCP connection kept open and pipelined), and
/// what was learnt of each server (no EDNS): one reader for a whole run costs each server a
/// socket and a handshake, not one per zone.
#[derive(Clone)]
pub struct DnsReader {
    timeout: Duration,
    retries: u8,
    /// Ask over TCP only: an answer an off-path attacker cannot forge by guessing an ID.
    tcp_only: bool,
    servers: Arc<Mutex<HashMap<SocketAddr, Arc<Server>>>>,
}

impl std::fmt::Debug for DnsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsReader").field("timeout", &self.timeout).field("retries", &self.retries).finish()
    }
}

/// One server: its UDP socket, its TCP connection, and whether it takes EDNS.
struct Server {
    addr: SocketAddr,
    socket: ServerSocket,
    tcp: TcpPipe,
    no_edns: AtomicBool,
}

/// One question, as asked.
#[derive(Clone, Copy)]
struct Question<'a> {
    name: &'a DnsName,
    rtype: RecordType,
    /// RD=1: only [`DnsReader::recursive`] asks so.
    recursive: bool,
}

impl std::fmt::Display for Question<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name.fqdn(), self.rtype)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// What one server says of a name's addresses.
#[derive(Debug, Clone, PartialEq)]
pub enum AddressAnswer {
    /// The addresses, or, empty, an authoritative "none" (NXDOMAIN, or NODATA for A and AAAA).
    Addresses(Vec<IpAddr>),
    /// The name is an alias of a name this answer does not resolve: look that one up where it lives.
    Alias(DnsName),
    /// Unknown.
    Failed(ReadError),
}

impl DnsReader {
    pub fn new(timeout: Duration, retries: u8) -> DnsReader {
        DnsReader { timeout, retries, tcp_only: false, servers: Arc::default() }
    }

    /// A reader that asks over TCP only: for re-reading the evidence a delete rests on.
    pub fn tcp_only(timeout: Duration, retries: u8) -> DnsReader {
        DnsReader { tcp_only: true, ..DnsReader::new(timeout, retries) }
    }

    /// Whether every question goes over TCP.
    pub fn is_tcp_only(&self) -> bool {
        self.tcp_only
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `_vlmcs._tcp.<zone>` SRV on one server, alone (watching a change spread needs no serial).
    pub async fn srv_on(&self, server: SocketAddr, zone: &DnsName) -> SrvAnswer {
        let owner = zone.vlmcs_owner();
        match self.authoritative(server, Question { name: &owner, rtype: RecordType::SRV, recursive: false }).await {
            Ok(Answer::Records(rs)) => srv_answer(&owner, rs),
            Ok(Answer::NoData) => SrvAnswer::NoData,
            Ok(Answer::NxDomain) => SrvAnswer::NxDomain,
            Err(error) => SrvAnswer::Failed { error },
        }
    }

    /// `_vlmcs._tcp.<zone>` SRV and the zone's SOA serial on one server, asked at once.
    /// Also returns the SOA MNAME, where updates go when the inventory names no primary.
    pub async fn zone_view(
        &self,
        server: SocketAddr,
        zone: &DnsName,
    ) -> (SrvAnswer, Result<u32, ReadError>, Option<DnsName>) {
        let (srv, soa) = tokio::join!(
            self.srv_on(server, zone),
            self.authoritative(server, Question { name: zone, rtype: RecordType::SOA, recursive: false })
        );
        let soa = match soa {
            Ok(Answer::Records(rs)) => rs
                .iter()
                .find_map(|r| match &r.data {
                    Data::Soa { serial, mname } if r.is_at(zone, zone) => Some((*serial, mname.clone())),
                    _ => None,
                })
                .ok_or_else(|| ReadError::Malformed("the SOA answer holds no SOA for the zone".into())),
            Ok(Answer::NoData | Answer::NxDomain) => Err(ReadError::NotAuthoritative),
            Err(e) => Err(e),
        };
        match soa {
            Ok((serial, mname)) => (srv, Ok(serial), mname),
            Err(e) => (srv, Err(e), None),
        }
    }

    /// The TXT records at `name` on one server, each as its strings; none for NXDOMAIN or
    /// NODATA. For the instances' shared view ([`crate::observe::peers`]).
    pub async fn txt_on(&self, server: SocketAddr, name: &DnsName) -> Result<Vec<Vec<Vec<u8>>>, ReadError> {
        let answer = self.authoritative(server, Question { name, rtype: RecordType::TXT, recursive: false }).await?;
        Ok(answer
            .records()
            .iter()
            .filter(|r| r.is_at(name, name))
            .filter_map(|r| match &r.data {
                Data::Txt(strings) => Some(strings.clone()),
                _ => None,
            })
            .collect())
    }

    /// A and AAAA of `name` on one server, aliases followed as far as its answer goes.
    pub async fn addresses_on(&self, server: SocketAddr, name: &DnsName) -> AddressAnswer {
        let (a, aaaa) = tokio::join!(
            self.authoritative(server, Question { name, rtype: RecordType::A, recursive: false }),
            self.authoritative(server, Question { name, rtype: RecordType::AAAA, recursive: false })
        );
        let (a, aaaa) = match (a, aaaa) {
            (Ok(a), Ok(aaaa)) => (a, aaaa),
            (Err(e), _) | (_, Err(e)) => return AddressAnswer::Failed(e),
        };
        let records: Vec<&Rec> = [&a, &aaaa].into_iter().flat_map(Answer::records).collect();
        // An SRV target should not be an alias (RFC 2782), but Windows clients follow one:
        // follow the CNAME chain as far as the server put it in its answer.
        let mut current = name.clone();
        for _ in 0..MAX_ALIASES {
            let next = records.iter().find_map(|r| match &r.data {
                Data::Cname(target) if r.is_at(&current, name) => target.clone(),
                _ => None,
            });
            match next {
                Some(n) => current = n,
                None => break,
            }
        }
        let mut addresses: Vec<IpAddr> = records
            .iter()
            .filter(|r| r.is_at(&current, name))
            .filter_map(|r| match &r.data {
                Data::A(a) => Some(IpAddr::V4(*a)),
                Data::Aaaa(a) => Some(IpAddr::V6(*a)),
                _ => None,
            })
            .collect();
        addresses.sort();
        addresses.dedup();
        if addresses.is_empty() && &current != name {
            // The chain leaves what this server answered for (another zone, perhaps):
            // an alias is not "no address".
            return AddressAnswer::Alias(current);
        }
        AddressAnswer::Addresses(addresses)
    }

    /// A and AAAA of `name` from every one of `servers` (the servers of the zone that holds
    /// it). "No address" needs every server to say so; a server that could not be read makes
    /// a negative unknown, and a positive incomplete.
    pub async fn addresses_from(&self, servers: &[Result<SocketAddr, ReadError>], name: &DnsName) -> Found {
        let answers = futures_util::future::join_all(servers.iter().map(|s| async move {
            match s {
                Ok(addr) => self.addresses_on(*addr, name).await,
                Err(e) => AddressAnswer::Failed(e.clone()),
            }
        }))
        .await;
        combine(answers)
    }

    /// One question to a recursive resolver with RD=1, as a KMS client asks it (`kmsdns
    /// client-check`): the response as the resolver gives it, from its cache or not, checked
    /// against the question like every answer, but not classified: a resolver's answer is
    /// not authoritative, and the caller reads its TTLs. Everything else asks with RD=0.
    pub async fn recursive(
        &self,
        resolver: SocketAddr,
        name: &DnsName,
        rtype: RecordType,
    ) -> Result<Message, ReadError> {
        self.exchange::<Message>(resolver, Question { name, rtype, recursive: true }).await
    }

    /// One authoritative question: UDP, TCP when truncated, retried after a timeout.
    async fn authoritative(&self, server: SocketAddr, q: Question<'_>) -> Result<Answer, ReadError> {
        let response = self.exchange::<Reply>(server, q).await?;
        classify(response)
    }

    async fn exchange<R: Response>(&self, server: SocketAddr, q: Question<'_>) -> Result<R, ReadError> {
        let server = self.server(server).await?;
        let first = if self.tcp_only { Transport::Tcp } else { Transport::Udp };
        for _ in 0..=self.retries {
            if first == Transport::Tcp {
                match self.ask(&server, q, Transport::Tcp).await {
                    Err(ReadError::Timeout) => continue,
                    other => return other,
                }
            }
            match self.ask::<R>(&server, q, Transport::Udp).await {
                Ok(m) if m.metadata().truncation => return self.ask(&server, q, Transport::Tcp).await,
                Ok(m) => return Ok(m),
                // Only silence is worth a resend; a refusal by the kernel (ICMP port
                // unreachable) or a bad answer will not change on a resend soon.
                Err(ReadError::Timeout) => {}
                Err(e) => return Err(e),
            }
        }
        Err(ReadError::Timeout)
    }

    /// Asks once, with EDNS unless the server is known not to take it; a FORMERR to EDNS
    /// is asked again without, and remembered.
    async fn ask<R: Response>(&self, server: &Server, q: Question<'_>, transport: Transport) -> Result<R, ReadError> {
        let edns = !server.no_edns.load(Ordering::Relaxed);
        let m = self.ask_once::<R>(server, q, transport, edns).await?;
        if edns && m.metadata().response_code == ResponseCode::FormErr {
            if !server.no_edns.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "{}: answered FORMERR to a query with EDNS; asking it without EDNS from now on (an old Windows DNS?)",
                    server.addr
                );
            }
            return self.ask_once(server, q, transport, false).await;
        }
        Ok(m)
    }

    async fn ask_once<R: Response>(
        &self,
        server: &Server,
        q: Question<'_>,
        transport: Transport,
        edns: bool,
    ) -> Result<R, ReadError> {
        let query = encode_query(q, edns);
        let with_id = |id: u16| {
            let mut bytes = query.clone();
            bytes[..2].copy_from_slice(&id.to_be_bytes());
            bytes
        };
        let (id, answer) = match transport {
            Transport::Udp => server.socket.exchange(with_id, self.timeout).await,
            Transport::Tcp => server.tcp.exchange(with_id, self.timeout).await,
        }
        .map_err(|e| match e {
            ExchangeError::Timeout => ReadError::Timeout,
            ExchangeError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ReadError::Timeout,
            ExchangeError::Io(io) | ExchangeError::Connect(io) => ReadError::Network(io.to_string()),
        })?;
        read_answer(&answer, id, q, &query, transport)
    }

    /// The server's socket, opened on first use and shared after.
    async fn server(&self, addr: SocketAddr) -> Result<Arc<Server>, ReadError> {
        let known = |m: &Mutex<HashMap<SocketAddr, Arc<Server>>>| {
            m.lock().unwrap_or_else(|e| e.into_inner()).get(&addr).cloned()
        };
        if let Some(s) = known(&self.servers) {
            return Ok(s);
        }
        let socket = ServerSocket::open(addr).await.map_err(|e| ReadError::Network(e.to_string()))?;
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        // Two first questions may race to open a socket: keep the one that won.
        Ok(servers
            .entry(addr)
            .or_insert_with(|| {
                Arc::new(Server { addr, socket, tcp: TcpPipe::new(addr), no_edns: AtomicBool::new(false) })
            })
            .clone())
    }
}

/// Several servers' answers for one name as one: any addresses count (and say what was not
/// read), "no address" only when every server says so, unknown otherwise.
fn combine(answers: Vec<AddressAnswer>) -> Found {
    if answers.is_empty() {
        return Found::Resolved(Resolution::Failed {
            error: ReadError::Network("the zone has no usable server".into()),
        });
    }
    let mut addresses = Vec::new();
    let (mut alias, mut failed) = (None, None);
    for a in answers {
        match a {
            AddressAnswer::Addresses(list) => addresses.extend(list),
            AddressAnswer::Alias(n) => alias = alias.or(Some(n)),
            AddressAnswer::Failed(e) => failed = failed.or(Some(e)),
        }
    }
    addresses.sort();
    addresses.dedup();
    if !addresses.is_empty() {
        // An alias another server gives is not followed here: what it leads to is not read.
        let unfollowed = alias
            .as_ref()
            .map(|n| ReadError::Malformed(format!("another server of the zone answers it as an alias of {n}")));
        return Found::Resolved(Resolution::Addresses { addresses, incomplete: failed.or(unfollowed) });
    }
    match (failed, alias) {
        (Some(error), _) => Found::Resolved(Resolution::Failed { error }),
        (None, Some(next)) => Found::Alias(next),
        (None, None) => Found::Resolved(Resolution::NoAddress),
    }
}

/// What the servers of a zone say of a name, together.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    Resolved(Resolution),
    /// An alias of a name their answers do not resolve: look that one up where it lives.
    Alias(DnsName),
}

/// The SRV records for `owner` in an answer. A record we cannot name cannot be reasoned about,
/// or asserted in a prerequisite: the whole answer is then unknown (e.g. RFC 2782's "." target).
fn srv_answer(owner: &DnsName, rs: Vec<Rec>) -> SrvAnswer {
    let mut records = Vec::new();
    for r in rs.into_iter().filter(|r| r.is_at(owner, owner)) {
        let Data::Srv { priority, weight, port, target } = r.data else { continue };
        let target = match target {
            Ok(t) => t,
            Err(text) => {
                let error = ReadError::Malformed(format!(
                    "it holds an SRV record with the target '{text}', which kmsdns cannot judge"
                ));
                return SrvAnswer::Failed { error };
            }
        };
        records.push(SrvRecord { target, port, priority, weight, ttl: ttl(r.ttl) });
    }
    records.sort();
    records.dedup();
    if records.is_empty() { SrvAnswer::NoData } else { SrvAnswer::Records { records } }
}

/// A TTL as RFC 2181 §8 reads it: a value with the top bit set is 0.
fn ttl(raw: u32) -> u32 {
    if raw > i32::MAX as u32 { 0 } else { raw }
}

/// The bytes of the question kmsdns asks an authoritative server for `name` and `rtype`
/// (RD=0, EDNS with a 1232-octet payload), with ID 0. The scale benchmark hands exactly these to
/// dnsperf (`-B`): BIND answers RD=0 with its NS records and their addresses beside the answer
/// (`minimal-responses no-auth-recursive`, its default), so a baseline asked with RD=1 and no
/// EDNS, as dnsperf's text input is, gets smaller answers and is not the same question.
pub fn authoritative_query(name: &DnsName, rtype: RecordType) -> Vec<u8> {
    encode_query(Question { name, rtype, recursive: false }, true)
}

/// A query for `q`, RD=0 unless it is a resolver's question, with ID 0 (the sender sets the ID),
/// and with EDNS (version 0, no flags, no options) when `edns`. Written out here, byte for byte
/// what hickory's `Message` writes (`queries_are_encoded_as_hickory_encodes_them`): built as a
/// `Message`, each query's name was parsed from text again and the message serialised field by
/// field, 9 % of the CPU of a 10,000-zone audit's 60,000 questions (perf). A [`DnsName`] is
/// valid on the wire as it is: labels of 1 to 63 octets, 253 octets in all.
fn encode_query(q: Question<'_>, edns: bool) -> Vec<u8> {
    let name = q.name.as_str();
    let mut m = Vec::with_capacity(12 + name.len() + 2 + 4 + 11);
    let rd = if q.recursive { 0x01 } else { 0x00 };
    // ID 0; QR=0, OPCODE=QUERY, RD; QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT (the OPT record).
    m.extend_from_slice(&[0, 0, rd, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    for label in name.as_bytes().split(|&b| b == b'.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label);
    }
    m.push(0);
    m.extend_from_slice(&u16::from(q.rtype).to_be_bytes());
    m.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
    if edns {
        // OPT (RFC 6891 §6.1.2): the root's name, TYPE 41, CLASS the payload size, TTL 0
        // (extended RCODE, version, flags), RDLENGTH 0.
        m.extend_from_slice(&[0, 0, 41]);
        m.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    m
}

/// A response as a question's asker reads it.
trait Response: Sized {
    fn decode(bytes: &[u8]) -> Result<Self, String>;
    fn metadata(&self) -> &Metadata;
    fn queries(&self) -> &[Query];
    /// The answer to `q` read without hickory, when it is plain (`reply::read_plain`): then
    /// it is the one [`check_answer`] would give, which is asked for anything else.
    /// `question` is the question section as asked.
    fn plain(_bytes: &[u8], _id: u16, _q: Question<'_>, _question: &[u8]) -> Option<Self> {
        None
    }
}

/// A resolver's answer ([`DnsReader::recursive`]), read whole: `client-check` reads the
/// negative TTL from the SOA of its authority section.
impl Response for Message {
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        read_whole(bytes)
    }
    fn metadata(&self) -> &Metadata {
        &self.metadata
    }
    fn queries(&self) -> &[Query] {
        &self.queries
    }
}

/// The whole message, as hickory reads it, and nothing after its last record: octets there
/// would be records the header does not count (an SRV record beyond the answer section, an
/// OPT record's BADVERS beyond the additional one), which hickory leaves unread.
fn read_whole(bytes: &[u8]) -> Result<Message, String> {
    let mut d = BinDecoder::new(bytes);
    let m = Message::read(&mut d).map_err(|e| e.to_string())?;
    match bytes.len() - d.index() {
        0 => Ok(m),
        n => Err(format!("{n} octet(s) follow its last record")),
    }
}

/// An authoritative server's answer as kmsdns reads it. When it holds what was asked
/// (NOERROR and a record of the type asked at the name asked: the evidence), the header, the
/// question and the answer section are decoded by hickory, and the authority and additional
/// sections are stepped over record by record to the message's last octet (each record framed
/// by its name and RDLENGTH, not decoded), reading only an OPT record's extended RCODE
/// (RFC 6891 §6.1.3), which would otherwise leave BADVERS looking like NOERROR. BIND puts its
/// NS records and their addresses there, and the SRV targets' addresses: two of every three
/// records of an answer in the scale benchmark's estate (its OPT record among them), and
/// decoding them was half of what reading an answer cost (callgrind). Any other answer (an
/// NXDOMAIN, an error, no record of the type asked at the name asked) is read whole
/// ([`read_whole`]): that nothing is there is its evidence, so a message hickory refuses is
/// never "no record".
#[derive(Debug)]
struct Reply {
    metadata: Metadata,
    /// The question section as hickory read it; empty in a reply `read_plain` read, which
    /// held exactly the question asked and is never checked again.
    queries: Vec<Query>,
    answers: Vec<Rec>,
}

impl Response for Reply {
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut d = BinDecoder::new(bytes);
        let Header { mut metadata, counts } = Header::read(&mut d).map_err(|e| e.to_string())?;
        let queries = (0..counts.queries).map(|_| Query::read(&mut d)).collect::<Result<Vec<_>, _>>();
        let queries = queries.map_err(|e| e.to_string())?;
        let (answers, _, _) = Message::read_records(&mut d, usize::from(counts.answers), false, metadata.op_code)
            .map_err(|e| e.to_string())?;
        // Only evidence that what was asked is there (NOERROR, a record of the type asked at
        // the name asked) skips the other sections; check_answer then holds the question to ours.
        let holds_what_was_asked = metadata.response_code == ResponseCode::NoError
            && queries
                .first()
                .is_some_and(|q| answers.iter().any(|r| r.record_type() == q.query_type() && r.name == *q.name()));
        if !holds_what_was_asked {
            let whole = read_whole(bytes)?;
            let answers = whole.answers.iter().map(Rec::from_hickory).collect();
            return Ok(Reply { metadata: whole.metadata, queries: whole.queries, answers });
        }
        let (at, opt) = step_over_records(bytes, d.index(), counts.authorities)?;
        if opt.is_some() {
            return Err("an OPT record in the authority section".into());
        }
        let (end, high) = step_over_records(bytes, at, counts.additionals)?;
        if end != bytes.len() {
            return Err(format!("{} octet(s) follow its last record", bytes.len() - end));
        }
        if let Some(high) = high {
            metadata.merge_response_code(high);
        }
        let answers = answers.iter().map(Rec::from_hickory).collect();
        Ok(Reply { metadata, queries, answers })
    }
    fn plain(bytes: &[u8], id: u16, q: Question<'_>, question: &[u8]) -> Option<Self> {
        let (metadata, answers) = read_plain(bytes, id, question, q.name, q.rtype)?;
        Some(Reply { metadata, queries: Vec::new(), answers })
    }
    fn metadata(&self) -> &Metadata {
        &self.metadata
    }
    fn queries(&self) -> &[Query] {
        &self.queries
    }
}

/// Steps over `count` resource records from `at` (RFC 1035 §4.1.3): each owner name (labels up
/// to a zero octet or a compression pointer, which ends the name where it stands), the fixed
/// fields, the RDATA by its length. Returns where they end and the upper 8 bits of the RCODE
/// from an OPT record's TTL field, if one was met; a second OPT record is an error (RFC 6891
/// §6.1.1), as hickory's whole-message read makes it.
pub(super) fn step_over_records(bytes: &[u8], mut at: usize, count: u16) -> Result<(usize, Option<u8>), String> {
    let short = || "it ends inside a record".to_string();
    let mut high = None;
    for _ in 0..count {
        loop {
            let len = *bytes.get(at).ok_or_else(short)?;
            match len & 0xC0 {
                0xC0 => {
                    bytes.get(at + 1).ok_or_else(short)?;
                    at += 2;
                    break;
                }
                0x00 if len == 0 => {
                    at += 1;
                    break;
                }
                0x00 => at += 1 + usize::from(len),
                _ => return Err(format!("a name holds a label of unknown type (0x{len:02x})")),
            }
        }
        // TYPE, CLASS, TTL, RDLENGTH.
        let fixed = bytes.get(at..at + 10).ok_or_else(short)?;
        if u16::from_be_bytes([fixed[0], fixed[1]]) == u16::from(RecordType::OPT) {
            if high.is_some() {
                return Err("it holds more than one OPT record".into());
            }
            high = Some(fixed[4]);
        }
        at += 10 + usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        if at > bytes.len() {
            return Err(short());
        }
    }
    Ok((at, high))
}

/// The answer to `q` (asked as `query`, any ID): read plainly if it is plain, else decoded by
/// hickory and checked against the question.
fn read_answer<R: Response>(
    bytes: &[u8],
    id: u16,
    q: Question<'_>,
    query: &[u8],
    transport: Transport,
) -> Result<R, ReadError> {
    // The question section as asked: the name (its text's length plus its first length octet
    // and the root's), type and class.
    let question = &query[12..12 + q.name.as_str().len() + 2 + 4];
    match R::plain(bytes, id, q, question) {
        Some(r) => Ok(r),
        None => check_answer(bytes, id, q, transport),
    }
}

/// The answer to `q`, or why these bytes are not one (see the module doc).
fn check_answer<R: Response>(bytes: &[u8], id: u16, q: Question<'_>, transport: Transport) -> Result<R, ReadError> {
    let bad = |why: String| Err(ReadError::Malformed(format!("to {q}: {why}")));
    let r = match R::decode(bytes) {
        Ok(r) => r,
        Err(e) => return bad(format!("it does not parse ({e})")),
    };
    let m = r.metadata();
    if m.id != id {
        return bad(format!("it carries the ID {}, not {id}", m.id));
    }
    if m.message_type != MessageType::Response {
        return bad("it is not a response (QR=0)".into());
    }
    // Under another opcode the same octets are other records: under UPDATE, an SRV record
    // with no RDATA is a delete, which reads as no SRV record at all.
    if m.op_code != OpCode::Query {
        return bad(format!("it answers under opcode {}, not QUERY", m.op_code));
    }
    let asked = |got: &Query| q.name.is(got.name()) && got.query_type() == q.rtype && got.query_class() == DNSClass::IN;
    match r.queries() {
        [got] if asked(got) => {}
        // A server may leave the question out of a FORMERR (RFC 6891 §7): it still answers ours.
        [] if m.response_code == ResponseCode::FormErr => {}
        [got] => {
            return bad(format!(
                "it answers another question ({} {} {})",
                got.name().to_ascii(),
                got.query_type(),
                got.query_class()
            ));
        }
        other => return bad(format!("it holds {} questions, not the one asked", other.len())),
    }
    if transport == Transport::Tcp && m.truncation {
        return bad("it is truncated (TC=1) over TCP, so it is not the whole RRset".into());
    }
    Ok(r)
}

/// What an authoritative answer says, once errors are set apart.
#[derive(Debug)]
enum Answer {
    Records(Vec<Rec>),
    NoData,
    NxDomain,
}

impl Answer {
    fn records(&self) -> &[Rec] {
        match self {
            Answer::Records(r) => r,
            _ => &[],
        }
    }
}

/// Sorts a response into an answer or an error. A non-authoritative answer (AA=0) is an
/// error: a referral or a cached copy is not what the zone's server holds.
fn classify(r: Reply) -> Result<Answer, ReadError> {
    match r.metadata.response_code {
        ResponseCode::NoError if !r.metadata.authoritative => Err(ReadError::NotAuthoritative),
        ResponseCode::NoError if r.answers.is_empty() => Ok(Answer::NoData),
        ResponseCode::NoError => Ok(Answer::Records(r.answers)),
        ResponseCode::NXDomain if r.metadata.authoritative => Ok(Answer::NxDomain),
        ResponseCode::NXDomain => Err(ReadError::NotAuthoritative),
        ResponseCode::Refused => Err(ReadError::Refused),
        ResponseCode::ServFail => Err(ReadError::ServFail),
        ResponseCode::NotAuth => Err(ReadError::NotAuthoritative),
        other => Err(ReadError::Rcode(other.to_string())),
    }
}

fn sorted_addresses(mut addresses: Vec<IpAddr>) -> Resolution {
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() { Resolution::NoAddress } else { Resolution::Addresses { addresses, incomplete: None } }
}

/// Where a server from the inventory listens: its address, or the addresses its name has
/// through the system resolver. Never empty when Ok.
pub async fn server_socket_addrs(s: &ServerAddr, timeout: Duration) -> Result<Vec<SocketAddr>, ReadError> {
    match &s.host {
        ServerHost::Ip(ip) => Ok(vec![SocketAddr::new(*ip, s.port)]),
        ServerHost::Name(n) => match system_addresses(n, timeout).await {
            Resolution::Addresses { addresses, .. } => {
                Ok(addresses.iter().map(|a| SocketAddr::new(*a, s.port)).collect())
            }
            Resolution::NoAddress => Err(ReadError::Network(format!("the server name {n} has no address"))),
            Resolution::Failed { error } => Err(error),
        },
    }
}

/// A and AAAA of a name outside every declared zone, through the system resolver
/// (getaddrinfo: /etc/hosts, then DNS as nsswitch.conf says).
pub async fn system_addresses(name: &DnsName, timeout: Duration) -> Resolution {
    let lookup = tokio::net::lookup_host((name.as_str(), 0));
    match tokio::time::timeout(timeout, lookup).await {
        Err(_) => Resolution::Failed { error: ReadError::Timeout },
        Ok(Ok(addrs)) => sorted_addresses(addrs.map(|a| a.ip()).collect()),
        // getaddrinfo's EAI_NONAME and EAI_NODATA reach us only as text (std maps every
        // EAI_* code to one io::Error kind); those two mean "no such address", all others
        // (EAI_AGAIN, EAI_FAIL, ...) mean the lookup itself failed.
        Ok(Err(e)) => {
            let text = e.to_string();
            if text.contains("not known") || text.contains("No address associated") {
                Resolution::NoAddress
            } else {
                Resolution::Failed { error: ReadError::Network(text) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn queries_are_encoded_as_hickory_encodes_them() {
        use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
        let hickory = |q: Question<'_>, edns: bool| {
            let mut m = Message::new(0, MessageType::Query, OpCode::Query);
            m.metadata.recursion_desired = q.recursive;
            let mut query = Query::query(q.name.to_hickory(), q.rtype);
            query.set_query_class(DNSClass::IN);
            m.add_query(query);
            if edns {
                let mut e = Edns::new();
                e.set_max_payload(EDNS_PAYLOAD);
                m.set_edns(e);
            }
            m.to_vec().unwrap()
        };
        let long = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
        for name in ["_vlmcs._tcp.corp.example.com", "corp.test", "a", "_kmsdns-view.zone00001.bench", &long] {
            let name = DnsName::parse(name).unwrap();
            for rtype in [RecordType::SRV, RecordType::SOA, RecordType::TXT, RecordType::A, RecordType::AAAA] {
                for (recursive, edns) in [(false, true), (false, false), (true, true), (true, false)] {
                    let q = Question { name: &name, rtype, recursive };
                    assert_eq!(encode_query(q, edns), hickory(q, edns), "{q} rd={recursive} edns={edns}");
                }
            }
        }
    }

    /// An authoritative answer as BIND gives one: the SRV records, its NS record beside them and
    /// their addresses, EDNS. What kmsdns reads of it is what hickory reads of the whole.
    fn bind_like_answer(rcode: ResponseCode) -> Message {
        use hickory_proto::op::{Edns, OpCode};
        use hickory_proto::rr::rdata::{A, NS, SRV};
        let name = |t: &str| hickory_proto::rr::Name::from_ascii(t).unwrap();
        let owner = name("_vlmcs._tcp.zone00001.bench.");
        let mut m = Message::new(4711, MessageType::Response, OpCode::Query);
        m.metadata.authoritative = true;
        m.metadata.response_code = rcode;
        m.add_query(Query::query(owner.clone(), RecordType::SRV));
        for i in 1..=3 {
            let target = name(&format!("kms{i}.hosts.bench."));
            m.add_answer(Record::from_rdata(owner.clone(), 3600, RData::SRV(SRV::new(0, 0, 1688, target.clone()))));
            m.add_additional(Record::from_rdata(target, 3600, RData::A(A::new(127, 0, 0, i))));
        }
        m.add_authority(Record::from_rdata(name("zone00001.bench."), 3600, RData::NS(NS(name("ns.hosts.bench.")))));
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
        m
    }

    #[test]
    fn an_answer_is_read_as_hickory_reads_it_with_its_other_sections_stepped_over() {
        for rcode in [ResponseCode::NoError, ResponseCode::NXDomain, ResponseCode::BADVERS] {
            let bytes = bind_like_answer(rcode).to_vec().unwrap();
            let whole = Message::from_vec(&bytes).unwrap();
            let reply = Reply::decode(&bytes).unwrap();
            assert_eq!(reply.metadata, whole.metadata, "{rcode}");
            assert_eq!(reply.queries, whole.queries);
            assert_eq!(reply.answers, whole.answers.iter().map(Rec::from_hickory).collect::<Vec<_>>());
            assert_eq!(reply.answers.len(), 3);
            // BADVERS and BADSIG are both 16 (RFC 6891, RFC 8945); hickory names it BADSIG.
            let code = u16::from(reply.metadata.response_code);
            assert_eq!(code, u16::from(rcode), "the extended RCODE is the OPT record's");
        }
    }

    /// BADVERS is RCODE 16: the header's 4 bits say 0, NOERROR, and only the OPT record says
    /// otherwise. Read without it, an answer with no records would be NODATA: "no record".
    #[test]
    fn an_extended_rcode_is_never_taken_for_an_empty_answer() {
        let mut m = bind_like_answer(ResponseCode::BADVERS);
        m.answers.clear();
        let reply = Reply::decode(&m.to_vec().unwrap()).unwrap();
        assert!(matches!(classify(reply), Err(ReadError::Rcode(_))));
    }

    #[test]
    fn an_answer_cut_short_anywhere_is_refused_never_read_in_part() {
        let bytes = bind_like_answer(ResponseCode::NoError).to_vec().unwrap();
        for len in 0..bytes.len() {
            assert!(Reply::decode(&bytes[..len]).is_err(), "{len} of {} octets", bytes.len());
        }
        // Two OPT records, whose extended RCODEs could disagree.
        let mut m = bind_like_answer(ResponseCode::NoError);
        let opt = Message::from_vec(&bytes).unwrap().additionals.len();
        assert_eq!(opt, 3, "the OPT record is not among hickory's additionals");
        m.add_additional(Record::from_rdata(
            hickory_proto::rr::Name::root(),
            0,
            RData::OPT(hickory_proto::rr::rdata::OPT::default()),
        ));
        let two = m.to_vec().unwrap();
        assert!(Message::from_vec(&two).is_err(), "hickory refuses it too");
        assert!(Reply::decode(&two).unwrap_err().contains("more than one OPT"));
        // An OPT record where only additional data may carry one.
        let mut m = bind_like_answer(ResponseCode::NoError);
        let opt = RData::OPT(hickory_proto::rr::rdata::OPT::default());
        m.add_authority(Record::from_rdata(hickory_proto::rr::Name::root(), 0, opt));
        let misplaced = m.to_vec().unwrap();
        assert!(Message::from_vec(&misplaced).is_err(), "hickory refuses it too");
        assert!(Reply::decode(&misplaced).unwrap_err().contains("authority section"));
        // A label type RFC 6891 retired (0x40) in the additional section's first owner name.
        let at = bytes.len() - 11 - 4 - 10 - 2;
        let mut odd = bytes.clone();
        assert_eq!(odd[at], 0xC0, "the first glue record's owner is a compression pointer");
        odd[at] = 0x40;
        assert!(Reply::decode(&odd).unwrap_err().contains("unknown type"));
    }

    /// A NODATA answer to `_vlmcs._tcp.zone00001.bench SRV` (ID 4711, AA, no EDNS), as bytes,
    /// with `tail` after its question and the section counts set to `counts`
    /// (answers, authorities, additionals).
    fn nodata_with(tail: &[u8], counts: [u16; 3]) -> Vec<u8> {
        use hickory_proto::op::OpCode;
        let owner = hickory_proto::rr::Name::from_ascii("_vlmcs._tcp.zone00001.bench.").unwrap();
        let mut m = Message::new(4711, MessageType::Response, OpCode::Query);
        m.metadata.authoritative = true;
        m.add_query(Query::query(owner, RecordType::SRV));
        let mut bytes = m.to_vec().unwrap();
        for (i, c) in counts.iter().enumerate() {
            bytes[6 + 2 * i..8 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
        bytes.extend_from_slice(tail);
        bytes
    }

    /// An answer read as `ask_once` reads it: plainly if it is plain, else by hickory.
    fn read_as_asked<R: Response>(bytes: &[u8], id: u16, q: Question<'_>) -> Result<R, ReadError> {
        read_answer(bytes, id, q, &encode_query(q, true), Transport::Udp)
    }

    /// Answers as BIND gives them to each kind of question kmsdns asks (names compressed
    /// as hickory writes them, EDNS), and the question each answers.
    fn answers_as_bind_gives_them() -> Vec<(DnsName, RecordType, Vec<u8>)> {
        use hickory_proto::op::{Edns, OpCode};
        use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA, TXT};
        let hname = |t: &str| hickory_proto::rr::Name::from_ascii(t).unwrap();
        let soa = || {
            let soa = SOA::new(hname("ns.hosts.bench."), hname("hostmaster.hosts.bench."), 7, 3600, 600, 86400, 60);
            Record::from_rdata(hname("zone00001.bench."), 60, RData::SOA(soa))
        };
        let message = |name: &str, rtype: RecordType, rcode: ResponseCode, answers: Vec<Record>, soa_beside: bool| {
            let mut m = Message::new(4711, MessageType::Response, OpCode::Query);
            m.metadata.authoritative = true;
            m.metadata.response_code = rcode;
            m.add_query(Query::query(hname(&format!("{name}.")), rtype));
            m.add_answers(answers);
            if soa_beside {
                m.add_authority(soa());
            } else {
                m.add_authority(Record::from_rdata(
                    hname("zone00001.bench."),
                    60,
                    RData::NS(NS(hname("ns.hosts.bench."))),
                ));
                m.add_additional(Record::from_rdata(hname("ns.hosts.bench."), 60, RData::A(A::new(127, 0, 0, 9))));
            }
            let mut e = Edns::new();
            e.set_max_payload(1232);
            m.set_edns(e);
            (DnsName::parse(name).unwrap(), rtype, m.to_vec().unwrap())
        };
        let at = |owner: &str, data: RData| Record::from_rdata(hname(&format!("{owner}.")), 3600, data);
        let view = "_kmsdns-view.zone00001.bench";
        let txt = TXT::new(vec!["kmsdns 1".into(), "instance=a".into()]);
        vec![
            {
                let bytes = bind_like_answer(ResponseCode::NoError).to_vec().unwrap();
                (DnsName::parse("_vlmcs._tcp.zone00001.bench").unwrap(), RecordType::SRV, bytes)
            },
            message("zone00001.bench", RecordType::SOA, ResponseCode::NoError, vec![soa()], false),
            message(view, RecordType::TXT, ResponseCode::NXDomain, vec![], true),
            message(view, RecordType::TXT, ResponseCode::NoError, vec![at(view, RData::TXT(txt))], false),
            message("_vlmcs._tcp.zone00001.bench", RecordType::SRV, ResponseCode::NoError, vec![], true),
            message(
                "kms1.hosts.bench",
                RecordType::A,
                ResponseCode::NoError,
                vec![at("kms1.hosts.bench", RData::A(A::new(127, 0, 0, 1)))],
                false,
            ),
            message(
                "kms1.hosts.bench",
                RecordType::AAAA,
                ResponseCode::NoError,
                vec![at("kms1.hosts.bench", RData::AAAA(AAAA::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)))],
                false,
            ),
            message("kms1.hosts.bench", RecordType::AAAA, ResponseCode::NoError, vec![], true),
            message(
                "alias.hosts.bench",
                RecordType::A,
                ResponseCode::NoError,
                vec![
                    at("alias.hosts.bench", RData::CNAME(CNAME(hname("kms1.hosts.bench.")))),
                    at("kms1.hosts.bench", RData::A(A::new(127, 0, 0, 1))),
                ],
                false,
            ),
        ]
    }

    /// The records as the slow path names their owners (`Owner::Asked` is the name asked).
    fn named(records: &[Rec], asked: &DnsName) -> Vec<Rec> {
        let name = |r: &Rec| match r.owner {
            super::super::reply::Owner::Asked => super::super::reply::Owner::Name(asked.clone()),
            ref other => other.clone(),
        };
        records.iter().map(|r| Rec { owner: name(r), ..r.clone() }).collect()
    }

    /// The answers a healthy BIND gives are read plainly, and read so, they say what hickory
    /// reads in them.
    #[test]
    fn answers_as_bind_gives_them_are_read_plainly_as_hickory_reads_them() {
        for (name, rtype, bytes) in answers_as_bind_gives_them() {
            let q = Question { name: &name, rtype, recursive: false };
            let query = encode_query(q, true);
            let question = &query[12..12 + name.as_str().len() + 6];
            let plain = Reply::plain(&bytes, 4711, q, question).unwrap_or_else(|| panic!("{q}: not plain"));
            let hickory = check_answer::<Reply>(&bytes, 4711, q, Transport::Udp).unwrap();
            assert_eq!(plain.metadata, hickory.metadata, "{q}");
            assert_eq!(named(&plain.answers, &name), hickory.answers, "{q}");
        }
    }

    /// What the plain reader reads, hickory reads (and `check_answer` accepts), and both read
    /// the same records: over mutations of BIND's answers (octets set, bits flipped, octets
    /// inserted and removed, the message cut short, letters' case changed), the plain reader
    /// never accepts a message the slow path refuses or reads otherwise.
    #[test]
    fn the_plain_reader_never_reads_what_hickory_refuses_or_reads_otherwise() {
        let templates = answers_as_bind_gives_them();
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % bound.max(1) as u64) as usize
        };
        let (mut plain_mutants, mut refused_by_hickory) = (0, 0);
        for round in 0..60_000 {
            let (name, rtype, template) = &templates[round % templates.len()];
            let mut bytes = template.clone();
            for _ in 0..1 + next(3) {
                let at = next(bytes.len());
                match next(6) {
                    0 => bytes[at] = next(256) as u8,
                    1 => bytes[at] ^= 1 << next(8),
                    2 => bytes.insert(at, next(256) as u8),
                    3 => drop(bytes.remove(at)),
                    4 => bytes.truncate(at),
                    _ => {
                        if bytes[at].is_ascii_alphabetic() {
                            bytes[at] ^= 0x20;
                        }
                    }
                }
                if bytes.is_empty() {
                    bytes.push(0);
                }
            }
            let q = Question { name, rtype: *rtype, recursive: false };
            let query = encode_query(q, true);
            let question = &query[12..12 + name.as_str().len() + 6];
            let slow = check_answer::<Reply>(&bytes, 4711, q, Transport::Udp);
            refused_by_hickory += usize::from(slow.is_err());
            let Some(plain) = Reply::plain(&bytes, 4711, q, question) else { continue };
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let slow = slow.unwrap_or_else(|e| panic!("read plainly, refused by hickory ({e}): {hex}"));
            assert_eq!(plain.metadata, slow.metadata, "{hex}");
            assert_eq!(named(&plain.answers, name), slow.answers, "{hex}");
            plain_mutants += usize::from(&bytes != template);
        }
        // Neither side of the test is empty: many mutants are read plainly, many are refused.
        assert!(
            plain_mutants > 3_000 && refused_by_hickory > 20_000,
            "{plain_mutants} plain, {refused_by_hickory} refused"
        );
    }

    fn srv_question(name: &DnsName) -> Question<'_> {
        Question { name, rtype: RecordType::SRV, recursive: false }
    }

    /// A record after the question: `owner`, then TYPE, CLASS IN, TTL 60 and `rdata` by its
    /// length.
    fn record(owner: &[u8], rtype: u16, rdata: &[u8]) -> Vec<u8> {
        let mut r = owner.to_vec();
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        r.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
        r.extend_from_slice(rdata);
        r
    }

    /// "No record" is the evidence a negative answer gives, so all of it must parse: a NODATA
    /// whose authority or additional section hickory refuses is unknown, never NODATA.
    #[test]
    fn a_negative_answer_that_does_not_parse_whole_is_unknown_never_no_record() {
        let name = DnsName::parse("_vlmcs._tcp.zone00001.bench").unwrap();
        let at = u8::try_from(nodata_with(&[], [0, 0, 0]).len()).unwrap();
        let long_owner =
            [[63u8].as_slice(), &[b'a'; 63]].concat().repeat(5).into_iter().chain([0]).collect::<Vec<u8>>();
        let cases: Vec<(&str, Vec<u8>, [u16; 3])> = vec![
            ("an owner that points forward", record(&[0xC0, 0xFF], 1, &[127, 0, 0, 1]), [0, 1, 0]),
            ("an owner that points to itself", record(&[0xC0, at], 1, &[127, 0, 0, 1]), [0, 0, 1]),
            ("an owner of 321 octets", record(&long_owner, 1, &[127, 0, 0, 1]), [0, 0, 1]),
            ("an A record with no address", record(&[0], 1, &[]), [0, 0, 1]),
            ("an SOA of 3 octets", record(&[0xC0, 0x0C], 6, &[1, b'a', 0]), [0, 1, 0]),
            ("an OPT record not owned by the root", record(&[1, b'x', 0], 41, &[]), [0, 0, 1]),
            // The second owner's pointer goes back one octet, to a label of one octet that
            // ends inside the owner itself (a pointer must lead before the part that holds it).
            (
                "an owner whose labels, pointed to, run into it",
                [record(&[0xC0, 0x0C], 1, &[127, 0, 0, 1]), record(&[1, 0, 0xC0, at + 15], 1, &[127, 0, 0, 2])]
                    .concat(),
                [0, 0, 2],
            ),
        ];
        for (what, tail, counts) in cases {
            let bytes = nodata_with(&tail, counts);
            assert!(Message::from_vec(&bytes).is_err(), "{what}: hickory refuses it");
            let read = read_as_asked::<Reply>(&bytes, 4711, srv_question(&name)).map(classify);
            assert!(matches!(read, Err(ReadError::Malformed(_))), "{what}: {read:?}");
        }
        // The same message without the broken record is NODATA.
        let fine = nodata_with(&[], [0, 0, 0]);
        let read = read_as_asked::<Reply>(&fine, 4711, srv_question(&name)).map(classify);
        assert!(matches!(read, Ok(Ok(Answer::NoData))));
    }

    /// Only an answer that holds what was asked (NOERROR, a record of the type asked at the
    /// name asked) may skip reading its other sections. An NXDOMAIN is negative whatever its
    /// answer section holds, and an answer section of other types is no record of the type
    /// asked: both are read whole, so neither can come from a message hickory refuses.
    #[test]
    fn an_answer_without_what_was_asked_is_read_whole() {
        // NXDOMAIN for `_vlmcs._tcp.zone.test` SRV with two SRV records in its answer section,
        // and an NS record in its authority section whose target starts with a 0x40 label.
        // Found by a mutation run (seed 0x9E3779B97F4A7C15).
        let hex = "126784030001000200010003065f766c6d6373045f746370047a6f6e6504746573740000210001c00c002100010000003c0016000000000698046b6d7331047a6f6e65047465737400c00c002100010000003c0016000000000698046b6d7332047a6f6e65047465737400c018000200010000003c0005406e73c018c039000100010000003c00040a000001c05b000100010000003c00040a00000200002904d0000000000000";
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        assert!(Message::from_vec(&bytes).is_err(), "hickory refuses it");
        let name = DnsName::parse("_vlmcs._tcp.zone.test").unwrap();
        let read = read_as_asked::<Reply>(&bytes, 4711, srv_question(&name)).map(classify);
        assert!(matches!(read, Err(ReadError::Malformed(_))), "NXDOMAIN with answers: {read:?}");

        // NOERROR whose answer section holds a record of type 65280 only, and an additional A
        // record with no address.
        let name = DnsName::parse("_vlmcs._tcp.zone00001.bench").unwrap();
        let other = record(&[0xC0, 0x0C], 65280, &[1]);
        let broken = [other.clone(), record(&[0], 1, &[])].concat();
        let bytes = nodata_with(&broken, [1, 0, 1]);
        assert!(Message::from_vec(&bytes).is_err(), "hickory refuses it");
        let read = read_as_asked::<Reply>(&bytes, 4711, srv_question(&name));
        assert!(matches!(read, Err(ReadError::Malformed(_))), "another type only: {read:?}");
        // Whole, the same answer is no SRV record.
        let bytes = nodata_with(&other, [1, 0, 0]);
        let read = read_as_asked::<Reply>(&bytes, 4711, srv_question(&name)).unwrap();
        let answer = classify(read).unwrap();
        assert_eq!(srv_answer(&name, answer.records().to_vec()), SrvAnswer::NoData);
    }

    /// Octets after the last record the counts announce are a message that does not say what
    /// its header says: an SRV record outside the answer section, or an OPT record (BADVERS)
    /// outside the additional section, would be read as NODATA.
    #[test]
    fn octets_after_the_last_record_are_refused() {
        let name = DnsName::parse("_vlmcs._tcp.zone00001.bench").unwrap();
        let srv = record(&[0xC0, 0x0C], 33, &[0, 0, 0, 0, 0x06, 0x98, 4, b'k', b'm', b's', b'1', 0]);
        let badvers = [0, 0, 41, 0x04, 0xD0, 1, 0, 0, 0, 0, 0];
        for (what, tail) in [("an SRV record", srv.as_slice()), ("a BADVERS OPT record", &badvers), ("one octet", &[0])]
        {
            let bytes = nodata_with(tail, [0, 0, 0]);
            let read = read_as_asked::<Reply>(&bytes, 4711, srv_question(&name));
            assert!(matches!(read, Err(ReadError::Malformed(_))), "{what}: {read:?}");
            let read = read_as_asked::<Message>(&bytes, 4711, srv_question(&name));
            assert!(matches!(read, Err(ReadError::Malformed(_))), "{what}, read whole: {read:?}");
        }
        // After a positive answer too.
        let mut bytes = bind_like_answer(ResponseCode::NoError).to_vec().unwrap();
        bytes.push(0);
        let owner = DnsName::parse("_vlmcs._tcp.zone00001.bench").unwrap();
        let read = read_as_asked::<Reply>(&bytes, 4711, srv_question(&owner));
        assert!(matches!(read, Err(ReadError::Malformed(_))), "{read:?}");
    }

    /// Only a QUERY's answer answers a question. Under opcode UPDATE hickory reads an SRV
    /// record of no RDATA (a delete), which is no SRV record: NODATA, where it is no answer.
    #[test]
    fn an_answer_under_another_opcode_is_refused() {
        let name = DnsName::parse("_vlmcs._tcp.zone00001.bench").unwrap();
        let empty_srv = record(&[0xC0, 0x0C], 33, &[]);
        for (opcode, tail, answers) in [(5u8, empty_srv.as_slice(), 1u16), (4, &[][..], 0)] {
            let mut bytes = nodata_with(tail, [answers, 0, 0]);
            bytes[2] = (bytes[2] & 0x87) | (opcode << 3);
            let read = read_as_asked::<Reply>(&bytes, 4711, srv_question(&name));
            assert!(matches!(read, Err(ReadError::Malformed(_))), "opcode {opcode}: {read:?}");
        }
    }

    use super::*;
    use hickory_proto::rr::{RData, Record};

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn no_address_needs_every_server_to_say_so_and_anything_unread_makes_addresses_incomplete() {
        let none = || AddressAnswer::Addresses(vec![]);
        let alias = || AddressAnswer::Alias(DnsName::parse("live.hosts.test").unwrap());
        let failed = || AddressAnswer::Failed(ReadError::Timeout);
        let found = |a: Vec<AddressAnswer>| combine(a);
        assert_eq!(found(vec![none(), none()]), Found::Resolved(Resolution::NoAddress));
        assert!(matches!(found(vec![]), Found::Resolved(Resolution::Failed { .. })));
        assert!(matches!(found(vec![none(), failed()]), Found::Resolved(Resolution::Failed { .. })));
        assert_eq!(found(vec![none(), alias()]), Found::Alias(DnsName::parse("live.hosts.test").unwrap()));
        let complete = found(vec![AddressAnswer::Addresses(vec![ip(2), ip(1)]), none()]);
        assert_eq!(
            complete,
            Found::Resolved(Resolution::Addresses { addresses: vec![ip(1), ip(2)], incomplete: None })
        );
        // A server that could not be read, or that calls the name an alias this lookup does not
        // follow, may know addresses the others do not: "every address is down" cannot be said.
        for other in [failed(), alias()] {
            let partial = found(vec![AddressAnswer::Addresses(vec![ip(1)]), other]);
            assert!(
                matches!(partial, Found::Resolved(Resolution::Addresses { incomplete: Some(_), .. })),
                "{partial:?}"
            );
        }
    }
}
