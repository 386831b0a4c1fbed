//! The `kmsdns` command: arguments in, a call into the library, output and an exit code out.

use kmsdns::cycle::{self, Changes, Seen};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kmsdns::audit::Finding;
use kmsdns::inventory::Inventory;
use kmsdns::plan::file::{PlanFile, PlanFileError};
use kmsdns::report::{AuditReport, EXIT_UNKNOWN, RepairReport};

const DEFAULT_CONFIG: &str = "/etc/kmsdns/kmsdns.toml";
const WIDTH: usize = 100;

const AFTER_HELP: &str = "\
Exit codes (monitoring-plugin convention): 0 no finding above info, 1 warnings,
2 critical findings, 3 the audit could not run (bad configuration or arguments).
repair --apply, apply and undo: 0 done, 1 something held back, 2 an update failed,
no server of a zone could be read, or apply refused a stale, edited or truncated plan.
client-check exits as the audit does; explain: 0 a code it knows, 1 one it cannot check,
3 not an error code.

Run `kmsdns demo` to see an audit and a repair of a small built-in world.";

/// Keeps the _vlmcs._tcp SRV records of Windows KMS hosts true.
#[derive(Debug, Parser)]
#[command(name = "kmsdns", version, about, long_about = None, after_help = AFTER_HELP)]
struct Cli {
    /// Audit every zone of the inventory and report (same as `kmsdns audit`).
    #[arg(long)]
    audit: bool,

