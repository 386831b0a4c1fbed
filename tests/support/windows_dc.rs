//! A scripted Windows DNS server for secure dynamic updates: a real GSS-API acceptor (MIT
//! Kerberos, with the keytab `KRB5_KTNAME` names) behind the two Windows behaviours no server
//! here has:
//!
//! * the TKEY algorithm name `gss.microsoft.com` of Windows 2000-era servers: a TKEY for
//!   `gss-tsig` is answered with the TKEY error BADALG, one for `gss.microsoft.com` negotiates;
//! * a secure update the node's ACL denies: REFUSED, signed with the context (RFC 3645 §3.2).
//!
//! It answers nothing else. It serves TCP (kmsdns sends TKEY and UPDATE over TCP only) on one
//! thread, one connection at a time, and writes one line per event to `events`. Run it where
//! the KDC's service principal `DNS/<name>` is in the keytab: inside the Samba + BIND9_DLZ lab,
//! with `<dc>/bind-dns/dns.keytab` (see `interop_scripted::windows_dc_inside_lab`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use kmsdns::wire::tkey::{self, Tkey};
use libgssapi::context::{SecurityContext, ServerCtx};

/// The TKEY error for an algorithm the server does not take (RFC 2930 §2.6, RFC 8945 BADALG).
const BADALG: u16 = 21;
const TYPE_TSIG: u16 = 250;

/// One negotiated context per TKEY key name, with the algorithm it was negotiated under.
struct Contexts(HashMap<String, (ServerCtx, String)>);

/// Serves until `stop()` says so or `deadline` passes; every event goes to `events` as a line.
pub fn serve(listener: TcpListener, deadline: Instant, stop: impl Fn() -> bool, events: &mut impl Write) {
    listener.set_nonblocking(true).expect("non-blocking listener");
    let mut contexts = Contexts(HashMap::new());
    while Instant::now() < deadline && !stop() {
        match listener.accept() {
            Ok((conn, _)) => {
                if let Err(e) = connection(conn, &mut contexts, events) {
                    let _ = writeln!(events, "windows-dc: connection error: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = writeln!(events, "windows-dc: accept: {e}");
                return;
            }
        }
        let _ = events.flush();
    }
}

fn connection(mut conn: TcpStream, contexts: &mut Contexts, events: &mut impl Write) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    loop {
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return Ok(()); // the client closed the connection
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        conn.read_exact(&mut msg)?;
        let Some(answer) = answer(&msg, contexts, events) else { continue };
        conn.write_all(&(answer.len() as u16).to_be_bytes())?;
        conn.write_all(&answer)?;
    }
}

fn answer(bytes: &[u8], contexts: &mut Contexts, events: &mut impl Write) -> Option<Vec<u8>> {
    let query = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(events, "windows-dc: unparsable message: {e}");
            return None;
        }
    };
    match query.metadata.op_code {
        OpCode::Query => tkey_answer(&query, contexts, events),
        OpCode::Update => Some(refuse_signed(bytes, &query, contexts, events)),
        other => {
            let _ = writeln!(events, "windows-dc: unexpected opcode {other:?}");
            None
        }
    }
}

/// TKEY negotiation: BADALG for `gss-tsig`, a GSS step for `gss.microsoft.com`.
fn tkey_answer(query: &Message, contexts: &mut Contexts, events: &mut impl Write) -> Option<Vec<u8>> {
    let rr = query.additionals.iter().find(|r| r.record_type() == RecordType::Unknown(tkey::TYPE_TKEY))?;
    let RData::Unknown { rdata, .. } = &rr.data else { return None };
    let offered = parse_tkey(&rdata.anything)?;
    let key_name = rr.name.to_lowercase().to_ascii();
    let mut reply = Tkey { error: 0, key: vec![], ..offered.clone() };
    if offered.algorithm == "gss-tsig" {
        let _ = writeln!(events, "windows-dc: TKEY {}: BADALG", offered.algorithm);
        reply.error = BADALG;
    } else {
        let (ctx, _) =
            contexts.0.entry(key_name.clone()).or_insert_with(|| (ServerCtx::new(None), offered.algorithm.clone()));
        match ctx.step(&offered.key, None) {
            Ok(token) => {
                let _ = writeln!(
                    events,
                    "windows-dc: TKEY {}: accepted{}",
                    offered.algorithm,
                    if ctx.is_complete() { ", context complete" } else { "" }
                );
                reply.key = token.map(|t| t.to_vec()).unwrap_or_default();
            }
            Err(e) => {
                let _ = writeln!(events, "windows-dc: TKEY {}: GSS error {e}", offered.algorithm);
                reply.error = 17; // BADKEY
            }
        }
    }
    let mut m = Message::response(query.metadata.id, OpCode::Query);
    m.metadata.message_type = MessageType::Response;
    m.metadata.authoritative = true;
    m.add_queries(query.queries.clone());
    let mut answer = Record::from_rdata(
        rr.name.clone(),
        0,
        RData::Unknown { code: RecordType::Unknown(tkey::TYPE_TKEY), rdata: NULL::with(tkey::encode_rdata(&reply)) },
    );
    answer.dns_class = DNSClass::ANY;
    m.answers.push(answer);
    m.to_vec().ok()
}

