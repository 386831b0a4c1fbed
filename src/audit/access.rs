//! The access check: may this computer write the `dnsRecord` attribute of this dnsNode
//! ([`may_update`], MS-DTYP 2.5.3.2 as kms-dns-ad.md §4.6 applies it). Pure deciding code over
//! the descriptors [`crate::wire::security`] decodes; an ACE it cannot evaluate makes the
//! verdict [`Verdict::Unknown`], never "allowed".

use std::fmt;

use crate::wire::security::*;

/// The SIDs a computer's Kerberos token carries, as kms-dns-ad.md §4.6 step 1 builds them:
/// its account, its transitive groups (`tokenGroups`, primary group included), Everyone,
/// Authenticated Users, Network, This Organization, and Enterprise Domain Controllers when it
/// is a DC.
pub fn computer_token(account: Sid, groups: &[Sid], domain_controller: bool) -> Vec<Sid> {
    let mut token = vec![account];
    let well_known = [Sid::EVERYONE, Sid::AUTHENTICATED_USERS, Sid::NETWORK, Sid::THIS_ORGANIZATION];
    let dc = domain_controller.then_some(Sid::ENTERPRISE_DOMAIN_CONTROLLERS);
    for sid in groups.iter().copied().chain(well_known).chain(dc) {
        if !token.contains(&sid) {
            token.push(sid);
        }
    }
    token
}

/// What an access check asks for: rights, and the object types an object ACE may name to
/// count. Give the class first, then the property set, then the attribute; an object ACE
/// naming any of them covers the attribute (the object-type tree of MS-DTYP 2.5.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRequest<'a> {
    pub mask: u32,
    pub object_types: &'a [Guid],
}

/// Writing the `dnsRecord` attribute of a dnsNode, which every DNS update of the name does
/// (kms-dns-ad.md §4.6 step 3). The reference names no property set for dnsRecord; if one turns
/// up, check with [`check_access`] and its GUID between the class and the attribute.
pub const UPDATE_DNS_RECORD: AccessRequest<'static> =
    AccessRequest { mask: rights::WRITE_PROPERTY, object_types: &[DNS_NODE_CLASS, DNS_RECORD_ATTRIBUTE] };

/// What Samba's BIND9_DLZ module checks before it lets BIND apply a signed update of an
/// existing node: DELETE, READ_CONTROL, WRITE_DAC, WRITE_OWNER and validated write on the node
/// itself, no object type (`SEC_STD_REQUIRED | SEC_ADS_SELF_WRITE` in `b9_ssumatch`,
/// source4/dns_server/dlz_bind9.c). Windows DNS and Samba's internal DNS ask for
/// [`UPDATE_DNS_RECORD`] only, so write access alone is refused behind BIND9_DLZ (REFUSED, the
/// module logging "disallowing update … insufficient access rights"); seen in tests/dlz_samba.rs.
pub const UPDATE_THROUGH_BIND9_DLZ: AccessRequest<'static> = AccessRequest {
    mask: rights::DELETE | rights::READ_CONTROL | rights::WRITE_DAC | rights::WRITE_OWNER | rights::SELF_WRITE,
    object_types: &[],
};

/// How an access check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every requested right was granted (by ACEs, or by ownership for READ_CONTROL and
    /// WRITE_DAC).
    Granted,
    /// The descriptor has no DACL or a NULL one, which allows everything.
    NoDacl,
    /// A deny ACE took a requested right before allow ACEs granted it.
    Denied,
    /// The DACL ran out before every requested right was granted.
    NotGranted,
    /// The answer hangs on ACEs this module cannot evaluate ([`Decision::unevaluated`]): with
    /// them it could be either. Never read as allowed, nor as denied.
    Unknown,
}

/// What an ACE did in an access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AceEffect {
    /// Granted some of the requested rights.
    Granted,
    /// Denied a requested right that was not granted yet.
    Denied,
    /// Applied to the token but held none of the requested rights (kept when access is not
    /// granted, to say what the token does get).
    Insufficient,
}

/// One ACE that took part in a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidingAce {
    /// Position in the DACL, from 0.
    pub index: usize,
    pub effect: AceEffect,
    /// The ACE in SDDL, full SIDs apart from the well-known ones.
    pub sddl: String,
}

