//! A scripted authoritative DNS server for answers real servers will not give: an answer to
//! another question, garbage, TC=1 over TCP, FORMERR to EDNS, a TTL with the top bit set.
//!
//! It serves a small zone from a list of records, on 127.0.0.1 (UDP and TCP on one port), and
//! a [`Script`] bends each answer. It runs on its own thread with blocking sockets, counts what
//! it was asked, and stops when dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::free_port;

/// How a received question is answered.
pub enum Reply {
    /// The answer the zone gives, changed by the closure.
    Bent(Box<dyn Fn(&mut Message) + Send + Sync>),
    /// These bytes, after the question's ID.
    RawAfterId(Vec<u8>),
    /// Nothing.
    Silence,
}

/// Chooses a reply per question: (question name, type, over TCP?, query had EDNS?).
pub type Script = Box<dyn Fn(&str, RecordType, bool, bool) -> Option<Reply> + Send + Sync>;

/// What it was asked.
#[derive(Debug, Default, Clone)]
pub struct Asked {
    pub total: usize,
    pub with_edns: usize,
    pub over_tcp: usize,
    /// UPDATEs, each answered NOERROR and applied to nothing (as PowerDNS does when its update
    /// policy refuses).
    pub updates: usize,
}

pub struct RogueDns {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    asked: Arc<Mutex<Asked>>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for RogueDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A zone: `zone` with its SOA, and records given as (owner, rdata).
pub struct Zone {
    pub origin: Name,
    pub records: Vec<Record>,
}

impl Zone {
    pub fn new(origin: &str) -> Zone {
        let origin = Name::from_str(&format!("{}.", origin.trim_end_matches('.'))).expect("zone name");
        let soa = SOA::new(
            Name::from_str("ns1").unwrap().append_domain(&origin).unwrap(),
            Name::from_str("hostmaster").unwrap().append_domain(&origin).unwrap(),
            1,
            2,
            1,
            86_400,
            60,
        );
        let records = vec![Record::from_rdata(origin.clone(), 3600, RData::SOA(soa))];
        Zone { origin, records }
    }

    fn name(&self, label: &str) -> Name {
        Name::from_str(label).expect("owner").append_domain(&self.origin).expect("owner in zone")
    }

    pub fn a(mut self, label: &str, ip: Ipv4Addr) -> Zone {
        let name = self.name(label);
        self.records.push(Record::from_rdata(name, 600, RData::A(A(ip))));
        self
    }

    /// `_vlmcs._tcp SRV 0 0 1688 <target>` with the given TTL.
    pub fn srv(mut self, target: &str, ttl: u32) -> Zone {
        let owner = self.name("_vlmcs._tcp");
        let target = Name::from_str(&format!("{}.", target.trim_end_matches('.'))).expect("target");
        self.records.push(Record::from_rdata(owner, ttl, RData::SRV(SRV::new(0, 0, 1688, target))));
        self
    }

    /// The authoritative answer to `query`: records, NODATA or NXDOMAIN.
    fn answer(&self, query: &Message) -> Message {
        let mut m = Message::response(query.metadata.id, OpCode::Query);
        m.metadata.message_type = MessageType::Response;
        m.metadata.authoritative = true;
        m.add_queries(query.queries.clone());
        let Some(q) = query.queries.first() else {
            m.metadata.response_code = ResponseCode::FormErr;
            return m;
        };
        let owner = q.name().to_lowercase();
        let at_owner: Vec<&Record> = self.records.iter().filter(|r| r.name.to_lowercase() == owner).collect();
        if at_owner.is_empty() {
            m.metadata.response_code = ResponseCode::NXDomain;
        }
        m.add_answers(at_owner.into_iter().filter(|r| r.record_type() == q.query_type()).cloned());
        m
    }
}

impl RogueDns {
    /// Serves `zone` on 127.0.0.1, each answer as `script` says (None: the zone's own answer).
    pub fn start(zone: Zone, script: Script) -> RogueDns {
        let (udp, tcp) = loop {
            let port = free_port();
            if let (Ok(u), Ok(t)) =
                (UdpSocket::bind((Ipv4Addr::LOCALHOST, port)), TcpListener::bind((Ipv4Addr::LOCALHOST, port)))
            {
                break (u, t);
            }
        };
        let addr = udp.local_addr().expect("rogue address");
        udp.set_read_timeout(Some(Duration::from_millis(20))).expect("read timeout");
        tcp.set_nonblocking(true).expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(Mutex::new(Asked::default()));
        let serve = Arc::new(Serve { zone, script, asked: asked.clone() });
        let mut threads = Vec::new();
        {
            let (stop, serve) = (stop.clone(), serve.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((n, from)) = udp.recv_from(&mut buf) else { continue };
                    if let Some(bytes) = serve.reply(&buf[..n], false) {
                        let _ = udp.send_to(&bytes, from);
                    }
                }
            }));
        }
        {
            let (stop, serve) = (stop.clone(), serve.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((mut conn, _)) = tcp.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut len = [0u8; 2];
                    if conn.read_exact(&mut len).is_err() {
                        continue;
                    }
                    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if conn.read_exact(&mut msg).is_err() {
                        continue;
                    }
                    if let Some(bytes) = serve.reply(&msg, true) {
                        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&bytes);
                        let _ = conn.write_all(&framed);
                    }
                }
            }));
        }
        RogueDns { addr, stop, asked, threads }
    }

    pub fn asked(&self) -> Asked {
        self.asked.lock().unwrap().clone()
    }
}