/// REFUSED to a signed UPDATE, signed with the context its TSIG names (the RFC 8945 §4.3.1
/// digest: request MAC, the answer without its TSIG, the TSIG variables).
fn refuse_signed(bytes: &[u8], query: &Message, contexts: &mut Contexts, events: &mut impl Write) -> Vec<u8> {
    let mut m = Message::response(query.metadata.id, OpCode::Update);
    m.metadata.message_type = MessageType::Response;
    m.metadata.response_code = ResponseCode::Refused;
    m.add_queries(query.queries.clone());
    let unsigned = m.to_vec().expect("encode the REFUSED answer");
    let Some((key_name, request_mac)) = request_tsig(bytes) else {
        let _ = writeln!(events, "windows-dc: UPDATE unsigned: REFUSED");
        return unsigned;
    };
    let Some((ctx, algorithm)) = contexts.0.get_mut(&key_name) else {
        let _ = writeln!(events, "windows-dc: UPDATE signed with unknown key {key_name}: REFUSED unsigned");
        return unsigned;
    };
    let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut digest = (request_mac.len() as u16).to_be_bytes().to_vec();
    digest.extend_from_slice(&request_mac);
    digest.extend_from_slice(&unsigned);
    digest.extend_from_slice(&wire_name(&key_name));
    digest.extend_from_slice(&255u16.to_be_bytes()); // class ANY
    digest.extend_from_slice(&0u32.to_be_bytes()); // TTL
    digest.extend_from_slice(&wire_name(algorithm));
    digest.extend_from_slice(&time.to_be_bytes()[2..]);
    digest.extend_from_slice(&300u16.to_be_bytes()); // fudge
    digest.extend_from_slice(&0u16.to_be_bytes()); // error
    digest.extend_from_slice(&0u16.to_be_bytes()); // other len
    let mic = match ctx.get_mic(&digest) {
        Ok(mic) => mic.to_vec(),
        Err(e) => {
            let _ = writeln!(events, "windows-dc: UPDATE: cannot sign: {e}");
            return unsigned;
        }
    };
    let _ = writeln!(events, "windows-dc: UPDATE signed with the {algorithm} context: REFUSED, signed");
    let mut wire = unsigned;
    let arcount = u16::from_be_bytes([wire[10], wire[11]]) + 1;
    wire[10..12].copy_from_slice(&arcount.to_be_bytes());
    wire.extend_from_slice(&wire_name(&key_name));
    wire.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    wire.extend_from_slice(&255u16.to_be_bytes());
    wire.extend_from_slice(&0u32.to_be_bytes());
    let mut rdata = wire_name(algorithm);
    rdata.extend_from_slice(&time.to_be_bytes()[2..]);
    rdata.extend_from_slice(&300u16.to_be_bytes());
    rdata.extend_from_slice(&(mic.len() as u16).to_be_bytes());
    rdata.extend_from_slice(&mic);
    rdata.extend_from_slice(&query.metadata.id.to_be_bytes());
    rdata.extend_from_slice(&0u16.to_be_bytes()); // error
    rdata.extend_from_slice(&0u16.to_be_bytes()); // other len
    wire.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    wire.extend_from_slice(&rdata);
    wire
}

/// The key name and MAC of the request's TSIG (its last additional record).
fn request_tsig(bytes: &[u8]) -> Option<(String, Vec<u8>)> {
    let m = Message::from_vec(bytes).ok()?;
    let tsig = m.signature()?;
    Some((tsig.name.to_lowercase().to_ascii(), tsig.data.mac.clone()))
}

/// A name as uncompressed wire labels, lower case ("a.b." or "a.b").
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.to_ascii_lowercase().as_bytes());
    }
    out.push(0);
    out
}

/// A TKEY RDATA whose algorithm name is uncompressed, as kmsdns writes it.
fn parse_tkey(b: &[u8]) -> Option<Tkey> {
    let mut pos = 0;
    let mut labels = Vec::new();
    loop {
        let len = *b.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(b.get(pos..pos + len)?).to_ascii_lowercase());
        pos += len;
    }
    let u16_at = |p: usize| Some(u16::from_be_bytes([*b.get(p)?, *b.get(p + 1)?]));
    let u32_at = |p: usize| Some(u32::from_be_bytes(b.get(p..p + 4)?.try_into().ok()?));
    let key_len = u16_at(pos + 12)? as usize;
    Some(Tkey {
        algorithm: labels.join("."),
        inception: u32_at(pos)?,
        expiration: u32_at(pos + 4)?,
        mode: u16_at(pos + 8)?,
        error: u16_at(pos + 10)?,
        key: b.get(pos + 14..pos + 14 + key_len)?.to_vec(),
    })
}