/// The answer of an access check and the ACEs behind it, enough for the audit to explain
/// "owned by …-1103; only read access for Everyone (A;;RPLCLORC;;;WD)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The ACEs that decided: those that granted when access is granted, the deny ACE when
    /// denied, and every ACE that applied to the token when the rights were not granted.
    pub aces: Vec<DecidingAce>,
    pub owner: Option<Sid>,
    /// The token holds the owner SID. An owner always has READ_CONTROL and WRITE_DAC (unless an
    /// OWNER RIGHTS ACE says otherwise), so even when denied it can grant itself the right:
    /// "can repair its own ACL", not "can update" (kms-dns-ad.md §4.6 step 4).
    pub token_is_owner: bool,
    /// ACEs this module cannot evaluate that may apply to the request (callback ACEs, whose
    /// conditions it does not evaluate, and ACE types it does not know). When they could change
    /// the answer the verdict is [`Verdict::Unknown`]; otherwise they are listed all the same.
    /// Empty on every DACL AD creates by default.
    pub unevaluated: Vec<UnevaluatedAce>,
}

/// What an ACE that could not be evaluated might do to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doubt {
    /// An allow kind (a callback allow ACE, a malformed allow object ACE): it may grant.
    MayAllow,
    /// A deny kind: it may deny.
    MayDeny,
    /// An ACE type whose meaning is not known: it may do either.
    MayEither,
}

/// An ACE the access check could not evaluate, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnevaluatedAce {
    /// Position in the DACL, from 0.
    pub index: usize,
    pub doubt: Doubt,
    /// The ACE in SDDL; one this module cannot read shows its type and size.
    pub sddl: String,
    pub why: &'static str,
}

impl fmt::Display for UnevaluatedAce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let doubt = match self.doubt {
            Doubt::MayAllow => "may allow",
            Doubt::MayDeny => "may deny",
            Doubt::MayEither => "may allow or deny",
        };
        write!(f, "ACE {} {} {doubt} it ({})", self.index, self.sddl, self.why)
    }
}

impl Decision {
    /// True only when the check proved the access: [`Verdict::Unknown`] is not allowed (nor
    /// denied). Code that must tell denied from unknown matches on [`Decision::verdict`].
    pub fn allowed(&self) -> bool {
        matches!(self.verdict, Verdict::Granted | Verdict::NoDacl)
    }

    /// " (ACE 3 (…) could not be evaluated, and cannot change this answer)" when the verdict is
    /// certain despite such ACEs, else empty: a reader should still see they are there.
    pub fn harmless_unevaluated(&self) -> String {
        if self.verdict == Verdict::Unknown || self.unevaluated.is_empty() {
            return String::new();
        }
        let list: Vec<String> = self.unevaluated.iter().map(|u| format!("{} {}", u.index, u.sddl)).collect();
        format!(" (ACE {} could not be evaluated, and cannot change this answer)", list.join(", "))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let aces = |effect: AceEffect| {
            self.aces.iter().filter(|a| a.effect == effect).map(|a| a.sddl.as_str()).collect::<Vec<_>>().join(" ")
        };
        match self.verdict {
            Verdict::NoDacl => f.write_str("allowed: the security descriptor has no DACL, which allows everything")?,
            Verdict::Granted if self.aces.is_empty() => f.write_str("allowed: the owner's implicit rights cover it")?,
            Verdict::Granted => write!(f, "allowed by {}", aces(AceEffect::Granted))?,
            Verdict::Denied => write!(f, "denied by {}", aces(AceEffect::Denied))?,
            Verdict::Unknown => {
                let doubts: Vec<String> = self.unevaluated.iter().map(|u| u.to_string()).collect();
                write!(f, "unknown: {}", doubts.join("; "))?;
                let evaluated = [
                    (AceEffect::Denied, "denied by"),
                    (AceEffect::Granted, "granted by"),
                    (AceEffect::Insufficient, "applying without the right:"),
                ]
                .into_iter()
                .filter(|(effect, _)| self.aces.iter().any(|a| a.effect == *effect))
                .map(|(effect, what)| format!("{what} {}", aces(effect)))
                .collect::<Vec<_>>();
                if evaluated.is_empty() {
                    f.write_str("; no ACE that could be evaluated applies to the account")?;
                } else {
                    write!(f, "; of the ACEs that could be evaluated, {}", evaluated.join(", "))?;
                }
            }
            Verdict::NotGranted => {
                f.write_str("not granted")?;
                if let Some(owner) = &self.owner {
                    write!(f, ": owned by {owner}")?;
                }
                if self.aces.is_empty() {
                    f.write_str("; no ACE applies to the account")?;
                } else {
                    let only = format!("{} {}", aces(AceEffect::Granted), aces(AceEffect::Insufficient));
                    write!(f, "; the ACEs that apply give only {}", only.trim())?;
                }
            }
        }
        if !self.allowed() && self.token_is_owner {
            f.write_str("; as the owner, the account can rewrite the DACL to grant itself the right")?;
        }
        f.write_str(&self.harmless_unevaluated())
    }
}

