//! GSS-TSIG (RFC 3645): Kerberos-signed updates, which Active Directory's "secure only" zones
//! require, on top of hickory-proto's public TSIG pieces.
//!
//! A security context is negotiated with TKEY (RFC 2930 mode 3) over TCP, for the service
//! `DNS@<server fqdn>`, with the ambient Kerberos credentials (the ccache, or the keytab named
//! by `[ad] keytab` through KRB5_CLIENT_KTNAME). There is one context per server, kept for the
//! life of the process until its Kerberos lifetime ends or the server says it forgot it
//! (BADKEY), then negotiated again. Updates over one context are sent one at a time, so the
//! server sees the MICs' sequence numbers in order.
//!
//! Samba does not sign its answers as RFC 8945 §5.3.1 says (test-labs.md G9): Samba 4.17 as
//! Debian ships it puts the request MAC in front without its two-byte length (its
//! `dns_tsig_compute_mac`), the reference notes saw it left out altogether, and its error
//! answers carry the request's own MAC. Those exact forms are recognised and accepted, and said
//! at debug level; an echoed MAC only on an error answer, never on a success. Every other
//! verification failure is an error.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::rdata::tsig::{TSIG, TsigAlgorithm, message_tbs, signed_bitmessage_to_buf};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::name::Name as GssName;
use libgssapi::oid::{GSS_MECH_KRB5, GSS_NT_HOSTBASED_SERVICE, GSS_NT_KRB5_PRINCIPAL};
use tokio::sync::Mutex;

use crate::name::DnsName;
use crate::wire::tkey::{self, Tkey};

/// Why a GSS-TSIG exchange failed; each names the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GssError {
    #[error("no Kerberos ticket: run `kinit <account>` (or set [ad] keytab for the service's own account)")]
    NoTicket,
    #[error("the Kerberos ticket has expired: run `kinit` again (or check the keytab)")]
    Expired,
    #[error("the clocks of this host and the KDC differ too much for Kerberos: fix NTP")]
    ClockSkew,
    #[error(
        "the KDC knows no service principal DNS/{0}: name the DNS server by the DC's fully qualified name (primary = or the SOA MNAME), not by an address"
    )]
    UnknownService(String),
    #[error("Kerberos: {0}")]
    Kerberos(String),
    #[error("{server} refused the GSS-TSIG negotiation: {why}")]
    Refused { server: SocketAddr, why: String },
    #[error("{server}: {why}")]
    Network { server: SocketAddr, why: String },
    #[error("the answer from {server} cannot be trusted: {why}")]
    Unverified { server: SocketAddr, why: String },
}

/// The Kerberos error behind a GSS failure, told apart by the text MIT krb5 gives.
fn kerberos(e: &libgssapi::error::Error, service: &str) -> GssError {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("no credentials")
        || lower.contains("no kerberos credentials")
        || lower.contains("not found (filename")
    {
        GssError::NoTicket
    } else if lower.contains("expired") {
        GssError::Expired
    } else if lower.contains("clock skew") {
        GssError::ClockSkew
    } else if lower.contains("server not found") || lower.contains("not found in kerberos database") {
        GssError::UnknownService(service.to_string())
    } else {
        GssError::Kerberos(text)
    }
}

/// A negotiated context with one server.
pub struct Session {
    key_name: Name,
    algorithm: TsigAlgorithm,
    ctx: ClientCtx,
    expires: Instant,
}

/// How an answer's signature checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// As RFC 8945 says.
    Rfc,
    /// MAC over the request MAC without its length, or without it at all: Samba (G9).
    SambaWithoutRequestMac,
    /// The answer carries the request's own MAC, which proves nothing: accepted on error answers.
    EchoedRequestMac,
}

fn sessions() -> &'static Mutex<HashMap<SocketAddr, Session>> {
    static SESSIONS: OnceLock<Mutex<HashMap<SocketAddr, Session>>> = OnceLock::new();
    SESSIONS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Runs `f` with a context for `server` (negotiated when there is none, or it expired), holding
/// it for the whole exchange so updates over it go one at a time.
pub async fn with_session<T>(
    server: SocketAddr,
    server_name: &DnsName,
    principal: Option<&str>,
    timeout: Duration,
    f: impl AsyncFnOnce(&mut Session) -> Result<T, super::error::UpdateError>,
) -> Result<T, super::error::UpdateError> {
    let mut map = sessions().lock().await;
    let fresh = match map.get(&server) {
        Some(s) => s.expires <= Instant::now() + Duration::from_secs(30),
        None => true,
    };
    if fresh {
        map.remove(&server);
        let s = negotiate(server, server_name, principal, timeout)
            .await
            .map_err(|e| super::error::UpdateError::Gss { zone: None, server, why: e.to_string() })?;
        map.insert(server, s);
    }
    let Some(session) = map.get_mut(&server) else {
        return Err(super::error::UpdateError::Gss { zone: None, server, why: "the context was lost".into() });
    };
    f(session).await
}

