//! Security descriptors as AD returns them in `nTSecurityDescriptor`: the self-relative
//! SECURITY_DESCRIPTOR of MS-DTYP 2.4.6 with its ACLs (2.4.5), ACEs (2.4.4) and SIDs (2.4.2.2);
//! layouts and bytes in kms-dns-ad.md §4.
//!
//! They carry the answer to "only the first KMS host can update `_vlmcs._tcp`" (the access
//! check that reads them is deciding code, and lives beside the AD audit:
//! [`crate::audit::access`]), and Microsoft's fix, one explicit allow ACE for the KMS hosts'
//! group at the front of the node's DACL ([`SecurityDescriptor::with_ace_prepended`]).
//!
//! Pure codec: no I/O, no input makes it panic, and any descriptor it reads encodes back to the
//! same bytes, unknown ACE types and ACE padding included, as long as its parts are laid out back
//! to back after the header (see [`SecurityDescriptor::layout`]) and the reserved Sbz fields of
//! its ACLs are 0, as MS-DTYP requires.

use std::fmt;
use std::str::FromStr;

/// Access-mask bits of directory objects (MS-ADTS 5.1.3.2; kms-dns-ad.md §4.3).
pub mod rights {
    pub const CREATE_CHILD: u32 = 0x0000_0001;
    pub const DELETE_CHILD: u32 = 0x0000_0002;
    pub const LIST_CHILDREN: u32 = 0x0000_0004;
    /// Validated write.
    pub const SELF_WRITE: u32 = 0x0000_0008;
    pub const READ_PROPERTY: u32 = 0x0000_0010;
    pub const WRITE_PROPERTY: u32 = 0x0000_0020;
    pub const DELETE_TREE: u32 = 0x0000_0040;
    pub const LIST_OBJECT: u32 = 0x0000_0080;
    /// Extended rights.
    pub const CONTROL_ACCESS: u32 = 0x0000_0100;
    pub const DELETE: u32 = 0x0001_0000;
    pub const READ_CONTROL: u32 = 0x0002_0000;
    pub const WRITE_DAC: u32 = 0x0004_0000;
    pub const WRITE_OWNER: u32 = 0x0008_0000;
    pub const ACCESS_SYSTEM_SECURITY: u32 = 0x0100_0000;
    pub const GENERIC_ALL: u32 = 0x1000_0000;
    pub const GENERIC_EXECUTE: u32 = 0x2000_0000;
    pub const GENERIC_WRITE: u32 = 0x4000_0000;
    pub const GENERIC_READ: u32 = 0x8000_0000;
    /// "Full Control", `RPWPCRCCDCLCLORCWOWDSDDTSW`: what GENERIC_ALL maps to for AD objects.
    pub const FULL_CONTROL: u32 = 0x000F_01FF;
    /// `RPLCLORC`, what Everyone gets on a dnsNode.
    pub const READ: u32 = 0x0002_0094;
    /// `RCWPSW`, what GENERIC_WRITE maps to.
    pub const WRITE: u32 = 0x0002_0028;
    /// `RCLC`, what GENERIC_EXECUTE maps to.
    pub const EXECUTE: u32 = 0x0002_0004;

    /// Replaces the generic bits by the directory rights they stand for (.NET
    /// ActiveDirectoryRights; kms-dns-ad.md §4.3). Stored ACEs normally carry mapped bits
    /// already; raw generic bits mostly sit on inherit-only ACEs.
    pub fn map_generic(mask: u32) -> u32 {
        let mut mapped = mask & !(GENERIC_ALL | GENERIC_EXECUTE | GENERIC_WRITE | GENERIC_READ);
        for (generic, specific) in [(GENERIC_ALL, FULL_CONTROL), (GENERIC_EXECUTE, EXECUTE), (GENERIC_WRITE, WRITE)] {
            if mask & generic != 0 {
                mapped |= specific;
            }
        }
        if mask & GENERIC_READ != 0 {
            mapped |= READ;
        }
        mapped
    }

    /// SDDL right codes in the order Samba prints them (`libcli/security/sddl.c`), so our text
    /// matches what `samba-tool` and `ldbsearch` show.
    pub(super) const SDDL: [(&str, u32); 17] = [
        ("RP", READ_PROPERTY),
        ("WP", WRITE_PROPERTY),
        ("CR", CONTROL_ACCESS),
        ("CC", CREATE_CHILD),
        ("DC", DELETE_CHILD),
        ("LC", LIST_CHILDREN),
        ("LO", LIST_OBJECT),
        ("RC", READ_CONTROL),
        ("WO", WRITE_OWNER),
        ("WD", WRITE_DAC),
        ("SD", DELETE),
        ("DT", DELETE_TREE),
        ("SW", SELF_WRITE),
        ("GA", GENERIC_ALL),
        ("GR", GENERIC_READ),
        ("GW", GENERIC_WRITE),
        ("GX", GENERIC_EXECUTE),
    ];
}

/// AceFlags (MS-DTYP 2.4.4.1). Beware old impacket, which swaps the two inherit flags.
pub mod ace_flag {
    pub const OBJECT_INHERIT: u8 = 0x01;
    pub const CONTAINER_INHERIT: u8 = 0x02;
    pub const NO_PROPAGATE_INHERIT: u8 = 0x04;
    /// The ACE only passes to children; it says nothing about the object itself.
    pub const INHERIT_ONLY: u8 = 0x08;
    pub const INHERITED: u8 = 0x10;
    pub const SUCCESSFUL_ACCESS: u8 = 0x40;
    pub const FAILED_ACCESS: u8 = 0x80;

    pub(super) const SDDL: [(&str, u8); 7] = [
        ("OI", OBJECT_INHERIT),
        ("CI", CONTAINER_INHERIT),
        ("NP", NO_PROPAGATE_INHERIT),
        ("IO", INHERIT_ONLY),
        ("ID", INHERITED),
        ("SA", SUCCESSFUL_ACCESS),
        ("FA", FAILED_ACCESS),
    ];
}

/// SECURITY_DESCRIPTOR Control bits (MS-DTYP 2.4.6; the spec's diagram is big-endian, these
/// are the real values).
pub mod control {
    pub const OWNER_DEFAULTED: u16 = 0x0001;
    pub const GROUP_DEFAULTED: u16 = 0x0002;
    pub const DACL_PRESENT: u16 = 0x0004;
    pub const DACL_DEFAULTED: u16 = 0x0008;
    pub const SACL_PRESENT: u16 = 0x0010;
    pub const SACL_DEFAULTED: u16 = 0x0020;
    pub const DACL_AUTO_INHERIT_REQ: u16 = 0x0100;
    pub const SACL_AUTO_INHERIT_REQ: u16 = 0x0200;
    pub const DACL_AUTO_INHERITED: u16 = 0x0400;
    pub const SACL_AUTO_INHERITED: u16 = 0x0800;
    pub const DACL_PROTECTED: u16 = 0x1000;
    pub const SACL_PROTECTED: u16 = 0x2000;
    pub const RM_CONTROL_VALID: u16 = 0x4000;
    pub const SELF_RELATIVE: u16 = 0x8000;
}

/// The dnsRecord attribute (schemaIDGUID; MS-ADSC), the one a DNS update writes.
pub const DNS_RECORD_ATTRIBUTE: Guid =
    Guid::new(0xe0fa1e69, 0x9b45, 0x11d0, [0xaf, 0xdd, 0x00, 0xc0, 0x4f, 0xd9, 0x30, 0xc9]);
/// The dnsNode class: an object ACE naming it covers every attribute of the node.
pub const DNS_NODE_CLASS: Guid =
    Guid::new(0xe0fa1e8c, 0x9b45, 0x11d0, [0xaf, 0xdd, 0x00, 0xc0, 0x4f, 0xd9, 0x30, 0xc9]);
/// The dnsZone class; CreateChild for it on a zone lets an account create new names.
pub const DNS_ZONE_CLASS: Guid =
    Guid::new(0xe0fa1e8b, 0x9b45, 0x11d0, [0xaf, 0xdd, 0x00, 0xc0, 0x4f, 0xd9, 0x30, 0xc9]);