    /// The inventory file.
    #[arg(long, short, global = true, value_name = "PATH", default_value = DEFAULT_CONFIG)]
    config: PathBuf,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Where the journal lives (default: [daemon] state_dir of the inventory, /var/lib/kmsdns).
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Audit every zone of the inventory: DNS answers of every server, KMS probes, findings.
    Audit,
    /// Validate the inventory and its key files, and exit (0 valid, 3 with every problem).
    CheckConfig,
    /// Show the changes a repair would make, per zone, with the finding behind each.
    Plan {
        /// Also write the plan to FILE, for review and `kmsdns apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Apply a plan written by `kmsdns plan --out`, if it is unchanged and the world still looks
    /// as it did then; every safety rail is checked again, and what it holds now is not sent.
    Apply {
        /// The plan file.
        plan: PathBuf,
    },
    /// Plan and show the repair; with --apply, send the updates (zones with policy = "repair").
    Repair {
        /// Send the updates. Without it nothing is changed.
        #[arg(long)]
        apply: bool,
        /// Instead of records, fix the Active Directory ACL that refuses KMS hosts' updates:
        /// grant [ad] kms_group write access to each blocking _vlmcs._tcp node.
        #[arg(long)]
        acl: bool,
        /// With --acl: write the ACL of zones with policy = "audit" too, this once.
        #[arg(long, requires = "acl")]
        override_policy: bool,
    },
    /// List the changes kmsdns has made, from the journal.
    Journal,
    /// The runbook after a KMS host dies: check, plan, apply (--apply), verify on every server.
    Failover {
        /// The host that died (or is being retired).
        #[arg(long, value_name = "HOST")]
        from: String,
        /// The host that takes over.
        #[arg(long, value_name = "HOST")]
        to: String,
        /// Send the updates. Without it the runbook checks and plans, and sends nothing.
        #[arg(long)]
        apply: bool,
        /// After a successful apply, mark FROM decommissioned in the inventory file (and add TO
        /// when it is missing), keeping the file's comments.
        #[arg(long)]
        update_inventory: bool,
        /// Write zones with policy = "audit" too, this once (they are otherwise never written).
        #[arg(long)]
        override_policy: bool,
    },
    /// Run as a service: audits and probes on the [daemon] timers, repairs where the policy
    /// allows, reloads on SIGHUP or when the config file changes, stops on SIGTERM.
    ///
    /// Several instances (sites) may run on the same zones: each writes what it sees in
    /// `_kmsdns-view.<zone>` TXT, and none deletes a host for being dead while another's fresh
    /// entry sees it alive (a split-view finding instead). See [instance] in the config.
    Run,
    /// Restore a zone's RRset as it was before journal entry ID.
    Undo {
        /// The journal entry to undo.
        id: u64,
        /// Write zones with policy = "audit" too, this once (they are otherwise never written).
        #[arg(long)]
        override_policy: bool,
    },
    /// Start a small world on loopback (embedded DNS servers, KMS responders), audit and repair it.
    Demo,
    /// Do what a KMS client does for DOMAIN, short of activating: ask its resolver (RD=1) for
    /// _vlmcs._tcp.DOMAIN SRV, order the targets as RFC 2782 says, resolve and probe each.
    /// Needs no inventory.
    ClientCheck {
        /// The client's domain: its primary DNS suffix, or a domain of its search list.
        domain: String,
        /// The resolver the client uses (ADDR or ADDR:PORT); default: the nameservers of
        /// /etc/resolv.conf, in order.
        #[arg(long, value_name = "ADDR")]
        resolver: Option<String>,
        /// How long a client waits for a connection before it tries the next host (what a
        /// black-holed target costs it). The default is Windows' TCP handshake limit.
        #[arg(long, value_name = "DURATION", default_value = "21s", value_parser = humantime::parse_duration)]
        connect_timeout: std::time::Duration,
    },
    /// What an activation error code (0x8007232B, 0xC004F074, ...) with a DNS or KMS-host cause
    /// means, which findings detect it, and what to run next. Without CODE: every code known.
    Explain {
        /// The code as Windows shows it, e.g. 0x800706BA.
        code: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    /// One monitoring-plugin line with performance data; `audit` only.
    Nagios,
}

/// Set to a directory, `kmsdns` writes there the man pages and completions the Debian package
/// ships (scripts/build-deb), made from this very definition of the arguments, and exits. An
/// environment variable rather than a subcommand: completions would offer a subcommand.
const PACKAGE_ASSETS_ENV: &str = "KMSDNS_GENERATE_PACKAGE_ASSETS";

fn main() -> ExitCode {
    if let Some(dir) = std::env::var_os(PACKAGE_ASSETS_ENV) {
        return ExitCode::from(package_assets(Path::new(&dir)) as u8);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version are not errors; a bad argument means the command could not run.
            return ExitCode::from(if e.use_stderr() { EXIT_UNKNOWN as u8 } else { 0 });
        }
    };
    // `kmsdns run` logs what changes at info; the one-shot commands only warn.
    let verbosity = match cli.command {
        Some(Command::Run) => cli.verbose.max(1),
        _ => cli.verbose,
    };
    init_logging(verbosity);
    let code = match (&cli.command, cli.audit) {
        (Some(Command::CheckConfig), _) => check_config(&cli.config),
        (Some(Command::Audit), _) | (None, true) => audit(&cli),
        _ if cli.format == Format::Nagios => {
            eprintln!(
                "kmsdns: --format nagios is the audit's check line (`kmsdns audit`); this command writes text or json"
            );
            EXIT_UNKNOWN
        }
        (Some(Command::Demo), _) => demo(cli.format),
        (Some(Command::ClientCheck { domain, resolver, connect_timeout }), _) => {
            client_check(domain, resolver.as_deref(), *connect_timeout, cli.format)
        }
        (Some(Command::Explain { code }), _) => explain(code.as_deref(), cli.format),
        (Some(Command::Plan { out }), _) => with_inventory(&cli, |inv, rt| plan(&inv, rt, cli.format, out.as_deref())),
        (Some(Command::Repair { apply, acl: false, .. }), _) => {
            with_inventory(&cli, |inv, rt| repair(&cli, &inv, rt, *apply))
        }
        (Some(Command::Repair { apply, acl: true, override_policy }), _) => {
            with_inventory(&cli, |inv, rt| repair_acl(&cli, &inv, rt, *apply, *override_policy))
        }
        (Some(Command::Apply { plan }), _) => with_inventory(&cli, |inv, rt| apply_plan(&cli, &inv, rt, plan)),
        (Some(Command::Journal), _) => with_inventory(&cli, |inv, _| journal(&cli, &inv)),
        (Some(Command::Undo { id, override_policy }), _) => {
            with_inventory(&cli, |inv, rt| undo(&cli, &inv, rt, *id, *override_policy))
        }
        (Some(Command::Run), _) => run_daemon(&cli),
        (Some(Command::Failover { from, to, apply, update_inventory, override_policy }), _) => {
            let flags =
                FailoverFlags { apply: *apply, update_inventory: *update_inventory, override_policy: *override_policy };
            with_inventory(&cli, |inv, rt| failover(&cli, &inv, rt, from, to, flags))
        }
        (None, false) => {
            eprintln!("kmsdns: say what to do: `kmsdns --audit`, `kmsdns repair`, `kmsdns demo` (see --help)");
            EXIT_UNKNOWN
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(EXIT_UNKNOWN as u8))
}

/// Logs go to journald, with the events' fields (zone, server, code) as journal fields, when
/// systemd connected stderr to the journal; otherwise as plain lines to stderr, coloured only
/// when stderr is a terminal (and NO_COLOR is unset), so a log file holds no escape codes.
fn init_logging(verbose: u8) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("kmsdns={level},hickory_server=error,warn")));
    let journald = stderr_is_journal()
        .then(|| tracing_journald::layer().ok())
        .flatten()
        .map(|l| l.with_syslog_identifier("kmsdns".into()));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let stderr =
        journald.is_none().then(|| tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr));
    tracing_subscriber::registry().with(filter).with(journald).with(stderr).init();
}

