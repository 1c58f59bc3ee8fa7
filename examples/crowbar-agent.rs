//! `crowbar-agent`: the annealing agent and its Ops API.
//!
//! ```text
//! crowbar-agent [--config agent.toml] [--demo N [--exit-when-stable]]
//! ```
//!
//! Without `--config` it runs on the embedded defaults: the SQLite file `crowbar.sqlite`, the
//! API on 127.0.0.1:3000, tokens in `tokens.toml` (hashes) and `tokens.secret` (the tokens,
//! written once), all in the current directory. The config (TOML; paths relative to it):
//!
//! ```toml
//! barclamps = ["barclamps/site.yml"]     # imported at start
//! [store]
//! kind = "sqlite"                         # or "memory"
//! path = "crowbar.sqlite"
//! [api]
//! listen = ["127.0.0.1:3000"]
//! token_file = "tokens.toml"
//! token_secret_file = "tokens.secret"
//! # max_body_bytes = 1048576, request_timeout_ms = 30000, max_event_streams = 1024
//! [anneal]
//! max_running = 10                         # runs at once, over all nodes
//! # default_timeout_ms = 600000, stop_grace_ms = 30000
//! [jigs]
//! # scripts_dir = "scripts"                # enables the script jig
//! ```
//!
//! `--demo N` seeds N nodes with the demo stack (`barclamps/demo.yml`, test jig), shows the
//! anneal's progress and a summary; with `--exit-when-stable` it then stops. SIGINT or
//! SIGTERM stop the agent cleanly: no new runs, runs in flight finish (up to the grace),
//! everything persisted, exit 0.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use crowbar::agent::{Agent, AgentConfig, seed_demo};
use crowbar::anneal::{AnnealEvent, AnnealStatus};
use crowbar::core::NodeRoleState;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(about = "The crowbar annealing agent and its Ops API")]
struct Args {
    /// The TOML configuration file (default: the embedded defaults in the current directory).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Seed a demo of this many nodes (four noderoles each) and show the anneal.
    #[arg(long, value_name = "N")]
    demo: Option<usize>,
    /// With --demo: stop once the cluster is stable, with exit code 0 if it finished.
    #[arg(long, requires = "demo")]
    exit_when_stable: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("crowbar-agent: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crowbar-agent: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let base = path.parent().unwrap_or(std::path::Path::new("."));
            AgentConfig::from_toml(&text, base).with_context(|| format!("{}", path.display()))?
        }
        None => AgentConfig::from_toml("", std::path::Path::new("."))?,
    };
    let secret_file = config.token_secret_file.clone();
    let agent = Agent::start(config).await?;
    let url = format!("http://{}", agent.local_addrs()[0]);
    if agent.tokens_made() {
        eprintln!(
            "crowbar-agent: made API tokens; they are in {} (mode 0600)",
            secret_file.display()
        );
    }
    let mut code = ExitCode::SUCCESS;
    if let Some(nodes) = args.demo {
        let started = Instant::now();
        // The progress line follows the event stream; the outcome comes from the annealer.
        let mut events = agent.handle().subscribe();
        let progress = tokio::spawn(async move {
            let tty = std::io::stderr().is_terminal();
            let (mut active, mut transitions, mut shown) = (0u64, 0u64, Instant::now());
            while let Some(event) = events.recv().await {
                if let AnnealEvent::Transition(h) = event {
                    transitions += 1;
                    active += u64::from(h.to == NodeRoleState::Active);
                    if tty && shown.elapsed().as_millis() >= 100 {
                        shown = Instant::now();
                        eprint!(
                            "\ranneal: {active} noderoles became ACTIVE, {transitions} transitions"
                        );
                        let _ = std::io::stderr().flush();
                    }
                }
            }
            if tty {
                eprintln!();
            }
            transitions
        });
        let total = seed_demo(agent.handle(), nodes).await?;
        let status = agent.handle().wait_idle().await?;
        let secs = started.elapsed().as_secs_f64();
        let active = agent
            .handle()
            .with_annealer(|a| {
                a.cluster()
                    .noderoles()
                    .filter(|nr| nr.state == NodeRoleState::Active)
                    .count()
            })
            .await?;
        progress.abort();
        println!(
            "demo: {nodes} nodes, {total} noderoles, {active} ACTIVE, anneal {status} in {secs:.2} s \
             ({:.0} noderoles/s)",
            total as f64 / secs.max(1e-9)
        );
        if status != AnnealStatus::Finished {
            code = ExitCode::from(3);
        }
    }
    println!(
        "crowbar-agent: API at {url}/api/v2 (token in {}); try: curl -H \"Authorization: Bearer $TOKEN\" {url}/api/v2/nodes",
        secret_file.display()
    );
    if !args.exit_when_stable {
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("crowbar-agent: stopping");
    }
    agent.shutdown().await?;
    Ok(code)
}
