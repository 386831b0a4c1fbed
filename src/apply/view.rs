//! Writes an instance's entry in a zone's shared view ([`crate::peers`]): one UPDATE that
//! deletes exactly the records of this instance it saw or wrote (RFC 2136 §2.5.4, class NONE)
//! and adds the new one, signed with the zone's key like every other change. It has no
//! prerequisite: an instance touches only its own record, and deleting a record that is not
//! there is no error (§3.4.2.4).
//!
//! The zone's policy is enforced here as in [`super::commit`]: an audit-only zone is never
//! written, so an instance that only audits a zone publishes no view of it (and so holds no
//! other instance's delete back there). The dry run sends nothing. The journal does not record
//! these writes: they change no `_vlmcs._tcp` record, nothing about them can be undone, and a
//! heartbeat per zone would bury the changes that matter.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, UpdateMessage};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

use super::rfc2136::{Auth, Update, send};
use super::{Authority, CommitError, Mode, UpdateError};
use crate::name::DnsName;

/// One instance's entry replaced: the records to delete, each as its strings, and the new one.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewUpdate {
    pub zone: DnsName,
    pub deletes: Vec<Vec<Vec<u8>>>,
    pub add: Vec<Vec<u8>>,
    pub ttl: u32,
}

fn txt(owner: &DnsName, strings: &[Vec<u8>], ttl: u32, class: DNSClass) -> Record {
    let rdata = RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()));
    let mut rec = Record::from_rdata(owner.to_hickory(), ttl, rdata);
    rec.dns_class = class;
    rec
}

impl Update for ViewUpdate {
    fn zone(&self) -> &DnsName {
        &self.zone
    }

    fn message(&self, id: u16) -> Message {
        let owner = crate::peers::owner(&self.zone);
        let mut m = Message::new(id, MessageType::Query, OpCode::Update);
        let mut zone = Query::query(self.zone.to_hickory(), RecordType::SOA);
        zone.set_query_class(DNSClass::IN);
        m.add_zone(zone);
        for d in self.deletes.iter().filter(|d| **d != self.add) {
            m.add_update(txt(&owner, d, 0, DNSClass::NONE));
        }
        m.add_update(txt(&owner, &self.add, self.ttl, DNSClass::IN));
        m
    }
}

/// What [`publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Dry run: nothing was sent.
    NotSent,
    Written,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The zone's policy does not let this command write it.
    #[error(transparent)]
    Policy(#[from] CommitError),
    #[error("the instances' shared view: {0}")]
    Update(#[from] UpdateError),
}

/// Sends `update` to `server` if `authority` lets it write the zone; nothing in a dry run.
pub async fn publish(
    mode: Mode<'_>,
    authority: Authority,
    server: SocketAddr,
    auth: &Auth,
    update: &ViewUpdate,
    timeout: Duration,
) -> Result<Published, PublishError> {
    authority.check(&update.zone)?;
    if let Mode::DryRun = mode {
        return Ok(Published::NotSent);
    }
    send(update, server, auth, timeout).await?;
    Ok(Published::Written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_update_deletes_exactly_the_old_records_and_adds_the_new_one_without_prerequisites() {
        let u = ViewUpdate {
            zone: DnsName::parse("corp.test").unwrap(),
            deletes: vec![vec![b"v=1 id=a t=1 alive= dead=".to_vec()], vec![b"v=1 id=a t=9 overflow".to_vec()]],
            add: vec![b"v=1 id=a t=9 overflow".to_vec()],
            ttl: 180,
        };
        let m = u.message(3);
        assert!(m.answers.is_empty(), "no prerequisite");
        // The record being added again is not deleted first (an unchanged heartbeat second).
        assert_eq!(m.authorities.len(), 2);
        assert_eq!((m.authorities[0].dns_class, m.authorities[0].ttl), (DNSClass::NONE, 0));
        assert_eq!((m.authorities[1].dns_class, m.authorities[1].ttl), (DNSClass::IN, 180));
        assert_eq!(m.authorities[1].name.to_ascii(), "_kmsdns-view.corp.test.");
        let back = Message::from_vec(&m.to_vec().unwrap()).unwrap();
        assert_eq!(back.authorities.len(), 2);
    }

    #[test]
    fn an_audit_only_zone_gets_no_view_written() {
        let u = ViewUpdate {
            zone: DnsName::parse("corp.test").unwrap(),
            deletes: vec![],
            add: vec![b"x".to_vec()],
            ttl: 1,
        };
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let r = rt.block_on(publish(
            Mode::DryRun,
            Authority::Policy(crate::inventory::Policy::Audit),
            server,
            &Auth::Unsigned,
            &u,
            Duration::from_millis(10),
        ));
        assert!(matches!(r, Err(PublishError::Policy(CommitError::AuditOnly { .. }))), "{r:?}");
    }
}