/// ACL revision for ACLs with only the basic ACE types.
pub const ACL_REVISION: u8 = 2;
/// ACL_REVISION_DS, needed once an object ACE is present; AD uses it on every DACL.
pub const ACL_REVISION_DS: u8 = 4;

pub(crate) const ACCESS_ALLOWED: u8 = 0x00;
pub(crate) const ACCESS_DENIED: u8 = 0x01;
pub(crate) const ACCESS_ALLOWED_OBJECT: u8 = 0x05;
pub(crate) const ACCESS_DENIED_OBJECT: u8 = 0x06;
pub(crate) const OBJECT_TYPE_PRESENT: u32 = 0x1;
pub(crate) const INHERITED_OBJECT_TYPE_PRESENT: u32 = 0x2;

pub(crate) const SD_HEADER_LEN: usize = 20;
pub(crate) const ACL_HEADER_LEN: usize = 8;
pub(crate) const ACE_HEADER_LEN: usize = 4;
pub(crate) const MAX_SUB_AUTHORITIES: usize = 15;

/// Why bytes are not a security descriptor (or SID, or GUID), or a value cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    #[error("the security descriptor is {0} bytes, shorter than its 20-byte header")]
    ShortDescriptor(usize),
    #[error("the security descriptor has revision {0}; only revision 1 exists")]
    DescriptorRevision(u8),
    #[error("the security descriptor puts its {part} at offset {offset}, outside its {len} bytes after the header")]
    BadOffset { part: SdPart, offset: usize, len: usize },
    #[error("the {0} runs past the end of the security descriptor")]
    Truncated(String),
    #[error("{what} is malformed: {reason}")]
    Malformed { what: String, reason: &'static str },
    #[error("a SID has revision {0}; only revision 1 exists")]
    SidRevision(u8),
    #[error("a SID has {0} sub-authorities; at most 15 are allowed")]
    TooManySubAuthorities(usize),
    #[error("the SID identifier authority {0} does not fit in 48 bits")]
    AuthorityTooLarge(u64),
    #[error("a SID value has {0} bytes after the SID")]
    TrailingBytes(usize),
    #[error("{0:?} is not a SID in S-1-<authority>-<sub-authority>... form")]
    SidText(String),
    #[error("{0:?} is not a GUID in 8-4-4-4-12 hex form")]
    GuidText(String),
    #[error("an ACE would be {0} bytes; an ACE holds at most 65535")]
    AceTooLarge(usize),
    #[error("the ACL would be {0} bytes; an ACL holds at most 65535")]
    AclTooLarge(usize),
    #[error(
        "the security descriptor carries no DACL to edit; read nTSecurityDescriptor with SD flags that include the DACL (4)"
    )]
    NoDacl,
}

/// A GUID. AD and MS-DTYP write it mixed-endian (`bytes_le`): Data1, Data2 and Data3
/// little-endian, Data4 as is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid {
    pub data1: u32,
    pub data2: u16,
    pub data3: u16,
    pub data4: [u8; 8],
}

impl Guid {
    pub const fn new(data1: u32, data2: u16, data3: u16, data4: [u8; 8]) -> Guid {
        Guid { data1, data2, data3, data4 }
    }

    pub fn from_bytes_le(b: [u8; 16]) -> Guid {
        let mut data4 = [0; 8];
        data4.copy_from_slice(&b[8..]);
        Guid {
            data1: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            data2: u16::from_le_bytes([b[4], b[5]]),
            data3: u16::from_le_bytes([b[6], b[7]]),
            data4,
        }
    }

    pub fn to_bytes_le(&self) -> [u8; 16] {
        let mut b = [0; 16];
        b[..4].copy_from_slice(&self.data1.to_le_bytes());
        b[4..6].copy_from_slice(&self.data2.to_le_bytes());
        b[6..8].copy_from_slice(&self.data3.to_le_bytes());
        b[8..].copy_from_slice(&self.data4);
        b
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.data4;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            self.data1, self.data2, self.data3, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Guid {
    type Err = SecurityError;

    /// `4828cc14-1437-45bc-9b07-ad6f015e5f28`, in either case, with or without braces.
    fn from_str(s: &str) -> Result<Guid, SecurityError> {
        let bad = || SecurityError::GuidText(s.to_string());
        let inner = s.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(s);
        let groups: Vec<&str> = inner.split('-').collect();
        let lengths_ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]);
        if !lengths_ok || !inner.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let hex = |g: &str| u64::from_str_radix(g, 16).map_err(|_| bad());
        let tail = (hex(groups[3])? << 48) | hex(groups[4])?;
        Ok(Guid::new(hex(groups[0])? as u32, hex(groups[1])? as u16, hex(groups[2])? as u16, tail.to_be_bytes()))
    }
}

/// A security identifier (MS-DTYP 2.4.2). Revision 1 is the only one, so it is not stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sid {
    /// IdentifierAuthority, big-endian on the wire.
    authority: [u8; 6],
    count: u8,
    /// The sub-authorities; those past `count` are always 0, so derived equality is right.
    subs: [u32; MAX_SUB_AUTHORITIES],
}

impl Sid {
    /// S-1-1-0 (WD).
    pub const EVERYONE: Sid = Sid::well_known(1, &[0]);
    /// S-1-3-0 (CO): replaced by the creator's SID when an object is created.
    pub const CREATOR_OWNER: Sid = Sid::well_known(3, &[0]);
    /// S-1-3-4 (OW): an ACE for it replaces the owner's implicit rights.
    pub const OWNER_RIGHTS: Sid = Sid::well_known(3, &[4]);
    /// S-1-5-2 (NU).
    pub const NETWORK: Sid = Sid::well_known(5, &[2]);
    /// S-1-5-9 (ED): every domain controller of the forest.
    pub const ENTERPRISE_DOMAIN_CONTROLLERS: Sid = Sid::well_known(5, &[9]);
    /// S-1-5-10 (PS): the object itself, for objects that are principals; never a dnsNode.
    pub const PRINCIPAL_SELF: Sid = Sid::well_known(5, &[10]);
    /// S-1-5-11 (AU).
    pub const AUTHENTICATED_USERS: Sid = Sid::well_known(5, &[11]);
    /// S-1-5-15.
    pub const THIS_ORGANIZATION: Sid = Sid::well_known(5, &[15]);
    /// S-1-5-18 (SY).
    pub const LOCAL_SYSTEM: Sid = Sid::well_known(5, &[18]);
    /// S-1-5-32-544 (BA).
    pub const BUILTIN_ADMINISTRATORS: Sid = Sid::well_known(5, &[32, 544]);
    /// S-1-5-32-554 (RU), Pre-Windows 2000 Compatible Access.
    pub const PRE_WINDOWS_2000: Sid = Sid::well_known(5, &[32, 554]);

    /// For the constants above; the slice is short and the authority small by construction.
    const fn well_known(authority: u8, subs: &[u32]) -> Sid {
        let mut all = [0; MAX_SUB_AUTHORITIES];
        let mut i = 0;
        while i < subs.len() {
            all[i] = subs[i];
            i += 1;
        }
        Sid { authority: [0, 0, 0, 0, 0, authority], count: subs.len() as u8, subs: all }
    }

    pub fn new(authority: u64, sub_authorities: &[u32]) -> Result<Sid, SecurityError> {
        if authority >> 48 != 0 {
            return Err(SecurityError::AuthorityTooLarge(authority));
        }
        if sub_authorities.len() > MAX_SUB_AUTHORITIES {
            return Err(SecurityError::TooManySubAuthorities(sub_authorities.len()));
        }
        let mut subs = [0; MAX_SUB_AUTHORITIES];
        subs[..sub_authorities.len()].copy_from_slice(sub_authorities);
        let mut auth = [0; 6];
        auth.copy_from_slice(&authority.to_be_bytes()[2..]);
        Ok(Sid { authority: auth, count: sub_authorities.len() as u8, subs })
    }