/// Whether the account whose token is `token` may write the `dnsRecord` attribute of the node
/// `sd` protects, i.e. whether its secure dynamic update of the name succeeds. `token` is the
/// account SID, its transitive groups and the well-known SIDs the caller adds (see
/// [`computer_token`]).
pub fn may_update(sd: &SecurityDescriptor, token: &[Sid]) -> Decision {
    check_access(sd, token, &UPDATE_DNS_RECORD)
}

/// Whether that account's update also passes Samba's BIND9_DLZ module
/// ([`UPDATE_THROUGH_BIND9_DLZ`]), which asks more of a node than [`may_update`]. kmsdns cannot
/// tell from DNS which of Samba's backends answers a zone, so both are checked.
pub fn may_update_through_dlz(sd: &SecurityDescriptor, token: &[Sid]) -> Decision {
    check_access(sd, token, &UPDATE_THROUGH_BIND9_DLZ)
}

/// The DACL walk of MS-DTYP 2.5.3.2 for one request, as kms-dns-ad.md §4.6 applies it:
/// the owner starts with READ_CONTROL and WRITE_DAC unless the DACL has an OWNER RIGHTS ACE;
/// ACEs are read in order; inherit-only ACEs and ACEs for SIDs outside the token are skipped;
/// an object ACE counts only if it names no object type or one of the request's; generic bits
/// are mapped first; a deny ACE stops the walk if it covers a right not yet granted; access is
/// granted as soon as allow ACEs have covered every right.
///
/// An ACE that cannot be evaluated but may apply ([`UnevaluatedAce`]) is neither skipped nor
/// guessed: the walk is done once assuming each such ACE grants whatever it might, and once
/// assuming each denies whatever it might. The walk is monotone (a grant never removes access,
/// a deny never adds it), so when both end alike the answer is certain, and otherwise it is
/// [`Verdict::Unknown`]. The ACEs reported are those of the walk that leaves them out.
pub fn check_access(sd: &SecurityDescriptor, token: &[Sid], request: &AccessRequest<'_>) -> Decision {
    let token_is_owner = sd.owner.is_some_and(|owner| token.contains(&owner));
    let mut decision = Decision {
        verdict: Verdict::NotGranted,
        aces: Vec::new(),
        owner: sd.owner,
        token_is_owner,
        unevaluated: vec![],
    };
    let Some(dacl) = sd.dacl.as_ref().filter(|_| sd.dacl_present()) else {
        decision.verdict = Verdict::NoDacl;
        return decision;
    };
    let owner_rights_ace = dacl.aces.iter().any(|a| a.sid() == Some(&Sid::OWNER_RIGHTS));
    let applies = |sid: &Sid| token.contains(sid) || (*sid == Sid::OWNER_RIGHTS && token_is_owner);
    let steps: Vec<Step> = dacl
        .aces
        .iter()
        .enumerate()
        .filter(|(_, ace)| !ace.is_inherit_only())
        .filter_map(|(index, ace)| match ace {
            Ace::Allow(a) | Ace::Deny(a) => {
                let allow = matches!(ace, Ace::Allow(_));
                applies(&a.sid).then_some(Step::Known { index, allow, mask: a.mask })
            }
            Ace::AllowObject(o) | Ace::DenyObject(o) => {
                let allow = matches!(ace, Ace::AllowObject(_));
                let named_other = o.object_type.is_some_and(|t| !request.object_types.contains(&t));
                (applies(&o.sid) && !named_other).then_some(Step::Known { index, allow, mask: o.mask })
            }
            Ace::Other(o) => opaque_doubt(o, request, &applies).map(|(doubt, why)| {
                decision.unevaluated.push(UnevaluatedAce { index, doubt, sddl: ace.to_sddl(None), why });
                Step::Doubtful { doubt }
            }),
        })
        .collect();
    let mut granted = 0;
    if token_is_owner && !owner_rights_ace {
        granted = (rights::READ_CONTROL | rights::WRITE_DAC) & request.mask;
    }
    let (verdict, aces) = walk(&steps, granted, request.mask, Assume::LeftOut, dacl);
    decision.verdict = verdict;
    decision.aces = aces;
    if !decision.unevaluated.is_empty() {
        let allowed = |v: Verdict| v == Verdict::Granted;
        let best = walk(&steps, granted, request.mask, Assume::Grants, dacl).0;
        let worst = walk(&steps, granted, request.mask, Assume::Denies, dacl).0;
        if allowed(best) != allowed(worst) {
            decision.verdict = Verdict::Unknown;
        }
    }
    decision
}

