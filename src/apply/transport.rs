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
    Ok(response)
}
