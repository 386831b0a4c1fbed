//! Proves the BIND harness in tests/support before other tests rely on it.

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use kmsdns::demo::responder::{Behaviour, KmsResponder};
use kmsdns::model::ProbeState;
use kmsdns::observe::probe::probe;
use support::{BindLab, KMS_PORT, ZoneSpec, claim_block, free_port, loopback_ip};

fn corp_test() -> ZoneSpec {
    ZoneSpec::new("corp.test")
        .record("_vlmcs._tcp 3600 IN SRV 0 0 1688 kms1.corp.test.")
        .record("kms1 3600 IN A 127.0.0.21")
}

#[test]
fn secondary_follows_primary_updates() {
    let lab = BindLab::primary_secondary(&[corp_test()]);
    for idx in 0..2 {
        assert_eq!(lab.dig(idx, "_vlmcs._tcp.corp.test", "SRV"), ["0 0 1688 kms1.corp.test."], "server {idx}");
        assert_eq!(lab.serial(idx, "corp.test"), Some(1), "server {idx}");
    }

    lab.update(
        0,
        "corp.test",
        &[
            "update add kms9.corp.test. 3600 IN A 127.0.0.29",
            "update add _vlmcs._tcp.corp.test. 3600 IN SRV 0 0 1688 kms9.corp.test.",
        ],
    );
    lab.wait_converged("corp.test");

    assert_eq!(lab.serial(1, "corp.test"), Some(2));
    assert_eq!(lab.dig(1, "_vlmcs._tcp.corp.test", "SRV"), ["0 0 1688 kms1.corp.test.", "0 0 1688 kms9.corp.test."]);
    assert_eq!(lab.dig(1, "kms9.corp.test", "A"), ["127.0.0.29"]);
}

/// named picks the source port of each NOTIFY at random and binds it with SO_REUSEPORT: in the
/// kernel's ephemeral range, where `free_port` takes the lab servers' ports, a primary once sent
/// a NOTIFY from the secondary's own port to the secondary, the NOTIFY came back to the
/// primary's socket, and the secondary never heard of the change (bench/README.md). The
/// secondary's log names each NOTIFY's source: none may be a port the kernel hands out.
#[test]
fn named_sends_notifies_from_ports_no_lab_server_can_listen_on() {
    let lab = BindLab::primary_secondary(&[corp_test()]);
    for i in 1..=3 {
        lab.update(0, "corp.test", &[&format!("update add n{i}.corp.test. 3600 IN A 127.0.0.{i}")]);
        lab.wait_converged("corp.test");
    }
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let kernel: Vec<u16> = range.split_whitespace().map(|p| p.parse().unwrap()).collect();
    let log = lab.servers[1].log();
    let sources: Vec<u16> = log
        .lines()
        .filter(|l| l.contains("received notify for zone"))
        .filter_map(|l| l.split("127.0.0.1#").nth(1)?.split(':').next()?.parse().ok())
        .collect();
    assert!(sources.len() >= 3, "the secondary logged {} NOTIFYs:\n{log}", sources.len());
    let inside: Vec<&u16> = sources.iter().filter(|p| (kernel[0]..=kernel[1]).contains(p)).collect();
    assert!(inside.is_empty(), "NOTIFYs from {inside:?}, in the kernel's ephemeral range {kernel:?}");
}

#[test]
fn independent_primaries_diverge_and_stop() {
    let mut lab = BindLab::independent_primaries(&[corp_test()], 2);
    assert_ne!(lab.servers[0].addr, lab.servers[1].addr);
    lab.wait_converged("corp.test");

    lab.update(0, "corp.test", &["update delete _vlmcs._tcp.corp.test. IN SRV 0 0 1688 kms1.corp.test."]);

    assert_eq!(lab.serial(0, "corp.test"), Some(2));
    assert_eq!(lab.serial(1, "corp.test"), Some(1));
    assert!(lab.dig(0, "_vlmcs._tcp.corp.test", "SRV").is_empty());
    assert_eq!(lab.dig(1, "_vlmcs._tcp.corp.test", "SRV"), ["0 0 1688 kms1.corp.test."]);

    lab.servers[1].stop();
    lab.servers[1].stop();
    assert_eq!(lab.serial(1, "corp.test"), None, "a stopped server must not answer");
}

