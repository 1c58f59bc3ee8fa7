//! The conformance suite every [`Store`] implementation must pass.
//!
//! Call [`run_all`] from a test with a function that makes a fresh, empty store:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! crowbar_core::conformance::run_all(|| async { crowbar_core::MemStore::new() }).await;
//! # }
//! ```
//!
//! Each check panics with a message naming what the store got wrong.

use std::future::Future;
use std::sync::Arc;

use serde_json::json;

use crate::{
    Batch, Cause, Cluster, ManualClock, NodeRoleId, NodeRoleState, NodeSpec, RoleFlag, RoleSpec,
    RunResult, Snapshot, StateUpdate, Store, StoreError, Timestamp,
};

/// Runs every check, each against a fresh store from `make`.
pub async fn run_all<S, F, Fut>(mut make: F)
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    round_trip(&make().await).await;
    state_updates_and_history(&make().await).await;
    failed_batch_changes_nothing(&make().await).await;
    stale_base_revision_is_refused(&make().await).await;
    deletion_removes_rows_and_edges(&make().await).await;
    records_put_and_delete(&make().await).await;
}

/// A small but complete cluster: implicit, cluster and cross-node parents, a child deployment,
/// data in every slot, a record.
pub fn sample_cluster() -> Cluster {
    let mut c = Cluster::with_clock(Arc::new(ManualClock::new(Timestamp(1_000))));
    c.create_role(RoleSpec::new("base").flag(RoleFlag::Implicit))
        .expect("role");
    c.create_role(
        RoleSpec::new("db")
            .flag(RoleFlag::Cluster)
            .requires(["base"]),
    )
    .expect("role");
    c.create_role(
        RoleSpec::new("app")
            .requires(["db", "base"])
            .template(json!({"port": 80})),
    )
    .expect("role");
    let prod = c.create_deployment("prod", None).expect("deployment");
    let mut nodes = Vec::new();
    for i in 0..3 {
        let n = c
            .create_node(
                NodeSpec::new(format!("n{i}.example.com"))
                    .alive(true)
                    .deployment(prod)
                    .hint(json!({"admin-v4addr": format!("10.0.0.{}", i + 10)})),
            )
            .expect("node");
        nodes.push(n);
    }
    let db0 = c.bind_by_name("db", "n0", None).expect("bind");
    c.bind_by_name("db", "n1", None).expect("bind");
    let app = c.bind_by_name("app", "n2", None).expect("bind");
    c.set_noderole_data(app, json!({"workers": 4}))
        .expect("data");
    c.set_sysdata(db0, json!({"seeded": true}))
        .expect("sysdata");
    c.set_deployment_role_data(
        prod,
        c.find_role("app").expect("app"),
        json!({"tier": "web"}),
    )
    .expect("deployment role data");
    c.put_record(
        "network.allocation",
        "admin/n0",
        json!({"address": "10.0.0.10/24"}),
    );
    c.commit_deployment(prod).expect("commit");
    let base0 = c
        .noderole_for(c.find_role("base").expect("base"), nodes[0])
        .expect("base@n0");
    c.start_run(base0).expect("start");
    c.finish_run(
        base0,
        RunResult::Succeeded {
            wall: Some(json!({"kernel": "6.1"})),
            runlog: "ok\n".into(),
        },
    )
    .expect("finish");
    c
}

/// A canonical text form of everything a snapshot holds, for comparisons.
pub fn describe(snapshot: &Snapshot) -> String {
    let mut s = Snapshot {
        revision: 0,
        ..snapshot.clone()
    };
    s.nodes.sort_by_key(|n| n.id);
    s.roles.sort_by_key(|r| r.id);
    s.deployments.sort_by_key(|d| d.id);
    s.deployment_roles.sort_by_key(|d| (d.deployment, d.role));
    s.noderoles.sort_by_key(|n| n.id);
    s.edges.sort();
    s.records
        .sort_by(|a, b| (&a.table, &a.key).cmp(&(&b.table, &b.key)));
    format!("{s:#?}")
}

