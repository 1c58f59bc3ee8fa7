//! `crowbar-dhcpd`: the DHCPv4 + PXE + TFTP daemon of crowbar-pxe, standalone from a TOML file.
//!
//! ```sh
//! crowbar-dhcpd --config /etc/crowbar/dhcpd.toml
//! ```
//!
//! See `start_daemon` in `tests/pxe_netns.rs` for a configuration. SIGHUP re-reads the hosts
//! file; SIGINT or SIGTERM stop it cleanly, flushing leases to the database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

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
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        // SIGHUP re-reads the hosts file (e.g. after a node's bootenv changed).
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if reload_tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        crowbar_pxe::run_daemon(config, reload_rx, shutdown).await?;
        Ok(())
    })
}
