//! `crowbar-dhcpd`: the DHCPv4 + PXE + TFTP daemon of crowbar-pxe, standalone from a TOML file.
//!
//! ```sh
//! crowbar-dhcpd --config /etc/crowbar/dhcpd.toml
//! ```
//!
//! See `tests/fixtures/pxe/dhcpd.toml` for a configuration. It stops cleanly on SIGINT or
//! SIGTERM, flushing leases to the database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(about = "Crowbar DHCPv4/PXE/TFTP server")]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crowbar-dhcpd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = crowbar_pxe::DaemonConfig::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        crowbar_pxe::run_daemon(config, shutdown).await?;
        Ok(())
    })
}
