//! The `kmsdns` command: arguments in, a call into the library, output and an exit code out.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kmsdns::inventory::Inventory;
use kmsdns::report::{AuditReport, EXIT_UNKNOWN};

const DEFAULT_CONFIG: &str = "/etc/kmsdns/kmsdns.toml";

const AFTER_HELP: &str = "\
Exit codes (monitoring-plugin convention): 0 no finding above info, 1 warnings,
2 critical findings, 3 the audit could not run (bad configuration or arguments).

Run `kmsdns demo` to see an audit of a small built-in world.";

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
    /// Validate the inventory and exit (0 when valid, 3 with every problem when not).
    CheckConfig,
    /// Start a small world on loopback (embedded DNS servers, KMS responders) and audit it.
    Demo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version are not errors; a bad argument means the audit could not run.
            return ExitCode::from(if e.use_stderr() { EXIT_UNKNOWN as u8 } else { 0 });
        }
    };
    init_logging(cli.verbose);
    let code = match (&cli.command, cli.audit) {
        (Some(Command::CheckConfig), _) => check_config(&cli.config),
        (Some(Command::Demo), _) => demo(cli.format),
        (Some(Command::Audit), _) | (None, true) => with_inventory(&cli.config, |inv| audit(&inv, cli.format)),
        (None, false) => {
            eprintln!("kmsdns: say what to do: `kmsdns --audit`, `kmsdns check-config`, `kmsdns demo` (see --help)");
            EXIT_UNKNOWN
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(EXIT_UNKNOWN as u8))
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("kmsdns={level},warn")));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn load(path: &Path) -> Result<Inventory, i32> {
    Inventory::load(path).map_err(|e| {
        eprintln!("kmsdns: invalid configuration\n{e}");
        EXIT_UNKNOWN
    })
}

fn check_config(path: &Path) -> i32 {
    match load(path) {
        Ok(inv) => {
            println!("{}: valid ({} zone(s), {} host(s))", path.display(), inv.zones.len(), inv.hosts.len());
            0
        }
        Err(code) => code,
    }
}

fn with_inventory(path: &Path, f: impl FnOnce(Inventory) -> i32) -> i32 {
    match load(path) {
        Ok(inv) => f(inv),
        Err(code) => code,
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| {
        eprintln!("kmsdns: cannot start the async runtime: {e}");
        EXIT_UNKNOWN
    })
}

fn audit(inv: &Inventory, format: Format) -> i32 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let report = rt.block_on(audit_report(inv));
    print_report(&report, format)
}

async fn audit_report(inv: &Inventory) -> AuditReport {
    let obs = kmsdns::observe::observe(inv).await;
    let findings = kmsdns::audit::audit(inv, &obs);
    let generated = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    AuditReport::new(inv, &obs, findings, generated)
}

fn print_report(report: &AuditReport, format: Format) -> i32 {
    let out = match format {
        Format::Json => report.to_json() + "\n",
        Format::Text => {
            let tty = std::io::stdout().is_terminal();
            let colour = tty && std::env::var_os("NO_COLOR").is_none();
            report.to_text(100, colour)
        }
    };
    // A closed pipe (`kmsdns --audit | head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    report.summary.exit_code
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
        let inv = match load(&world.inventory) {
            Ok(inv) => inv,
            Err(code) => return code,
        };
        let servers: Vec<String> = world.servers.iter().map(|s| s.to_string()).collect();
        eprintln!(
            "demo: zone {} on embedded DNS servers {}; KMS responders on 127.77.x.x:1688; inventory {}",
            kmsdns::demo::ZONE,
            servers.join(" and "),
            world.inventory.display()
        );
        eprintln!("demo: kms1 is healthy, kms2 is dead, kms-old is decommissioned, desk42 is a rogue KMS host\n");
        let report = audit_report(&inv).await;
        print_report(&report, format);
        // The demo ran: its own exit code is 0 whatever the demo zone's findings are.
        0
    })
}
