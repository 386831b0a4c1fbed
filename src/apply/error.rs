//! Why an UPDATE did not go through, as the operator is told and the journal records it:
//! shared by the message code (rfc2136.rs) and the GSS-TSIG session code (gss.rs), which import
//! it from here rather than from each other.

use std::net::SocketAddr;
use std::time::Duration;

use crate::name::DnsName;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpdateError {
    #[error("zone {zone}: update refused by {server} (REFUSED): {hint}")]
    Refused { zone: DnsName, server: SocketAddr, hint: String },
    /// REFUSED, unsigned, to a signed update: the server did not take the signature (PowerDNS
    /// answers a wrong secret so; a key it accepts but does not allow gets a signed REFUSED).
    #[error("zone {zone}: {server} refused the update with an unsigned answer (REFUSED): {hint}")]
    SignatureRefused { zone: DnsName, server: SocketAddr, hint: String },
    #[error("zone {zone}: {server} rejected the signature (NOTAUTH, TSIG error {tsig}): {hint}")]
    BadSignature { zone: DnsName, server: SocketAddr, tsig: String, hint: String },
    #[error("zone {zone}: {server} is not authoritative for the zone (NOTAUTH); check `primary =`")]
    NotAuthoritative { zone: DnsName, server: SocketAddr },
    #[error("zone {zone}: {server} says the records are outside the zone (NOTZONE); check the zone name")]
    NotZone { zone: DnsName, server: SocketAddr },
    /// SERVFAIL to every one of `attempts` sends ([`super::retry`]).
    #[error(
        "zone {zone}: {server} failed the update (SERVFAIL, {attempts} attempt(s) with pauses); its log says why (Samba answers SERVFAIL when AD denies the write)"
    )]
    ServFail { zone: DnsName, server: SocketAddr, attempts: u32 },
    #[error("zone {zone}: the RRset changed since it was observed ({rcode} from {server}); nothing was overwritten")]
    Conflict { zone: DnsName, server: SocketAddr, rcode: String },
    /// Sent, and no answer came: the server may have applied it. A primary drops updates past
    /// its queue (BIND: `update-quota`, and a short `tcp-listen-queue` drops connections).
    #[error(
        "zone {zone}: no answer from {server} within {}; the server may have applied it: the journal says \"unknown\" until the next run sees the zone (many such timeouts: the primary may be dropping updates, see its log for update-quota or tcp-listen-queue, or a firewall)",
        humantime::format_duration(*.timeout)
    )]
    Timeout { zone: DnsName, server: SocketAddr, timeout: Duration },
    /// Nothing was sent.
    #[error("zone {zone}: cannot reach {server}: {why}")]
    Network { zone: DnsName, server: SocketAddr, why: String },
    /// Sent, and the answer was lost: the server may have applied it.
    #[error(
        "zone {zone}: the update was sent to {server}, but its answer was lost ({why}); the server may have applied it: the journal says \"unknown\" until the next run sees the zone"
    )]
    Lost { zone: DnsName, server: SocketAddr, why: String },
    #[error(
        "zone {zone}: the answer from {server} cannot be trusted: {why}; see what the servers hold with `kmsdns audit`"
    )]
    UnverifiedAnswer { zone: DnsName, server: SocketAddr, why: String },
    #[error("zone {zone}: {server} answered {rcode}")]
    Other { zone: DnsName, server: SocketAddr, rcode: String },
    #[error("zone {zone}: cannot sign the update: {why}")]
    Signing { zone: DnsName, why: String },
    #[error(
        "zone {zone}: update denied by {server} ({rcode}): the Kerberos account may not write _vlmcs._tcp; `kmsdns audit` shows the ACL (update-blocked-acl), `kmsdns repair --acl` fixes it"
    )]
    Denied { zone: DnsName, server: SocketAddr, rcode: String },
    #[error("zone {}: GSS-TSIG with {server}: {why}", zone.as_ref().map(|z| z.to_string()).unwrap_or_default())]
    Gss { zone: Option<DnsName>, server: SocketAddr, why: String },
}

impl UpdateError {
    /// The server's answer, short, as the journal records it.
    pub fn answer(&self) -> String {
        match self {
            UpdateError::Refused { .. } => "REFUSED".into(),
            UpdateError::SignatureRefused { .. } => "REFUSED (unsigned)".into(),
            UpdateError::BadSignature { tsig, .. } => format!("NOTAUTH ({tsig})"),
            UpdateError::NotAuthoritative { .. } => "NOTAUTH".into(),
            UpdateError::NotZone { .. } => "NOTZONE".into(),
            UpdateError::ServFail { .. } => "SERVFAIL".into(),
            UpdateError::Conflict { rcode, .. } => rcode.clone(),
            UpdateError::Timeout { .. } => "timeout".into(),
            UpdateError::Network { why, .. } => format!("not sent: {why}"),
            UpdateError::Lost { why, .. } => format!("lost: {why}"),
            UpdateError::UnverifiedAnswer { why, .. } => format!("unverified: {why}"),
            UpdateError::Other { rcode, .. } => rcode.clone(),
            UpdateError::Signing { why, .. } => format!("not sent: {why}"),
            UpdateError::Denied { rcode, .. } => format!("{rcode} (denied)"),
            UpdateError::Gss { why, .. } => format!("not sent: GSS-TSIG: {why}"),
        }
    }

    /// A prerequisite failed: someone else changed the RRset.
    pub fn is_conflict(&self) -> bool {
        matches!(self, UpdateError::Conflict { .. })
    }

    /// True when the server may have applied the change although we cannot tell.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, UpdateError::Timeout { .. } | UpdateError::Lost { .. } | UpdateError::UnverifiedAnswer { .. })
    }
}
