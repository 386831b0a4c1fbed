//! Stand-in KMS hosts for benchmarks and manual tests.
//!
//! ```text
//! cargo run --example kms_responder -- 127.88.0.1:1688 127.88.0.2:1688 127.88.0.3:1688
//! ```
//!
//! Starts one [`KmsResponder`] per address (each accepts the DCE/RPC bind to the KMS
//! interface), prints `ready` on stdout once every one of them listens, and then waits for
//! SIGTERM or SIGINT, drops the responders and exits 0. Linux routes all of 127.0.0.0/8 to
//! `lo`, so any 127.x.y.z address can be bound without `ip addr add`. Only loopback
//! addresses are accepted: this is a test tool, not a service.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use kmsdns::demo::responder::KmsResponder;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!("usage: kms_responder ADDR:PORT [ADDR:PORT ...]   (loopback addresses only)");
        return ExitCode::from(if args.is_empty() { 2 } else { 0 });
    }

    let mut addrs = Vec::with_capacity(args.len());
    for a in &args {
        match a.parse::<SocketAddr>() {
            Ok(sa) if sa.ip().is_loopback() => addrs.push(sa),
            Ok(sa) => {
                eprintln!("kms_responder: {sa} is not a loopback address");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("kms_responder: '{a}' is not ADDR:PORT: {e}");
                return ExitCode::from(2);
            }
        }
    }

    let mut responders = Vec::with_capacity(addrs.len());
    for addr in addrs {
        match KmsResponder::up(addr) {
            Ok(r) => responders.push(r),
            Err(e) => {
                eprintln!("kms_responder: cannot listen on {addr}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    for r in &responders {
        eprintln!("kms_responder: listening on {}", r.addr());
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }

    // Park until SIGTERM or SIGINT; the responders serve on their own threads meanwhile.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kms_responder: cannot start the signal runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let signal = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => Ok::<_, std::io::Error>("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    });
    match signal {
        Ok(name) => eprintln!("kms_responder: {name}, stopping"),
        Err(e) => {
            // Without signal handling, park forever: the default SIGTERM action still ends us.
            eprintln!("kms_responder: cannot watch signals ({e}); parking");
            loop {
                std::thread::park();
            }
        }
    }
    drop(responders);
    ExitCode::SUCCESS
}