/// systemd sets JOURNAL_STREAM to the device and inode of the stream it connected stderr to;
/// a process whose stderr was redirected since inherits the variable but not the stream
/// (systemd.exec(5), "JOURNAL_STREAM").
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else { return false };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino()))
}

/// The man pages (DIR/man: `kmsdns.1`, one per command, `kmsdns-audit.1`...) and the bash,
/// zsh and fish completions (DIR/completions).
fn package_assets(dir: &Path) -> i32 {
    use clap::CommandFactory;
    let written = (|| {
        let man = dir.join("man");
        let completions = dir.join("completions");
        std::fs::create_dir_all(&man)?;
        std::fs::create_dir_all(&completions)?;
        clap_mangen::generate_to(Cli::command(), &man)?;
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            clap_complete::generate_to(shell, &mut Cli::command(), "kmsdns", &completions)?;
        }
        Ok::<_, std::io::Error>(())
    })();
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("kmsdns: cannot write the package assets to {}: {e}", dir.display());
            EXIT_UNKNOWN
        }
    }
}

fn run_daemon(cli: &Cli) -> i32 {
    if let Ok(inv) = Inventory::load(&cli.config) {
        use_keytab(&inv);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let opts = kmsdns::daemon::Options { config: cli.config.clone(), state_dir: cli.state_dir.clone() };
    match rt.block_on(kmsdns::daemon::run(opts)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("kmsdns: {e}");
            EXIT_UNKNOWN
        }
    }
}

fn load(path: &Path) -> Result<Inventory, i32> {
    Inventory::load(path).map_err(|e| {
        eprintln!("kmsdns: invalid configuration\n{e}");
        EXIT_UNKNOWN
    })
}

fn check_config(path: &Path) -> i32 {
    let inv = match load(path) {
        Ok(inv) => inv,
        Err(code) => return code,
    };
    let key_problems: Vec<String> =
        inv.keys.iter().filter_map(|k| kmsdns::keys::check(k).err()).map(|e| e.to_string()).collect();
    if !key_problems.is_empty() {
        eprintln!("kmsdns: unusable keys\n{}", key_problems.join("\n"));
        return EXIT_UNKNOWN;
    }
    println!(
        "{}: valid ({} zone(s), {} host(s), {} key(s))",
        path.display(),
        inv.zones.len(),
        inv.hosts.len(),
        inv.keys.len()
    );
    0
}

