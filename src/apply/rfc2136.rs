//! RFC 2136 UPDATEs of a zone's `_vlmcs._tcp` RRset: building, signing, and reading the answer.
//!
//! Every UPDATE carries a value-dependent prerequisite (RFC 2136 §2.4.2): the RRset must
//! still be exactly what was observed, or, when none was, must not exist (§2.4.3). A
//! concurrent writer's change therefore makes the server answer NXRRSET or YXRRSET instead of
//! being overwritten.
//!
//! The message is signed here, not by a signer on the transport: hickory's transport signer
//! turns the unsigned NOTAUTH/BADKEY a server sends for an unknown key into an opaque error
//! (hickory-dns#1981), and an admin needs to know which of BADKEY, BADSIG or BADTIME it was.
//! The answer's MAC is then checked here too (RFC 8945 §5.3, the request MAC included).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::SRV;
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

pub use super::error::UpdateError;
use super::retry::{Backoff, on_servfail};
use crate::keys::TsigKey;
use crate::model::SrvRecord;
use crate::name::DnsName;

/// One zone's change: the RRset it must still be, and what to delete and add.
#[derive(Debug, Clone, PartialEq)]
pub struct RrsetUpdate {
    pub zone: DnsName,
    pub expected: Vec<SrvRecord>,
    pub deletes: Vec<SrvRecord>,
    pub adds: Vec<SrvRecord>,
}

impl RrsetUpdate {
    /// The RRset once the update is applied.
    pub fn after(&self) -> Vec<SrvRecord> {
        let mut after: Vec<SrvRecord> =
            self.expected.iter().filter(|r| !self.deletes.iter().any(|d| d.same_rdata(r))).cloned().collect();
        for a in &self.adds {
            if !after.iter().any(|r| r.same_rdata(a)) {
                after.push(a.clone());
            }
        }
        after.sort();
        after
    }

    /// True when `served` shows this update made: none of what it deletes, all of what it
    /// adds. Another writer's records beside them do not matter.
    pub fn visible_in(&self, served: &[SrvRecord]) -> bool {
        let removed = self.deletes.iter().filter(|d| !self.adds.iter().any(|a| a.same_rdata(d)));
        removed.into_iter().all(|d| !served.iter().any(|r| r.same_rdata(d)))
            && self.adds.iter().all(|a| served.iter().any(|r| r.same_rdata(a)))
    }
}

/// A message that changes a zone: what [`send`] signs and sends. The `_vlmcs._tcp` RRset
/// ([`RrsetUpdate`]) and an instance's entry in the shared view ([`super::view::ViewUpdate`]).
pub(super) trait Update: Sync {
    fn zone(&self) -> &DnsName;
    /// The UPDATE message (unsigned), with this ID.
    fn message(&self, id: u16) -> Message;
}

impl Update for RrsetUpdate {
    fn zone(&self) -> &DnsName {
        &self.zone
    }
    fn message(&self, id: u16) -> Message {
        build(self, id)
    }
}

/// Why an UPDATE did not take effect. Messages name the zone, the server and the fix; none
/// carries a secret.
fn srv_record(owner: &DnsName, r: &SrvRecord, ttl: u32, class: DNSClass) -> Record {
    let rdata = RData::SRV(SRV::new(r.priority, r.weight, r.port, r.target.to_hickory()));
    let mut rec = Record::from_rdata(owner.to_hickory(), ttl, rdata);
    rec.dns_class = class;
    rec
}

/// The UPDATE message for `u` (unsigned).
pub fn build(u: &RrsetUpdate, id: u16) -> Message {
    let owner = u.zone.vlmcs_owner();
    let mut m = Message::new(id, MessageType::Query, OpCode::Update);
    let mut zone = Query::query(u.zone.to_hickory(), RecordType::SOA);
    zone.set_query_class(DNSClass::IN);
    m.add_zone(zone);
    if u.expected.is_empty() {
        // RFC 2136 §2.4.3: "RRset does not exist": class NONE, type SRV, TTL 0, no RDATA.
        let mut none = Record::update0(owner.to_hickory(), 0, RecordType::SRV).into_record_of_rdata();
        none.dns_class = DNSClass::NONE;
        m.add_pre_requisite(none);
    } else {
        // §2.4.2: "RRset exists (value dependent)": the whole RRset, class IN, TTL 0.
        for r in &u.expected {
            m.add_pre_requisite(srv_record(&owner, r, 0, DNSClass::IN));
        }
    }
    for r in &u.deletes {
        // §2.5.4: delete an RR from an RRset: class NONE, TTL 0.
        m.add_update(srv_record(&owner, r, 0, DNSClass::NONE));
    }
    for r in &u.adds {
        m.add_update(srv_record(&owner, r, r.ttl, DNSClass::IN));
    }
    m
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// How an UPDATE is authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No signature (`allow_unsigned`).
    Unsigned,
    /// HMAC TSIG with a shared secret (RFC 8945).
    Tsig(TsigKey),
    /// GSS-TSIG (RFC 3645): Kerberos, for the DNS service of the server named here, as
    /// `principal` (the ccache's default principal when None).
    #[cfg(feature = "gss-tsig")]
    Gss { server_name: DnsName, principal: Option<String> },
}

