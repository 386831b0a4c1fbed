//! DNS names as kmsdns compares them.
//!
//! Every name in the inventory and in a DNS answer is folded to one canonical text form,
//! lower case and without the trailing dot, so that `KMS1.Corp.Example.com.` and
//! `kms1.corp.example.com` are the same host. The check is the one RFC 1035 §2.3.4 sets on
//! lengths, with the letters of RFC 952 plus the underscore, which service labels such as
//! `_vlmcs` and some Active Directory names carry.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A validated, case-folded domain name without the trailing dot.
#[derive(Clone, Eq)]
pub struct DnsName(String);

// Compared as the text; in unit tests each comparison is counted, so that a test can tell a
// linear pass over 10,000 zones from a quadratic one by the work done, not by a clock.
impl PartialEq for DnsName {
    fn eq(&self, other: &Self) -> bool {
        #[cfg(test)]
        comparisons::count();
        self.0 == other.0
    }
}

impl std::hash::Hash for DnsName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Ord for DnsName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        #[cfg(test)]
        comparisons::count();
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for DnsName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// How many name comparisons (`==`, `cmp`, [`DnsName::is_within`]) this thread has made.
#[cfg(test)]
pub(crate) mod comparisons {
    use std::cell::Cell;

    thread_local! { static MADE: Cell<u64> = const { Cell::new(0) }; }

    pub(crate) fn count() {
        MADE.with(|m| m.set(m.get() + 1));
    }

    /// The comparisons `f` makes.
    pub(crate) fn made_by<T>(f: impl FnOnce() -> T) -> (T, u64) {
        let before = MADE.with(Cell::get);
        let out = f();
        (out, MADE.with(Cell::get) - before)
    }
}

/// Why a text is not a usable domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is longer than 253 characters")]
    TooLong,
    #[error("the name has an empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("the label '{0}' is longer than 63 characters")]
    LabelTooLong(String),
    #[error("the label '{0}' holds a character other than a letter, digit, '-' or '_'")]
    BadCharacter(String),
    #[error("the label '{0}' starts or ends with '-'")]
    Hyphen(String),
    #[error(
        "the name is {0} characters: its KMS record _vlmcs._tcp.<name> must fit in 253, so a zone or domain has at most {MAX_KMS_DOMAIN}"
    )]
    NoRoomForVlmcs(usize),
}

/// The longest zone or domain whose `_vlmcs._tcp.` owner is still a name (RFC 1035 §2.3.4).
pub const MAX_KMS_DOMAIN: usize = 253 - "_vlmcs._tcp.".len();