    /// Reads a SID that fills `bytes` exactly, as `objectSid` and `tokenGroups` values do.
    pub fn parse(bytes: &[u8]) -> Result<Sid, SecurityError> {
        let sid = Sid::read(bytes, 0, "SID")?;
        match bytes.len() - sid.byte_len() {
            0 => Ok(sid),
            extra => Err(SecurityError::TrailingBytes(extra)),
        }
    }

    /// Reads the SID at `at` of `buf`; `what` names it in errors.
    pub(crate) fn read(buf: &[u8], at: usize, what: &str) -> Result<Sid, SecurityError> {
        let truncated = || SecurityError::Truncated(what.to_string());
        let head = buf.get(at..at + 8).ok_or_else(truncated)?;
        if head[0] != 1 {
            return Err(SecurityError::SidRevision(head[0]));
        }
        let count = usize::from(head[1]);
        if count > MAX_SUB_AUTHORITIES {
            return Err(SecurityError::TooManySubAuthorities(count));
        }
        let body = buf.get(at + 8..at + 8 + 4 * count).ok_or_else(truncated)?;
        let mut sid = Sid { authority: [0; 6], count: count as u8, subs: [0; MAX_SUB_AUTHORITIES] };
        sid.authority.copy_from_slice(&head[2..8]);
        for (sub, b) in sid.subs.iter_mut().zip(body.chunks_exact(4)) {
            // Sub-authorities are little-endian in AD (MS-DTYP 2.4.2.2).
            *sub = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Ok(sid)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[1, self.count]);
        out.extend_from_slice(&self.authority);
        for sub in self.sub_authorities() {
            out.extend_from_slice(&sub.to_le_bytes());
        }
    }

    pub fn byte_len(&self) -> usize {
        8 + 4 * usize::from(self.count)
    }

    pub fn authority(&self) -> u64 {
        let a = self.authority;
        u64::from_be_bytes([0, 0, a[0], a[1], a[2], a[3], a[4], a[5]])
    }

    pub fn sub_authorities(&self) -> &[u32] {
        &self.subs[..usize::from(self.count)]
    }

    /// The last sub-authority: the relative id of an account in its domain.
    pub fn rid(&self) -> Option<u32> {
        self.sub_authorities().last().copied()
    }

    /// The SID of account `rid` in this domain (`S-1-5-21-a-b-c` → `S-1-5-21-a-b-c-rid`).
    pub fn with_rid(&self, rid: u32) -> Result<Sid, SecurityError> {
        let mut subs = self.sub_authorities().to_vec();
        subs.push(rid);
        Sid::new(self.authority(), &subs)
    }

    /// Whether this is an account of `domain`: the domain's SID plus one relative id.
    pub fn is_in_domain(&self, domain: &Sid) -> bool {
        self.authority == domain.authority
            && self.count == domain.count + 1
            && self.sub_authorities().starts_with(domain.sub_authorities())
    }
}

impl fmt::Display for Sid {
    /// `S-1-5-21-…`; an authority of 2^32 or more is written in hex (MS-DTYP 2.4.2.1).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let authority = self.authority();
        if authority >> 32 == 0 {
            write!(f, "S-1-{authority}")?
        } else {
            write!(f, "S-1-0x{authority:012X}")?
        }
        for sub in self.sub_authorities() {
            write!(f, "-{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Sid {
    type Err = SecurityError;

    fn from_str(s: &str) -> Result<Sid, SecurityError> {
        let bad = || SecurityError::SidText(s.to_string());
        let rest = s.strip_prefix("S-1-").or_else(|| s.strip_prefix("s-1-")).ok_or_else(bad)?;
        let mut parts = rest.split('-');
        let authority = parts.next().ok_or_else(bad)?;
        let authority = match authority.strip_prefix("0x").or_else(|| authority.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => authority.parse::<u64>(),
        }
        .map_err(|_| bad())?;
        let subs = parts.map(|p| p.parse::<u32>().map_err(|_| bad())).collect::<Result<Vec<_>, _>>()?;
        // u64 and u32 parsing accept a leading '+'; a SID string never has one.
        if s.contains('+') {
            return Err(bad());
        }
        Sid::new(authority, &subs)
    }
}

/// An ACE: the access-allowed and access-denied kinds the access check reads, and every other
/// type (audit, callback, mandatory label) as opaque bytes so re-encoding is lossless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ace {
    /// ACCESS_ALLOWED_ACE (0x00).
    Allow(AccessAce),
    /// ACCESS_DENIED_ACE (0x01).
    Deny(AccessAce),
    /// ACCESS_ALLOWED_OBJECT_ACE (0x05).
    AllowObject(ObjectAce),
    /// ACCESS_DENIED_OBJECT_ACE (0x06).
    DenyObject(ObjectAce),
    /// Any other AceType, and an object ACE whose Flags have bits MS-DTYP does not define.
    Other(OpaqueAce),
}

/// Body of ACCESS_ALLOWED_ACE and ACCESS_DENIED_ACE: Mask, Sid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessAce {
    pub flags: u8,
    pub mask: u32,
    pub sid: Sid,
    /// Bytes between the end of the SID and AceSize: AD sometimes pads ACEs (impacket's
    /// ldaptypes notes it), and they are written back as found.
    pub padding: Vec<u8>,
}

/// Body of the _OBJECT variants: Mask, Flags, ObjectType?, InheritedObjectType?, Sid. The
/// Flags dword is implied by which GUIDs are present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectAce {
    pub flags: u8,
    pub mask: u32,
    /// The attribute, property set, class or extended right the ACE is limited to; `None`
    /// covers the whole object.
    pub object_type: Option<Guid>,
    /// The class of child objects that inherit the ACE; `None` for all.
    pub inherited_object_type: Option<Guid>,
    pub sid: Sid,
    pub padding: Vec<u8>,
}

/// An ACE this module does not interpret: its type, its flags, and the bytes after its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpaqueAce {
    pub ace_type: u8,
    pub flags: u8,
    pub body: Vec<u8>,
}

impl Ace {
    /// An explicit allow ACE for `sid`, like `(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;<sid>)`.
    pub fn allow(sid: Sid, mask: u32) -> Ace {
        Ace::Allow(AccessAce { flags: 0, mask, sid, padding: Vec::new() })
    }

    /// An explicit allow ACE limited to one attribute or class, like
    /// `(OA;;WP;e0fa1e69-9b45-11d0-afdd-00c04fd930c9;;<sid>)`.
    pub fn allow_object(sid: Sid, mask: u32, object_type: Option<Guid>) -> Ace {
        Ace::AllowObject(ObjectAce {
            flags: 0,
            mask,
            object_type,
            inherited_object_type: None,
            sid,
            padding: Vec::new(),
        })
    }

    pub fn ace_type(&self) -> u8 {
        match self {
            Ace::Allow(_) => ACCESS_ALLOWED,
            Ace::Deny(_) => ACCESS_DENIED,
            Ace::AllowObject(_) => ACCESS_ALLOWED_OBJECT,
            Ace::DenyObject(_) => ACCESS_DENIED_OBJECT,
            Ace::Other(o) => o.ace_type,
        }
    }

    pub fn flags(&self) -> u8 {
        match self {
            Ace::Allow(a) | Ace::Deny(a) => a.flags,
            Ace::AllowObject(o) | Ace::DenyObject(o) => o.flags,
            Ace::Other(o) => o.flags,
        }
    }

    /// The trustee; `None` for an opaque ACE.
    pub fn sid(&self) -> Option<&Sid> {
        match self {
            Ace::Allow(a) | Ace::Deny(a) => Some(&a.sid),
            Ace::AllowObject(o) | Ace::DenyObject(o) => Some(&o.sid),
            Ace::Other(_) => None,
        }
    }

