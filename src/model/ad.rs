//! Active Directory's view of the inventory's zones and hosts, as [`crate::observe::ad`]
//! reads it: the dnsZone settings, the `_vlmcs._tcp` dnsNode and the KMS hosts' accounts.

use std::collections::BTreeMap;

use crate::name::DnsName;
use crate::wire::dnsp::{DnsRecord, ZoneSettings};
use crate::wire::security::{SecurityDescriptor, Sid};

/// What the directory said, or why it could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum AdRead {
    Read(AdView),
    Failed { error: String },
}

/// The directory's view of the inventory's zones and hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct AdView {
    /// The DC that answered.
    pub dc: String,
    pub zones: Vec<AdZone>,
    /// Each inventory account ("KMS1$") and what the directory knows of it.
    pub accounts: BTreeMap<String, Result<AdAccount, AccountError>>,
    /// The `kms_group`, when one is configured.
    pub kms_group: Option<Result<AdGroup, String>>,
}

/// A zone as AD stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdZone {
    pub zone: DnsName,
    /// The dnsZone object; None when the zone is not stored in AD.
    pub dn: Option<String>,
    pub settings: ZoneProperties,
    /// The `_vlmcs._tcp` dnsNode; None when the name was never created.
    pub node: Option<AdNode>,
}

/// The `dNSProperty` values of a dnsZone, as they came back.
#[derive(Debug, Clone, PartialEq)]
pub enum ZoneProperties {
    /// The values, decoded; [`ZoneSettings::skipped`] counts those that could not be, any of
    /// which may be the one that sets dynamic updates or aging.
    Values(ZoneSettings),
    /// No value came back: the zone is not stored in AD ([`AdZone::dn`] is None), or the bind
    /// account may not read the attribute (LDAP leaves out what it may not show, without an
    /// error). Every zone AD stores has some, so this is never "the defaults".
    Missing,
}

/// The `_vlmcs._tcp` dnsNode.
#[derive(Debug, Clone, PartialEq)]
pub struct AdNode {
    pub dn: String,
    pub records: Vec<DnsRecord>,
    /// dnsRecord values that could not be parsed (a broken writer); reported, not used.
    pub unreadable_values: usize,
    pub tombstoned: bool,
    pub when_changed: Option<String>,
    /// Owner, group and DACL, parsed; None when the descriptor could not be read.
    pub sd: Option<SecurityDescriptor>,
    /// The descriptor's bytes as read, to compare before a write.
    pub sd_bytes: Vec<u8>,
}

/// A computer account and its token.
#[derive(Debug, Clone, PartialEq)]
pub struct AdAccount {
    pub dn: String,
    pub sid: Sid,
    /// Transitive group SIDs (`tokenGroups`).
    pub groups: Vec<Sid>,
}

/// Why a KMS host's computer account is not known. Without its SID and its groups, no access
/// check can be made for the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("no account {account} in the directory")]
    NotFound { account: String },
    #[error("{account}: its objectSid could not be read")]
    NoObjectSid { account: String },
    /// `tokenGroups` came back empty or not at all: every computer is at least in Domain
    /// Computers, so the bind account may not read it.
    #[error("{account}: its tokenGroups could not be read ({why})")]
    TokenGroupsUnreadable { account: String, why: String },
    #[error("{account}: {error}")]
    Search { account: String, error: String },
}

/// The KMS hosts' group.
#[derive(Debug, Clone, PartialEq)]
pub struct AdGroup {
    pub dn: String,
    pub sid: Sid,
}
