//! The records of an authoritative answer as kmsdns reads them ([`Rec`]), and the reader for
//! the answers a healthy server gives (`read_plain`), written out here instead of decoded
//! by hickory.
//!
//! Why: decoding the answers with hickory (its names label by label, its records, its SOA
//! and SRV types, then our names made from them) was a quarter of the instructions of a
//! 10,000-zone audit (callgrind, 2026-12-04), the largest part of its query phase.
//!
//! Why it is safe: `read_plain` accepts only a message it reads whole and finds plain (every
//! record of a type it knows, class IN, RDATA that fills exactly its RDLENGTH, names
//! compressed only backwards, as hickory requires), whose header and question are exactly the
//! ones asked (ID, QR=1, QUERY, AA=1, TC=0, NOERROR or NXDOMAIN, one question: the name, type
//! and class asked). Anything else gives `None`, and the message is read as before, by
//! hickory, and checked against its question by `check_answer` (which words the error). So
//! `read_plain` never accepts what that path refuses, and what it reads is what that path
//! reads: a differential test holds it to that over 60,000 mutations of BIND's answers
//! (`observe::dns::tests::the_plain_reader_never_reads_what_hickory_refuses_or_reads_otherwise`).

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Header, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::name::DnsName;

/// One record of an answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rec {
    pub owner: Owner,
    /// As it stands on the wire (see `dns::ttl` for how it is read).
    pub ttl: u32,
    pub data: Data,
}

/// The RDATA kmsdns reads; anything else is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Data {
    /// The target, or (one kmsdns cannot name, such as RFC 2782's ".") its text.
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Result<DnsName, String>,
    },
    Soa {
        serial: u32,
        mname: Option<DnsName>,
    },
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Option<DnsName>),
    /// Each character-string.
    Txt(Vec<Vec<u8>>),
    Other,
}

/// Where a record stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Owner {
    /// At the name asked (most records: not named again for each).
    Asked,
    Name(DnsName),
    /// At a name kmsdns cannot name, so at none it asks of.
    Unnamed,
}

impl Rec {
    /// Whether it stands at `name`, in the answer to a question for `asked`.
    pub fn is_at(&self, name: &DnsName, asked: &DnsName) -> bool {
        match &self.owner {
            Owner::Asked => name == asked,
            Owner::Name(n) => n == name,
            Owner::Unnamed => false,
        }
    }

    /// A record hickory decoded.
    pub fn from_hickory(r: &Record) -> Rec {
        let data = match &r.data {
            RData::SRV(s) => Data::Srv {
                priority: s.priority,
                weight: s.weight,
                port: s.port,
                target: DnsName::from_hickory(&s.target).ok_or_else(|| s.target.to_ascii()),
            },
            RData::SOA(s) => Data::Soa { serial: s.serial, mname: DnsName::from_hickory(&s.mname) },
            RData::A(a) => Data::A(a.0),
            RData::AAAA(a) => Data::Aaaa(a.0),
            RData::CNAME(c) => Data::Cname(DnsName::from_hickory(&c.0)),
            RData::TXT(t) => Data::Txt(t.txt_data.iter().map(|s| s.to_vec()).collect()),
            _ => Data::Other,
        };
        let owner = match DnsName::from_hickory(&r.name) {
            Some(n) => Owner::Name(n),
            None => Owner::Unnamed,
        };
        Rec { owner, ttl: r.ttl, data }
    }
}

