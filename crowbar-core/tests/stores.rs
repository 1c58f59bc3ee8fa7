//! The store conformance suite against `MemStore` and `SqliteStore` (real files), the SIGKILL
//! crash test, and reopening.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crowbar_core::conformance::{self, describe, sample_cluster, snapshot_of};
use crowbar_core::{
    Cluster, CoreError, DeploymentId, MemStore, NodeId, NodeSpec, RoleId, RoleSpec, Snapshot,
    SqliteStore, Store, SystemClock,
};

#[tokio::test]
async fn mem_store_conforms() {
    conformance::run_all(|| async { MemStore::new() }).await;
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        let path = dir.path().join(format!("conformance-{n}.sqlite"));
        async move { SqliteStore::open(path).unwrap() }
    })
    .await;
}

#[tokio::test]
async fn sqlite_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reopen.sqlite");
    let mut c = sample_cluster();
    {
        let store = SqliteStore::open(&path).unwrap();
        store.apply(c.take_batch()).await.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let loaded = store.load().await.unwrap();
    assert_eq!(loaded.revision, 1);
    let rebuilt = Cluster::from_snapshot(loaded, c.clock().clone()).unwrap();
    assert_eq!(describe(&snapshot_of(&rebuilt)), describe(&snapshot_of(&c)));
}

/// A store's snapshot damaged in each way `Cluster::from_snapshot` must refuse: the load gives
/// a typed error that names the rows, never a panic or an abort, and the undamaged snapshot
/// still loads.
#[tokio::test]
async fn a_damaged_snapshot_is_refused_with_an_error_naming_the_rows() {
    let mut c = sample_cluster();
    let store = MemStore::new();
    store.apply(c.take_batch()).await.unwrap();
    let good = store.load().await.unwrap();
    let clock = c.clock().clone();
    let refused = |damage: &dyn Fn(&mut Snapshot)| {
        let mut s = good.clone();
        damage(&mut s);
        match Cluster::from_snapshot(s, clock.clone()) {
            Err(CoreError::InconsistentSnapshot { message }) => message,
            Err(other) => panic!("another error: {other}"),
            Ok(_) => panic!("a damaged snapshot was loaded"),
        }
    };
    let nr = good.noderoles[0].clone();

    let message = refused(&|s| s.noderoles.push(s.noderoles[0].clone()));
    assert_eq!(
        message,
        format!("noderole id {} is held twice", nr.id.get())
    );

    let message = refused(&|s| s.noderoles[0].node = NodeId(4_000));
    assert_eq!(
        message,
        format!(
            "{} is on node#4000, which the snapshot does not hold",
            nr.id
        )
    );
    let message = refused(&|s| s.noderoles[0].role = RoleId(4_000));
    assert!(message.contains("binds role#4000"), "{message}");
    let message = refused(&|s| s.noderoles[0].deployment = DeploymentId(4_000));
    assert!(message.contains("is in deployment#4000"), "{message}");
    let message = refused(&|s| s.deployment_roles[0].deployment = DeploymentId(4_000));
    assert!(message.contains("a deployment role names"), "{message}");

    // A node id far beyond memory, its noderoles moved with it: the references hold, the
    // table indexed by node id cannot be made.
    let huge = NodeId(1 << 62);
    let message = refused(&|s| {
        let old = s.nodes[0].id;
        s.nodes[0].id = huge;
        for nr in s.noderoles.iter_mut().filter(|nr| nr.node == old) {
            nr.node = huge;
        }
    });
    assert!(
        message.starts_with(&format!("node id {} is too large", huge.get())),
        "{message}"
    );

    let rebuilt = Cluster::from_snapshot(good, clock).unwrap();
    assert_eq!(describe(&snapshot_of(&rebuilt)), describe(&snapshot_of(&c)));
}

const CHILD_ENV: &str = "CROWBAR_CRASH_CHILD_DB";
const NODES_PER_BATCH: usize = 20;

/// The child half of the crash test: writes batches of `NODES_PER_BATCH` nodes (each node with a
/// bound, committed noderole) forever, printing the number of each batch once `apply` returned.
async fn crash_child_writer(path: String) {
    let store = SqliteStore::open(&path).unwrap();
    let mut c = Cluster::with_clock(Arc::new(SystemClock));
    c.create_role(RoleSpec::new("base")).unwrap();
    store.apply(c.take_batch()).await.unwrap();
    println!("ready");
    for batch_no in 0.. {
        for i in 0..NODES_PER_BATCH {
            let n = c
                .create_node(NodeSpec::new(format!("b{batch_no}-n{i}.crash.test")).alive(true))
                .unwrap();
            c.bind_by_name("base", &format!("b{batch_no}-n{i}"), None)
                .unwrap();
            c.commit_node(n).unwrap();
        }
        store.apply(c.take_batch()).await.unwrap();
        println!("committed {batch_no}");
    }
}

/// Runs itself again as the child (same test, with the database path in the environment),
/// kills it with SIGKILL mid-write, then checks the file.
#[tokio::test]
async fn sigkill_mid_write_loses_no_committed_batch_and_half_applies_none() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        return crash_child_writer(path).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.sqlite");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_mid_write_loses_no_committed_batch_and_half_applies_none",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last_committed = None;
    // Let it commit a good number of batches, then kill it while it is writing the next.
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("committed ") {
            let n: usize = n.trim().parse().unwrap();
            last_committed = Some(n);
            if n >= 40 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix.
    child.wait().unwrap();
    let last = last_committed.expect("the child committed batches");

    let store = SqliteStore::open(&path).unwrap();
    let snapshot = store.load().await.unwrap();
    let mut per_batch = std::collections::BTreeMap::<usize, usize>::new();
    for node in &snapshot.nodes {
        let batch: usize = node.name.as_str()[1..]
            .split('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        *per_batch.entry(batch).or_default() += 1;
    }
    for b in 0..=last {
        assert_eq!(
            per_batch.get(&b),
            Some(&NODES_PER_BATCH),
            "batch {b} was reported committed"
        );
    }
    for (b, count) in &per_batch {
        assert_eq!(*count, NODES_PER_BATCH, "batch {b} is half-applied");
    }
    assert_eq!(
        snapshot.noderoles.len(),
        snapshot.nodes.len(),
        "every node has its noderole"
    );
    // The revision counts the role batch plus every node batch present.
    assert_eq!(snapshot.revision as usize, 1 + per_batch.len());
    // And the model rebuilt from it is consistent.
    let c = Cluster::from_snapshot(snapshot, Arc::new(SystemClock)).unwrap();
    assert!(c.noderoles().all(|nr| c.node(nr.node).is_some()));
}
