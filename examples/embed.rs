//! Embedding crowbar-core over the SQLite store: define roles, create nodes, bind, commit, drive
//! the runs by hand, persist every step, print the model and a history. Run it twice: the second
//! run reloads what the first stored.
//!
//! `cargo run --example embed -- crowbar.sqlite`

use std::sync::Arc;

use anyhow::Context;
use crowbar::core::{
    Cluster, NodeRoleState, NodeSpec, RoleFlag, RoleSpec, RunResult, SqliteStore, Store,
    SystemClock,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "crowbar.sqlite".into());
    let store = SqliteStore::open(&path).with_context(|| format!("opening {path}"))?;
    let snapshot = store.load().await?;
    let first_run = snapshot.revision == 0;
    let mut cluster = if first_run {
        Cluster::new()
    } else {
        Cluster::from_snapshot(snapshot, Arc::new(SystemClock))?
    };

    if first_run {
        println!("{path}: new store, defining the cluster");
        cluster.create_role(RoleSpec::new("crowbar-admin-node"))?;
        cluster.create_role(RoleSpec::new("network-admin").flag(RoleFlag::Implicit))?;
        cluster.create_role(RoleSpec::new("dns-server").requires(["network-admin"]))?;
        cluster
            .create_role(RoleSpec::new("dns-client").requires(["dns-server", "network-admin"]))?;
        cluster.create_role(RoleSpec::new("crowbar-managed-node").requires(["dns-client"]))?;
        let admin =
            cluster.create_node(NodeSpec::new("admin.cr0wbar.com").admin(true).alive(true))?;
        cluster.bind_by_name("crowbar-admin-node", "admin", None)?;
        cluster.bind_by_name("dns-server", "admin", None)?;
        cluster.commit_node(admin)?;
        for i in 1..=3 {
            let n = cluster.create_node(NodeSpec::new(format!("d{i}.cr0wbar.com")).alive(true))?;
            cluster.bind_by_name("crowbar-managed-node", &format!("d{i}"), None)?;
            cluster.commit_node(n)?;
        }
        let rev = store.apply(cluster.take_batch()).await?;
        println!("stored the definition as revision {rev}");
    } else {
        println!("{path}: reloaded revision {}", store.revision().await?);
    }

    // Drive the runs by hand, lowest (cohort, id) first, one batch per step. The annealer in
    // crowbar-anneal does this concurrently under its caps.
    loop {
        let next = cluster
            .noderoles()
            .filter(|nr| cluster.is_runnable(nr.id))
            .min_by_key(|nr| (nr.cohort, nr.id))
            .map(|nr| nr.id);
        let Some(nr) = next else { break };
        cluster.start_run(nr)?;
        cluster.finish_run(
            nr,
            RunResult::Succeeded {
                wall: Some(serde_json::json!({"ran": cluster.label(nr)})),
                runlog: "ok\n".into(),
            },
        )?;
        store.apply(cluster.take_batch()).await?;
    }

    for d in cluster.deployments() {
        println!(
            "deployment {}: {}",
            d.name,
            cluster.deployment_state(d.id).expect("exists")
        );
    }
    for node in cluster.nodes() {
        let states: Vec<String> = cluster
            .noderoles_on(node.id)
            .iter()
            .map(|nr| {
                format!(
                    "{}={}",
                    cluster.label(*nr),
                    cluster.noderole(*nr).expect("exists").state
                )
            })
            .collect();
        println!("{}: {}", node.name, states.join(" "));
    }
    let sample = cluster
        .noderoles()
        .find(|nr| nr.state == NodeRoleState::Active)
        .map(|nr| nr.id);
    if let Some(nr) = sample {
        println!("history of {}:", cluster.label(nr));
        for h in store.history(nr).await? {
            let from = h.from.map_or("(new)".to_string(), |s| s.to_string());
            println!("  {from} -> {} ({}) at {}", h.to, h.cause, h.at.0);
        }
    }
    Ok(())
}