/// A plain answer to the question (`id`, `name`, `rtype`, class IN) over UDP or TCP: its
/// header as hickory reads it and its answer section, or `None` for anything else (see the
/// module doc). TC=1 is never plain.
///
/// `question` is the question section as asked, byte for byte (the name as `encode_query`
/// wrote it, uncompressed, then type and class).
pub(super) fn read_plain(
    bytes: &[u8],
    id: u16,
    question: &[u8],
    name: &DnsName,
    rtype: RecordType,
) -> Option<(Metadata, Vec<Rec>)> {
    let mut d = BinDecoder::new(bytes);
    let Header { metadata, counts } = Header::read(&mut d).ok()?;
    let plain_header = metadata.id == id
        && metadata.message_type == MessageType::Response
        && metadata.op_code == OpCode::Query
        && metadata.authoritative
        && !metadata.truncation
        && matches!(metadata.response_code, ResponseCode::NoError | ResponseCode::NXDomain)
        && counts.queries == 1;
    if !plain_header {
        return None;
    }
    // The question: the one asked, the name's letters in any case. A label's length octet
    // (0 to 63) is no letter, so the names' labels are the same labels.
    let (asked, fixed) = question.split_at(question.len().checked_sub(4)?);
    let got = bytes.get(12..12 + question.len())?;
    if !got[..asked.len()].eq_ignore_ascii_case(asked) || &got[asked.len()..] != fixed {
        return None;
    }
    debug_assert_eq!(u16::from_be_bytes([fixed[0], fixed[1]]), u16::from(rtype));
    let mut w = Wire { bytes, at: 12 + question.len() };
    let mut labels = Labels::default();
    let mut answers = Vec::with_capacity(usize::from(counts.answers));
    for _ in 0..counts.answers {
        answers.push(w.record(&mut labels, Some(name))?);
    }
    let holds_what_was_asked = metadata.response_code == ResponseCode::NoError
        && answers.iter().any(|r| r.is_at(name, name) && r.data.is_of(rtype));
    if holds_what_was_asked {
        // As `Reply` reads such an answer: the other sections framed, record by record.
        let (at, opt) = super::dns::step_over_records(bytes, w.at, counts.authorities).ok()?;
        let (end, high) = super::dns::step_over_records(bytes, at, counts.additionals).ok()?;
        if opt.is_some() || end != bytes.len() || high.is_some_and(|h| h != 0) {
            return None;
        }
    } else {
        // That nothing is there is the evidence: every record read, as hickory reads them.
        for _ in 0..counts.authorities {
            w.record(&mut labels, None)?;
        }
        let mut opt = false;
        for _ in 0..counts.additionals {
            if w.opt()? {
                if opt {
                    return None;
                }
                opt = true;
            } else {
                w.record(&mut labels, None)?;
            }
        }
        if w.at != bytes.len() {
            return None;
        }
    }
    Some((metadata, answers))
}

impl Data {
    fn is_of(&self, rtype: RecordType) -> bool {
        matches!(
            (self, rtype),
            (Data::Srv { .. }, RecordType::SRV)
                | (Data::Soa { .. }, RecordType::SOA)
                | (Data::A(_), RecordType::A)
                | (Data::Aaaa(_), RecordType::AAAA)
                | (Data::Cname(_), RecordType::CNAME)
                | (Data::Txt(_), RecordType::TXT)
        )
    }
}

/// The labels of one name as read (at most 127 of them: a name is at most 255 octets), by
/// where they stand in the message.
#[derive(Default)]
struct Labels {
    spans: Vec<(usize, usize)>,
    bytes: usize,
}

impl Labels {
    fn clear(&mut self) {
        self.spans.clear();
        self.bytes = 0;
    }

    fn iter<'a>(&'a self, message: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.spans.iter().map(move |&(from, to)| &message[from..to])
    }
}

