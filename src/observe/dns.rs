//! Reading DNS from authoritative servers, one server at a time, through hickory-net.
//!
//! Two traps of hickory-net 0.26's `Client` shape this module (rust-crates.md §1.1): it has no
//! TCP fallback (a truncated UDP answer is simply returned), and its UDP client stream resends
//! every 333 ms within one overall timeout. We send one datagram per attempt, with our own
//! timeout and our own retries, and repeat the question over TCP when the answer is truncated.
//! Queries go with RD=0: we want the server's own authoritative data, never a recursion.
//!
//! hickory's UDP client stream also opens a socket per question. An audit asks thousands, so
//! each server instead gets one socket, opened on first use, whose answers hickory's
//! multiplexer hands to the right question by message ID; datagrams from any other address
//! are dropped. That halves the audit's CPU time (bench/README.md).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::Semaphore;

use hickory_net::NetError;
use hickory_net::client::Client;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::runtime::TokioTime;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpStream;
use hickory_net::xfer::{DnsClientStream, DnsHandle, DnsMultiplexer, FirstAnswer};
use hickory_proto::op::{DnsRequestOptions, DnsResponse, Query, ResponseCode, SerialMessage};
use hickory_proto::rr::{DNSClass, RData, RecordType};
use serde::Serialize;

use super::{Resolution, SrvAnswer, SrvRecord};
use crate::inventory::{ServerAddr, ServerHost};
use crate::name::DnsName;

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

/// Asks authoritative servers questions with a fixed timeout and retry budget. Clones share
/// the per-server sockets.
#[derive(Clone)]
pub struct DnsReader {
    timeout: Duration,
    retries: u8,
    sockets: Arc<Sockets>,
}

/// A server's multiplexed UDP client, and the bound on its questions in flight.
type ServerSocket = (Client<TokioRuntimeProvider>, Arc<Semaphore>);

/// One multiplexed UDP client per server, and the tasks that drive them (stopped on drop).
#[derive(Default)]
struct Sockets {
    clients: Mutex<HashMap<SocketAddr, ServerSocket>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Sockets {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().map(std::mem::take).unwrap_or_default() {
            t.abort();
        }
    }
}

impl std::fmt::Debug for DnsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsReader").field("timeout", &self.timeout).field("retries", &self.retries).finish()
    }
}

/// Questions one server's socket may have in flight. hickory queues outgoing datagrams in a
/// channel of 32 and fails a question when it is full ("channel is full"), so the socket
/// takes fewer than that at once; more concurrency comes from more servers.
const IN_FLIGHT_PER_SERVER: usize = 24;
/// The multiplexer forgets an answered question only when it next runs, so its own count of
/// questions in flight lags ours; its limit ("resource too busy") must not be the one that bites.
const MUX_TABLE: usize = 1024;

