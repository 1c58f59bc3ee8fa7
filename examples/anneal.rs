//! Embedding the annealer: define roles and nodes, write a jig, commit, anneal with a progress
//! display, print the history.
//!
//! `cargo run --example anneal`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crowbar::anneal::{AnnealEvent, Annealer, AnnealerConfig, Driver, DriverConfig, TokioClock};
use crowbar::core::{Cluster, MemStore, NodeSpec, RoleFlag, RoleSpec, Store};
use crowbar::jig::{Jig, JigOutput, JigRegistry, Outcome, RunContext};
use serde_json::json;

/// Our jig: "installs" a package named in the role's data, taking a moment per node.
struct Install;

#[async_trait]
impl Jig for Install {
    async fn run(&self, cx: RunContext) -> Outcome {
        let package = cx.data["package"].as_str().unwrap_or("nothing").to_owned();
        tokio::time::sleep(Duration::from_millis(20 + 5 * cx.node.id.0)).await;
        Ok(
            JigOutput::with_wall(json!({"installed": {"package": package}}))
                .runlog(format!("installed {package} on {}\n", cx.node.name)),
        )
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut cluster = Cluster::with_clock(Arc::new(TokioClock::new()));
    let role = |name: &str, package: &str| {
        RoleSpec::new(name)
            .jig("install")
            .template(json!({ "package": package }))
    };
    cluster.create_role(role("os", "debian").flag(RoleFlag::Implicit))?;
    cluster.create_role(role("database", "postgresql").requires(["os"]))?;
    cluster.create_role(role("webapp", "nginx").requires(["os", "database"]))?;
    for name in ["db1", "web1", "web2", "web3"] {
        let node = cluster.create_node(NodeSpec::new(format!("{name}.example.com")).alive(true))?;
        let top = if name == "db1" { "database" } else { "webapp" };
        cluster.bind_by_name(top, name, None)?;
        cluster.commit_node(node)?;
    }
    let total = cluster.noderole_count();
    let labels: HashMap<_, _> = cluster
        .noderoles()
        .map(|n| (n.id, cluster.label(n.id)))
        .collect();

    let mut jigs = JigRegistry::with_builtins();
    jigs.register("install", Arc::new(Install));
    let store = Arc::new(MemStore::new());
    let config = DriverConfig {
        annealer: AnnealerConfig::with_max_running(2),
        ..DriverConfig::default()
    };
    let annealer = Annealer::new(cluster, config.annealer.clone())?;
    let handle = Driver::spawn(annealer, store.clone(), jigs, config);

    let mut events = handle.subscribe();
    let mut active = 0;
    while let Some(event) = events.recv().await {
        match event {
            AnnealEvent::Transition(h) if h.to.name() == "ACTIVE" => {
                active += 1;
                println!("[{active:>2}/{total}] {} is ACTIVE", labels[&h.noderole]);
            }
            AnnealEvent::Idle { status } => {
                println!("anneal {status}");
                break;
            }
            _ => {}
        }
    }
    handle.stop().await?;

    println!("\nhistory:");
    let snapshot = store.load().await?;
    let mut history = Vec::new();
    for nr in &snapshot.noderoles {
        history.extend(store.history(nr.id).await?);
    }
    history.sort_by_key(|h| (h.at, h.noderole));
    let start = history.first().map_or(0, |h| h.at.0);
    for h in history {
        let from = h.from.map_or("-", |s| s.name());
        println!(
            "+{:>4} ms {:<14} {:>10} -> {:<10} {}",
            h.at.0 - start,
            labels[&h.noderole],
            from,
            h.to,
            h.cause
        );
    }
    Ok(())
}