/// `[ad] keytab`: MIT Kerberos takes a client keytab from KRB5_CLIENT_KTNAME, so GSS-TSIG can
/// get tickets for the service's own account without a ccache. Set before any thread starts.
fn use_keytab(inv: &Inventory) {
    if let Some(keytab) = inv.ad.as_ref().and_then(|a| a.keytab.as_ref()) {
        // SAFETY: called from main before the runtime (or any other thread) exists.
        unsafe { std::env::set_var("KRB5_CLIENT_KTNAME", keytab) };
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| {
        eprintln!("kmsdns: cannot start the async runtime: {e}");
        EXIT_UNKNOWN
    })
}

/// The runtime of a read-only run (`kmsdns audit`): one thread. Its work is tens of thousands
/// of small UDP exchanges, and on one thread the socket's receiver hands each answer to its
/// question without waking another worker (a futex call per answer), which cut an audit's CPU
/// by a fifth at 10,000 zones (bench/README.md). It blocks on nothing: no journal is written.
fn one_thread_runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
        eprintln!("kmsdns: cannot start the async runtime: {e}");
        EXIT_UNKNOWN
    })
}

fn with_inventory(cli: &Cli, f: impl FnOnce(Inventory, &tokio::runtime::Runtime) -> i32) -> i32 {
    with_inventory_on(cli, runtime, f)
}

