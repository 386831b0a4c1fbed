//! The one DCE/RPC exchange kmsdns has with a KMS host: a `bind` to the KMS interface, and the
//! reading of the answer (C706 ch. 12; layouts and bytes in kms-dns-ad.md §6).
//!
//! A bind proves that an RPC server on the port serves the KMS interface without sending an
//! activation request, which would carry a client machine ID and change the host's client
//! count. Pure codec: no I/O, and no input makes it panic.

/// KMS interface 51c82175-844e-4750-b0d8-ec255555bc06, in the little-endian GUID byte order
/// DCE/RPC uses on the wire (`bytes_le`).
pub const KMS_INTERFACE: [u8; 16] =
    [0x75, 0x21, 0xc8, 0x51, 0x4e, 0x84, 0x50, 0x47, 0xb0, 0xd8, 0xec, 0x25, 0x55, 0x55, 0xbc, 0x06];
/// NDR transfer syntax 8a885d04-1ceb-11c9-9fe8-08002b104860, version 2.
pub const NDR_SYNTAX: [u8; 16] =
    [0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60];

const PTYPE_BIND: u8 = 11;
const PTYPE_BIND_ACK: u8 = 12;
const PTYPE_BIND_NAK: u8 = 13;
const HEADER_LEN: usize = 16;
/// What vlmcsd offers; any value from 1432 up works with Windows.
const MAX_FRAG: u16 = 5840;
/// A bind_ack for one context is about 60 bytes; anything much larger is not a KMS reply.
pub const MAX_REPLY_LEN: usize = 4096;

/// The 72-byte bind PDU: one presentation context, KMS v1.0 over NDR v2.
pub fn encode_bind(call_id: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(72);
    p.extend_from_slice(&[5, 0, PTYPE_BIND, 0x03, 0x10, 0, 0, 0]);
    p.extend_from_slice(&72u16.to_le_bytes()); // frag_length
    p.extend_from_slice(&0u16.to_le_bytes()); // auth_length
    p.extend_from_slice(&call_id.to_le_bytes());
    p.extend_from_slice(&MAX_FRAG.to_le_bytes());
    p.extend_from_slice(&MAX_FRAG.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes()); // assoc_group_id: a new association
    p.extend_from_slice(&[1, 0, 0, 0]); // one context element
    p.extend_from_slice(&0u16.to_le_bytes()); // p_cont_id
    p.extend_from_slice(&[1, 0]); // one transfer syntax
    p.extend_from_slice(&KMS_INTERFACE);
    p.extend_from_slice(&1u16.to_le_bytes()); // major version 1
    p.extend_from_slice(&0u16.to_le_bytes()); // minor version 0
    p.extend_from_slice(&NDR_SYNTAX);
    p.extend_from_slice(&2u32.to_le_bytes());
    p
}

/// What the answer to our bind says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindReply {
    /// bind_ack with the context accepted: the KMS interface is served.
    Accepted,
    /// bind_ack with the context rejected (result, reason): an RPC server without the KMS interface.
    Rejected { result: u16, reason: u16 },
    /// bind_nak: the association itself was refused.
    Nak { reason: u16 },
}

/// Why bytes are not a usable answer to the bind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("the reply is not DCE/RPC (version {0}.{1})")]
    NotRpc(u8, u8),
    #[error("the reply is {0} bytes, shorter than its header says")]
    Short(usize),
    #[error("the reply is a DCE/RPC PDU of type {0}, not bind_ack or bind_nak")]
    UnexpectedType(u8),
    #[error("the reply answers call {got}, not call {want}")]
    CallId { want: u32, got: u32 },
    #[error("the reply uses big-endian or non-ASCII data representation, which KMS hosts never send")]
    DataRepresentation,
    #[error("the bind_ack carries no result")]
    NoResult,
}

/// The fragment length a 16-byte header announces, so a reader knows how much more to read.
pub fn frag_length(header: &[u8]) -> Result<usize, RpcError> {
    if header.len() < HEADER_LEN {
        return Err(RpcError::Short(header.len()));
    }
    if header[0] != 5 || header[1] != 0 {
        return Err(RpcError::NotRpc(header[0], header[1]));
    }
    if header[4] & 0xf0 != 0x10 || header[4] & 0x0f != 0 {
        return Err(RpcError::DataRepresentation);
    }
    let len = u16::from_le_bytes([header[8], header[9]]) as usize;
    if len < HEADER_LEN {
        return Err(RpcError::Short(len));
    }
    Ok(len)
}

/// Decodes a whole reply PDU to the bind with `call_id`.
pub fn decode_reply(pdu: &[u8], call_id: u32) -> Result<BindReply, RpcError> {
    let len = frag_length(pdu)?;
    let pdu = pdu.get(..len).ok_or(RpcError::Short(pdu.len()))?;
    let got = u32::from_le_bytes([pdu[12], pdu[13], pdu[14], pdu[15]]);
    let r = Reader { buf: pdu, pos: HEADER_LEN };
    match pdu[2] {
        PTYPE_BIND_ACK => {
            if got != call_id {
                return Err(RpcError::CallId { want: call_id, got });
            }
            decode_ack(r)
        }
        // A nak may come before the server parsed our call id (Samba zeroes it), so it is not checked.
        PTYPE_BIND_NAK => {
            let mut r = r;
            Ok(BindReply::Nak { reason: r.u16().ok_or(RpcError::Short(pdu.len()))? })
        }
        other => Err(RpcError::UnexpectedType(other)),
    }
}