/// An ACE as the walk sees it, once the ones that do not apply to the token are left out.
enum Step {
    Known { index: usize, allow: bool, mask: u32 },
    Doubtful { doubt: Doubt },
}

/// What the walk takes an ACE it cannot evaluate for.
#[derive(Clone, Copy)]
enum Assume {
    LeftOut,
    /// Each grants every right it might: the best case.
    Grants,
    /// Each denies every right it might: the worst case.
    Denies,
}

fn walk(steps: &[Step], mut granted: u32, wanted: u32, assume: Assume, dacl: &Acl) -> (Verdict, Vec<DecidingAce>) {
    let mut aces = Vec::new();
    if granted == wanted {
        return (Verdict::Granted, aces);
    }
    for step in steps {
        let (allow, mask, index) = match (step, assume) {
            (Step::Known { index, allow, mask }, _) => (*allow, rights::map_generic(*mask), Some(*index)),
            (Step::Doubtful { doubt: Doubt::MayAllow | Doubt::MayEither }, Assume::Grants) => (true, wanted, None),
            (Step::Doubtful { doubt: Doubt::MayDeny | Doubt::MayEither }, Assume::Denies) => (false, wanted, None),
            (Step::Doubtful { .. }, _) => continue,
        };
        let taken = mask & wanted & !granted;
        let effect = match (allow, taken) {
            (true, 0) => AceEffect::Insufficient,
            (true, _) => AceEffect::Granted,
            (false, 0) => continue,
            (false, _) => AceEffect::Denied,
        };
        if let Some(index) = index {
            let sddl = dacl.aces.get(index).map(|a| a.to_sddl(None)).unwrap_or_default();
            aces.push(DecidingAce { index, effect, sddl });
        }
        match effect {
            AceEffect::Denied => {
                aces.retain(|a| a.effect == AceEffect::Denied);
                return (Verdict::Denied, aces);
            }
            AceEffect::Granted => {
                granted |= taken;
                if granted == wanted {
                    aces.retain(|a| a.effect == AceEffect::Granted);
                    return (Verdict::Granted, aces);
                }
            }
            AceEffect::Insufficient => {}
        }
    }
    (Verdict::NotGranted, aces)
}

const ACCESS_ALLOWED_COMPOUND: u8 = 0x04;
const ACCESS_ALLOWED_CALLBACK: u8 = 0x09;
const ACCESS_DENIED_CALLBACK: u8 = 0x0a;
const ACCESS_ALLOWED_CALLBACK_OBJECT: u8 = 0x0b;
const ACCESS_DENIED_CALLBACK_OBJECT: u8 = 0x0c;
/// SYSTEM_AUDIT, SYSTEM_ALARM and their object and callback kinds (MS-DTYP 2.4.4.1): they
/// only log, and grant or deny nothing.
const AUDIT_AND_ALARM: [u8; 8] = [0x02, 0x03, 0x07, 0x08, 0x0d, 0x0e, 0x0f, 0x10];