struct Serve {
    zone: Zone,
    script: Script,
    asked: Arc<Mutex<Asked>>,
}

impl Serve {
    fn reply(&self, bytes: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let query = Message::from_vec(bytes).ok()?;
        let edns = query.edns.is_some();
        {
            let mut asked = self.asked.lock().unwrap();
            asked.total += 1;
            asked.with_edns += usize::from(edns);
            asked.over_tcp += usize::from(tcp);
        }
        let update = query.metadata.op_code == OpCode::Update;
        if update {
            self.asked.lock().unwrap().updates += 1;
        }
        let q = query.queries.first()?;
        let name = q.name().to_ascii().trim_end_matches('.').to_lowercase();
        let id = query.metadata.id.to_be_bytes();
        match (self.script)(&name, q.query_type(), tcp, edns) {
            // Unscripted, an UPDATE gets NOERROR and changes nothing.
            None if update => {
                let mut m = Message::response(query.metadata.id, OpCode::Update);
                m.add_queries(query.queries.clone());
                m.to_vec().ok()
            }
            None => self.zone.answer(&query).to_vec().ok(),
            Some(Reply::Bent(bend)) => {
                let mut m = self.zone.answer(&query);
                bend(&mut m);
                m.to_vec().ok()
            }
            Some(Reply::RawAfterId(rest)) => Some([id.as_slice(), &rest].concat()),
            Some(Reply::Silence) => None,
        }
    }
}

/// What a relay does with the server's answer to the first message.
enum First {
    /// Drops it, closing the client's connection without it (an UPDATE whose answer is lost).
    Lose,
    /// Runs this (another writer, say) before passing it back.
    RunBefore(Box<dyn Fn() + Send>),
}

/// A TCP relay in front of a real server that passes each message on and each answer back,
/// but for the first answer, which it loses or holds while something else happens.
pub struct LostAnswerRelay {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    relayed: Arc<Mutex<usize>>,
}

impl LostAnswerRelay {
    /// Loses the first answer.
    pub fn start(upstream: SocketAddr) -> LostAnswerRelay {
        Self::with(upstream, First::Lose)
    }

    /// Runs `then` once the server has answered the first message, before passing it back.
    pub fn then_run(upstream: SocketAddr, then: impl Fn() + Send + 'static) -> LostAnswerRelay {
        Self::with(upstream, First::RunBefore(Box::new(then)))
    }

    fn with(upstream: SocketAddr, first: First) -> LostAnswerRelay {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the relay");
        let addr = listener.local_addr().expect("relay address");
        listener.set_nonblocking(true).expect("nonblocking relay");
        let stop = Arc::new(AtomicBool::new(false));
        let relayed = Arc::new(Mutex::new(0));
        let (flag, count) = (stop.clone(), relayed.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut len = [0u8; 2];
                if conn.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if conn.read_exact(&mut msg).is_err() {
                    continue;
                }
                let Ok(mut up) = std::net::TcpStream::connect(upstream) else { continue };
                let _ = up.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = up.write_all(&[len.as_slice(), &msg].concat());
                let mut answer_len = [0u8; 2];
                if up.read_exact(&mut answer_len).is_ok() {
                    *count.lock().unwrap() += 1;
                }
                let mut answer = vec![0u8; usize::from(u16::from_be_bytes(answer_len))];
                let answered = up.read_exact(&mut answer).is_ok();
                let is_first = *count.lock().unwrap() == 1;
                let pass_back = match &first {
                    First::Lose => !is_first,
                    First::RunBefore(then) => {
                        if is_first {
                            then();
                        }
                        true
                    }
                };
                if answered && pass_back {
                    let _ = conn.write_all(&[answer_len.as_slice(), &answer].concat());
                }
                drop(conn);
            }
        });
        LostAnswerRelay { addr, stop, thread: Some(thread), relayed }
    }

    /// Messages the server answered.
    pub fn relayed(&self) -> usize {
        *self.relayed.lock().unwrap()
    }
}

impl Drop for LostAnswerRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
