//! The TKEY record (RFC 2930) of a GSS-TSIG negotiation (RFC 3645 §3.1): what kmsdns sends
//! to establish a security context, and reading the server's answer out of a whole message.
//!
//! hickory does not implement TKEY (it reads it as an unknown type, RDATA as raw bytes, and a
//! server may compress the algorithm name with a pointer into the message), so the answer is
//! read from the message bytes here. Pure: no I/O, and no input makes it panic.

/// TKEY's RR type.
pub const TYPE_TKEY: u16 = 249;
/// Mode 3: GSS-API negotiation.
pub const MODE_GSSAPI: u16 = 3;

/// The parts of a TKEY RDATA kmsdns uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tkey {
    /// The algorithm, as text without the trailing dot ("gss-tsig").
    pub algorithm: String,
    pub inception: u32,
    pub expiration: u32,
    pub mode: u16,
    /// The TKEY error field (RFC 2930 §2.6): 0, or BADKEY (17), BADNAME (20), BADALG (21)...
    pub error: u16,
    /// The GSS token.
    pub key: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TkeyError {
    #[error("the message is cut short")]
    Short,
    #[error("a name in the message is malformed")]
    BadName,
    #[error("the answer holds no TKEY record")]
    Missing,
}

/// Encodes a TKEY RDATA (names uncompressed, as RFC 3597 wants for RDATA).
pub fn encode_rdata(t: &Tkey) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + t.key.len());
    for label in t.algorithm.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        out.push(label.len().min(63) as u8);
        out.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    out.push(0);
    out.extend_from_slice(&t.inception.to_be_bytes());
    out.extend_from_slice(&t.expiration.to_be_bytes());
    out.extend_from_slice(&t.mode.to_be_bytes());
    out.extend_from_slice(&t.error.to_be_bytes());
    out.extend_from_slice(&(t.key.len().min(u16::MAX as usize) as u16).to_be_bytes());
    out.extend_from_slice(&t.key[..t.key.len().min(u16::MAX as usize)]);
    out.extend_from_slice(&0u16.to_be_bytes()); // no other data
    out
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], TkeyError> {
        let end = self.pos.checked_add(n).ok_or(TkeyError::Short)?;
        let s = self.buf.get(self.pos..end).ok_or(TkeyError::Short)?;
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, TkeyError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, TkeyError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Reads a name at the cursor (following compression pointers within the message) and
    /// leaves the cursor after it.
    fn name(&mut self) -> Result<String, TkeyError> {
        let mut labels = Vec::new();
        let mut at = self.pos;
        let mut end = None;
        for _ in 0..128 {
            let len = *self.buf.get(at).ok_or(TkeyError::Short)? as usize;
            match len {
                0 => {
                    self.pos = end.unwrap_or(at + 1);
                    return Ok(labels.join("."));
                }
                l if l & 0xc0 == 0xc0 => {
                    let lo = *self.buf.get(at + 1).ok_or(TkeyError::Short)? as usize;
                    end.get_or_insert(at + 2);
                    at = ((l & 0x3f) << 8) | lo;
                }
                l if l < 64 => {
                    let label = self.buf.get(at + 1..at + 1 + l).ok_or(TkeyError::Short)?;
                    labels.push(String::from_utf8_lossy(label).into_owned());
                    at += 1 + l;
                }
                _ => return Err(TkeyError::BadName),
            }
        }
        Err(TkeyError::BadName)
    }
}

/// Finds the first TKEY record in the answer section of a whole DNS message.
pub fn find_in_answer(message: &[u8]) -> Result<Tkey, TkeyError> {
    let mut c = Cursor { buf: message, pos: 0 };
    let header = c.take(12)?;
    let qdcount = u16::from_be_bytes([header[4], header[5]]);
    let ancount = u16::from_be_bytes([header[6], header[7]]);
    for _ in 0..qdcount {
        c.name()?;
        c.take(4)?;
    }
    for _ in 0..ancount {
        c.name()?;
        let rtype = c.u16()?;
        c.take(6)?; // class, TTL
        let rdlen = c.u16()? as usize;
        let start = c.pos;
        if rtype == TYPE_TKEY {
            let algorithm = c.name()?;
            let t = Tkey {
                algorithm,
                inception: c.u32()?,
                expiration: c.u32()?,
                mode: c.u16()?,
                error: c.u16()?,
                key: {
                    let n = c.u16()? as usize;
                    c.take(n)?.to_vec()
                },
            };
            return Ok(t);
        }
        c.pos = start.checked_add(rdlen).ok_or(TkeyError::Short)?;
    }
    Err(TkeyError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tkey() -> Tkey {
        Tkey {
            algorithm: "gss-tsig".into(),
            inception: 1_700_000_000,
            expiration: 1_700_086_400,
            mode: MODE_GSSAPI,
            error: 0,
            key: vec![0x60, 0x82, 1, 2, 3],
        }
    }

    #[test]
    fn a_tkey_round_trips_through_a_message() {
        let t = tkey();
        let mut m = vec![0x12, 0x34, 0x84, 0x00, 0, 0, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x04k123\x00");
        m.extend_from_slice(&[0, 249, 0, 255, 0, 0, 0, 0]);
        let rdata = encode_rdata(&t);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rdata);
        assert_eq!(find_in_answer(&m), Ok(t));
    }

    /// A server that compresses: the TKEY's owner points at the question's name, and its
    /// algorithm name at the owner of an earlier answer record.
    #[test]
    fn compressed_names_are_followed() {
        let t = tkey();
        let mut m = vec![0x12, 0x34, 0x84, 0x00, 0, 1, 0, 2, 0, 0, 0, 0];
        let qname_at = m.len();
        m.extend_from_slice(b"\x04k123\x03dc1\x04corp\x04test\x00");
        m.extend_from_slice(&[0, 249, 0, 255]);
        let alg_at = m.len();
        m.extend_from_slice(b"\x08gss-tsig\x00");
        m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1]);
        m.extend_from_slice(&[0xc0, qname_at as u8, 0, 249, 0, 255, 0, 0, 0, 0]);
        let full = encode_rdata(&t);
        let alg_len = full.iter().position(|b| *b == 0).unwrap() + 1;
        let mut rdata = vec![0xc0, alg_at as u8];
        rdata.extend_from_slice(&full[alg_len..]);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rdata);
        assert_eq!(find_in_answer(&m), Ok(t));
    }

    #[test]
    fn a_message_without_tkey_says_so() {
        let m = vec![0x12, 0x34, 0x84, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(find_in_answer(&m), Err(TkeyError::Missing));
        assert_eq!(find_in_answer(&m[..5]), Err(TkeyError::Short));
    }

    #[test]
    fn pointer_loops_are_an_error() {
        let mut m = vec![0, 0, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0xc0, 12]);
        assert_eq!(find_in_answer(&m), Err(TkeyError::BadName));
    }

    proptest::proptest! {
        #[test]
        fn no_bytes_make_it_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = find_in_answer(&bytes);
        }
    }
}