/// Whether an ACE this module does not interpret may take part in `request`, and how. `None`
/// when it cannot: an audit or alarm ACE, or one whose readable mask, SID or object type shows
/// it does not concern the request. Callback ACEs (MS-DTYP 2.4.4.6–2.4.4.9) keep the layout of
/// their plain kinds, with the condition after the SID; only the condition is not evaluated.
fn opaque_doubt(
    o: &OpaqueAce,
    request: &AccessRequest<'_>,
    applies: &dyn Fn(&Sid) -> bool,
) -> Option<(Doubt, &'static str)> {
    let u32_at = |off: usize| o.body.get(off..off + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let mask_is_other = u32_at(0).is_some_and(|mask| rights::map_generic(mask) & request.mask == 0);
    let sid_is_other = |off: usize| Sid::read(&o.body, off, "ACE").is_ok_and(|sid| !applies(&sid));
    let (doubt, why) = match o.ace_type {
        t if AUDIT_AND_ALARM.contains(&t) => return None,
        ACCESS_ALLOWED_CALLBACK | ACCESS_DENIED_CALLBACK => {
            if mask_is_other || sid_is_other(4) {
                return None;
            }
            let doubt = if o.ace_type == ACCESS_ALLOWED_CALLBACK { Doubt::MayAllow } else { Doubt::MayDeny };
            (doubt, "a callback ACE, whose condition kmsdns does not evaluate")
        }
        ACCESS_ALLOWED_CALLBACK_OBJECT | ACCESS_DENIED_CALLBACK_OBJECT => {
            let object_flags = u32_at(4);
            let guids = object_flags
                .map(|f| (f & OBJECT_TYPE_PRESENT).count_ones() + (f & INHERITED_OBJECT_TYPE_PRESENT).count_ones());
            let object_type = (object_flags.is_some_and(|f| f & OBJECT_TYPE_PRESENT != 0))
                .then(|| o.body.get(8..24).and_then(|b| <[u8; 16]>::try_from(b).ok()).map(Guid::from_bytes_le))
                .flatten();
            let names_other = object_type.is_some_and(|t| !request.object_types.contains(&t));
            let known_flags =
                object_flags.is_some_and(|f| f & !(OBJECT_TYPE_PRESENT | INHERITED_OBJECT_TYPE_PRESENT) == 0);
            let sid_other = known_flags && guids.is_some_and(|g| sid_is_other(8 + 16 * g as usize));
            if mask_is_other || names_other || sid_other {
                return None;
            }
            let doubt = if o.ace_type == ACCESS_ALLOWED_CALLBACK_OBJECT { Doubt::MayAllow } else { Doubt::MayDeny };
            (doubt, "a callback object ACE, whose condition kmsdns does not evaluate")
        }
        ACCESS_ALLOWED_OBJECT | ACCESS_DENIED_OBJECT => {
            if mask_is_other {
                return None;
            }
            let doubt = if o.ace_type == ACCESS_ALLOWED_OBJECT { Doubt::MayAllow } else { Doubt::MayDeny };
            (doubt, "an object ACE whose Flags hold bits MS-DTYP does not define")
        }
        ACCESS_ALLOWED_COMPOUND => (Doubt::MayAllow, "a compound ACE, which kmsdns does not read"),
        _ => (Doubt::MayEither, "an ACE type kmsdns does not know"),
    };
    Some((doubt, why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::security::tests::*;

    /// Samba's BIND9_DLZ module asks more than write access of a node: the owner passes, a
    /// KMS host with an RPWP grant (enough for Windows and Samba's internal DNS) does not, and
    /// the ACE `kmsdns repair --acl` writes passes both checks.
    #[test]
    fn write_access_alone_is_refused_behind_bind9_dlz_and_the_kmsdns_grant_passes() {
        let kms1 = kms_token(KMS1, &[]);
        let kms2 = kms_token(KMS2, &[]);
        assert!(may_update_through_dlz(&before(), &kms1).allowed(), "the owner");
        assert!(may_update(&after(), &kms2).allowed(), "RPWP is write access");
        let d = may_update_through_dlz(&after(), &kms2);
        assert_eq!(d.verdict, Verdict::NotGranted, "{d}");
        let grant = Ace::allow(account(KMS2), crate::apply::acl::GRANT);
        assert_eq!(grant.to_string(), format!("(A;;RPWPRCWOWDSDSW;;;{})", account(KMS2)));
        let fixed = after().with_ace_prepended(grant).unwrap();
        assert!(may_update(&fixed, &kms2).allowed());
        assert!(may_update_through_dlz(&fixed, &kms2).allowed(), "{}", may_update_through_dlz(&fixed, &kms2));
    }

    /// The scenario of test-labs.md §2.6: KMS1 creates the node; KMS2 and KMS3 (in KMS-Hosts)
    /// are refused; an ACE for KMS2$ and one for KMS-Hosts let them in.
    #[test]
    fn only_the_creator_may_update_until_the_acl_is_fixed() {
        let (before, after) = (before(), after());
        let kms1 = kms_token(KMS1, &[]);
        let kms2 = kms_token(KMS2, &[]);
        let kms3 = kms_token(KMS3, &[KMS_HOSTS]);

        let d = may_update(&before, &kms1);
        assert!(d.allowed(), "{d}");
        assert!(d.token_is_owner);
        assert_eq!(d.aces.iter().map(|a| (a.index, a.effect)).collect::<Vec<_>>(), [(3, AceEffect::Granted)]);
        assert_eq!(d.to_string(), format!("allowed by (A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;{})", account(KMS1)));

        for token in [&kms2, &kms3] {
            let d = may_update(&before, token);
            assert_eq!(d.verdict, Verdict::NotGranted);
            assert!(!d.token_is_owner);
            assert_eq!(d.aces.iter().map(|a| (a.index, a.effect)).collect::<Vec<_>>(), [(4, AceEffect::Insufficient)]);
            assert_eq!(
                d.to_string(),
                format!("not granted: owned by {}; the ACEs that apply give only (A;;RPLCLORC;;;WD)", account(KMS1))
            );
        }

        let d = may_update(&after, &kms2);
        assert!(d.allowed(), "{d}");
        assert_eq!(d.aces.iter().map(|a| a.index).collect::<Vec<_>>(), [1], "the direct (A;;RPWP;;;KMS2$) ACE");
        let d = may_update(&after, &kms3);
        assert!(d.allowed(), "{d}");
        assert_eq!(d.aces.iter().map(|a| a.index).collect::<Vec<_>>(), [0], "the KMS-Hosts group ACE");
        assert!(may_update(&after, &kms1).allowed());
        // A domain controller passes through Enterprise Domain Controllers, fix or no fix.
        let dc = computer_token(account(1000), &[account(516)], true);
        assert!(may_update(&before, &dc).allowed());
    }

    #[test]
    fn prepending_the_group_ace_is_microsofts_fix() {
        let group_ace = Ace::allow(account(KMS_HOSTS), rights::FULL_CONTROL);
        assert_eq!(group_ace.to_string(), format!("(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;{})", account(KMS_HOSTS)));
        let fixed = before().with_ace_prepended(group_ace.clone()).unwrap();
        assert_eq!(fixed.dacl.as_ref().unwrap().aces[0], after().dacl.unwrap().aces[0]);
        assert!(may_update(&fixed, &kms_token(KMS3, &[KMS_HOSTS])).allowed());
        assert!(!may_update(&fixed, &kms_token(KMS2, &[])).allowed());

        // Both of the lab's fixes, in the order they were made, give Samba's bytes exactly.
        let kms2_ace = Ace::allow(account(KMS2), rights::READ_PROPERTY | rights::WRITE_PROPERTY);
        let both = before().with_ace_prepended(kms2_ace).unwrap().with_ace_prepended(group_ace).unwrap();
        assert_eq!(both.to_bytes().unwrap(), b64(AFTER));
    }

    #[test]
    fn an_allow_ace_goes_after_explicit_denies_and_needs_a_dacl() {
        let deny =
            Ace::Deny(AccessAce { flags: 0, mask: rights::WRITE_PROPERTY, sid: account(KMS_HOSTS), padding: vec![] });
        let with_deny = before().with_ace_prepended(deny.clone()).unwrap();
        assert_eq!(with_deny.dacl.as_ref().unwrap().aces[0], deny);
        let kms3 = kms_token(KMS3, &[KMS_HOSTS]);
        let d = may_update(&with_deny, &kms3);
        assert_eq!(d.verdict, Verdict::Denied);
        assert_eq!(d.to_string(), format!("denied by (D;;WP;;;{})", account(KMS_HOSTS)));

        let allow = Ace::allow(account(KMS_HOSTS), rights::FULL_CONTROL);
        let both = with_deny.with_ace_prepended(allow.clone()).unwrap();
        assert_eq!(both.dacl.as_ref().unwrap().aces[..2], [deny, allow]);
        assert_eq!(may_update(&both, &kms3).verdict, Verdict::Denied, "the admin's deny still wins");

        let mut no_dacl = before();
        no_dacl.dacl = None;
        no_dacl.control &= !control::DACL_PRESENT;
        assert_eq!(no_dacl.with_ace_prepended(Ace::allow(Sid::EVERYONE, 0)), Err(SecurityError::NoDacl));
        assert_eq!(may_update(&no_dacl, &kms3).verdict, Verdict::NoDacl);
        let object_ace = Ace::allow_object(account(KMS_HOSTS), rights::WRITE_PROPERTY, Some(DNS_RECORD_ATTRIBUTE));
        let mut plain = before();
        plain.dacl = Some(Acl::new(vec![Ace::allow(Sid::EVERYONE, rights::READ)]));
        assert_eq!(plain.dacl.as_ref().unwrap().revision, ACL_REVISION);
        let plain = plain.with_ace_prepended(object_ace).unwrap();
        assert_eq!(plain.dacl.as_ref().unwrap().revision, ACL_REVISION_DS, "object ACEs need ACL_REVISION_DS");
    }

    /// "A record pre-created by an admin blocks every KMS host" (test-labs.md §2.6):
    /// samples/vlmcs_admin_created.ldif, from an earlier lab run with another domain SID.
    #[test]
    fn a_node_an_admin_created_is_closed_to_every_kms_host() {
        let ldif = include_str!("../../tests/fixtures/ad/vlmcs_admin_created.ldif");
        let value = ldif.lines().find_map(|l| l.strip_prefix("nTSecurityDescriptor:: ")).unwrap();
        let bytes = b64(value);
        let sd = SecurityDescriptor::parse(&bytes).unwrap();
        assert_eq!(sd.to_bytes().unwrap(), bytes);
        let dom = sid("S-1-5-21-3041672101-2194224283-3964675774");
        assert_eq!(sd.owner, Some(dom.with_rid(500).unwrap()));
        assert!(sd.to_sddl(Some(&dom)).starts_with("O:LAG:DUD:AI(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;DA)"));
        let kms = computer_token(dom.with_rid(1103).unwrap(), &[dom.with_rid(515).unwrap()], false);
        let d = may_update(&sd, &kms);
        assert!(!d.allowed());
        assert!(d.to_string().contains("owned by S-1-5-21-3041672101-2194224283-3964675774-500"), "{d}");
    }

    /// A callback ACE of `ace_type` for `sid` with `mask`: Mask, Sid, then a condition
    /// ("artx" and a conditional expression) this module does not evaluate.
    fn callback(ace_type: u8, mask: u32, sid: Sid) -> Ace {
        let mut body = mask.to_le_bytes().to_vec();
        body.extend_from_slice(&sid.to_bytes());
        body.extend_from_slice(b"artx\x00\x00\x00\x00");
        Ace::Other(OpaqueAce { ace_type, flags: 0, body })
    }

    #[test]
    fn an_ace_that_cannot_be_evaluated_is_never_read_as_allow_nor_as_deny() {
        const DENIED_CALLBACK: u8 = 0x0a;
        const ALLOWED_CALLBACK: u8 = 0x09;
        let me = account(KMS2);
        let token = kms_token(KMS2, &[]);
        let check = |aces: Vec<Ace>| may_update(&sd_with(aces, account(KMS1)), &token);
        let grant = Ace::allow(me, rights::WRITE_PROPERTY);

        // A conditional deny that may cover WP, before the grant: it may well deny.
        let d = check(vec![callback(DENIED_CALLBACK, rights::WRITE_PROPERTY, me), grant.clone()]);
        assert!(!d.allowed(), "an unevaluated deny is never read as allow: {d}");
        assert!(d.to_string().starts_with("unknown: "), "{d}");
        assert!(d.to_string().contains(&format!("ACE 0 (0x0a;;{} opaque bytes)", 4 + me.byte_len() + 8)), "{d}");
        assert!(d.to_string().contains("may deny"), "{d}");
        // A conditional allow that may grant WP where nothing else does.
        let d = check(vec![callback(ALLOWED_CALLBACK, rights::WRITE_PROPERTY, me), Ace::allow(me, rights::READ)]);
        assert!(d.to_string().starts_with("unknown: ") && d.to_string().contains("may allow"), "{d}");
        // An ACE type nothing is known of may do either.
        let strange = Ace::Other(OpaqueAce { ace_type: 0x15, flags: 0, body: vec![0xff; 12] });
        let d = check(vec![strange.clone(), grant.clone()]);
        assert!(d.to_string().starts_with("unknown: "), "{d}");
        // It cannot matter when the answer is the same either way.
        assert!(check(vec![grant.clone(), callback(DENIED_CALLBACK, rights::WRITE_PROPERTY, me)]).allowed());
        assert!(check(vec![callback(ALLOWED_CALLBACK, rights::WRITE_PROPERTY, me), grant.clone()]).allowed());
        let deny = Ace::Deny(AccessAce { flags: 0, mask: rights::WRITE_PROPERTY, sid: me, padding: vec![] });
        let d = check(vec![deny.clone(), strange, grant.clone()]);
        assert!(d.to_string().starts_with("denied by"), "{d}");
        // A callback ACE whose SID is not in the token, or whose mask holds no requested right,
        // does not apply: no doubt.
        let other = account(KMS3);
        assert!(check(vec![callback(DENIED_CALLBACK, rights::WRITE_PROPERTY, other), grant.clone()]).allowed());
        assert!(check(vec![callback(DENIED_CALLBACK, rights::DELETE, me), grant]).allowed());
        let d = check(vec![callback(ALLOWED_CALLBACK, rights::WRITE_PROPERTY, other)]);
        assert!(d.to_string().starts_with("not granted"), "{d}");
    }

    #[test]
    fn object_aces_inherit_only_aces_generic_bits_and_owner_rights() {
        let me = account(KMS2);
        let token = kms_token(KMS2, &[]);
        let check = |aces: Vec<Ace>| may_update(&sd_with(aces, account(KMS1)), &token);

        // An object ACE counts for dnsRecord, for the dnsNode class, or with no object type.
        for object_type in [Some(DNS_RECORD_ATTRIBUTE), Some(DNS_NODE_CLASS), None] {
            assert!(check(vec![Ace::allow_object(me, rights::WRITE_PROPERTY, object_type)]).allowed());
        }
        let other_attribute: Guid = "bf967a86-0de6-11d0-a285-00aa003049e2".parse().unwrap();
        let d = check(vec![Ace::allow_object(me, rights::WRITE_PROPERTY, Some(other_attribute))]);
        assert_eq!((d.verdict, d.aces.len()), (Verdict::NotGranted, 0));
        assert_eq!(d.to_string(), format!("not granted: owned by {}; no ACE applies to the account", account(KMS1)));

        let inherit_only = Ace::Allow(AccessAce {
            flags: ace_flag::CONTAINER_INHERIT | ace_flag::INHERIT_ONLY,
            mask: rights::FULL_CONTROL,
            sid: me,
            padding: vec![],
        });
        assert!(!check(vec![inherit_only]).allowed(), "inherit-only ACEs say nothing about the node");
        assert!(check(vec![Ace::allow(me, rights::GENERIC_WRITE)]).allowed());
        assert!(check(vec![Ace::allow(me, rights::GENERIC_ALL)]).allowed());
        assert!(!check(vec![Ace::allow(me, rights::GENERIC_READ)]).allowed());
        // A deny after the grant changes nothing; a deny of other rights is not a deny of WP.
        let deny = |mask| Ace::Deny(AccessAce { flags: 0, mask, sid: me, padding: vec![] });
        assert!(check(vec![Ace::allow(me, rights::WRITE_PROPERTY), deny(rights::WRITE_PROPERTY)]).allowed());
        assert!(check(vec![deny(rights::DELETE), Ace::allow(me, rights::WRITE_PROPERTY)]).allowed());
        // A callback deny with an empty mask denies nothing (see also
        // an_ace_that_cannot_be_evaluated_is_never_read_as_allow_nor_as_deny).
        let opaque = Ace::Other(OpaqueAce { ace_type: 0x0a, flags: 0, body: vec![0; 16] });
        let d = check(vec![opaque, Ace::allow(Sid::EVERYONE, rights::READ)]);
        assert_eq!((d.verdict, d.unevaluated.len()), (Verdict::NotGranted, 0));

        // The owner may always rewrite the DACL, unless an OWNER RIGHTS ACE says otherwise.
        let owner_token = kms_token(KMS1, &[]);
        let write_dac = AccessRequest { mask: rights::WRITE_DAC, object_types: &[] };
        let read_only = sd_with(vec![Ace::allow(Sid::EVERYONE, rights::READ)], account(KMS1));
        assert!(check_access(&read_only, &owner_token, &write_dac).allowed());
        let d = may_update(&read_only, &owner_token);
        assert!(!d.allowed() && d.token_is_owner);
        assert!(d.to_string().ends_with("as the owner, the account can rewrite the DACL to grant itself the right"));
        let owner_rights = sd_with(vec![Ace::allow(Sid::OWNER_RIGHTS, rights::READ)], account(KMS1));
        assert!(!check_access(&owner_rights, &owner_token, &write_dac).allowed());
        let owner_rights = sd_with(vec![Ace::allow(Sid::OWNER_RIGHTS, rights::WRITE_PROPERTY)], account(KMS1));
        assert!(may_update(&owner_rights, &owner_token).allowed());
        assert!(!may_update(&owner_rights, &token).allowed());
    }
}