/// Drops the context with `server` (the server forgot it: BADKEY).
pub async fn forget(server: SocketAddr) {
    sessions().lock().await.remove(&server);
}

/// Negotiates a context: TKEY queries carrying GSS tokens until the context is complete.
/// Tries the algorithm name `gss-tsig` first, then `gss.microsoft.com` for older Windows.
pub async fn negotiate(
    server: SocketAddr,
    server_name: &DnsName,
    principal: Option<&str>,
    timeout: Duration,
) -> Result<Session, GssError> {
    let mut last = None;
    for alg in ["gss-tsig", "gss.microsoft.com"] {
        match negotiate_with(server, server_name, principal, timeout, alg).await {
            Ok(s) => return Ok(s),
            Err(e @ GssError::Refused { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(GssError::Refused { server, why: "no algorithm accepted".into() }))
}

async fn negotiate_with(
    server: SocketAddr,
    server_name: &DnsName,
    principal: Option<&str>,
    timeout: Duration,
    alg: &str,
) -> Result<Session, GssError> {
    let service = server_name.to_string();
    let target = format!("DNS@{service}");
    // No replay or sequence detection: an answer's MIC may be checked more than once (the RFC
    // form, then Samba's), and a detector would count the second check as a replay. TCP and
    // the TSIG time window already order and date the exchange.
    let flags = CtxFlags::GSS_C_MUTUAL_FLAG | CtxFlags::GSS_C_INTEG_FLAG;
    // Kerberos calls may ask the KDC for a service ticket: keep them off the async threads.
    let first = {
        let service = service.clone();
        let principal = principal.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let name =
                GssName::new(target.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE)).map_err(|e| kerberos(&e, &service))?;
            // A named principal's credentials (from the ccache, or the keytab KRB5_CLIENT_KTNAME
            // names); otherwise GSSAPI takes the ccache's default principal.
            let cred = match principal {
                Some(p) => {
                    let me =
                        GssName::new(p.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL)).map_err(|e| kerberos(&e, &service))?;
                    Some(
                        Cred::acquire(Some(&me), None, CredUsage::Initiate, None)
                            .map_err(|e| kerberos(&e, &service))?,
                    )
                }
                None => None,
            };
            let mut ctx = ClientCtx::new(cred, name, flags, Some(GSS_MECH_KRB5));
            let token = ctx.step(None, None).map_err(|e| kerberos(&e, &service))?;
            Ok::<_, GssError>((ctx, token.map(|t| t.to_vec())))
        })
        .await
        .map_err(|e| GssError::Kerberos(e.to_string()))??
    };
    let (mut ctx, mut token) = first;
    let key_name = Name::from_ascii(format!("{}.sig-{service}.", random_label()))
        .map_err(|e| GssError::Kerberos(format!("key name: {e}")))?;
    let algorithm = TsigAlgorithm::from_name(Name::from_ascii(alg).unwrap_or_else(|_| Name::root()));
    for _ in 0..8 {
        let Some(out) = token.take() else { break };
        let answer = tkey_exchange(server, &key_name, alg, out, timeout).await?;
        let service = service.clone();
        let (c, next) = tokio::task::spawn_blocking(move || {
            let next = ctx.step(Some(&answer), None).map_err(|e| kerberos(&e, &service))?;
            Ok::<_, GssError>((ctx, next.map(|t| t.to_vec())))
        })
        .await
        .map_err(|e| GssError::Kerberos(e.to_string()))??;
        ctx = c;
        token = next;
    }
    if !ctx.is_complete() {
        return Err(GssError::Refused { server, why: "the negotiation did not complete".into() });
    }
    let lifetime = ctx.lifetime().unwrap_or(Duration::from_secs(600));
    tracing::debug!(%server, "GSS-TSIG context with {server_name} ({alg}), valid for {}", humantime::format_duration(lifetime));
    Ok(Session { key_name, algorithm, ctx, expires: Instant::now() + lifetime })
}