    /// The access mask as stored; `None` for an opaque ACE.
    pub fn mask(&self) -> Option<u32> {
        match self {
            Ace::Allow(a) | Ace::Deny(a) => Some(a.mask),
            Ace::AllowObject(o) | Ace::DenyObject(o) => Some(o.mask),
            Ace::Other(_) => None,
        }
    }

    pub fn object_type(&self) -> Option<Guid> {
        match self {
            Ace::AllowObject(o) | Ace::DenyObject(o) => o.object_type,
            _ => None,
        }
    }

    pub fn is_inherit_only(&self) -> bool {
        self.flags() & ace_flag::INHERIT_ONLY != 0
    }

    pub fn is_inherited(&self) -> bool {
        self.flags() & ace_flag::INHERITED != 0
    }

    /// Reads the ACE at `at`, which must end within `limit` (the end of its ACL).
    fn read(buf: &[u8], at: usize, limit: usize, what: &str) -> Result<Ace, SecurityError> {
        let malformed = |reason| SecurityError::Malformed { what: what.to_string(), reason };
        let head = buf.get(at..at + ACE_HEADER_LEN).filter(|_| at + ACE_HEADER_LEN <= limit);
        let head = head.ok_or_else(|| malformed("its header runs past the end of the ACL"))?;
        let (ace_type, flags, size) = (head[0], head[1], usize::from(u16::from_le_bytes([head[2], head[3]])));
        if size < ACE_HEADER_LEN || at + size > limit {
            return Err(malformed("its AceSize does not fit in the ACL"));
        }
        let body = &buf[at + ACE_HEADER_LEN..at + size];
        let u32_at = |off: usize| {
            body.get(off..off + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| malformed("its body is shorter than its fields"))
        };
        let sid_at = |off: usize| {
            let sid = Sid::read(body, off, what).map_err(|e| match e {
                SecurityError::Truncated(_) => malformed("its SID runs past its AceSize"),
                other => other,
            })?;
            Ok::<_, SecurityError>((sid, body[off + sid.byte_len()..].to_vec()))
        };
        Ok(match ace_type {
            ACCESS_ALLOWED | ACCESS_DENIED => {
                let mask = u32_at(0)?;
                let (sid, padding) = sid_at(4)?;
                let ace = AccessAce { flags, mask, sid, padding };
                if ace_type == ACCESS_ALLOWED { Ace::Allow(ace) } else { Ace::Deny(ace) }
            }
            ACCESS_ALLOWED_OBJECT | ACCESS_DENIED_OBJECT
                if u32_at(4)? & !(OBJECT_TYPE_PRESENT | INHERITED_OBJECT_TYPE_PRESENT) == 0 =>
            {
                let (mask, object_flags) = (u32_at(0)?, u32_at(4)?);
                let mut off = 8;
                let mut guid_if = |bit: u32| -> Result<Option<Guid>, SecurityError> {
                    if object_flags & bit == 0 {
                        return Ok(None);
                    }
                    let b = body.get(off..off + 16).ok_or_else(|| malformed("its GUIDs run past its AceSize"))?;
                    off += 16;
                    let mut bytes = [0; 16];
                    bytes.copy_from_slice(b);
                    Ok(Some(Guid::from_bytes_le(bytes)))
                };
                let object_type = guid_if(OBJECT_TYPE_PRESENT)?;
                let inherited_object_type = guid_if(INHERITED_OBJECT_TYPE_PRESENT)?;
                let (sid, padding) = sid_at(off)?;
                let ace = ObjectAce { flags, mask, object_type, inherited_object_type, sid, padding };
                if ace_type == ACCESS_ALLOWED_OBJECT { Ace::AllowObject(ace) } else { Ace::DenyObject(ace) }
            }
            _ => Ace::Other(OpaqueAce { ace_type, flags, body: body.to_vec() }),
        })
    }

    fn byte_len(&self) -> usize {
        ACE_HEADER_LEN
            + match self {
                Ace::Allow(a) | Ace::Deny(a) => 4 + a.sid.byte_len() + a.padding.len(),
                Ace::AllowObject(o) | Ace::DenyObject(o) => {
                    let guids = usize::from(o.object_type.is_some()) + usize::from(o.inherited_object_type.is_some());
                    8 + 16 * guids + o.sid.byte_len() + o.padding.len()
                }
                Ace::Other(o) => o.body.len(),
            }
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), SecurityError> {
        let size = u16::try_from(self.byte_len()).map_err(|_| SecurityError::AceTooLarge(self.byte_len()))?;
        out.extend_from_slice(&[self.ace_type(), self.flags()]);
        out.extend_from_slice(&size.to_le_bytes());
        match self {
            Ace::Allow(a) | Ace::Deny(a) => {
                out.extend_from_slice(&a.mask.to_le_bytes());
                a.sid.write(out);
                out.extend_from_slice(&a.padding);
            }
            Ace::AllowObject(o) | Ace::DenyObject(o) => {
                let present = |g: &Option<Guid>, bit: u32| if g.is_some() { bit } else { 0 };
                let object_flags = present(&o.object_type, OBJECT_TYPE_PRESENT)
                    | present(&o.inherited_object_type, INHERITED_OBJECT_TYPE_PRESENT);
                out.extend_from_slice(&o.mask.to_le_bytes());
                out.extend_from_slice(&object_flags.to_le_bytes());
                for guid in [o.object_type, o.inherited_object_type].into_iter().flatten() {
                    out.extend_from_slice(&guid.to_bytes_le());
                }
                o.sid.write(out);
                out.extend_from_slice(&o.padding);
            }
            Ace::Other(o) => out.extend_from_slice(&o.body),
        }
        Ok(())
    }

    /// SDDL text of the ACE: `(A;CIID;RPWP;;;S-1-5-…)`, `(OA;;WP;<guid>;;S-1-5-…)`. Well-known
    /// SIDs are abbreviated as Samba abbreviates them (WD, ED, SY, RU, …), and so are the
    /// accounts of `domain` when it is given (DA, DC, EA, …). An opaque ACE shows its type and
    /// size only.
    pub fn to_sddl(&self, domain: Option<&Sid>) -> String {
        let flags = sddl_flags(self.flags());
        match self {
            Ace::Allow(a) | Ace::Deny(a) => {
                let kind = if matches!(self, Ace::Allow(_)) { "A" } else { "D" };
                format!("({kind};{flags};{};;;{})", sddl_rights(a.mask), sddl_sid(&a.sid, domain))
            }
            Ace::AllowObject(o) | Ace::DenyObject(o) => {
                let kind = if matches!(self, Ace::AllowObject(_)) { "OA" } else { "OD" };
                let guid = |g: Option<Guid>| g.map(|g| g.to_string()).unwrap_or_default();
                format!(
                    "({kind};{flags};{};{};{};{})",
                    sddl_rights(o.mask),
                    guid(o.object_type),
                    guid(o.inherited_object_type),
                    sddl_sid(&o.sid, domain)
                )
            }
            Ace::Other(o) => format!("(0x{:02x};{flags};{} opaque bytes)", o.ace_type, o.body.len()),
        }
    }
}

impl fmt::Display for Ace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_sddl(None))
    }
}

fn sddl_flags(flags: u8) -> String {
    let mut text: String = ace_flag::SDDL.iter().filter(|(_, bit)| flags & bit != 0).map(|(code, _)| *code).collect();
    let unknown = flags & !ace_flag::SDDL.iter().fold(0, |all, (_, bit)| all | bit);
    if unknown != 0 {
        text.push_str(&format!("0x{unknown:02x}"));
    }
    text
}

/// Right codes when every bit has one, as Samba prints them; the hex mask otherwise.
fn sddl_rights(mask: u32) -> String {
    let known = rights::SDDL.iter().fold(0, |all, (_, bit)| all | bit);
    if mask & !known != 0 {
        return format!("0x{mask:08x}");
    }
    rights::SDDL.iter().filter(|(_, bit)| mask & bit != 0).map(|(code, _)| *code).collect()
}