/// A cursor over a message.
struct Wire<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Wire<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a name at the cursor into `labels`, following compression pointers as hickory
    /// does (RFC 1035 §4.1.4): each points before the part of the name that holds it, and a
    /// part reached by a pointer ends before the part it was reached from. At most 254
    /// octets in all (hickory allows 255; the root's name counts 1).
    fn name(&mut self, labels: &mut Labels) -> Option<()> {
        labels.clear();
        let bytes = self.bytes;
        // Where the part being read began, and the end it must stay before once reached by a pointer.
        let (mut part, mut limit) = (self.at, usize::MAX);
        let mut at = self.at;
        let mut resume = None;
        loop {
            if at >= limit {
                return None;
            }
            let len = *bytes.get(at)?;
            match len & 0xC0 {
                0x00 if len == 0 => {
                    at += 1;
                    break;
                }
                0x00 => {
                    let (from, to) = (at + 1, at + 1 + usize::from(len));
                    if to >= limit || to > bytes.len() {
                        return None;
                    }
                    labels.bytes += 1 + usize::from(len);
                    if labels.bytes + 1 > 254 {
                        return None;
                    }
                    labels.spans.push((from, to));
                    at = to;
                }
                0xC0 => {
                    if at + 1 >= limit {
                        return None;
                    }
                    let target = usize::from(u16::from_be_bytes([len & 0x3F, *bytes.get(at + 1)?]));
                    if target >= part {
                        return None;
                    }
                    resume.get_or_insert(at + 2);
                    limit = part;
                    part = target;
                    at = target;
                }
                _ => return None,
            }
        }
        self.at = resume.unwrap_or(at);
        Some(())
    }

    /// A name kmsdns can name (else `None`: not plain).
    fn dns_name(&mut self, labels: &mut Labels) -> Option<DnsName> {
        self.name(labels)?;
        DnsName::from_labels(|| labels.iter(self.bytes))
    }

    /// A name, named if kmsdns can name it and `keep` (`Some(None)`: read, but not named).
    fn any_name(&mut self, labels: &mut Labels, keep: bool) -> Option<Option<DnsName>> {
        self.name(labels)?;
        Some(if keep { DnsName::from_labels(|| labels.iter(self.bytes)) } else { None })
    }

    /// One record of a type kmsdns knows, class IN, its RDATA filling its RDLENGTH exactly.
    /// With `keep` (the name asked), its names are named; without, only read, and the record
    /// is thrown away.
    fn record(&mut self, labels: &mut Labels, keep: Option<&DnsName>) -> Option<Rec> {
        let owner = if self.bytes.get(self.at..self.at + 2) == Some(&[0xC0, 12]) {
            // A pointer to the question's name (BIND's way), which is the name asked.
            self.at += 2;
            Owner::Asked
        } else {
            self.name(labels)?;
            match keep {
                Some(asked) if asked.is_labels(labels.iter(self.bytes)) => Owner::Asked,
                Some(_) => DnsName::from_labels(|| labels.iter(self.bytes)).map_or(Owner::Unnamed, Owner::Name),
                None => Owner::Unnamed,
            }
        };
        let named = keep.is_some();
        let (rtype, class, ttl, len) = (self.u16()?, self.u16()?, self.u32()?, usize::from(self.u16()?));
        if class != 1 || len == 0 {
            return None;
        }
        let end = self.at.checked_add(len).filter(|&e| e <= self.bytes.len())?;
        let data = match RecordType::from(rtype) {
            RecordType::SRV => {
                let (priority, weight, port) = (self.u16()?, self.u16()?, self.u16()?);
                if named {
                    Data::Srv { priority, weight, port, target: Ok(self.dns_name(labels)?) }
                } else {
                    self.name(labels)?;
                    Data::Other
                }
            }
            RecordType::SOA => {
                let mname = self.any_name(labels, named)?;
                self.name(labels)?;
                let serial = self.u32()?;
                self.take(16)?;
                Data::Soa { serial, mname }
            }
            RecordType::A => {
                let b = self.take(4)?;
                Data::A(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            RecordType::AAAA => Data::Aaaa(Ipv6Addr::from(<[u8; 16]>::try_from(self.take(16)?).ok()?)),
            RecordType::CNAME => Data::Cname(self.any_name(labels, named)?),
            RecordType::NS => {
                self.name(labels)?;
                Data::Other
            }
            RecordType::TXT => {
                let mut strings = Vec::new();
                while self.at < end {
                    let n = usize::from(self.u8()?);
                    let string = self.take(n)?;
                    if named {
                        strings.push(string.to_vec());
                    }
                }
                Data::Txt(strings)
            }
            _ => return None,
        };
        (self.at == end).then_some(Rec { owner, ttl, data })
    }

    /// An OPT record as BIND gives one to our questions (the root's name, no options, the
    /// TTL field 0: no extended RCODE, version 0): `Some(true)`. `Some(false)` when the
    /// record there is no OPT record (the cursor unmoved); `None` for any other OPT record.
    fn opt(&mut self) -> Option<bool> {
        let fixed = self.bytes.get(self.at..self.at + 11)?;
        if fixed[0] != 0 || u16::from_be_bytes([fixed[1], fixed[2]]) != u16::from(RecordType::OPT) {
            return Some(false);
        }
        if fixed[5..11] != [0, 0, 0, 0, 0, 0] {
            return None;
        }
        self.at += 11;
        Some(true)
    }
}