/// Signs, sends over TCP to `server`, and maps the answer. A SERVFAIL is sent again after a
/// pause ([`super::retry`]). Under GSS-TSIG, a server that forgot the context (BADKEY: it
/// restarted) gets a new negotiation and the update once more.
pub(super) async fn send(
    u: &dyn Update,
    server: SocketAddr,
    auth: &Auth,
    timeout: Duration,
) -> Result<(), UpdateError> {
    match auth {
        Auth::Unsigned => on_servfail(Backoff::SERVFAIL, || send_hmac(u, server, None, timeout)).await,
        Auth::Tsig(k) => on_servfail(Backoff::SERVFAIL, || send_hmac(u, server, Some(k), timeout)).await,
        #[cfg(feature = "gss-tsig")]
        Auth::Gss { server_name, principal } => {
            let principal = principal.as_deref();
            let first = send_gss(u, server, server_name, principal, timeout).await;
            match first {
                Err(UpdateError::BadSignature { ref tsig, .. }) if tsig == "BADKEY" => {
                    tracing::debug!(%server, "the server forgot the GSS-TSIG context; negotiating a new one");
                    super::gss::forget(server).await;
                    send_gss(u, server, server_name, principal, timeout).await
                }
                other => other,
            }
        }
    }
}

#[cfg(feature = "gss-tsig")]
async fn send_gss(
    u: &dyn Update,
    server: SocketAddr,
    server_name: &DnsName,
    principal: Option<&str>,
    timeout: Duration,
) -> Result<(), UpdateError> {
    let zone = u.zone().clone();
    let result = super::gss::with_session(server, server_name, principal, timeout, async |session| {
        let m = u.message(crate::net::random_id());
        let (wire, request_mac) = session.sign(&m).map_err(|why| UpdateError::Signing { zone: zone.clone(), why })?;
        let response = exchange(&zone, server, &wire, timeout).await?;
        let verified = match response.signature() {
            Some(t) if !t.data.mac.is_empty() && t.data.error.is_none() => {
                Some(session.verify(response.as_buffer(), &request_mac))
            }
            _ => None,
        };
        Ok((response, verified))
    })
    .await;
    let (response, verified) = match result {
        Ok(r) => r,
        Err(UpdateError::Gss { server, why, .. }) => return Err(UpdateError::Gss { zone: Some(zone), server, why }),
        Err(e) => return Err(e),
    };
    if let Some(e) = tsig_error(&zone, server, &response, "the GSS-TSIG context", unix_now()) {
        return Err(e);
    }
    match verified {
        // An echoed MAC is no signature: good enough to read an error by, never a success.
        Some(Ok(super::gss::Verified::EchoedRequestMac))
            if response.metadata.response_code == ResponseCode::NoError =>
        {
            return Err(UpdateError::UnverifiedAnswer {
                zone,
                server,
                why: "it repeats our own MAC instead of signing".into(),
            });
        }
        Some(Ok(_)) => {}
        Some(Err(why)) => return Err(UpdateError::UnverifiedAnswer { zone, server, why }),
        None if response.metadata.response_code == ResponseCode::NoError => {
            return Err(UpdateError::UnverifiedAnswer { zone, server, why: "it is not signed".into() });
        }
        None => {}
    }
    match response.metadata.response_code {
        // Windows refuses a secure update the ACL denies; Samba fails it (test-labs.md G8).
        ResponseCode::Refused => Err(UpdateError::Denied { zone, server, rcode: "REFUSED".into() }),
        ResponseCode::ServFail => Err(UpdateError::Denied { zone, server, rcode: "SERVFAIL".into() }),
        rcode => map_rcode(zone, server, rcode, "the Kerberos account"),
    }
}

/// Sends the finished message (signed or not) byte for byte and maps transport failures.
async fn exchange(
    zone: &DnsName,
    server: SocketAddr,
    wire: &[u8],
    timeout: Duration,
) -> Result<hickory_proto::op::DnsResponse, UpdateError> {
    use super::transport::{SendError, send};
    match send(server, wire, timeout).await {
        Err(SendError::Timeout) => Err(UpdateError::Timeout { zone: zone.clone(), server, timeout }),
        Err(SendError::NotSent(e)) => Err(UpdateError::Network { zone: zone.clone(), server, why: e.to_string() }),
        Err(SendError::Lost(why)) => Err(UpdateError::Lost { zone: zone.clone(), server, why }),
        Ok(r) => Ok(r),
    }
}