fn with_inventory_on(
    cli: &Cli,
    runtime: fn() -> Result<tokio::runtime::Runtime, i32>,
    f: impl FnOnce(Inventory, &tokio::runtime::Runtime) -> i32,
) -> i32 {
    let inv = match load(&cli.config) {
        Ok(inv) => inv,
        Err(code) => return code,
    };
    use_keytab(&inv);
    match runtime() {
        Ok(rt) => f(inv, &rt),
        Err(code) => code,
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Writes to stdout; a closed pipe (`kmsdns audit | head`) is not worth a panic.
fn emit(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `kmsdns audit`. As a check (`--format nagios`) it writes its one line whatever happens,
/// an invalid configuration included, for the monitoring system shows nothing else.
fn audit(cli: &Cli) -> i32 {
    if cli.format != Format::Nagios {
        return with_inventory_on(cli, one_thread_runtime, |inv, rt| {
            let Seen { obs, findings } = rt.block_on(cycle::observe(&inv));
            let report = AuditReport::new(&inv, &obs, findings, now());
            match cli.format {
                // A closed pipe (`kmsdns audit --format json | head`) is not worth a panic.
                Format::Json => drop(report.write_json(std::io::stdout().lock())),
                Format::Text | Format::Nagios => emit(&report.to_text(WIDTH, colour())),
            }
            let code = report.summary.exit_code;
            // The process ends here: freeing a 10,000-zone observation and inventory one
            // allocation at a time cost 6 to 8 ms of a 0.5 s audit, for nothing.
            drop(report);
            std::mem::forget(obs);
            std::mem::forget(inv);
            code
        });
    }
    let unknown = |why: String| {
        let (line, code) = kmsdns::report::nagios::unknown(&why);
        emit(&line);
        code
    };
    let inv = match Inventory::load(&cli.config) {
        Ok(inv) => inv,
        Err(e) => return unknown(format!("invalid configuration: {e}")),
    };
    use_keytab(&inv);
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return unknown(format!("cannot start the async runtime: {e}")),
    };
    let started = std::time::Instant::now();
    let Seen { obs, findings } = rt.block_on(cycle::observe(&inv));
    let report = AuditReport::new(&inv, &obs, findings, now());
    emit(&kmsdns::report::nagios::line(&report, started.elapsed()));
    report.summary.exit_code
}

fn plan(inv: &Inventory, rt: &tokio::runtime::Runtime, format: Format, out: Option<&Path>) -> i32 {
    let seen = rt.block_on(cycle::observe(inv));
    let code = kmsdns::report::exit_code(&seen.findings);
    let plan = cycle::plan(inv, &seen);
    let Seen { obs, findings } = seen;
    let sealed = PlanFile::new(now(), &obs, findings, plan.zones).map_err(PlanFileError::from);
    let (file, json) = match sealed.and_then(|file| file.to_json().map(|json| (file, json))) {
        Ok(done) => done,
        Err(e) => {
            eprintln!("kmsdns: cannot write the plan: {e}");
            return EXIT_UNKNOWN;
        }
    };
    if let Some(path) = out
        && let Err(e) = std::fs::write(path, &json)
    {
        eprintln!("kmsdns: cannot write the plan to {}: {e}", path.display());
        return EXIT_UNKNOWN;
    }
    match format {
        Format::Json => emit(&json),
        Format::Text | Format::Nagios => {
            let mut text = String::new();
            for z in &file.zones {
                kmsdns::report::zone_plan_text(&mut text, z, WIDTH);
                text.push('\n');
            }
            if let Some(path) = out {
                text.push_str(&format!(
                    "plan written to {}; apply it with `kmsdns apply {}`\n",
                    path.display(),
                    path.display()
                ));
            }
            emit(&text);
        }
    }
    code
}

/// Where the command's changes go: nowhere for a dry run (which writes nothing, not even the
/// journal's directory), else the journal, reporting changes a crash left without an outcome.
fn changes(cli: &Cli, inv: &Inventory, apply: bool) -> Result<Changes, i32> {
    let dir = cli.state_dir.clone().unwrap_or_else(|| inv.state_dir.clone());
    match Changes::open(&dir, apply, &inv.instance.id) {
        Ok((changes, interrupted)) => {
            for i in interrupted {
                eprintln!(
                    "kmsdns: journal entry {} (zone {}, to {}) was sent or about to be when kmsdns stopped; its outcome is unknown: audit the zone",
                    i.id, i.zone, i.server
                );
            }
            Ok(changes)
        }
        Err(e) => {
            eprintln!("kmsdns: {e}");
            Err(EXIT_UNKNOWN)
        }
    }
}

fn print_repair(findings: &[Finding], outcomes: &[kmsdns::cycle::ZoneOutcome], applied: bool, format: Format) -> i32 {
    let code = kmsdns::report::repair_exit_code(outcomes);
    match format {
        Format::Json => {
            let r = RepairReport {
                schema: kmsdns::report::SCHEMA,
                generated: now(),
                applied,
                findings,
                zones: outcomes,
                exit_code: code,
            };
            emit(&(serde_json::to_string_pretty(&r).unwrap_or_default() + "\n"));
        }
        Format::Text | Format::Nagios => emit(&kmsdns::report::repair_text(outcomes, WIDTH)),
    }
    code
}

fn repair(cli: &Cli, inv: &Inventory, rt: &tokio::runtime::Runtime, apply: bool) -> i32 {
    let changes = match changes(cli, inv, apply) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (seen, outcomes) = rt.block_on(cycle::repair(inv, &changes));
    print_repair(&seen.findings, &outcomes, apply, cli.format)
}

fn repair_acl(cli: &Cli, inv: &Inventory, rt: &tokio::runtime::Runtime, apply: bool, override_policy: bool) -> i32 {
    let changes = match changes(cli, inv, apply) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = rt.block_on(cycle::repair_acl(inv, &changes, override_policy));
    match cli.format {
        Format::Json => emit(&(serde_json::to_string_pretty(&result).unwrap_or_default() + "\n")),
        Format::Text | Format::Nagios => emit(&kmsdns::report::acl_text(&result, WIDTH)),
    }
    kmsdns::report::acl_exit_code(&result)
}

fn apply_plan(cli: &Cli, inv: &Inventory, rt: &tokio::runtime::Runtime, path: &Path) -> i32 {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("kmsdns: cannot read the plan {}: {e}", path.display());
            return EXIT_UNKNOWN;
        }
    };
    let file = match PlanFile::from_json(&text) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("kmsdns: {}: refused: {e}", path.display());
            return 2;
        }
    };
    let changes = match changes(cli, inv, true) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match rt.block_on(cycle::apply_reviewed(inv, file, &changes)) {
        Ok((seen, outcomes)) => print_repair(&seen.findings, &outcomes, true, cli.format),
        Err(e @ cycle::Refused::Fingerprint(_)) => {
            eprintln!("kmsdns: {}: {e}", path.display());
            EXIT_UNKNOWN
        }
        Err(e) => {
            eprintln!("kmsdns: {}: refused: {e}", path.display());
            2
        }
    }
}