impl DnsName {
    /// Parses a name given by a person or a server; one trailing dot is allowed.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        if text.len() > 253 {
            return Err(NameError::TooLong);
        }
        for label in text.split('.') {
            check_label(label.as_bytes())?;
        }
        Ok(DnsName(text.to_ascii_lowercase()))
    }

    /// A zone or KMS domain: a name as [`DnsName::parse`] takes it, short enough that its
    /// [`DnsName::vlmcs_owner`] is a name too.
    pub fn parse_domain(text: &str) -> Result<Self, NameError> {
        let name = Self::parse(text)?;
        match name.0.len() {
            n if n > MAX_KMS_DOMAIN => Err(NameError::NoRoomForVlmcs(n)),
            _ => Ok(name),
        }
    }

    /// The name as hickory reads it from the wire; `None` for the root or a name that does not
    /// pass [`DnsName::parse`] (a rogue SRV target such as `bad..name` or one with a space).
    /// Built from the labels, not from hickory's text form: every name of every answer comes
    /// through here, and the text form (escaped, then parsed) cost a 10,000-zone audit 7 % of
    /// its CPU (perf).
    pub fn from_hickory(name: &hickory_proto::rr::Name) -> Option<Self> {
        Self::from_labels(|| name.iter())
    }

    /// The name of the labels `labels()` gives (as they stand on the wire, the root's left
    /// out), if kmsdns can name it: what [`DnsName::from_hickory`] makes of a hickory name of
    /// the same labels. `labels` is called twice.
    pub fn from_labels<'a, I: Iterator<Item = &'a [u8]>>(labels: impl Fn() -> I) -> Option<Self> {
        // Exactly the text's length: names are kept by the hundred thousand.
        let mut text = Vec::with_capacity(labels().map(|l| l.len() + 1).sum::<usize>().saturating_sub(1));
        for label in labels() {
            check_label(label).ok()?;
            if !text.is_empty() {
                text.push(b'.');
            }
            text.extend(label.iter().map(u8::to_ascii_lowercase));
        }
        // Every octet passed check_label: ASCII, so this cannot fail.
        let text = String::from_utf8(text).ok()?;
        (!text.is_empty() && text.len() <= 253).then_some(DnsName(text))
    }

    /// Whether hickory's `name` is this name: what `from_hickory(name) == Some(self)` says,
    /// without building a name to compare. Every record of every answer has its owner
    /// compared so; a name made for each cost an audit an allocation per record.
    pub fn is(&self, name: &hickory_proto::rr::Name) -> bool {
        self.is_labels(name.iter())
    }

    /// Whether these labels (as they stand on the wire, the root's left out) are this name:
    /// what `from_labels` of them `== Some(self)` says, without building a name to compare.
    pub fn is_labels<'a>(&self, labels: impl Iterator<Item = &'a [u8]>) -> bool {
        #[cfg(test)]
        comparisons::count();
        // Label by label along our text: a label must match the octets up to the next dot, so
        // one holding a dot ("a.b" as one label) is never "a", "b". Every label of `self`
        // passed check_label, so one equal to it (case aside) passes too.
        let mine = self.0.as_bytes();
        let mut at = 0;
        for label in labels {
            if at > 0 {
                if mine.get(at) != Some(&b'.') {
                    return false;
                }
                at += 1;
            }
            let Some(part) = mine.get(at..at + label.len()) else { return false };
            if label.contains(&b'.') || !part.eq_ignore_ascii_case(label) {
                return false;
            }
            at += label.len();
        }
        at > 0 && at == mine.len()
    }

    /// The name in hickory's type, fully qualified.
    pub fn to_hickory(&self) -> hickory_proto::rr::Name {
        // A DnsName is valid ASCII with labels of at most 63 octets: hickory accepts every one.
        hickory_proto::rr::Name::from_ascii(self.fqdn()).unwrap_or_else(|_| hickory_proto::rr::Name::root())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with its trailing dot, as zone files and `dig` print it.
    pub fn fqdn(&self) -> String {
        format!("{}.", self.0)
    }

    /// True when `self` is `zone` or lies below it.
    pub fn is_within(&self, zone: &DnsName) -> bool {
        #[cfg(test)]
        comparisons::count();
        self.0 == zone.0
            || (self.0.len() > zone.0.len()
                && self.0.ends_with(&zone.0)
                && self.0.as_bytes()[self.0.len() - zone.0.len() - 1] == b'.')
    }

    /// `_vlmcs._tcp.<zone>`, the owner name KMS clients look up (RFC 2782 form); a name when
    /// `self` came from [`DnsName::parse_domain`], as every zone and domain kmsdns asks about does.
    pub fn vlmcs_owner(&self) -> DnsName {
        DnsName(format!("_vlmcs._tcp.{}", self.0))
    }
}

