//! What the benchmarks share: whole processes timed with their peak RSS and CPU from the
//! kernel (wait4), the kmsdns under test, the optional external tools, medians.
//! Included by each benchmark with `#[path = "common.rs"] mod common;`.

#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The kmsdns that cargo built for this benchmark (the bench profile: release), or `$KMSDNS`
/// (another build, to compare).
pub fn kmsdns() -> PathBuf {
    std::env::var_os("KMSDNS").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kmsdns")), PathBuf::from)
}

/// An external tool (dnsperf, ...), or None with a note: the benchmark then measures kmsdns alone.
pub fn support_tool(name: &str) -> Option<PathBuf> {
    let found =
        ["/usr/bin", "/usr/sbin", "/usr/local/bin"].iter().map(|d| Path::new(d).join(name)).find(|p| p.is_file());
    if found.is_none() {
        eprintln!("bench: {name} is not installed (apt-get install {name}): kmsdns alone is measured");
    }
    found
}

/// A whole process: wall time, CPU (user + system), peak RSS (the kernel's, from wait4), exit
/// code, output.
pub struct Timed {
    pub wall: Duration,
    pub cpu: Duration,
    pub peak_rss_kib: i64,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Timed {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// The argument that makes a benchmark binary [`measure_child`] instead of benchmarking.
const MEASURE: &str = "__measure";

/// Call first in a benchmark's `main`: true when this process is the measuring helper of
/// [`timed`] (which has then done its work).
pub fn measuring_helper() -> bool {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(MEASURE) {
        return false;
    }
    let report = args.next().expect("a report path");
    measure_child(Path::new(&report), args);
    true
}

/// A process, run through a fresh copy of this binary that waits for it: Linux carries the
/// peak RSS of the process that spawns across exec, so a child of the benchmark itself (which
/// holds the estate and a parsed report) would report the benchmark's peak, not its own.
pub fn timed(program: &Path, args: &[&str]) -> Timed {
    timed_env(program, args, &[])
}

pub fn timed_env(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Timed {
    let dir = tempfile::tempdir().expect("a temp dir for the output");
    let (out, err, usage) = (dir.path().join("out"), dir.path().join("err"), dir.path().join("usage"));
    let file = |p: &Path| std::fs::File::create(p).expect("create an output file");
    let me = std::env::current_exe().expect("this benchmark's path");
    let mut cmd = Command::new(me);
    cmd.arg(MEASURE).arg(&usage).arg(program).args(args);
    cmd.env_remove("RUST_LOG").envs(env.iter().copied()).stdin(Stdio::null()).stdout(file(&out)).stderr(file(&err));
    let started = Instant::now();
    let status = cmd.status().expect("start the measured process");
    let wall = started.elapsed();
    assert!(status.success(), "the measuring helper failed: {}", std::fs::read_to_string(&err).unwrap_or_default());
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let usage = read(&usage);
    let mut fields = usage.split_whitespace().map(|f| f.parse::<i64>().expect("a number"));
    let mut next = || fields.next().unwrap_or(0);
    let (peak_rss_kib, code, cpu_us) = (next(), next(), next());
    let code = (code >= 0).then_some(code as i32);
    let cpu = Duration::from_micros(cpu_us.max(0) as u64);
    Timed { wall, cpu, peak_rss_kib, code, stdout: read(&out), stderr: read(&err) }
}

/// Runs `command` with this process's stdio and writes "PEAK_RSS_KIB EXIT_CODE CPU_US" (exit
/// code -1: killed by a signal; CPU: user + system) to `report`, from wait4: what
/// `/usr/bin/time -f '%M %U %S'` gives, to the microsecond.
fn measure_child(report: &Path, mut command: impl Iterator<Item = String>) {
    let program = command.next().expect("a program to measure");
    // Reaped by wait4 below, which also gives the peak RSS that Child::wait does not.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(program).args(command).spawn().expect("start the measured program");
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: the pid is our own child's, not yet reaped; status and usage are valid pointers.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4: {}", std::io::Error::last_os_error());
    let code = std::process::ExitStatus::from_raw(status).code().unwrap_or(-1);
    let us = |t: libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
    let cpu = us(usage.ru_utime) + us(usage.ru_stime);
    std::fs::write(report, format!("{} {code} {cpu}", usage.ru_maxrss)).expect("write the measurement");
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    assert!(!v.is_empty(), "a median of nothing");
    v.sort();
    v[v.len() / 2]
}

/// CPU time (user + system) of process `pid` so far, from /proc (10 ms ticks).
pub fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) end with ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(14) + field(15);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// The 1-minute load average, for the report: other builds share the machine.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}