/// The TSIG error field speaks first: a server that could not verify us says so there.
fn tsig_error(
    zone: &DnsName,
    server: SocketAddr,
    response: &hickory_proto::op::DnsResponse,
    key: &str,
    now: u64,
) -> Option<UpdateError> {
    let t = response.signature()?;
    let err = t.data.error.as_ref()?;
    let (name, hint) = match err {
        // Knot also answers BADKEY for an HMAC key it knows that no ACL of the zone names.
        TsigError::BadKey if key.starts_with("key ") => (
            "BADKEY",
            format!(
                "the server does not know {key} with this algorithm, or (Knot) no ACL of the zone lets it update; check the name and algorithm in its configuration and the zone's `acl`"
            ),
        ),
        TsigError::BadKey => (
            "BADKEY",
            format!(
                "the server does not know {key} with this algorithm; check the name and algorithm in its configuration"
            ),
        ),
        TsigError::BadSig => {
            ("BADSIG", format!("the signature made with {key} does not verify there; check the secret"))
        }
        TsigError::BadTime => {
            let server_time = other_time(&t.data.other).unwrap_or(t.data.time);
            let skew = server_time as i64 - now as i64;
            (
                "BADTIME",
                format!(
                    "the clocks of this host and the server differ by {skew} s, more than the 300 s TSIG allows; fix NTP"
                ),
            )
        }
        TsigError::BadTrunc => ("BADTRUNC", "the server refused a truncated MAC".into()),
        TsigError::Unknown(_) => ("unknown", "the server reported a TSIG error kmsdns does not know".into()),
    };
    Some(UpdateError::BadSignature { zone: zone.clone(), server, tsig: name.into(), hint })
}

fn map_rcode(zone: DnsName, server: SocketAddr, rcode: ResponseCode, who: &str) -> Result<(), UpdateError> {
    match rcode {
        ResponseCode::NoError => Ok(()),
        ResponseCode::Refused => {
            let hint = if who.is_empty() {
                "the server takes no unsigned updates; give the zone an update_key".into()
            } else {
                format!(
                    "{who} is not allowed to update this zone, or {server} is not the zone's primary; check `update-policy`/`allow-update` there and `primary =` in the inventory"
                )
            };
            Err(UpdateError::Refused { zone, server, hint })
        }
        ResponseCode::NotAuth => Err(UpdateError::NotAuthoritative { zone, server }),
        ResponseCode::NotZone => Err(UpdateError::NotZone { zone, server }),
        ResponseCode::ServFail => Err(UpdateError::ServFail { zone, server, attempts: 1 }),
        ResponseCode::NXRRSet => Err(UpdateError::Conflict { zone, server, rcode: "NXRRSET".into() }),
        ResponseCode::YXRRSet => Err(UpdateError::Conflict { zone, server, rcode: "YXRRSET".into() }),
        ResponseCode::NXDomain => Err(UpdateError::Conflict { zone, server, rcode: "NXDOMAIN".into() }),
        ResponseCode::YXDomain => Err(UpdateError::Conflict { zone, server, rcode: "YXDOMAIN".into() }),
        other => Err(UpdateError::Other { zone, server, rcode: other.to_string() }),
    }
}