/// Abbreviations of SIDs that are the same in every domain (Samba's sddl.c table, in part).
const WELL_KNOWN_SDDL: [(&str, Sid); 27] = [
    ("WD", Sid::EVERYONE),
    ("CO", Sid::CREATOR_OWNER),
    ("CG", Sid::well_known(3, &[1])),
    ("OW", Sid::OWNER_RIGHTS),
    ("NU", Sid::NETWORK),
    ("IU", Sid::well_known(5, &[4])),
    ("SU", Sid::well_known(5, &[6])),
    ("AN", Sid::well_known(5, &[7])),
    ("ED", Sid::ENTERPRISE_DOMAIN_CONTROLLERS),
    ("PS", Sid::PRINCIPAL_SELF),
    ("AU", Sid::AUTHENTICATED_USERS),
    ("RC", Sid::well_known(5, &[12])),
    ("SY", Sid::LOCAL_SYSTEM),
    ("LS", Sid::well_known(5, &[19])),
    ("NS", Sid::well_known(5, &[20])),
    ("BA", Sid::BUILTIN_ADMINISTRATORS),
    ("BU", Sid::well_known(5, &[32, 545])),
    ("BG", Sid::well_known(5, &[32, 546])),
    ("PU", Sid::well_known(5, &[32, 547])),
    ("AO", Sid::well_known(5, &[32, 548])),
    ("SO", Sid::well_known(5, &[32, 549])),
    ("PO", Sid::well_known(5, &[32, 550])),
    ("BO", Sid::well_known(5, &[32, 551])),
    ("RE", Sid::well_known(5, &[32, 552])),
    ("RU", Sid::PRE_WINDOWS_2000),
    ("RD", Sid::well_known(5, &[32, 555])),
    ("NO", Sid::well_known(5, &[32, 556])),
];

/// Abbreviations of a domain's accounts by relative id. EA, SA and RO belong to the forest root
/// domain; they are abbreviated when `domain` is that domain.
const DOMAIN_SDDL: [(&str, u32); 13] = [
    ("RO", 498),
    ("LA", 500),
    ("LG", 501),
    ("DA", 512),
    ("DU", 513),
    ("DG", 514),
    ("DC", 515),
    ("DD", 516),
    ("CA", 517),
    ("SA", 518),
    ("EA", 519),
    ("PA", 520),
    ("RS", 553),
];

fn sddl_sid(sid: &Sid, domain: Option<&Sid>) -> String {
    if let Some((code, _)) = WELL_KNOWN_SDDL.iter().find(|(_, known)| known == sid) {
        return (*code).to_string();
    }
    if domain.is_some_and(|d| sid.is_in_domain(d))
        && let Some((code, _)) = DOMAIN_SDDL.iter().find(|(_, rid)| sid.rid() == Some(*rid))
    {
        return (*code).to_string();
    }
    sid.to_string()
}

/// An access control list (MS-DTYP 2.4.5): AclRevision, Sbz1, AclSize, AceCount, Sbz2, ACEs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// [`ACL_REVISION`] or, once object ACEs are present, [`ACL_REVISION_DS`].
    pub revision: u8,
    pub aces: Vec<Ace>,
    /// Bytes between the last ACE and AclSize. Windows may leave free space in an ACL; it is
    /// written back as found. (The two Sbz fields must be 0 and are written as 0.)
    pub slack: Vec<u8>,
}

impl Acl {
    /// An ACL of `aces` with the lowest revision that can hold them.
    pub fn new(aces: Vec<Ace>) -> Acl {
        let has_object_ace = aces.iter().any(|a| matches!(a, Ace::AllowObject(_) | Ace::DenyObject(_)));
        Acl { revision: if has_object_ace { ACL_REVISION_DS } else { ACL_REVISION }, aces, slack: Vec::new() }
    }

    fn read(buf: &[u8], at: usize, name: &str) -> Result<Acl, SecurityError> {
        let head = buf.get(at..at + ACL_HEADER_LEN).ok_or_else(|| SecurityError::Truncated(name.to_string()))?;
        let size = usize::from(u16::from_le_bytes([head[2], head[3]]));
        let count = usize::from(u16::from_le_bytes([head[4], head[5]]));
        if size < ACL_HEADER_LEN {
            return Err(SecurityError::Malformed { what: name.to_string(), reason: "its AclSize is under 8 bytes" });
        }
        let end = at + size;
        if end > buf.len() {
            return Err(SecurityError::Truncated(name.to_string()));
        }
        // AceCount is only believed as far as AclSize goes: a 4-byte minimum per ACE bounds it.
        let mut aces = Vec::with_capacity(count.min(size / ACE_HEADER_LEN));
        let mut pos = at + ACL_HEADER_LEN;
        for index in 0..count {
            let ace = Ace::read(buf, pos, end, &format!("ACE {index} of the {name}"))?;
            pos += ace.byte_len();
            aces.push(ace);
        }
        Ok(Acl { revision: head[0], aces, slack: buf[pos..end].to_vec() })
    }

    fn byte_len(&self) -> usize {
        ACL_HEADER_LEN + self.aces.iter().map(Ace::byte_len).sum::<usize>() + self.slack.len()
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), SecurityError> {
        let size = u16::try_from(self.byte_len()).map_err(|_| SecurityError::AclTooLarge(self.byte_len()))?;
        let count = u16::try_from(self.aces.len()).map_err(|_| SecurityError::AclTooLarge(self.byte_len()))?;
        out.extend_from_slice(&[self.revision, 0]);
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        for ace in &self.aces {
            ace.write(out)?;
        }
        out.extend_from_slice(&self.slack);
        Ok(())
    }

    fn to_sddl(&self, domain: Option<&Sid>) -> String {
        self.aces.iter().map(|a| a.to_sddl(domain)).collect()
    }
}

/// The four parts a self-relative descriptor points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdPart {
    Owner,
    Group,
    Sacl,
    Dacl,
}

impl SdPart {
    /// The order Samba's NDR writes the parts in, which is what the captured samples show.
    pub const SAMBA_ORDER: [SdPart; 4] = [SdPart::Owner, SdPart::Group, SdPart::Sacl, SdPart::Dacl];
}

impl fmt::Display for SdPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SdPart::Owner => "owner SID",
            SdPart::Group => "group SID",
            SdPart::Sacl => "SACL",
            SdPart::Dacl => "DACL",
        })
    }
}

/// A self-relative SECURITY_DESCRIPTOR (MS-DTYP 2.4.6): Revision, Sbz1, Control, then the
/// offsets of owner, group, SACL and DACL, each 0 when the part is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityDescriptor {
    pub control: u16,
    /// Sbz1, the resource-manager control byte when RM_CONTROL_VALID is set.
    pub rm_control: u8,
    pub owner: Option<Sid>,
    pub group: Option<Sid>,
    /// Only there when the reader holds SeSecurityPrivilege and asked for it (SD flags 8).
    pub sacl: Option<Acl>,
    /// `None` with DACL_PRESENT set is a NULL DACL, which allows everyone everything.
    pub dacl: Option<Acl>,
    /// The order the parts are laid out in after the header. MS-DTYP allows any order and
    /// writers differ: Samba writes owner, group, SACL, DACL (the samples do); Windows'
    /// RtlMakeSelfRelativeSD and impacket write SACL, DACL, owner, group (MS-DTYP 2.5.1.4).
    /// [`SecurityDescriptor::parse`] records the order it found, present parts first, and
    /// [`SecurityDescriptor::to_bytes`] writes them back to back in it. A descriptor with gaps
    /// between its parts, or with two offsets sharing one part, therefore re-encodes to
    /// different but equivalent bytes; nothing AD returns has been seen to do either.
    pub layout: [SdPart; 4],
}

