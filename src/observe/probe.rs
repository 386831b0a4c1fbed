//! The KMS liveness probe: a TCP connection and one DCE/RPC bind to the KMS interface.
//!
//! Only a bind is sent (never an activation request, which would count us as a client).
//! A timeout is retried; a refusal, a reset or a foreign reply is an answer and is not.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::model::ProbeState;
use crate::wire::rpc::{self, BindReply};

/// Probes every endpoint once, at most `limit` at a time.
pub async fn probe_all(
    endpoints: BTreeSet<SocketAddr>,
    timeout: Duration,
    retries: u8,
    limit: Arc<Semaphore>,
) -> BTreeMap<SocketAddr, ProbeState> {
    let mut jobs = JoinSet::new();
    for ep in endpoints {
        let limit = limit.clone();
        jobs.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (ep, probe(ep, timeout, retries).await)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(done) = jobs.join_next().await {
        if let Ok((ep, state)) = done {
            out.insert(ep, state);
        }
    }
    out
}

/// Probes one endpoint, retrying only when an attempt timed out.
pub async fn probe(endpoint: SocketAddr, timeout: Duration, retries: u8) -> ProbeState {
    let mut state = ProbeState::Down("not probed".into());
    for attempt in 0..=u32::from(retries) {
        match tokio::time::timeout(timeout, bind_once(endpoint, attempt + 1)).await {
            Ok(s) => return s,
            Err(_) => state = ProbeState::Down(format!("no answer within {}", humantime::format_duration(timeout))),
        }
    }
    state
}

async fn bind_once(endpoint: SocketAddr, call_id: u32) -> ProbeState {
    let mut stream = match TcpStream::connect(endpoint).await {
        Ok(s) => s,
        Err(e) => return ProbeState::Down(format!("connect: {e}")),
    };
    if let Err(e) = stream.write_all(&rpc::encode_bind(call_id)).await {
        return ProbeState::Down(format!("send: {e}"));
    }
    let mut header = [0u8; 16];
    if let Err(e) = stream.read_exact(&mut header).await {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                ProbeState::NotKms("the connection was closed without a DCE/RPC reply".into())
            }
            _ => ProbeState::Down(format!("receive: {e}")),
        };
    }
    let len = match rpc::frag_length(&header) {
        Ok(len) if len <= rpc::MAX_REPLY_LEN => len,
        Ok(len) => {
            return ProbeState::NotKms(format!("a {len}-byte DCE/RPC reply, too large for a bind_ack"));
        }
        Err(e) => return ProbeState::NotKms(e.to_string()),
    };
    let mut pdu = header.to_vec();
    pdu.resize(len, 0);
    if let Err(e) = stream.read_exact(&mut pdu[16..]).await {
        return ProbeState::NotKms(format!("the reply was cut short: {e}"));
    }
    match rpc::decode_reply(&pdu, call_id) {
        Ok(BindReply::Accepted) => ProbeState::KmsUp,
        Ok(BindReply::Rejected { result, reason }) => ProbeState::NotKms(format!(
            "an RPC server without the KMS interface (bind_ack result {result}, reason {reason})"
        )),
        Ok(BindReply::Nak { reason }) => {
            ProbeState::NotKms(format!("the bind was refused (bind_nak, reason {reason})"))
        }
        Err(e) => ProbeState::NotKms(e.to_string()),
    }
}