/// HMAC TSIG (or no signature): signed here, not on the transport, so an unsigned NOTAUTH
/// for an unknown key reaches the admin (hickory-dns#1981).
async fn send_hmac(
    u: &dyn Update,
    server: SocketAddr,
    key: Option<&TsigKey>,
    timeout: Duration,
) -> Result<(), UpdateError> {
    let zone = u.zone().clone();
    let mut m = u.message(crate::net::random_id());
    let now = unix_now();
    let signer = match key {
        Some(k) => Some(k.signer().map_err(|why| UpdateError::Signing { zone: zone.clone(), why })?),
        None => None,
    };
    let request_mac = match &signer {
        Some(s) => {
            m.finalize(s, now).map_err(|e| UpdateError::Signing { zone: zone.clone(), why: e.to_string() })?;
            m.signature().map(|t| t.data.mac.clone())
        }
        None => None,
    };
    let wire = m.to_vec().map_err(|e| UpdateError::Signing { zone: zone.clone(), why: e.to_string() })?;
    let response = exchange(&zone, server, &wire, timeout).await?;
    let rcode = response.metadata.response_code;
    let key_name = key.map(|k| format!("key '{}'", k.name)).unwrap_or_default();
    if let Some(e) = tsig_error(&zone, server, &response, &key_name, now) {
        return Err(e);
    }
    // A signed request's answer must carry a MAC over our request MAC, or it could be forged.
    if let (Some(s), Some(req_mac)) = (&signer, &request_mac) {
        match response.signature() {
            Some(t) if !t.data.mac.is_empty() => {
                let (_, _, window) = s.verify_message_byte(response.as_buffer(), Some(req_mac), true).map_err(|e| {
                    UpdateError::UnverifiedAnswer {
                        zone: zone.clone(),
                        server,
                        why: format!("its TSIG does not verify ({e})"),
                    }
                })?;
                if !window.contains(&unix_now()) {
                    let why = "its TSIG time is outside the 300 s window".into();
                    return Err(UpdateError::UnverifiedAnswer { zone, server, why });
                }
            }
            _ if rcode == ResponseCode::NoError => {
                return Err(UpdateError::UnverifiedAnswer { zone, server, why: "it is not signed".into() });
            }
            // An unsigned REFUSED: the server did not take our signature (PowerDNS), or refused
            // the sender before looking at it. A key it took but does not allow is signed.
            _ if rcode == ResponseCode::Refused => {
                return Err(UpdateError::SignatureRefused { zone, server, hint: unsigned_refusal_hint(&key_name) });
            }
            // Any other unsigned error answer is what servers send when they could not check us.
            _ => {}
        }
    }
    map_rcode(zone, server, rcode, &key_name)
}

fn unsigned_refusal_hint(key: &str) -> String {
    format!(
        "it did not accept the signature made with {key}; check the secret and the algorithm against the server's copy of the key (PowerDNS: `pdnsutil list-tsig-keys`). If they match, the server refuses updates from this address before it checks signatures (PowerDNS: `allow-dnsupdate-from`)"
    )
}

/// The server's clock from a BADTIME answer's "other data" (RFC 8945 §5.2.3: 48 bits).
fn other_time(other: &[u8]) -> Option<u64> {
    let b: [u8; 6] = other.try_into().ok()?;
    Some(u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: &str, prio: u16) -> SrvRecord {
        SrvRecord { target: DnsName::parse(t).unwrap(), port: 1688, priority: prio, weight: 0, ttl: 600 }
    }

    #[test]
    fn the_prerequisite_is_the_observed_rrset_or_its_absence() {
        let zone = DnsName::parse("corp.test").unwrap();
        let u = RrsetUpdate {
            zone: zone.clone(),
            expected: vec![rec("a.corp.test", 0), rec("b.corp.test", 0)],
            deletes: vec![rec("b.corp.test", 0)],
            adds: vec![rec("c.corp.test", 5)],
        };
        let m = build(&u, 7);
        assert_eq!(m.metadata.op_code, OpCode::Update);
        assert_eq!(m.queries[0].query_type(), RecordType::SOA);
        // Prerequisites travel in the answer section, updates in the authority section.
        assert_eq!(m.answers.len(), 2);
        assert!(m.answers.iter().all(|r| r.dns_class == DNSClass::IN && r.ttl == 0));
        assert_eq!(m.authorities.len(), 2);
        assert_eq!((m.authorities[0].dns_class, m.authorities[0].ttl), (DNSClass::NONE, 0));
        assert_eq!((m.authorities[1].dns_class, m.authorities[1].ttl), (DNSClass::IN, 600));
        let bytes = m.to_vec().unwrap();
        assert_eq!(Message::from_vec(&bytes).unwrap().answers.len(), 2);

        let empty = RrsetUpdate { zone, expected: vec![], deletes: vec![], adds: vec![rec("a.corp.test", 0)] };
        let m = build(&empty, 8);
        assert_eq!(m.answers.len(), 1);
        assert_eq!((m.answers[0].dns_class, m.answers[0].record_type()), (DNSClass::NONE, RecordType::SRV));
    }

    #[test]
    fn after_applies_deletes_then_adds() {
        let u = RrsetUpdate {
            zone: DnsName::parse("corp.test").unwrap(),
            expected: vec![rec("a.corp.test", 0), rec("b.corp.test", 0)],
            deletes: vec![rec("a.corp.test", 0)],
            adds: vec![rec("c.corp.test", 0), rec("b.corp.test", 0)],
        };
        let targets: Vec<String> = u.after().iter().map(|r| r.target.to_string()).collect();
        assert_eq!(targets, vec!["b.corp.test", "c.corp.test"]);
    }

    #[test]
    fn badtime_other_data_is_the_servers_clock() {
        assert_eq!(other_time(&[0, 0, 0x65, 0x00, 0x00, 0x01]), Some(0x6500_0001));
        assert_eq!(other_time(&[1, 2]), None);
    }
}
