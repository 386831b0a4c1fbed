//! `kmsdns undo`: a journaled change reversed, guarded by what it left.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::apply::{self, Authority, CommitError, Committed, Mode, RrsetUpdate};
use crate::inventory::Inventory;
use crate::model::SrvRecord;
use crate::name::DnsName;
use crate::observe::{self};

use super::carry::{ZoneResult, not_applied};
use super::primary::{auth_for, read_mname};
use super::verify::{ServerCheck, await_propagation};

/// What `kmsdns undo` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UndoOutcome {
    /// The journal entry undone.
    pub undone: u64,
    pub zone: DnsName,
    /// The RRset found (the undone entry's "after") and restored (its "before").
    pub from: Vec<SrvRecord>,
    pub to: Vec<SrvRecord>,
    pub result: ZoneResult,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerCheck>,
    /// For an ACL change: the dnsNode whose DACL was put back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl_of: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error("entry {0} changed an ACL in Active Directory, and the inventory has no [ad] section to reach it")]
    NoDirectory(u64),
    #[error("{0}")]
    Directory(String),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("entry {0} was not applied, so there is nothing to undo")]
    NotApplied(u64),
    #[error("zone {0} is no longer in the inventory")]
    UnknownZone(DnsName),
    #[error("the entry's server '{0}' is not an address")]
    Server(String),
    #[error("{0}")]
    Auth(String),
    #[error("an undo is a change: it is sent with the journal, never as a dry run")]
    DryRun,
}

/// Restores the RRset a journal entry changed, if it is still as that entry left it: the
/// update asserts the entry's "after" as its prerequisite, so a later change is never undone
/// by accident. The undo is itself journaled.
pub async fn undo(
    inv: &Inventory,
    journal: &crate::journal::Journal,
    id: u64,
    override_policy: bool,
) -> Result<UndoOutcome, UndoError> {
    use crate::journal::Applied;
    let mut entry = journal.entry(id)?;
    if entry.outcome.as_ref().is_some_and(|o| o.result == Applied::Unknown) && entry.intent.acl.is_none() {
        // Settle it first from what the servers serve now.
        journal.settle_unknown(&observe::observe_zone(inv, &entry.intent.zone).await)?;
        entry = journal.entry(id)?;
    }
    // An unknown outcome may still be undone: the undo's prerequisite is the entry's "after",
    // so if the change was never made the server refuses the undo and nothing is clobbered.
    match entry.outcome.as_ref().map(|o| o.result) {
        Some(Applied::Applied | Applied::Unknown) => {}
        Some(Applied::NotApplied) | None => return Err(UndoError::NotApplied(id)),
    }
    let i = entry.intent;
    if let Some(change) = &i.acl {
        let policy = inv.zone(&i.zone).map(|z| z.policy).ok_or_else(|| UndoError::UnknownZone(i.zone.clone()))?;
        return undo_acl_entry(inv, journal, id, &i.zone, change, Authority::over(policy, override_policy)).await;
    }
    let zone = inv.zone(&i.zone).cloned().ok_or_else(|| UndoError::UnknownZone(i.zone.clone()))?;
    let server: SocketAddr = i.server.parse().map_err(|_| UndoError::Server(i.server.clone()))?;
    let mname = if zone.gss_tsig { read_mname(inv, &zone).await } else { None };
    let auth = auth_for(inv, &zone, mname.as_ref()).map_err(UndoError::Auth)?;
    let update = RrsetUpdate {
        zone: zone.name.clone(),
        expected: i.after.clone(),
        deletes: i.after.iter().filter(|a| !i.before.iter().any(|b| b.same_rdata(a))).cloned().collect(),
        adds: i.before.iter().filter(|b| !i.after.iter().any(|a| a.same_rdata(b))).cloned().collect(),
    };
    let timeout = observe::worst_case(inv.defaults.timeout, inv.defaults.retries);
    let reasons = vec![format!("undo of journal entry {id}")];
    let authority = Authority::over(zone.policy, override_policy);
    let (result, servers) = match apply::commit(
        Mode::Apply(journal),
        authority,
        server,
        &auth,
        &update,
        reasons,
        Some(id),
        timeout,
    )
    .await
    {
        Ok(Committed::Applied { id: new }) => {
            let reader = observe::DnsReader::new(inv.defaults.timeout, inv.defaults.retries);
            let seen = await_propagation(inv, &reader, &zone, &update, Some(server)).await;
            if seen.primary_unchanged {
                let error = not_applied(Mode::Apply(journal), new, &zone.name, server);
                (ZoneResult::Failed { error }, seen.servers)
            } else {
                let lagging = seen.servers.iter().filter(|s| !s.converged).map(|s| s.server.clone()).collect();
                (ZoneResult::Applied { id: new, attempts: 1, lagging }, seen.servers)
            }
        }
        Ok(Committed::NotSent) => (ZoneResult::WouldApply, vec![]),
        Err(CommitError::Update { source, .. }) if source.is_conflict() => {
            let error =
                format!("{source}: the RRset was changed after entry {id}, so undoing it would clobber that change");
            (ZoneResult::Conflict { attempts: 1, error }, vec![])
        }
        Err(e) => (ZoneResult::Failed { error: e.to_string() }, vec![]),
    };
    Ok(UndoOutcome { undone: id, zone: zone.name, from: i.after, to: i.before, result, servers, acl_of: None })
}

pub(super) async fn undo_acl_entry(
    inv: &Inventory,
    journal: &crate::journal::Journal,
    id: u64,
    zone: &DnsName,
    change: &crate::journal::AclChange,
    authority: Authority,
) -> Result<UndoOutcome, UndoError> {
    use crate::apply::acl::{AclCommitted, AclError, undo_acl};
    let settings = inv.ad.as_ref().ok_or(UndoError::NoDirectory(id))?;
    let timeout = inv.defaults.timeout.max(Duration::from_secs(2));
    let (mut ldap, _) = crate::observe::ad::connect(settings, timeout).await.map_err(UndoError::Directory)?;
    let result = match undo_acl(journal, authority, &mut ldap, zone, change, id, timeout).await {
        Ok(AclCommitted::Applied { id: new }) => ZoneResult::Applied { id: new, attempts: 1, lagging: vec![] },
        Ok(AclCommitted::NotSent) => ZoneResult::WouldApply,
        Err(e @ AclError::Changed { .. }) => ZoneResult::Conflict {
            attempts: 1,
            error: format!("{e}: the ACL was changed after entry {id}, so putting it back would clobber that change"),
        },
        Err(e) => ZoneResult::Failed { error: e.to_string() },
    };
    let _ = ldap.unbind().await;
    Ok(UndoOutcome {
        undone: id,
        zone: zone.clone(),
        from: vec![],
        to: vec![],
        result,
        servers: vec![],
        acl_of: Some(change.dn.clone()),
    })
}