/// The cluster's own view as a snapshot, to compare with what a store loads.
pub fn snapshot_of(c: &Cluster) -> Snapshot {
    let mut edges = Vec::new();
    for nr in c.noderoles() {
        for child in c.children(nr.id) {
            edges.push(crate::Edge {
                parent: nr.id,
                child: *child,
            });
        }
    }
    Snapshot {
        revision: 0,
        nodes: c.nodes().cloned().collect(),
        roles: c.roles().cloned().collect(),
        deployments: c.deployments().cloned().collect(),
        deployment_roles: c.deployment_roles.values().cloned().collect(),
        noderoles: c.noderoles().map(|nr| nr.to_row()).collect(),
        edges,
        records: Vec::new(),
    }
}

async fn round_trip<S: Store>(store: &S) {
    assert_eq!(
        store.revision().await.expect("revision"),
        0,
        "a new store is at revision 0"
    );
    let mut c = sample_cluster();
    let batch = c.take_batch();
    assert!(!c.has_pending(), "take_batch leaves nothing pending");
    let rev = store.apply(batch).await.expect("apply");
    assert_eq!(rev, 1, "the first batch makes revision 1");
    let loaded = store.load().await.expect("load");
    assert_eq!(loaded.revision, 1);
    assert_eq!(loaded.records.len(), 1, "the record is stored");
    let mut without_records = loaded.clone();
    without_records.records.clear();
    assert_eq!(
        describe(&without_records),
        describe(&snapshot_of(&c)),
        "the store loads what the cluster holds"
    );
    let rebuilt = Cluster::from_snapshot(loaded, c.clock().clone()).expect("rebuild");
    assert_eq!(
        describe(&snapshot_of(&rebuilt)),
        describe(&snapshot_of(&c)),
        "a cluster rebuilt from the store equals the original"
    );
}

async fn state_updates_and_history<S: Store>(store: &S) {
    let mut c = sample_cluster();
    store.apply(c.take_batch()).await.expect("apply");
    let role = |c: &Cluster, r: &str, n: &str| {
        c.noderole_for(c.find_role(r).expect("role"), c.find_node(n).expect("node"))
            .expect("bound")
    };
    let (base0, db0) = (role(&c, "base", "n0"), role(&c, "db", "n0"));
    c.start_run(db0).expect("start");
    c.finish_run(
        db0,
        RunResult::Succeeded {
            wall: None,
            runlog: String::new(),
        },
    )
    .expect("finish");
    c.start_run(base0).expect("start again");
    c.finish_run(
        base0,
        RunResult::Failed {
            message: "disk full".into(),
            runlog: "boom".into(),
        },
    )
    .expect("finish");
    let batch = c.take_batch();
    assert!(
        batch
            .states
            .iter()
            .any(|s| s.id == db0 && s.state == NodeRoleState::Blocked),
        "a state-only change travels as a StateUpdate"
    );
    store.apply(batch).await.expect("apply");
    let loaded = store.load().await.expect("load");
    let nr = loaded
        .noderoles
        .iter()
        .find(|n| n.id == base0)
        .expect("stored");
    assert_eq!(nr.state, NodeRoleState::Error);
    assert_eq!(nr.runlog, "boom", "the runlog is stored");
    assert_eq!(nr.run_count, 1, "the run count is stored");
    let history = store.history(base0).await.expect("history");
    let states: Vec<_> = history.iter().map(|h| (h.from, h.to)).collect();
    use NodeRoleState::*;
    assert_eq!(
        states,
        vec![
            (None, Proposed),
            (Some(Proposed), Todo),
            (Some(Todo), Transition),
            (Some(Transition), Active),
            (Some(Active), Transition),
            (Some(Transition), Error),
        ],
        "history in order, across batches"
    );
    assert_eq!(
        history[5].cause,
        Cause::JigFailed {
            message: "disk full".into()
        }
    );
    assert!(
        history.iter().all(|h| h.at == Timestamp(1_000)),
        "times from the clock"
    );
    let db_history = store.history(db0).await.expect("history");
    assert_eq!(
        db_history.last().map(|h| h.cause.clone()),
        Some(Cause::Ripple { origin: base0 }),
        "the ripple is recorded with its origin"
    );
}