/// The switches of `kmsdns failover`.
#[derive(Debug, Clone, Copy)]
struct FailoverFlags {
    apply: bool,
    update_inventory: bool,
    override_policy: bool,
}

fn failover(
    cli: &Cli,
    inv: &Inventory,
    rt: &tokio::runtime::Runtime,
    from: &str,
    to: &str,
    flags: FailoverFlags,
) -> i32 {
    let FailoverFlags { apply, update_inventory, override_policy } = flags;
    let name = |text: &str, flag: &str| {
        kmsdns::name::DnsName::parse(text).map_err(|e| {
            eprintln!("kmsdns: {flag} '{text}' is not a DNS name: {e}");
            EXIT_UNKNOWN
        })
    };
    let req = match (name(from, "--from"), name(to, "--to")) {
        (Ok(from), Ok(to)) => kmsdns::failover::Request { from, to, override_policy },
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let changes = match changes(cli, inv, apply) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut runbook = rt.block_on(cycle::failover(inv, &req, &changes));
    if update_inventory && runbook.applied {
        let zones: Vec<_> = inv.host(&req.from).map(|h| h.zones.clone()).unwrap_or_default();
        match kmsdns::failover::update_inventory(&cli.config, &req.from, &req.to, &zones) {
            Ok(done) => {
                runbook.left.retain(|l| !l.contains("--update-inventory"));
                runbook.left.push(format!("done: {} updated ({})", cli.config.display(), done.join("; ")));
            }
            Err(e) => runbook.left.push(format!("the inventory was not updated: {e}")),
        }
    } else if update_inventory {
        runbook.left.push("the inventory was not updated: nothing was applied".into());
    }
    match cli.format {
        Format::Json => emit(&(serde_json::to_string_pretty(&runbook).unwrap_or_default() + "\n")),
        Format::Text | Format::Nagios => emit(&kmsdns::report::runbook_text(&runbook, WIDTH)),
    }
    if runbook.ok { 0 } else { 2 }
}

fn journal(cli: &Cli, inv: &Inventory) -> i32 {
    let changes = match changes(cli, inv, true) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match changes.entries() {
        Ok(entries) => {
            match cli.format {
                Format::Json => emit(&(serde_json::to_string_pretty(&entries).unwrap_or_default() + "\n")),
                Format::Text | Format::Nagios => emit(&kmsdns::report::journal_text(&entries)),
            }
            0
        }
        Err(e) => {
            eprintln!("kmsdns: {e}");
            EXIT_UNKNOWN
        }
    }
}

fn undo(cli: &Cli, inv: &Inventory, rt: &tokio::runtime::Runtime, id: u64, override_policy: bool) -> i32 {
    let changes = match changes(cli, inv, true) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match rt.block_on(cycle::undo(inv, &changes, id, override_policy)) {
        Ok(outcome) => {
            match cli.format {
                Format::Json => emit(&(serde_json::to_string_pretty(&outcome).unwrap_or_default() + "\n")),
                Format::Text | Format::Nagios => emit(&kmsdns::report::undo_text(&outcome, WIDTH)),
            }
            match outcome.result {
                kmsdns::cycle::ZoneResult::Applied { ref lagging, .. } if lagging.is_empty() => 0,
                _ => 2,
            }
        }
        Err(e) => {
            eprintln!("kmsdns: undo {id}: {e}");
            2
        }
    }
}

/// The resolvers a client-check asks: `--resolver`, or those of /etc/resolv.conf.
fn resolvers(rt: &tokio::runtime::Runtime, flag: Option<&str>) -> Result<Vec<kmsdns::client_check::Resolver>, i32> {
    use kmsdns::client_check::{Resolver, system_resolvers};
    let Some(text) = flag else {
        const RESOLV_CONF: &str = "/etc/resolv.conf";
        let conf = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
        let found = system_resolvers(&conf);
        if found.is_empty() {
            eprintln!(
                "kmsdns: {RESOLV_CONF} names no nameserver: a client in this state gets 0x8007267C (no DNS servers configured); name the client's resolver with --resolver ADDR"
            );
            return Err(EXIT_UNKNOWN);
        }
        return Ok(found.into_iter().map(|addr| Resolver { addr, from: RESOLV_CONF.into() }).collect());
    };
    let addr = kmsdns::inventory::ServerAddr::parse(text).map_err(|e| {
        eprintln!("kmsdns: --resolver '{text}': {e}");
        EXIT_UNKNOWN
    })?;
    match rt.block_on(kmsdns::client_check::resolver_addrs(&addr)) {
        Ok(list) => Ok(list.into_iter().map(|addr| Resolver { addr, from: "--resolver".into() }).collect()),
        Err(e) => {
            eprintln!("kmsdns: --resolver '{text}': {e}");
            Err(EXIT_UNKNOWN)
        }
    }
}

fn client_check(domain: &str, resolver: Option<&str>, connect_timeout: std::time::Duration, format: Format) -> i32 {
    use kmsdns::client_check::{DNS_RETRIES, DNS_TIMEOUT, Settings, check, judge};
    let domain = match kmsdns::name::DnsName::parse_domain(domain) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("kmsdns: '{domain}' is not a DNS name: {e}");
            return EXIT_UNKNOWN;
        }
    };
    if connect_timeout.is_zero() {
        eprintln!("kmsdns: --connect-timeout must be longer than 0");
        return EXIT_UNKNOWN;
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let resolvers = match resolvers(&rt, resolver) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let settings = Settings { resolvers, connect_timeout, dns_timeout: DNS_TIMEOUT, dns_retries: DNS_RETRIES };
    let seen = rt.block_on(check(&domain, &settings));
    let report = judge(&seen, now());
    match format {
        Format::Json => emit(&(serde_json::to_string_pretty(&report).unwrap_or_default() + "\n")),
        Format::Text | Format::Nagios => emit(&kmsdns::report::client::client_check_text(&report, WIDTH)),
    }
    report.exit_code
}