impl DnsReader {
    pub fn new(timeout: Duration, retries: u8) -> DnsReader {
        DnsReader { timeout, retries, sockets: Arc::default() }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `_vlmcs._tcp.<zone>` SRV and the zone's SOA serial on one server, asked at once.
    /// Also returns the SOA MNAME, where updates go when the inventory names no primary.
    pub async fn zone_view(
        &self,
        server: SocketAddr,
        zone: &DnsName,
    ) -> (SrvAnswer, Result<u32, ReadError>, Option<DnsName>) {
        let owner = zone.vlmcs_owner();
        let (srv, soa) = tokio::join!(
            self.authoritative(server, &owner, RecordType::SRV),
            self.authoritative(server, zone, RecordType::SOA)
        );
        let srv = match srv {
            Ok(Answer::Records(rs)) => {
                let mut records = Vec::new();
                let mut unreadable = None;
                for r in rs.iter().filter(|r| DnsName::from_hickory(&r.name).as_ref() == Some(&owner)) {
                    let RData::SRV(s) = &r.data else { continue };
                    match DnsName::from_hickory(&s.target) {
                        Some(target) => records.push(SrvRecord {
                            target,
                            port: s.port,
                            priority: s.priority,
                            weight: s.weight,
                            ttl: r.ttl,
                        }),
                        None => unreadable = Some(s.target.to_ascii()),
                    }
                }
                records.sort();
                records.dedup();
                match unreadable {
                    // A record we cannot name cannot be reasoned about, or asserted in a
                    // prerequisite: the whole answer is unknown (e.g. RFC 2782's "." target).
                    Some(t) => SrvAnswer::Failed {
                        error: ReadError::Malformed(format!(
                            "it holds an SRV record with the target '{t}', which kmsdns cannot judge"
                        )),
                    },
                    None if records.is_empty() => SrvAnswer::NoData,
                    None => SrvAnswer::Records { records },
                }
            }
            Ok(Answer::NoData) => SrvAnswer::NoData,
            Ok(Answer::NxDomain) => SrvAnswer::NxDomain,
            Err(error) => SrvAnswer::Failed { error },
        };
        let soa = match soa {
            Ok(Answer::Records(rs)) => rs
                .iter()
                .find_map(|r| match &r.data {
                    RData::SOA(s) if DnsName::from_hickory(&r.name).as_ref() == Some(zone) => {
                        Some((s.serial, DnsName::from_hickory(&s.mname)))
                    }
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

    /// A and AAAA of `name` from the first of `servers` that gives a usable answer.
    pub async fn addresses_from(&self, servers: &[SocketAddr], name: &DnsName) -> Resolution {
        let mut last = ReadError::Network("the zone has no usable server".into());
        for server in servers {
            let (a, aaaa) = tokio::join!(
                self.authoritative(*server, name, RecordType::A),
                self.authoritative(*server, name, RecordType::AAAA)
            );
            match (a, aaaa) {
                (Ok(a), Ok(aaaa)) => {
                    let records: Vec<&hickory_proto::rr::Record> =
                        [&a, &aaaa].into_iter().flat_map(Answer::records).collect();
                    // An SRV target should not be an alias (RFC 2782), but Windows clients follow
                    // one: follow the CNAME chain the server put in its answer.
                    let mut current = name.clone();
                    for _ in 0..8 {
                        let next = records.iter().find_map(|r| match &r.data {
                            RData::CNAME(c) if DnsName::from_hickory(&r.name).as_ref() == Some(&current) => {
                                DnsName::from_hickory(&c.0)
                            }
                            _ => None,
                        });
                        match next {
                            Some(n) => current = n,
                            None => break,
                        }
                    }
                    let addresses: Vec<IpAddr> = records
                        .iter()
                        .filter(|r| DnsName::from_hickory(&r.name).as_ref() == Some(&current))
                        .filter_map(|r| match &r.data {
                            RData::A(a) => Some(IpAddr::V4(a.0)),
                            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                            _ => None,
                        })
                        .collect();
                    return sorted_addresses(addresses);
                }
                (Err(e), _) | (_, Err(e)) => last = e,
            }
        }
        Resolution::Failed { error: last }
    }

    /// One authoritative question: UDP, TCP when truncated, retried after a timeout.
    async fn authoritative(&self, server: SocketAddr, name: &DnsName, rtype: RecordType) -> Result<Answer, ReadError> {
        let response = self.exchange(server, name, rtype).await?;
        classify(&response)
    }

    async fn exchange(&self, server: SocketAddr, name: &DnsName, rtype: RecordType) -> Result<DnsResponse, ReadError> {
        let mut last = ReadError::Timeout;
        for _ in 0..=self.retries {
            match self.udp_once(server, name, rtype).await {
                Ok(r) if r.metadata.truncation => {
                    return self.tcp_once(server, name, rtype).await.map_err(net_error);
                }
                Ok(r) => return Ok(r),
                Err(e) => {
                    last = net_error(e);
                    // A refusal by the kernel (ICMP port unreachable) will not change on a resend soon.
                    if !matches!(last, ReadError::Timeout) {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    async fn udp_once(&self, server: SocketAddr, name: &DnsName, rtype: RecordType) -> Result<DnsResponse, NetError> {
        let (client, in_flight) = self.udp_client(server).await?;
        let _slot = in_flight.acquire().await.map_err(|_| NetError::from("the server's socket was closed"))?;
        ask(&client, name, rtype).await
    }

    /// The server's shared UDP client and its in-flight bound, opened on first use.
    async fn udp_client(&self, server: SocketAddr) -> Result<(Client<TokioRuntimeProvider>, Arc<Semaphore>), NetError> {
        let lock = |m: &Mutex<HashMap<SocketAddr, _>>| m.lock().map(|c| c.get(&server).cloned()).unwrap_or(None);
        if let Some(c) = lock(&self.sockets.clients) {
            return Ok(c);
        }
        let (connect, handle) = UdpStream::new(server, None, None, false, TokioRuntimeProvider::new());
        let stream = FromServer { inner: connect.await?, server };
        let mux = DnsMultiplexer::new(stream, handle).with_timeout(self.timeout).with_max_active_requests(MUX_TABLE);
        let (client, background) = Client::<TokioRuntimeProvider>::from_sender(mux);
        let mut clients = self.sockets.clients.lock().map_err(|_| NetError::from("a DNS client lock was poisoned"))?;
        // Two first questions may race to open a socket: keep the one that won.
        if let Some(c) = clients.get(&server) {
            return Ok(c.clone());
        }
        let entry = (client, Arc::new(Semaphore::new(IN_FLIGHT_PER_SERVER)));
        clients.insert(server, entry.clone());
        if let Ok(mut tasks) = self.sockets.tasks.lock() {
            tasks.push(tokio::spawn(background));
        }
        Ok(entry)
    }

    async fn tcp_once(&self, server: SocketAddr, name: &DnsName, rtype: RecordType) -> Result<DnsResponse, NetError> {
        let client = tcp_client(server, self.timeout).await?;
        let result = ask(&client.0, name, rtype).await;
        client.1.abort();
        result
    }
}

/// A client on one TCP connection, and the task that drives it (abort it when done).
async fn tcp_client(
    server: SocketAddr,
    timeout: Duration,
) -> Result<(Client<TokioRuntimeProvider>, tokio::task::JoinHandle<()>), NetError> {
    let (connect, handle) = TcpClientStream::new(server, None, Some(timeout), TokioRuntimeProvider::new());
    let stream = tokio::time::timeout(timeout, connect).await.map_err(|_| NetError::Timeout)??;
    let mux = DnsMultiplexer::new(stream, handle).with_timeout(timeout);
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(mux);
    Ok((client, tokio::spawn(background)))
}

/// Sends a message exactly as given (ID included) over one TCP connection and returns the
/// answer: every UPDATE and TKEY goes this way. A signed message must reach the server byte
/// for byte: Samba checks the GSS-TSIG MIC over the ID on the wire rather than the TSIG
/// original ID, and hickory's multiplexer would replace the ID after signing.
pub(crate) async fn send_exact_over_tcp(
    server: SocketAddr,
    bytes: &[u8],
    timeout: Duration,
) -> Result<DnsResponse, NetError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let id = u16::from_be_bytes([bytes.first().copied().unwrap_or(0), bytes.get(1).copied().unwrap_or(0)]);
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(server).await?;
        let len = u16::try_from(bytes.len()).map_err(|_| std::io::Error::other("message longer than 65535 bytes"))?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(bytes);
        stream.write_all(&framed).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut answer).await?;
        Ok::<Vec<u8>, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(timeout, exchange).await.map_err(|_| NetError::Timeout)??;
    let response = DnsResponse::from_buffer(answer)?;
    if response.metadata.id != id {
        return Err(NetError::from("the answer is for another message (ID mismatch)"));
    }
    Ok(response)
}

async fn ask(
    client: &Client<TokioRuntimeProvider>,
    name: &DnsName,
    rtype: RecordType,
) -> Result<DnsResponse, NetError> {
    let mut query = Query::query(name.to_hickory(), rtype);
    query.set_query_class(DNSClass::IN);
    let mut options = DnsRequestOptions::default();
    options.recursion_desired = false;
    client.lookup(query, options).first_answer().await
}

/// A UDP socket's datagrams, keeping only those from the server it was opened for. Errors
/// of one receive are not worth ending every question in flight on this socket.
struct FromServer {
    inner: UdpStream<TokioRuntimeProvider>,
    server: SocketAddr,
}

impl Stream for FromServer {
    type Item = Result<SerialMessage, NetError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                Some(Ok(m)) if m.addr() == self.server => return Poll::Ready(Some(Ok(m))),
                Some(Ok(m)) => tracing::debug!("dropped a datagram from {}, expected {}", m.addr(), self.server),
                Some(Err(e)) => tracing::debug!("receive from {}: {e}", self.server),
                None => return Poll::Ready(None),
            }
        }
    }
}

impl DnsClientStream for FromServer {
    type Time = TokioTime;

    fn name_server_addr(&self) -> SocketAddr {
        self.server
    }
}

/// What an authoritative answer says, once errors are set apart.
enum Answer {
    Records(Vec<hickory_proto::rr::Record>),
    NoData,
    NxDomain,
}

impl Answer {
    fn records(&self) -> &[hickory_proto::rr::Record] {
        match self {
            Answer::Records(r) => r,
            _ => &[],
        }
    }
}

/// Sorts a response into an answer or an error. A non-authoritative answer (AA=0) is an
/// error: a referral or a cached copy is not what the zone's server holds.
fn classify(r: &DnsResponse) -> Result<Answer, ReadError> {
    match r.metadata.response_code {
        ResponseCode::NoError if !r.metadata.authoritative => Err(ReadError::NotAuthoritative),
        ResponseCode::NoError if r.answers.is_empty() => Ok(Answer::NoData),
        ResponseCode::NoError => Ok(Answer::Records(r.answers.clone())),
        ResponseCode::NXDomain if r.metadata.authoritative => Ok(Answer::NxDomain),
        ResponseCode::NXDomain => Err(ReadError::NotAuthoritative),
        ResponseCode::Refused => Err(ReadError::Refused),
        ResponseCode::ServFail => Err(ReadError::ServFail),
        ResponseCode::NotAuth => Err(ReadError::NotAuthoritative),
        other => Err(ReadError::Rcode(other.to_string())),
    }
}

fn net_error(e: NetError) -> ReadError {
    match e {
        NetError::Timeout => ReadError::Timeout,
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ReadError::Timeout,
        NetError::Io(io) => ReadError::Network(io.to_string()),
        NetError::Proto(p) => ReadError::Malformed(p.to_string()),
        other => ReadError::Network(other.to_string()),
    }
}

fn sorted_addresses(mut addresses: Vec<IpAddr>) -> Resolution {
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() { Resolution::NoAddress } else { Resolution::Addresses { addresses } }
}

/// Where a server from the inventory listens: its address, or the addresses its name has
/// through the system resolver. Never empty when Ok.
pub async fn server_socket_addrs(s: &ServerAddr, timeout: Duration) -> Result<Vec<SocketAddr>, ReadError> {
    match &s.host {
        ServerHost::Ip(ip) => Ok(vec![SocketAddr::new(*ip, s.port)]),
        ServerHost::Name(n) => match system_addresses(n, timeout).await {
            Resolution::Addresses { addresses } => Ok(addresses.iter().map(|a| SocketAddr::new(*a, s.port)).collect()),
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