async fn failed_batch_changes_nothing<S: Store>(store: &S) {
    let mut c = sample_cluster();
    store.apply(c.take_batch()).await.expect("apply");
    let before = store.load().await.expect("load");
    let mut bad = Batch::default();
    bad.records.push(crate::RecordChange::Put(crate::Record {
        table: "t".into(),
        key: "k".into(),
        value: json!(1),
    }));
    bad.states.push(StateUpdate {
        id: NodeRoleId(1),
        state: NodeRoleState::Active,
        run_count: 9,
        cohort: 0,
    });
    bad.states.push(StateUpdate {
        id: NodeRoleId(999_999),
        state: NodeRoleState::Active,
        run_count: 1,
        cohort: 0,
    });
    let err = store
        .apply(bad)
        .await
        .expect_err("a batch naming a missing noderole fails");
    assert!(
        !err.is_retryable(),
        "an inconsistent batch is not retryable: {err}"
    );
    let after = store.load().await.expect("load");
    assert_eq!(
        after.revision, before.revision,
        "a failed batch does not raise the revision"
    );
    assert_eq!(
        describe(&after),
        describe(&before),
        "a failed batch changes nothing"
    );
}

async fn stale_base_revision_is_refused<S: Store>(store: &S) {
    let mut c = sample_cluster();
    store.apply(c.take_batch()).await.expect("apply");
    let mut batch = Batch {
        base_revision: Some(0),
        ..Batch::default()
    };
    batch.records.push(crate::RecordChange::Delete {
        table: "network.allocation".into(),
        key: "admin/n0".into(),
    });
    match store.apply(batch.clone()).await {
        Err(StoreError::Conflict {
            expected: 0,
            actual: 1,
        }) => {}
        other => panic!("a stale base revision must be a Conflict, got {other:?}"),
    }
    batch.base_revision = Some(1);
    assert_eq!(
        store.apply(batch).await.expect("apply"),
        2,
        "the right base revision lands"
    );
    assert!(store.load().await.expect("load").records.is_empty());
}

async fn deletion_removes_rows_and_edges<S: Store>(store: &S) {
    let mut c = sample_cluster();
    store.apply(c.take_batch()).await.expect("apply");
    let n2 = c.find_node("n2").expect("node");
    let doomed: Vec<NodeRoleId> = c.noderoles_on(n2).to_vec();
    c.delete_node(n2).expect("delete");
    let batch = c.take_batch();
    assert_eq!(batch.deleted_nodes, vec![n2]);
    store.apply(batch).await.expect("apply");
    let loaded = store.load().await.expect("load");
    assert!(loaded.nodes.iter().all(|n| n.id != n2), "node row deleted");
    assert!(
        loaded.noderoles.iter().all(|n| !doomed.contains(&n.id)),
        "noderoles deleted"
    );
    assert!(
        loaded
            .edges
            .iter()
            .all(|e| !doomed.contains(&e.parent) && !doomed.contains(&e.child)),
        "edges deleted"
    );
    let mut without_records = loaded;
    without_records.records.clear();
    assert_eq!(describe(&without_records), describe(&snapshot_of(&c)));
}

async fn records_put_and_delete<S: Store>(store: &S) {
    let mut c = Cluster::new();
    c.put_record("lease", "aa:bb", json!({"ip": "10.0.0.5"}));
    c.put_record("lease", "aa:bb", json!({"ip": "10.0.0.6"}));
    c.put_record("lease", "cc:dd", json!({"ip": "10.0.0.7"}));
    c.delete_record("lease", "cc:dd");
    store.apply(c.take_batch()).await.expect("apply");
    let loaded = store.load().await.expect("load");
    assert_eq!(loaded.records.len(), 1, "later changes in a batch win");
    assert_eq!(loaded.records[0].value, json!({"ip": "10.0.0.6"}));
    let mut c = Cluster::from_snapshot(loaded, c.clock().clone()).expect("rebuild");
    assert_eq!(
        c.take_loaded_records().len(),
        1,
        "records are handed over on load"
    );
}