#[test]
fn ports_and_loopback_addresses_are_fresh() {
    let (p1, p2) = (free_port(), free_port());
    assert_ne!(p1, p2);
    let ((a, a_kms), (b, b_kms)) = (loopback_ip(), loopback_ip());
    assert_ne!(a, b);
    for (ip, kms) in [(a, a_kms), (b, b_kms)] {
        assert!((100..=199).contains(&ip.octets()[1]), "{ip}");
        assert_eq!(kms.local_addr().unwrap(), SocketAddr::from((ip, KMS_PORT)));
    }
}

/// Issue 18: `start a KMS responder: AddrInUse`. An address `loopback_ip` hands out must stay
/// ours until a responder serves on it: a process spawned by a parallel test (named, dig,
/// kmsdns) holds a copy of every socket open at its fork until it execs, so a probe socket that
/// is closed and re-bound can still be listening in that child. Here a second socket stands in
/// for that copy.
#[test]
fn an_address_handed_out_cannot_be_taken_before_its_responder_serves_it() {
    let (ip, kms) = loopback_ip();
    let intruder = TcpListener::bind((ip, KMS_PORT));
    assert!(intruder.is_err(), "{ip}:1688 was free for anyone between loopback_ip() and the responder");
    let responder = KmsResponder::from_listener(kms, Behaviour::Kms).expect("start a KMS responder");
    assert_eq!(responder.addr(), SocketAddr::from((ip, KMS_PORT)));
}

/// The race of issue 18 itself, made deterministic: a child forked while the address is reserved
/// keeps a copy of the socket until it execs. The responder serves on the handed-over socket, so
/// the child's copy does not matter, and the probe finds a KMS host there.
#[tokio::test]
async fn a_responder_starts_while_a_forked_child_holds_the_reservation() {
    let (ip, kms) = loopback_ip();
    let child = ForkedChild::holding_every_socket();
    let responder = KmsResponder::from_listener(kms, Behaviour::Kms).expect("start a KMS responder");
    assert_eq!(probe(responder.addr(), Duration::from_secs(2), 0).await, ProbeState::KmsUp);
    assert_eq!(responder.addr(), SocketAddr::from((ip, KMS_PORT)));
    drop(child);
}

/// A child process stopped between fork and exec, as every `Command::spawn` is for a moment.
struct ForkedChild {
    spawner: Option<std::thread::JoinHandle<()>>,
}

impl ForkedChild {
    /// Returns once the child has forked: it then holds a copy of every socket of this process.
    fn holding_every_socket() -> ForkedChild {
        let mut fds = [0; 2];
        // SAFETY: pipe2(2) fills the two descriptors it is given. Close-on-exec keeps them out
        // of the processes other tests spawn meanwhile.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe2");
        let (read_end, write_end) = (fds[0], fds[1]);
        let spawner = std::thread::spawn(move || {
            let mut cmd = Command::new("true");
            // SAFETY: only async-signal-safe calls (write, nanosleep) between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    libc::write(write_end, [1u8].as_ptr().cast(), 1);
                    let pause = libc::timespec { tv_sec: 0, tv_nsec: 300_000_000 };
                    libc::nanosleep(&pause, std::ptr::null_mut());
                    Ok(())
                });
            }
            // spawn returns once the child has exec'd, after its pause.
            let _ = cmd.status();
        });
        let mut byte = 0u8;
        // SAFETY: reads one byte into `byte` from the pipe made above.
        assert_eq!(unsafe { libc::read(read_end, (&raw mut byte).cast(), 1) }, 1, "the child did not fork");
        // SAFETY: both ends were opened above and are not used again in this process.
        unsafe {
            libc::close(read_end);
            libc::close(write_end);
        }
        ForkedChild { spawner: Some(spawner) }
    }
}

impl Drop for ForkedChild {
    fn drop(&mut self) {
        if let Some(spawner) = self.spawner.take() {
            let _ = spawner.join();
        }
    }
}

#[test]
fn each_test_process_has_a_block_of_addresses_of_its_own() {
    let (ip, _kms) = loopback_ip();
    let [_, a, b, _] = ip.octets();
    let ours = u32::from(a - 100) * 256 + u32::from(b);
    // Another process whose search starts at our block moves past it.
    let (theirs, _claim) = claim_block(ours).expect("a free block");
    assert_ne!(theirs, ours);
    assert!(TcpListener::bind((Ipv4Addr::new(127, a, b, 0), KMS_PORT)).is_err(), "our block's claim is held");
}
