//! The one way an UPDATE or a TKEY reaches a server: the message byte for byte over one TCP
//! exchange ([`crate::net::tcp_exchange`]: on a connection that carries one message at a
//! time, kept between messages). A signed message must arrive unchanged: Samba checks the GSS-TSIG MIC over the ID
//! on the wire rather than the TSIG original ID, and hickory's multiplexer would replace the ID
//! after signing.
//!
//! What went wrong is told by whether the server can have seen the message: a connection that
//! was never made sent nothing, while a timeout or a connection lost after sending leaves the
//! outcome unknown (a kept connection the server had closed before the message left is never
//! counted as sent: the message goes again on a new one).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::DnsResponse;

use crate::net::{ExchangeError, tcp_exchange};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection: the server never saw the message.
    #[error("{0}")]
    NotSent(std::io::Error),
    /// Sent, and no answer within the timeout.
    #[error("no answer within the timeout")]
    Timeout,
    /// Sent, and then the connection broke, or what came back is not the answer to it.
    #[error("{0}")]
    Lost(String),
}

/// Sends `bytes` (a whole DNS message, ID included) and returns the server's answer.
pub async fn send(server: SocketAddr, bytes: &[u8], timeout: Duration) -> Result<DnsResponse, SendError> {
    let id = u16::from_be_bytes([bytes.first().copied().unwrap_or(0), bytes.get(1).copied().unwrap_or(0)]);
    let answer = tcp_exchange(server, bytes, timeout).await.map_err(|e| match e {
        ExchangeError::Connect(io) => SendError::NotSent(io),
        ExchangeError::Timeout => SendError::Timeout,
        ExchangeError::Io(io) => SendError::Lost(format!("the connection broke after the message was sent: {io}")),
    })?;
    let response =
        DnsResponse::from_buffer(answer).map_err(|e| SendError::Lost(format!("the answer does not parse: {e}")))?;
    if response.metadata.id != id {
        return Err(SendError::Lost("the answer is for another message (ID mismatch)".into()));
    }
    // An UPDATE is answered under opcode UPDATE, a TKEY query under QUERY (hickory has
    // already refused QR=0): a NOERROR under another opcode is no answer to this message.
    let asked = hickory_proto::op::OpCode::from_u8(bytes.get(2).map_or(0, |b| (b >> 3) & 0x0F));
    let answered = response.metadata.op_code;
    if answered != asked {
        return Err(SendError::Lost(format!("the answer is under opcode {answered}, not the message's {asked}")));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::RecordType;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on loopback that writes back the one message it reads, `change` applied.
    async fn echoing(change: fn(&mut [u8])) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await.unwrap();
            let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut m).await.unwrap();
            change(&mut m);
            s.write_all(&[len.as_slice(), &m].concat()).await.unwrap();
            let _ = s.read(&mut [0u8; 1]).await;
        });
        addr
    }

    fn update() -> Vec<u8> {
        let mut m = Message::new(4711, MessageType::Query, OpCode::Update);
        m.add_query(Query::query(hickory_proto::rr::Name::from_ascii("corp.test.").unwrap(), RecordType::SOA));
        m.to_vec().unwrap()
    }

    /// An UPDATE's answer is the server's answer to that UPDATE: the message itself written
    /// back (QR=0), or an answer under another opcode, is an outcome nobody saw, never "applied".
    #[tokio::test]
    async fn only_a_response_under_the_updates_opcode_answers_it() {
        let timeout = Duration::from_secs(5);
        let echoed = echoing(|_| {}).await;
        let r = send(echoed, &update(), timeout).await;
        assert!(matches!(&r, Err(SendError::Lost(_))), "{r:?}");
        let as_query = echoing(|m| m[2] = 0x80).await;
        let r = send(as_query, &update(), timeout).await;
        assert!(matches!(&r, Err(SendError::Lost(why)) if why.contains("opcode")), "{r:?}");
        let answered = echoing(|m| m[2] |= 0x80).await;
        let r = send(answered, &update(), timeout).await;
        assert!(r.is_ok(), "{r:?}");
    }
}