impl SecurityDescriptor {
    pub fn parse(bytes: &[u8]) -> Result<SecurityDescriptor, SecurityError> {
        let head = bytes.get(..SD_HEADER_LEN).ok_or(SecurityError::ShortDescriptor(bytes.len()))?;
        if head[0] != 1 {
            return Err(SecurityError::DescriptorRevision(head[0]));
        }
        let offset_of = |part: SdPart| {
            let at = 4 + 4 * SdPart::SAMBA_ORDER.iter().position(|p| *p == part).unwrap_or(0);
            let offset = u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
            let offset = usize::try_from(offset).unwrap_or(usize::MAX);
            match offset {
                0 => Ok(None),
                o if o >= SD_HEADER_LEN && o < bytes.len() => Ok(Some(o)),
                o => Err(SecurityError::BadOffset { part, offset: o, len: bytes.len() }),
            }
        };
        let (owner_at, group_at) = (offset_of(SdPart::Owner)?, offset_of(SdPart::Group)?);
        let (sacl_at, dacl_at) = (offset_of(SdPart::Sacl)?, offset_of(SdPart::Dacl)?);
        let mut present: Vec<(usize, SdPart)> =
            [(owner_at, SdPart::Owner), (group_at, SdPart::Group), (sacl_at, SdPart::Sacl), (dacl_at, SdPart::Dacl)]
                .into_iter()
                .filter_map(|(at, part)| at.map(|at| (at, part)))
                .collect();
        present.sort_by_key(|(at, _)| *at);
        let mut layout = SdPart::SAMBA_ORDER;
        let absent = SdPart::SAMBA_ORDER.into_iter().filter(|p| !present.iter().any(|(_, q)| q == p));
        for (slot, part) in layout.iter_mut().zip(present.iter().map(|(_, p)| *p).chain(absent)) {
            *slot = part;
        }
        Ok(SecurityDescriptor {
            control: u16::from_le_bytes([head[2], head[3]]),
            rm_control: head[1],
            owner: owner_at.map(|at| Sid::read(bytes, at, "owner SID")).transpose()?,
            group: group_at.map(|at| Sid::read(bytes, at, "group SID")).transpose()?,
            sacl: sacl_at.map(|at| Acl::read(bytes, at, "SACL")).transpose()?,
            dacl: dacl_at.map(|at| Acl::read(bytes, at, "DACL")).transpose()?,
            layout,
        })
    }

    /// Encodes the descriptor self-relative, its parts back to back in [`Self::layout`] order.
    /// Fails only when an ACE or ACL outgrows the 16-bit sizes of the format.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SecurityError> {
        let mut out = vec![0; SD_HEADER_LEN];
        out[0] = 1;
        out[1] = self.rm_control;
        out[2..4].copy_from_slice(&self.control.to_le_bytes());
        for part in self.layout {
            let at = out.len();
            let written = match part {
                SdPart::Owner => self.owner.map(|sid| sid.write(&mut out)).is_some(),
                SdPart::Group => self.group.map(|sid| sid.write(&mut out)).is_some(),
                SdPart::Sacl => self.sacl.as_ref().map(|acl| acl.write(&mut out)).transpose()?.is_some(),
                SdPart::Dacl => self.dacl.as_ref().map(|acl| acl.write(&mut out)).transpose()?.is_some(),
            };
            if written {
                let slot = 4 + 4 * SdPart::SAMBA_ORDER.iter().position(|p| *p == part).unwrap_or(0);
                // A descriptor over 4 GiB cannot be built from ACLs of at most 64 KiB.
                out[slot..slot + 4].copy_from_slice(&(at as u32).to_le_bytes());
            }
        }
        Ok(out)
    }

    /// Whether the descriptor says it has a DACL (DACL_PRESENT); if so and [`Self::dacl`] is
    /// `None`, the DACL is NULL and allows everything.
    pub fn dacl_present(&self) -> bool {
        self.control & control::DACL_PRESENT != 0
    }

    /// The descriptor with `ace` added to the front of the DACL, as Microsoft's fix for KMS
    /// hosts does (a group with Full Control on `_vlmcs._tcp`; kms-dns-ad.md §2.1) and as
    /// Samba's `dacl_add(ace, 0)` did for the after-fix sample. An allow ACE goes after any
    /// explicit deny ACEs at the front, so the canonical order (explicit deny, explicit allow,
    /// inherited) holds and an admin's explicit deny still wins; without such denies, as on
    /// every dnsNode the defaults create, that is the very front. The ACL moves to revision 4
    /// when `ace` is an object ACE.
    ///
    /// Fails when the descriptor has no DACL to edit (it was read without the DACL, or the DACL
    /// is NULL and so already allows everything), or when the ACL would outgrow 64 KiB.
    pub fn with_ace_prepended(&self, ace: Ace) -> Result<SecurityDescriptor, SecurityError> {
        let mut sd = self.clone();
        let dacl = sd.dacl.as_mut().filter(|_| self.dacl_present()).ok_or(SecurityError::NoDacl)?;
        let at = match ace {
            Ace::Allow(_) | Ace::AllowObject(_) => dacl
                .aces
                .iter()
                .take_while(|a| matches!(a, Ace::Deny(_) | Ace::DenyObject(_)) && !a.is_inherited())
                .count(),
            _ => 0,
        };
        if matches!(ace, Ace::AllowObject(_) | Ace::DenyObject(_)) {
            dacl.revision = dacl.revision.max(ACL_REVISION_DS);
        }
        dacl.aces.insert(at, ace);
        if dacl.byte_len() > usize::from(u16::MAX) {
            return Err(SecurityError::AclTooLarge(dacl.byte_len()));
        }
        Ok(sd)
    }

    /// SDDL text: `O:<sid>G:<sid>D:<flags>(ace)…S:<flags>(ace)…`. Well-known SIDs are
    /// abbreviated as Samba does, and so are `domain`'s accounts when it is given; with the
    /// samples' domain this reproduces `samba-tool`'s output exactly.
    pub fn to_sddl(&self, domain: Option<&Sid>) -> String {
        let mut text = String::new();
        if let Some(owner) = &self.owner {
            text.push_str(&format!("O:{}", sddl_sid(owner, domain)));
        }
        if let Some(group) = &self.group {
            text.push_str(&format!("G:{}", sddl_sid(group, domain)));
        }
        let acl_flags = |protected: u16, auto_inherit_req: u16, auto_inherited: u16| {
            [("P", protected), ("AR", auto_inherit_req), ("AI", auto_inherited)]
                .iter()
                .filter(|(_, bit)| self.control & bit != 0)
                .map(|(code, _)| *code)
                .collect::<String>()
        };
        if self.dacl_present() {
            text.push_str("D:");
            text.push_str(&acl_flags(
                control::DACL_PROTECTED,
                control::DACL_AUTO_INHERIT_REQ,
                control::DACL_AUTO_INHERITED,
            ));
            match &self.dacl {
                Some(acl) => text.push_str(&acl.to_sddl(domain)),
                None => text.push_str("NO_ACCESS_CONTROL"),
            }
        }
        if self.control & control::SACL_PRESENT != 0 {
            text.push_str("S:");
            text.push_str(&acl_flags(
                control::SACL_PROTECTED,
                control::SACL_AUTO_INHERIT_REQ,
                control::SACL_AUTO_INHERITED,
            ));
            if let Some(acl) = &self.sacl {
                text.push_str(&acl.to_sddl(domain));
            }
        }
        text
    }
}