fn decode_ack(mut r: Reader<'_>) -> Result<BindReply, RpcError> {
    let short = RpcError::Short(r.buf.len());
    r.skip(8).ok_or(short.clone())?; // max_xmit_frag, max_recv_frag, assoc_group_id
    let sec_addr_len = r.u16().ok_or(short.clone())? as usize;
    r.skip(sec_addr_len).ok_or(short.clone())?;
    // The result list starts on a 4-byte boundary counted from the start of the PDU.
    r.skip((4 - r.pos % 4) % 4).ok_or(short.clone())?;
    let n_results = r.u8().ok_or(short.clone())?;
    r.skip(3).ok_or(short.clone())?;
    if n_results == 0 {
        return Err(RpcError::NoResult);
    }
    let result = r.u16().ok_or(short.clone())?;
    let reason = r.u16().ok_or(short)?;
    Ok(if result == 0 { BindReply::Accepted } else { BindReply::Rejected { result, reason } })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.buf.len()).then(|| self.pos = end)
    }
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.buf.get(self.pos..self.pos + 2)?;
        self.pos += 2;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }
}

/// Encodes the bind_ack a KMS host sends, accepting or rejecting our one context; used by the
/// in-process KMS responders of the demo and the tests.
pub fn encode_bind_ack(call_id: u32, accept: bool) -> Vec<u8> {
    let mut p = vec![5, 0, PTYPE_BIND_ACK, 0x03, 0x10, 0, 0, 0, 0, 0, 0, 0];
    p.extend_from_slice(&call_id.to_le_bytes());
    p.extend_from_slice(&MAX_FRAG.to_le_bytes());
    p.extend_from_slice(&MAX_FRAG.to_le_bytes());
    p.extend_from_slice(&0x0000_f1a2u32.to_le_bytes()); // assoc_group_id chosen by the server
    p.extend_from_slice(&5u16.to_le_bytes());
    p.extend_from_slice(b"1688\0");
    while p.len() % 4 != 0 {
        p.push(0);
    }
    p.extend_from_slice(&[1, 0, 0, 0]);
    if accept {
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(&NDR_SYNTAX);
        p.extend_from_slice(&2u32.to_le_bytes());
    } else {
        // provider_rejection, abstract_syntax_not_supported, and a zero syntax (C706 12.6.4.4).
        p.extend_from_slice(&[2, 0, 1, 0]);
        p.extend_from_slice(&[0; 20]);
    }
    let len = p.len() as u16;
    p[8..10].copy_from_slice(&len.to_le_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    /// The exact bytes of kms-dns-ad.md §6.2 (call_id 1).
    #[test]
    fn bind_matches_the_reference_bytes() {
        let want =
            hex("05 00 0b 03 10 00 00 00 48 00 00 00 01 00 00 00 d0 16 d0 16 00 00 00 00 01 00 00 00 00 00 01 00
             75 21 c8 51 4e 84 50 47 b0 d8 ec 25 55 55 bc 06 01 00 00 00
             04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 00 00");
        assert_eq!(encode_bind(1), want);
    }

    /// The accepted ack of kms-dns-ad.md §6.3.
    #[test]
    fn reference_ack_is_accepted() {
        let ack = hex("05 00 0c 03 10 00 00 00 3c 00 00 00 01 00 00 00 d0 16 d0 16 a2 f1 00 00 05 00 31 36 38 38 00 00
             01 00 00 00 00 00 00 00 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 00 00");
        assert_eq!(frag_length(&ack), Ok(60));
        assert_eq!(decode_reply(&ack, 1), Ok(BindReply::Accepted));
        assert_eq!(encode_bind_ack(1, true), ack);
    }

    #[test]
    fn rejected_context_and_nak_are_told_apart() {
        assert_eq!(decode_reply(&encode_bind_ack(7, false), 7), Ok(BindReply::Rejected { result: 2, reason: 1 }));
        let nak = hex("05 00 0d 03 10 00 00 00 18 00 00 00 00 00 00 00 04 00 01 05 00 00 00 00");
        assert_eq!(decode_reply(&nak, 7), Ok(BindReply::Nak { reason: 4 }));
    }

    #[test]
    fn foreign_replies_are_errors() {
        assert_eq!(frag_length(b"HTTP/1.1 400 Bad Req"), Err(RpcError::NotRpc(b'H', b'T')));
        assert_eq!(decode_reply(&encode_bind_ack(1, true), 2), Err(RpcError::CallId { want: 2, got: 1 }));
        let mut request = encode_bind(1);
        assert_eq!(decode_reply(&request, 1), Err(RpcError::UnexpectedType(11)));
        request[4] = 0; // big-endian
        assert_eq!(frag_length(&request), Err(RpcError::DataRepresentation));
        let ack = encode_bind_ack(1, true);
        assert!(matches!(decode_reply(&ack[..40], 1), Err(RpcError::Short(_))));
    }

    proptest::proptest! {
        #[test]
        fn no_bytes_make_the_decoder_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..128), id in 0u32..4) {
            let _ = decode_reply(&bytes, id);
            let _ = frag_length(&bytes);
        }

        #[test]
        fn truncated_or_mangled_acks_never_panic(cut in 0usize..60, at in 0usize..60, val in proptest::num::u8::ANY) {
            let mut ack = encode_bind_ack(1, true);
            ack[at] = val;
            ack.truncate(cut.max(1));
            let _ = decode_reply(&ack, 1);
        }

        #[test]
        fn acks_round_trip(id in proptest::num::u32::ANY, accept in proptest::bool::ANY) {
            let ack = encode_bind_ack(id, accept);
            let want = if accept { BindReply::Accepted } else { BindReply::Rejected { result: 2, reason: 1 } };
            proptest::prop_assert_eq!(decode_reply(&ack, id), Ok(want));
        }
    }
}