/// One label of a name: 1 to 63 octets, letters, digits, '-' and '_', no '-' at either end.
fn check_label(label: &[u8]) -> Result<(), NameError> {
    let text = || String::from_utf8_lossy(label).into_owned();
    if label.is_empty() {
        return Err(NameError::EmptyLabel);
    }
    if label.len() > 63 {
        return Err(NameError::LabelTooLong(text()));
    }
    if !label.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(NameError::BadCharacter(text()));
    }
    if label.starts_with(b"-") || label.ends_with(b"-") {
        return Err(NameError::Hyphen(text()));
    }
    Ok(())
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl Serialize for DnsName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DnsName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DnsName::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_case_and_trailing_dot() {
        let a = DnsName::parse("KMS1.Corp.Example.com.").unwrap();
        let b = DnsName::parse("kms1.corp.example.com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.fqdn(), "kms1.corp.example.com.");
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(DnsName::parse(""), Err(NameError::Empty));
        assert_eq!(DnsName::parse("."), Err(NameError::Empty));
        assert_eq!(DnsName::parse("a..b"), Err(NameError::EmptyLabel));
        assert!(matches!(DnsName::parse("a b.c"), Err(NameError::BadCharacter(_))));
        assert!(matches!(DnsName::parse("-a.c"), Err(NameError::Hyphen(_))));
        assert!(matches!(DnsName::parse(&"a".repeat(64)), Err(NameError::LabelTooLong(_))));
        let long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(DnsName::parse(&long), Err(NameError::TooLong));
    }

    #[test]
    fn within_respects_label_boundaries() {
        let zone = DnsName::parse("corp.test").unwrap();
        assert!(DnsName::parse("kms1.corp.test").unwrap().is_within(&zone));
        assert!(zone.is_within(&zone));
        assert!(!DnsName::parse("xcorp.test").unwrap().is_within(&zone));
        assert!(!DnsName::parse("test").unwrap().is_within(&zone));
    }

    #[test]
    fn round_trips_through_hickory() {
        let n = DnsName::parse("_vlmcs._tcp.Corp.Test").unwrap();
        assert_eq!(DnsName::from_hickory(&n.to_hickory()), Some(n));
    }

    /// A name from the wire is this name exactly when building one from it would give this
    /// name: case aside, label by label.
    #[test]
    fn a_name_from_the_wire_is_a_name_when_its_labels_are() {
        use hickory_proto::rr::Name;
        let wire = |labels: &[&[u8]]| Name::from_labels(labels.to_vec()).unwrap();
        let n = DnsName::parse("kms1.corp.test").unwrap();
        let cases: [(&[&[u8]], bool); 7] = [
            (&[b"KMS1", b"Corp", b"Test"], true),
            (&[b"kms1", b"corp"], false),
            (&[b"kms1", b"corp", b"test", b"x"], false),
            (&[b"x", b"kms1", b"corp", b"test"], false),
            (&[b"kms1.corp", b"test"], false),
            (&[b"kms1", b"corp", b"tes"], false),
            (&[], false),
        ];
        for (labels, is) in cases {
            let name = wire(labels);
            assert_eq!(n.is(&name), is, "{labels:?}");
            assert_eq!(n.is(&name), DnsName::from_hickory(&name).as_ref() == Some(&n), "{labels:?}");
        }
    }

    /// What the wire can hold and a name typed in cannot is refused the same way: the
    /// labels' checks are parse's.
    #[test]
    fn names_from_the_wire_pass_the_same_checks_as_names_typed_in() {
        use hickory_proto::rr::Name;
        let wire = |labels: &[&[u8]]| DnsName::from_hickory(&Name::from_labels(labels.to_vec()).unwrap());
        assert_eq!(wire(&[b"KMS1", b"Corp", b"Test"]), Some(DnsName::parse("kms1.corp.test").unwrap()));
        assert_eq!(wire(&[]), None, "the root");
        assert_eq!(wire(&[b"bad name", b"test"]), None);
        assert_eq!(wire(&[b"a.b", b"test"]), None, "a dot inside a label");
        assert_eq!(wire(&[b"-a", b"test"]), None);
        assert_eq!(wire(&[b"caf\xc3\xa9", b"test"]), None);
        // 249 octets of text (hickory refuses more than 255 on the wire, 253 of text).
        let fits: Vec<&[u8]> = vec![b"abcdefghi"; 25];
        assert!(wire(&fits).is_some());
        for text in ["_vlmcs._tcp.zone00001.bench", "a", "x-y.z_1"] {
            let n = DnsName::parse(text).unwrap();
            assert_eq!(DnsName::from_hickory(&n.to_hickory()).as_ref(), Some(&n));
            assert_eq!(DnsName::parse(&n.to_hickory().to_ascii()).ok(), Some(n));
        }
    }
}