/// One TKEY round trip; returns the server's GSS token.
async fn tkey_exchange(
    server: SocketAddr,
    key_name: &Name,
    alg: &str,
    token: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, GssError> {
    let now = unix_now() as u32;
    let rdata = tkey::encode_rdata(&Tkey {
        algorithm: alg.into(),
        inception: now,
        expiration: now.saturating_add(86_400),
        mode: tkey::MODE_GSSAPI,
        error: 0,
        key: token,
    });
    let mut m = Message::new(crate::net::random_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = false;
    let mut q = Query::query(key_name.clone(), RecordType::Unknown(tkey::TYPE_TKEY));
    q.set_query_class(DNSClass::ANY);
    m.queries.push(q);
    let mut rr = Record::from_rdata(
        key_name.clone(),
        0,
        RData::Unknown { code: RecordType::Unknown(tkey::TYPE_TKEY), rdata: NULL::with(rdata) },
    );
    rr.dns_class = DNSClass::ANY;
    m.additionals.push(rr);
    let wire = m.to_vec().map_err(|e| GssError::Kerberos(format!("TKEY query: {e}")))?;
    let response = super::transport::send(server, &wire, timeout).await.map_err(|e| match e {
        super::transport::SendError::Timeout => {
            GssError::Network { server, why: "no answer to the TKEY negotiation".into() }
        }
        e => GssError::Network { server, why: e.to_string() },
    })?;
    if response.metadata.response_code != ResponseCode::NoError {
        return Err(GssError::Refused {
            server,
            why: format!("the server answered {}", response.metadata.response_code),
        });
    }
    let answer = tkey::find_in_answer(response.as_buffer())
        .map_err(|e| GssError::Refused { server, why: format!("its answer is not a TKEY negotiation: {e}") })?;
    if answer.error != 0 {
        return Err(GssError::Refused { server, why: format!("TKEY error {}", answer.error) });
    }
    Ok(answer.key)
}

impl Session {
    /// Signs `m`; returns the bytes to send (the message with its TSIG record) and the MAC the
    /// answer is checked against. The TSIG record is written uncompressed, as RFC 8945 wants:
    /// Samba finds it by re-encoding it uncompressed and cutting that many bytes off the end.
    pub fn sign(&mut self, m: &Message) -> Result<(Vec<u8>, Vec<u8>), String> {
        let time = unix_now();
        let pre = TSIG::new(self.algorithm.clone(), time, 300, vec![], m.metadata.id, None, vec![]);
        let tbs = message_tbs(m, &pre, &self.key_name).map_err(|e| e.to_string())?;
        let mic = self.ctx.get_mic(&tbs).map_err(|e| e.to_string())?.to_vec();
        let mut wire = m.to_vec().map_err(|e| e.to_string())?;
        let arcount = u16::from_be_bytes([wire[10], wire[11]]).saturating_add(1);
        wire[10..12].copy_from_slice(&arcount.to_be_bytes());
        let algorithm = self.algorithm.to_name();
        wire.extend_from_slice(&tsig_rr(&self.key_name, &algorithm, time, &mic, m.metadata.id));
        Ok((wire, mic))
    }

    /// Checks the answer's MAC with the context.
    pub fn verify(&mut self, answer: &[u8], request_mac: &[u8]) -> Result<Verified, String> {
        let (tbv, record) = signed_bitmessage_to_buf(answer, Some(request_mac), true).map_err(|e| e.to_string())?;
        let mac = record.data.mac.clone();
        if mac.is_empty() {
            return Err("it is not signed".into());
        }
        let rfc = self.ctx.verify_mic(&tbv, &mac);
        if rfc.is_ok() {
            return Ok(Verified::Rfc);
        }
        if mac == request_mac {
            // Samba's error answers put the request's own MAC there.
            tracing::debug!("an answer echoes the request's MAC instead of signing (Samba's error answers)");
            return Ok(Verified::EchoedRequestMac);
        }
        // Samba: the answer's MAC covers the request MAC without its length in front (newer
        // releases) or leaves the request MAC out (4.17).
        let (bare, _) = signed_bitmessage_to_buf(answer, None, true).map_err(|e| e.to_string())?;
        let mut unprefixed = request_mac.to_vec();
        unprefixed.extend_from_slice(&bare);
        for (tbv, how) in [(unprefixed, "without its length"), (bare, "left out")] {
            if self.ctx.verify_mic(&tbv, &mac).is_ok() {
                tracing::debug!(
                    "accepted an answer whose TSIG MAC covers the request MAC {how} (Samba, against RFC 8945 §5.3.1)"
                );
                return Ok(Verified::SambaWithoutRequestMac);
            }
        }
        Err(format!("its GSS-TSIG MAC does not verify ({})", rfc.err().map(|e| e.to_string()).unwrap_or_default()))
    }
}

/// A TSIG resource record, names uncompressed (RFC 8945 §4.2).
fn tsig_rr(key: &Name, algorithm: &Name, time: u64, mac: &[u8], original_id: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + mac.len());
    let name = |out: &mut Vec<u8>, n: &Name| {
        for label in n.iter() {
            out.push(label.len() as u8);
            out.extend_from_slice(&label.to_ascii_lowercase());
        }
        out.push(0);
    };
    name(&mut out, key);
    out.extend_from_slice(&250u16.to_be_bytes()); // TSIG
    out.extend_from_slice(&255u16.to_be_bytes()); // ANY
    out.extend_from_slice(&0u32.to_be_bytes());
    let mut rdata = Vec::new();
    name(&mut rdata, algorithm);
    rdata.extend_from_slice(&time.to_be_bytes()[2..]); // 48-bit time
    rdata.extend_from_slice(&300u16.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(mac);
    rdata.extend_from_slice(&original_id.to_be_bytes());
    rdata.extend_from_slice(&0u16.to_be_bytes()); // error
    rdata.extend_from_slice(&0u16.to_be_bytes()); // other len
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
    out
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn random_label() -> String {
    let mut b = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
