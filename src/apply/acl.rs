//! Microsoft's fix for "only the first KMS host can update the record": one ACE on the
//! `_vlmcs._tcp` dnsNode granting the KMS hosts' group the right to write it.
//!
//! The write touches the DACL alone (SD_FLAGS = DACL, kms-dns-ad.md §4.4): owner, group and
//! SACL stay as they are. The descriptor is read again just before the write and the change
//! refused if its DACL differs from what the audit saw, so a concurrent ACL edit is never
//! overwritten. The old DACL goes into the journal first, so `kmsdns undo` can put it back.
//! Like [`super::commit`], [`commit_acl`] is where a dry run stops.

use std::time::Duration;

use base64::Engine;
use ldap3::{Ldap, Mod};

use super::{Authority, Mode};
use crate::journal::{AclChange, Intent};
use crate::name::DnsName;
use crate::observe::ad::{DACL_ONLY, read_sd, sd_flags};
use crate::wire::security::{Ace, SecurityDescriptor, Sid, rights};

/// What the group is granted: read and write the node's properties (the dnsRecord attribute
/// among them), which Windows DNS and Samba's internal DNS check (test-labs.md §2.6, fix A), and
/// DELETE, READ_CONTROL, WRITE_DAC, WRITE_OWNER and validated write, which Samba's BIND9_DLZ
/// module checks as well ([`crate::audit::access::UPDATE_THROUGH_BIND9_DLZ`]). Less than the
/// owner's (and Microsoft's) full control: no child, list or extended rights.
pub const GRANT: u32 =
    rights::READ_PROPERTY | rights::WRITE_PROPERTY | crate::audit::access::UPDATE_THROUGH_BIND9_DLZ.mask;

/// One node's ACL change.
#[derive(Debug, Clone, PartialEq)]
pub struct AclFix {
    pub zone: DnsName,
    pub dn: String,
    pub group: Sid,
    /// The DACL the audit saw (from the owner+group+DACL descriptor).
    pub observed: SecurityDescriptor,
}

/// What [`commit_acl`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclCommitted {
    NotSent,
    Applied { id: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("{dn}: the ACL changed since it was observed; nothing was written (audit again)")]
    Changed { dn: String },
    #[error("{dn}: {why}")]
    Descriptor { dn: String, why: String },
    #[error("{dn}: the directory refused the write: {why} (the [ad] bind_dn needs WRITE_DAC on the node)")]
    Refused { dn: String, why: String },
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error(transparent)]
    Policy(#[from] super::CommitError),
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The DACL-only descriptor with the group's ACE first, as Microsoft's fix puts it.
pub fn with_grant(current: &SecurityDescriptor, group: Sid) -> Result<SecurityDescriptor, String> {
    current.with_ace_prepended(Ace::allow(group, GRANT)).map_err(|e| e.to_string())
}

/// Writes `fix` (journaled), unless this is a dry run. `ldap` must be bound as an account
/// that may change the node's DACL.
pub async fn commit_acl(
    mode: Mode<'_>,
    authority: Authority,
    ldap: &mut Ldap,
    fix: &AclFix,
    reasons: Vec<String>,
    timeout: Duration,
) -> Result<AclCommitted, AclError> {
    authority.check(&fix.zone)?;
    let journal = match mode {
        Mode::DryRun => return Ok(AclCommitted::NotSent),
        Mode::Apply(j) => j,
    };
    let dn = fix.dn.clone();
    let descriptor = |why: String| AclError::Descriptor { dn: dn.clone(), why };
    let now_bytes = read_sd(ldap, &fix.dn, DACL_ONLY, timeout).await.map_err(descriptor)?;
    let now = SecurityDescriptor::parse(&now_bytes).map_err(|e| descriptor(e.to_string()))?;
    if now.dacl != fix.observed.dacl {
        return Err(AclError::Changed { dn });
    }
    let after = with_grant(&now, fix.group).map_err(descriptor)?;
    let after_bytes = after.to_bytes().map_err(|e| descriptor(e.to_string()))?;
    write_dacl(journal, authority, ldap, &fix.zone, &fix.dn, &now_bytes, &after_bytes, reasons, None, timeout).await
}

/// Journals and writes one DACL-only descriptor.
#[allow(clippy::too_many_arguments)]
pub async fn write_dacl(
    journal: &crate::journal::Journal,
    authority: Authority,
    ldap: &mut Ldap,
    zone: &DnsName,
    dn: &str,
    before: &[u8],
    after: &[u8],
    reasons: Vec<String>,
    undo_of: Option<u64>,
    timeout: Duration,
) -> Result<AclCommitted, AclError> {
    authority.check(zone)?;
    let id = journal.record_intent(Intent {
        id: 0,
        time: String::new(),
        zone: zone.clone(),
        server: "ldap".into(),
        before: vec![],
        after: vec![],
        reasons,
        undo_of,
        acl: Some(AclChange { dn: dn.to_string(), before: b64(before), after: b64(after) }),
        pid: None,
        instance: None,
    })?;
    let modify = ldap
        .with_controls(sd_flags(DACL_ONLY))
        .with_timeout(timeout)
        .modify(
            dn,
            vec![Mod::Replace(b"nTSecurityDescriptor".to_vec(), std::collections::HashSet::from([after.to_vec()]))],
        )
        .await;
    use crate::journal::Applied;
    // An LDAP result is the server's word; a transport error (a timeout, a dropped connection)
    // leaves unknown whether the write was made.
    let result = match modify {
        Ok(r) => r.success().map(|_| ()).map_err(|e| (Applied::NotApplied, e.to_string())),
        Err(e) => Err((Applied::Unknown, e.to_string())),
    };
    match result {
        Ok(()) => {
            journal.outcome(id, Applied::Applied, "LDAP success")?;
            Ok(AclCommitted::Applied { id })
        }
        Err((outcome, why)) => {
            journal.outcome(id, outcome, &format!("LDAP: {why}"))?;
            Err(AclError::Refused { dn: dn.to_string(), why })
        }
    }
}

/// Puts back the DACL a journaled ACL change replaced, if the node still has the DACL that
/// change wrote.
pub async fn undo_acl(
    journal: &crate::journal::Journal,
    authority: Authority,
    ldap: &mut Ldap,
    zone: &DnsName,
    change: &AclChange,
    undo_of: u64,
    timeout: Duration,
) -> Result<AclCommitted, AclError> {
    let dn = change.dn.clone();
    let descriptor = |why: String| AclError::Descriptor { dn: dn.clone(), why };
    let decode =
        |text: &str| base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| descriptor(e.to_string()));
    let (before, after) = (decode(&change.before)?, decode(&change.after)?);
    let written = SecurityDescriptor::parse(&after).map_err(|e| descriptor(e.to_string()))?;
    let now_bytes = read_sd(ldap, &change.dn, DACL_ONLY, timeout).await.map_err(descriptor)?;
    let now = SecurityDescriptor::parse(&now_bytes).map_err(|e| descriptor(e.to_string()))?;
    if now.dacl != written.dacl {
        return Err(AclError::Changed { dn });
    }
    let reasons = vec![format!("undo of journal entry {undo_of}")];
    write_dacl(journal, authority, ldap, zone, &change.dn, &now_bytes, &before, reasons, Some(undo_of), timeout).await
}