impl fmt::Display for SecurityDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_sddl(None))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::audit::access::{computer_token, may_update};
    use base64::Engine;
    use proptest::prelude::*;

    pub(crate) const BEFORE: &str = include_str!("../../tests/fixtures/ad/sd_vlmcs_before_fix.b64");
    pub(crate) const AFTER: &str = include_str!("../../tests/fixtures/ad/sd_vlmcs_after_fix.b64");

    pub(crate) fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s.trim()).unwrap()
    }

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    pub(crate) fn sid(s: &str) -> Sid {
        s.parse().unwrap()
    }

    /// The lab domain of test-labs.md §2.6 and its accounts.
    pub(crate) fn domain() -> Sid {
        sid("S-1-5-21-2485094039-1089347830-3773317622")
    }
    pub(crate) fn account(rid: u32) -> Sid {
        domain().with_rid(rid).unwrap()
    }
    pub(crate) const KMS1: u32 = 1103;
    pub(crate) const KMS2: u32 = 1104;
    pub(crate) const KMS3: u32 = 1105;
    pub(crate) const KMS_HOSTS: u32 = 1106;
    pub(crate) const DOMAIN_COMPUTERS: u32 = 515;

    pub(crate) fn kms_token(rid: u32, groups: &[u32]) -> Vec<Sid> {
        let mut all: Vec<Sid> = groups.iter().map(|g| account(*g)).collect();
        all.push(account(DOMAIN_COMPUTERS));
        computer_token(account(rid), &all, false)
    }

    pub(crate) fn before() -> SecurityDescriptor {
        SecurityDescriptor::parse(&b64(BEFORE)).unwrap()
    }
    pub(crate) fn after() -> SecurityDescriptor {
        SecurityDescriptor::parse(&b64(AFTER)).unwrap()
    }

    #[test]
    fn the_samples_parse_and_round_trip_byte_for_byte() {
        for sample in [BEFORE, AFTER] {
            let bytes = b64(sample);
            let sd = SecurityDescriptor::parse(&bytes).unwrap();
            assert_eq!(sd.to_bytes().unwrap(), bytes);
            // Samba lays out owner, group, DACL (no SACL was asked for) right after the header.
            assert_eq!(sd.layout, [SdPart::Owner, SdPart::Group, SdPart::Dacl, SdPart::Sacl]);
            assert_eq!(&bytes[4..20], &hex("14 00 00 00 30 00 00 00 00 00 00 00 4c 00 00 00")[..]);
            assert_eq!(sd.control, control::SELF_RELATIVE | control::DACL_AUTO_INHERITED | control::DACL_PRESENT);
            assert_eq!(sd.owner, Some(account(KMS1)), "KMS1$ created the node and owns it");
            assert_eq!(sd.group, Some(account(DOMAIN_COMPUTERS)));
            assert_eq!(sd.sacl, None);
            assert_eq!(sd.dacl.as_ref().unwrap().revision, ACL_REVISION_DS);
        }
        let (before, after) = (before(), after());
        let (b, a) = (before.dacl.unwrap(), after.dacl.unwrap());
        assert_eq!((b.aces.len(), a.aces.len()), (28, 30), "5 explicit + 23 inherited, then 2 more explicit");
        assert_eq!(b.aces.iter().filter(|ace| !ace.is_inherited()).count(), 5);
        assert_eq!(a.aces[2..], b.aces[..], "the fix only added ACEs at the front");
    }

    /// samples/sddl_vlmcs_*.txt were printed by Samba from the same bytes.
    #[test]
    fn sddl_text_matches_what_samba_printed() {
        let text = |s: &str| s.trim().to_string();
        assert_eq!(before().to_string(), text(include_str!("../../tests/fixtures/ad/sddl_vlmcs_before_fix.txt")));
        assert_eq!(after().to_string(), text(include_str!("../../tests/fixtures/ad/sddl_vlmcs_after_fix.txt")));
        let dom = domain();
        let abbrev = |sd: SecurityDescriptor| sd.to_sddl(Some(&dom));
        assert_eq!(abbrev(before()), text(include_str!("../../tests/fixtures/ad/sddl_vlmcs_before_fix.abbrev.txt")));
        assert_eq!(abbrev(after()), text(include_str!("../../tests/fixtures/ad/sddl_vlmcs_after_fix.abbrev.txt")));
    }

    /// The examples of kms-dns-ad.md §4.2 and the GUID of its §0.
    #[test]
    fn the_reference_examples_encode_as_given() {
        let au = hex("01 01 00 00 00 00 00 05 0b 00 00 00");
        assert_eq!(Sid::parse(&au), Ok(Sid::AUTHENTICATED_USERS));
        assert_eq!(Sid::AUTHENTICATED_USERS.to_bytes(), au);
        assert_eq!(Sid::parse(&[au.clone(), vec![0]].concat()), Err(SecurityError::TrailingBytes(1)));

        let mut acl = hex("02 00 1c 00 01 00 00 00");
        acl.extend(hex("00 00 14 00 01 00 00 00 01 01 00 00 00 00 00 05 0b 00 00 00"));
        let parsed = Acl::read(&acl, 0, "DACL").unwrap();
        assert_eq!(parsed.aces, [Ace::allow(Sid::AUTHENTICATED_USERS, rights::CREATE_CHILD)]);
        assert_eq!(parsed.aces[0].to_string(), "(A;;CC;;;AU)");

        let object_ace = hex("05 00 38 00 20 00 00 00 01 00 00 00 69 1e fa e0 45 9b d0 11 af dd 00 c0 4f d9 30 c9
             01 05 00 00 00 00 00 05 15 00 00 00 01 00 00 00 02 00 00 00 03 00 00 00 51 04 00 00");
        let want = Ace::allow_object(sid("S-1-5-21-1-2-3-1105"), rights::WRITE_PROPERTY, Some(DNS_RECORD_ATTRIBUTE));
        assert_eq!(Ace::read(&object_ace, 0, object_ace.len(), "ACE").unwrap(), want);
        let mut out = Vec::new();
        want.write(&mut out).unwrap();
        assert_eq!(out, object_ace);
        assert_eq!(want.to_string(), "(OA;;WP;e0fa1e69-9b45-11d0-afdd-00c04fd930c9;;S-1-5-21-1-2-3-1105)");

        let guid: Guid = "4828cc14-1437-45bc-9b07-ad6f015e5f28".parse().unwrap();
        assert_eq!(guid.to_bytes_le(), hex("14 cc 28 48 37 14 bc 45 9b 07 ad 6f 01 5e 5f 28")[..]);
        assert_eq!(Guid::from_bytes_le(guid.to_bytes_le()), guid);
        assert_eq!("{4828CC14-1437-45BC-9B07-AD6F015E5F28}".parse::<Guid>(), Ok(guid));
        assert_eq!(DNS_RECORD_ATTRIBUTE.to_string(), "e0fa1e69-9b45-11d0-afdd-00c04fd930c9");
        for bad in
            ["4828cc14-1437-45bc-9b07", "4828cc14-1437-45bc-9b07-ad6f015e5f2g", "+828cc14-1437-45bc-9b07-ad6f015e5f28"]
        {
            assert!(bad.parse::<Guid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sids_read_and_write_their_text_form() {
        let kms1 = account(KMS1);
        assert_eq!(kms1.to_string(), "S-1-5-21-2485094039-1089347830-3773317622-1103");
        assert_eq!((kms1.authority(), kms1.rid()), (5, Some(1103)));
        assert!(kms1.is_in_domain(&domain()) && !domain().is_in_domain(&domain()));
        assert_eq!(sid("S-1-0x123456789ABC-7").authority(), 0x1234_5678_9abc);
        assert_eq!(sid("S-1-0x123456789ABC-7").to_string(), "S-1-0x123456789ABC-7");
        assert_eq!(sid("S-1-5").sub_authorities(), &[] as &[u32]);
        let sixteen = format!("S-1-5{}", "-1".repeat(16));
        assert_eq!(sixteen.parse::<Sid>(), Err(SecurityError::TooManySubAuthorities(16)));
        for bad in ["S-1-5-", "S-2-5-21", "S-1-5-+3", "S-1-5-4294967296", "S-1-281474976710656-1", "1-5-21"] {
            assert!(bad.parse::<Sid>().is_err(), "{bad}");
        }
    }

    /// MS-DTYP 2.5.1.4 and impacket lay out SACL, DACL, owner, group; that order is kept.
    #[test]
    fn another_part_order_is_kept() {
        let mut sd = sd_with(vec![Ace::allow(Sid::EVERYONE, rights::READ)], Sid::BUILTIN_ADMINISTRATORS);
        sd.group = Some(Sid::BUILTIN_ADMINISTRATORS);
        sd.sacl = Some(Acl::new(vec![]));
        sd.control |= control::SACL_PRESENT;
        sd.layout = [SdPart::Sacl, SdPart::Dacl, SdPart::Owner, SdPart::Group];
        let bytes = sd.to_bytes().unwrap();
        assert_eq!(&bytes[4..20], &hex("38 00 00 00 48 00 00 00 14 00 00 00 1c 00 00 00")[..]);
        assert_eq!(SecurityDescriptor::parse(&bytes).unwrap(), sd);
        assert_eq!(sd.to_string(), "O:BAG:BAD:(A;;RPLCLORC;;;WD)S:");
    }

    #[test]
    fn malformed_descriptors_are_errors() {
        let bytes = b64(BEFORE);
        assert_eq!(SecurityDescriptor::parse(&bytes[..19]), Err(SecurityError::ShortDescriptor(19)));
        let mut wrong = bytes.clone();
        wrong[0] = 2;
        assert_eq!(SecurityDescriptor::parse(&wrong), Err(SecurityError::DescriptorRevision(2)));
        let mut outside = bytes.clone();
        outside[16..20].copy_from_slice(&5000u32.to_le_bytes());
        assert_eq!(
            SecurityDescriptor::parse(&outside),
            Err(SecurityError::BadOffset { part: SdPart::Dacl, offset: 5000, len: bytes.len() })
        );
        assert_eq!(SecurityDescriptor::parse(&bytes[..bytes.len() - 1]), Err(SecurityError::Truncated("DACL".into())));
        let mut big_ace = bytes.clone();
        big_ace[0x4c + 8 + 3] = 0xff; // high byte of the first ACE's AceSize
        let err = SecurityDescriptor::parse(&big_ace).unwrap_err();
        assert_eq!(err.to_string(), "ACE 0 of the DACL is malformed: its AceSize does not fit in the ACL");
    }

    /// Padding and slack inside ACLs, which AD sometimes leaves, survive a round trip.
    #[test]
    fn padded_aces_and_acl_slack_are_kept() {
        let mut acl = hex("04 00 24 00 01 00 00 00");
        acl.extend(hex("00 00 18 00 10 00 00 00 01 01 00 00 00 00 00 05 0b 00 00 00 aa bb cc dd"));
        acl.extend(hex("ee ee ee ee"));
        let parsed = Acl::read(&acl, 0, "DACL").unwrap();
        assert_eq!(parsed.slack, [0xee; 4]);
        assert!(matches!(&parsed.aces[0], Ace::Allow(a) if a.padding == [0xaa, 0xbb, 0xcc, 0xdd]));
        let mut out = Vec::new();
        parsed.write(&mut out).unwrap();
        assert_eq!(out, acl);
    }

    fn any_sid() -> impl Strategy<Value = Sid> {
        (0u64..1 << 48, proptest::collection::vec(any::<u32>(), 0..=15)).prop_map(|(a, s)| Sid::new(a, &s).unwrap())
    }

    fn any_guid() -> impl Strategy<Value = Guid> {
        any::<[u8; 16]>().prop_map(Guid::from_bytes_le)
    }

    fn padding() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..8)
    }

    fn access_ace() -> impl Strategy<Value = AccessAce> {
        (any::<u8>(), any::<u32>(), any_sid(), padding()).prop_map(|(flags, mask, sid, padding)| AccessAce {
            flags,
            mask,
            sid,
            padding,
        })
    }

    fn object_ace() -> impl Strategy<Value = ObjectAce> {
        let guid = || proptest::option::of(any_guid());
        (any::<u8>(), any::<u32>(), guid(), guid(), any_sid(), padding()).prop_map(
            |(flags, mask, object_type, inherited_object_type, sid, padding)| ObjectAce {
                flags,
                mask,
                object_type,
                inherited_object_type,
                sid,
                padding,
            },
        )
    }

    fn any_ace() -> impl Strategy<Value = Ace> {
        let opaque = (any::<u8>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_filter("not a type read as itself", |(t, _, _)| ![0, 1, 5, 6].contains(t))
            .prop_map(|(ace_type, flags, body)| OpaqueAce { ace_type, flags, body });
        prop_oneof![
            access_ace().prop_map(Ace::Allow),
            access_ace().prop_map(Ace::Deny),
            object_ace().prop_map(Ace::AllowObject),
            object_ace().prop_map(Ace::DenyObject),
            opaque.prop_map(Ace::Other),
        ]
    }

    fn any_acl() -> impl Strategy<Value = Acl> {
        (any::<u8>(), proptest::collection::vec(any_ace(), 0..6), padding()).prop_map(|(revision, aces, slack)| Acl {
            revision,
            aces,
            slack,
        })
    }

    fn any_sd() -> impl Strategy<Value = SecurityDescriptor> {
        let parts = (
            proptest::option::of(any_sid()),
            proptest::option::of(any_sid()),
            proptest::option::of(any_acl()),
            proptest::option::of(any_acl()),
        );
        let order = Just(SdPart::SAMBA_ORDER.to_vec()).prop_shuffle();
        (any::<u16>(), any::<u8>(), parts, order).prop_map(
            |(control, rm_control, (owner, group, sacl, dacl), order)| {
                let mut sd =
                    SecurityDescriptor { control, rm_control, owner, group, sacl, dacl, layout: SdPart::SAMBA_ORDER };
                // What parse reports: the present parts in their order, then the absent ones.
                let present = |p: &SdPart| match p {
                    SdPart::Owner => sd.owner.is_some(),
                    SdPart::Group => sd.group.is_some(),
                    SdPart::Sacl => sd.sacl.is_some(),
                    SdPart::Dacl => sd.dacl.is_some(),
                };
                let mut layout: Vec<SdPart> = order.iter().copied().filter(|p| present(p)).collect();
                layout.extend(SdPart::SAMBA_ORDER.iter().copied().filter(|p| !present(p)));
                sd.layout.copy_from_slice(&layout);
                sd
            },
        )
    }

    fn exercise(bytes: &[u8]) {
        if let Ok(sd) = SecurityDescriptor::parse(bytes) {
            let again = sd.to_bytes().unwrap();
            assert_eq!(SecurityDescriptor::parse(&again).unwrap(), sd);
            let _ = sd.to_string();
            let _ = may_update(&sd, &kms_token(KMS2, &[KMS_HOSTS])).to_string();
            let _ = sd.with_ace_prepended(Ace::allow(Sid::EVERYONE, rights::READ));
        }
    }

    proptest! {
        #[test]
        fn no_bytes_make_the_parser_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            exercise(&bytes);
            let _ = Sid::parse(&bytes);
        }

        #[test]
        fn mutated_samples_never_panic(
            which in any::<bool>(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let mut bytes = b64(if which { AFTER } else { BEFORE });
            for (at, val) in edits {
                let at = at % bytes.len();
                bytes[at] = val;
            }
            exercise(&bytes);
            bytes.truncate(cut % (bytes.len() + 1));
            exercise(&bytes);
        }

        #[test]
        fn descriptors_round_trip(sd in any_sd()) {
            let bytes = sd.to_bytes().unwrap();
            prop_assert_eq!(SecurityDescriptor::parse(&bytes).unwrap(), sd);
        }

        #[test]
        fn sid_and_guid_text_round_trip(sid in any_sid(), guid in any_guid()) {
            prop_assert_eq!(sid.to_string().parse::<Sid>().unwrap(), sid);
            prop_assert_eq!(Sid::parse(&sid.to_bytes()).unwrap(), sid);
            prop_assert_eq!(guid.to_string().parse::<Guid>().unwrap(), guid);
        }
    }

    pub(crate) fn sd_with(aces: Vec<Ace>, owner: Sid) -> SecurityDescriptor {
        SecurityDescriptor {
            control: control::SELF_RELATIVE | control::DACL_PRESENT,
            rm_control: 0,
            owner: Some(owner),
            group: None,
            sacl: None,
            dacl: Some(Acl::new(aces)),
            layout: SdPart::SAMBA_ORDER,
        }
    }
}