fn explain(code: Option<&str>, format: Format) -> i32 {
    use kmsdns::explain::{Explained, explain, parse_code, table};
    let Some(text) = code else {
        match format {
            Format::Json => emit(&(serde_json::to_string_pretty(table()).unwrap_or_default() + "\n")),
            Format::Text | Format::Nagios => emit(&kmsdns::report::client::explain_list_text(table(), WIDTH)),
        }
        return 0;
    };
    let answer = match parse_code(text) {
        Ok(n) => explain(n),
        Err(e) => {
            eprintln!("kmsdns: {e}");
            return EXIT_UNKNOWN;
        }
    };
    match format {
        Format::Json => emit(&(serde_json::to_string_pretty(&answer).unwrap_or_default() + "\n")),
        Format::Text | Format::Nagios => emit(&kmsdns::report::client::explain_text(&answer, WIDTH)),
    }
    match answer {
        Explained::Known { .. } => 0,
        Explained::Unknown { .. } => 1,
    }
}

fn demo(format: Format) -> i32 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let world = match kmsdns::demo::DemoWorld::start().await {
            Ok(w) => w,
            Err(e) => {
                eprintln!("kmsdns: {e}");
                return EXIT_UNKNOWN;
            }
        };
        let servers: Vec<String> = world.servers.iter().map(|s| s.to_string()).collect();
        eprintln!(
            "demo: zone {} on embedded DNS servers {}; KMS responders on 127.77.x.x:1688; inventory {}",
            kmsdns::demo::ZONE,
            servers.join(" and "),
            world.inventory.display()
        );
        eprintln!("demo: kms1 is healthy, kms2 is dead, kms-old is decommissioned, desk42 is a rogue KMS host\n");
        match kmsdns::demo::run(&world, format == Format::Json, colour()).await {
            Ok((text, clean)) => {
                emit(&text);
                if clean {
                    0
                } else {
                    eprintln!("kmsdns: the demo's repair did not leave the zone clean");
                    2
                }
            }
            Err(e) => {
                eprintln!("kmsdns: demo: {e}");
                EXIT_UNKNOWN
            }
        }
    })
}
