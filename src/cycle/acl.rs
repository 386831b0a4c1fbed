//! `kmsdns repair --acl`: the dnsNode ACL grants the audit asks for, through
//! [`crate::apply::acl`].

use std::time::Duration;

use serde::Serialize;

use crate::apply::{Authority, Mode};
use crate::inventory::{HostState, Inventory};
use crate::model::Observation;
use crate::name::DnsName;

/// What `kmsdns repair --acl` did for one zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AclOutcome {
    pub zone: DnsName,
    /// The `_vlmcs._tcp` dnsNode.
    pub dn: String,
    /// The active hosts whose updates the ACL refuses.
    pub blocked: Vec<DnsName>,
    /// The ACE added, in SDDL.
    pub ace: String,
    pub result: AclResult,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum AclResult {
    WouldApply,
    /// Shown, not written: the zone's policy is "audit" and no override was given.
    NotApplied {
        reason: String,
    },
    /// Written (journal entry `id`) and read back: members of the group may now update.
    Applied {
        id: u64,
        verified: bool,
    },
    Failed {
        error: String,
    },
}

/// The whole `repair --acl` answer: per zone, and the hosts that are not in the group yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AclRepair {
    pub group: Option<String>,
    pub zones: Vec<AclOutcome>,
    /// Inventory accounts that are not members of kms_group: the ACE does not help them until
    /// they join, and take a new Kerberos ticket.
    pub not_members: Vec<String>,
    /// Why nothing could be done at all (no directory, no group), when that is the case.
    pub error: Option<String>,
}

/// Grants the KMS group write access to every `_vlmcs._tcp` node that blocks an active host.
pub async fn repair_acl(
    inv: &Inventory,
    obs: &Observation,
    findings: &[crate::audit::Finding],
    mode: Mode<'_>,
    override_policy: bool,
) -> AclRepair {
    use crate::apply::acl::{AclCommitted, AclFix, GRANT, commit_acl};
    use crate::audit::access::{may_update, may_update_through_dlz};
    use crate::model::ad::AdRead;
    use crate::wire::security::Ace;

    let mut out = AclRepair { group: None, zones: vec![], not_members: vec![], error: None };
    let (Some(settings), Some(ad)) = (&inv.ad, &obs.ad) else {
        out.error = Some("no [ad] section: the ACL lives in Active Directory".into());
        return out;
    };
    let view = match ad {
        AdRead::Read(v) => v,
        AdRead::Failed { error } => {
            out.error = Some(format!("the directory could not be read: {error}"));
            return out;
        }
    };
    out.group = settings.kms_group.clone();
    let group = match (&settings.kms_group, &view.kms_group) {
        (Some(_), Some(Ok(g))) => g.clone(),
        (Some(name), Some(Err(e))) => {
            out.error = Some(format!("kms_group '{name}': {e}; create it and add every KMS host's account"));
            return out;
        }
        _ => {
            out.error = Some("set [ad] kms_group: the group of all KMS hosts that the fix grants write access".into());
            return out;
        }
    };
    for h in inv.hosts.iter().filter(|h| h.state == HostState::Active) {
        if let Some(account) = &h.account
            && let Some(Ok(a)) = view.accounts.get(account)
            && !a.groups.contains(&group.sid)
        {
            out.not_members.push(account.clone());
        }
    }
    let ace = Ace::allow(group.sid, GRANT).to_sddl(None);
    // Write access (Windows, Samba's internal DNS) and what Samba's BIND9_DLZ module also checks.
    let may_write = |sd: &crate::wire::security::SecurityDescriptor| {
        may_update(sd, &[group.sid]).allowed() && may_update_through_dlz(sd, &[group.sid]).allowed()
    };
    let timeout = inv.defaults.timeout.max(Duration::from_secs(2));
    let mut ldap = None;
    for z in &view.zones {
        let blocked: Vec<DnsName> = findings
            .iter()
            .filter(|f| f.zone == z.zone && f.code == crate::audit::Code::UpdateBlockedAcl)
            .filter_map(|f| f.target.clone())
            .collect();
        let (Some(node), false) = (&z.node, blocked.is_empty()) else { continue };
        let Some(sd) = node.sd.clone() else { continue };
        // The group may write already: the hosts still blocked are not (yet) in it, which a
        // second ACE would not change (see not_members).
        if may_write(&sd) {
            continue;
        }
        let mut outcome = AclOutcome {
            zone: z.zone.clone(),
            dn: node.dn.clone(),
            blocked,
            ace: ace.clone(),
            result: AclResult::WouldApply,
        };
        let policy = inv.zone(&z.zone).map(|zone| zone.policy).unwrap_or(crate::inventory::Policy::Audit);
        let authority = Authority::over(policy, override_policy);
        if let Err(e) = authority.check(&z.zone) {
            outcome.result = AclResult::NotApplied { reason: e.to_string() };
            out.zones.push(outcome);
            continue;
        }
        let fix = AclFix { zone: z.zone.clone(), dn: node.dn.clone(), group: group.sid, observed: sd };
        if let Mode::Apply(_) = mode
            && ldap.is_none()
        {
            match crate::observe::ad::connect(settings, timeout).await {
                Ok((l, _)) => ldap = Some(l),
                Err(error) => {
                    outcome.result = AclResult::Failed { error };
                    out.zones.push(outcome);
                    continue;
                }
            }
        }
        let reasons = vec![format!("update-blocked-acl: grant {} write access to {}", group.dn, node.dn)];
        outcome.result = match ldap.as_mut() {
            None => AclResult::WouldApply,
            Some(l) => match commit_acl(mode, authority, l, &fix, reasons, timeout).await {
                Ok(AclCommitted::NotSent) => AclResult::WouldApply,
                Ok(AclCommitted::Applied { id }) => {
                    // Read it back: a member of the group must now pass the access check.
                    let verified =
                        match crate::observe::ad::read_sd(l, &node.dn, crate::observe::ad::OWNER_GROUP_DACL, timeout)
                            .await
                        {
                            Ok(bytes) => crate::wire::security::SecurityDescriptor::parse(&bytes)
                                .map(|sd| may_write(&sd))
                                .unwrap_or(false),
                            Err(_) => false,
                        };
                    AclResult::Applied { id, verified }
                }
                Err(e) => AclResult::Failed { error: e.to_string() },
            },
        };
        out.zones.push(outcome);
    }
    if let Some(mut l) = ldap {
        let _ = l.unbind().await;
    }
    out
}
