//! `SqliteStore`: the embedded default. One file, WAL, a versioned schema with migrations.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    Batch, Cause, Deployment, DeploymentRole, Edge, HistoryEntry, Node, NodeRole, NodeRoleId,
    NodeRoleState, Record, RecordChange, Role, Snapshot, Store, StoreError, Timestamp,
};

/// The schema, one migration per version. `PRAGMA user_version` records how many were applied;
/// opening a file applies the missing ones in one transaction.
const MIGRATIONS: &[&str] = &[
    // 1: the model.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
     INSERT INTO meta (key, value) VALUES ('revision', 0);
     CREATE TABLE roles (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
     CREATE TABLE deployments (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                               body TEXT NOT NULL);
     CREATE TABLE nodes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
     CREATE TABLE deployment_roles (
         deployment INTEGER NOT NULL REFERENCES deployments(id),
         role INTEGER NOT NULL REFERENCES roles(id),
         body TEXT NOT NULL,
         PRIMARY KEY (deployment, role)) WITHOUT ROWID;
     CREATE TABLE noderoles (
         id INTEGER PRIMARY KEY,
         node INTEGER NOT NULL REFERENCES nodes(id),
         role INTEGER NOT NULL REFERENCES roles(id),
         deployment INTEGER NOT NULL REFERENCES deployments(id),
         state INTEGER NOT NULL,
         run_count INTEGER NOT NULL,
         cohort INTEGER NOT NULL,
         body TEXT NOT NULL,
         UNIQUE (role, node));
     CREATE INDEX noderoles_node ON noderoles(node);
     CREATE TABLE edges (
         parent INTEGER NOT NULL REFERENCES noderoles(id),
         child INTEGER NOT NULL REFERENCES noderoles(id),
         PRIMARY KEY (parent, child)) WITHOUT ROWID;
     CREATE INDEX edges_child ON edges(child);
     CREATE TABLE history (
         seq INTEGER PRIMARY KEY,
         noderole INTEGER NOT NULL,
         from_state INTEGER,
         to_state INTEGER NOT NULL,
         cause TEXT NOT NULL,
         at INTEGER NOT NULL);",
    // 2: extension records, and history by noderole.
    "CREATE TABLE records (tbl TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                           PRIMARY KEY (tbl, key)) WITHOUT ROWID;
     CREATE INDEX history_noderole ON history(noderole, seq);",
];

/// The newest schema version this build knows.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn db_err(operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| {
        let retryable = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        StoreError::Database {
            operation,
            message: e.to_string(),
            retryable,
        }
    }
}

fn corrupt(what: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |e| StoreError::Corrupt {
        what,
        message: e.to_string(),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("model types always serialize")
}

/// A [`Store`] in one SQLite file, in WAL mode, with `synchronous=FULL` so that a batch that
/// `apply` reported is on disk.
///
/// Calls run on tokio's blocking pool; a batch is one SQLite transaction. Several processes may
/// open the same file (SQLite serialises writers; a writer waits up to 5 s for the lock), but
/// only [`Batch::base_revision`] protects one writer from another's changes.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` and migrates its schema to the newest version.
    /// Refuses a file whose schema is newer than this build.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path).map_err(db_err("open"))?;
        Self::setup(conn, path)
    }

    /// Opens a store that must exist already, for a process that follows a store another one
    /// writes (a daemon): a missing file, or one without the crowbar schema, is refused with
    /// [`StoreError::NotAStore`] before anything is written to it (no file is created, no
    /// pragma or migration touches a foreign file).
    pub fn open_existing(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let refuse = |reason: String| StoreError::NotAStore {
            path: path.display().to_string(),
            reason,
        };
        if !path.is_file() {
            return Err(refuse("no such file".to_owned()));
        }
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| refuse(e.to_string()))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| refuse(e.to_string()))?;
        let revision = conn.query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
            r.get::<_, i64>(0)
        });
        if version == 0 || revision.is_err() {
            return Err(refuse("no crowbar schema in it".to_owned()));
        }
        Self::setup(conn, path)
    }

    /// Settings every connection gets, then the migrations.
    fn setup(mut conn: Connection, path: PathBuf) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db_err("open"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err("open"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_err("open"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_err("open"))?;
        Self::migrate(&mut conn, SCHEMA_VERSION)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// Applies migrations up to `target`.
    pub(crate) fn migrate(conn: &mut Connection, target: i64) -> Result<(), StoreError> {
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db_err("migrate"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version >= target {
            return Ok(());
        }
        let tx = conn.transaction().map_err(db_err("migrate"))?;
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .take(target as usize)
            .skip(version as usize)
        {
            tx.execute_batch(sql).map_err(db_err("migrate"))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(db_err("migrate"))?;
        }
        tx.commit().map_err(db_err("migrate"))
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let conn = self.conn.lock().expect("sqlite mutex poisoned");
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db_err("schema_version"))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().expect("sqlite mutex poisoned");
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Database {
            operation: "spawn_blocking",
            message: e.to_string(),
            retryable: false,
        })?
    }

    fn apply_sync(conn: &mut Connection, batch: &Batch) -> Result<u64, StoreError> {
        let e = db_err("apply");
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&e)?;
        let revision: u64 = tx
            .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                r.get(0)
            })
            .map_err(&e)?;
        if let Some(base) = batch.base_revision
            && base != revision
        {
            return Err(StoreError::Conflict {
                expected: base,
                actual: revision,
            });
        }
        {
            let mut put_role = tx
                .prepare_cached("INSERT OR REPLACE INTO roles (id, name, body) VALUES (?1, ?2, ?3)")
                .map_err(&e)?;
            for r in &batch.roles {
                put_role
                    .execute(params![r.id.0, r.name, to_json(r)])
                    .map_err(&e)?;
            }
            let mut put_dep = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO deployments (id, name, body) VALUES (?1, ?2, ?3)",
                )
                .map_err(&e)?;
            for d in &batch.deployments {
                put_dep
                    .execute(params![d.id.0, d.name, to_json(d)])
                    .map_err(&e)?;
            }
            let mut put_node = tx
                .prepare_cached(
                    "INSERT INTO nodes (id, name, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, body = excluded.body",
                )
                .map_err(&e)?;
            for n in &batch.nodes {
                put_node
                    .execute(params![n.id.0, n.name.as_str(), to_json(n)])
                    .map_err(&e)?;
            }
            let mut put_dr = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO deployment_roles (deployment, role, body)
                     VALUES (?1, ?2, ?3)",
                )
                .map_err(&e)?;
            for dr in &batch.deployment_roles {
                put_dr
                    .execute(params![dr.deployment.0, dr.role.0, to_json(dr)])
                    .map_err(&e)?;
            }
            let mut put_nr = tx
                .prepare_cached(
                    "INSERT INTO noderoles
                       (id, node, role, deployment, state, run_count, cohort, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (id) DO UPDATE SET state = excluded.state,
                       run_count = excluded.run_count, cohort = excluded.cohort,
                       body = excluded.body",
                )
                .map_err(&e)?;
            for nr in &batch.noderoles {
                put_nr
                    .execute(params![
                        nr.id.0,
                        nr.node.0,
                        nr.role.0,
                        nr.deployment.0,
                        nr.state.code(),
                        nr.run_count,
                        nr.cohort,
                        to_json(nr)
                    ])
                    .map_err(&e)?;
            }
            let mut put_state = tx
                .prepare_cached(
                    "UPDATE noderoles SET state = ?2, run_count = ?3, cohort = ?4 WHERE id = ?1",
                )
                .map_err(&e)?;
            for s in &batch.states {
                let n = put_state
                    .execute(params![s.id.0, s.state.code(), s.run_count, s.cohort])
                    .map_err(&e)?;
                if n == 0 {
                    return Err(StoreError::Database {
                        operation: "apply",
                        message: format!("state update for missing noderole {}", s.id),
                        retryable: false,
                    });
                }
            }
            let mut put_edge = tx
                .prepare_cached("INSERT OR IGNORE INTO edges (parent, child) VALUES (?1, ?2)")
                .map_err(&e)?;
            for edge in &batch.edges {
                put_edge
                    .execute(params![edge.parent.0, edge.child.0])
                    .map_err(&e)?;
            }
            let mut del_edges = tx
                .prepare_cached("DELETE FROM edges WHERE parent = ?1 OR child = ?1")
                .map_err(&e)?;
            let mut del_nr = tx
                .prepare_cached("DELETE FROM noderoles WHERE id = ?1")
                .map_err(&e)?;
            for id in &batch.deleted_noderoles {
                del_edges.execute(params![id.0]).map_err(&e)?;
                del_nr.execute(params![id.0]).map_err(&e)?;
            }
            let mut del_node = tx
                .prepare_cached("DELETE FROM nodes WHERE id = ?1")
                .map_err(&e)?;
            for id in &batch.deleted_nodes {
                del_node.execute(params![id.0]).map_err(&e)?;
            }
            let mut put_rec = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO records (tbl, key, value) VALUES (?1, ?2, ?3)",
                )
                .map_err(&e)?;
            let mut del_rec = tx
                .prepare_cached("DELETE FROM records WHERE tbl = ?1 AND key = ?2")
                .map_err(&e)?;
            for r in &batch.records {
                match r {
                    RecordChange::Put(r) => {
                        put_rec
                            .execute(params![r.table, r.key, to_json(&r.value)])
                            .map_err(&e)?;
                    }
                    RecordChange::Delete { table, key } => {
                        del_rec.execute(params![table, key]).map_err(&e)?;
                    }
                }
            }
            let mut put_hist = tx
                .prepare_cached(
                    "INSERT INTO history (noderole, from_state, to_state, cause, at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(&e)?;
            for h in &batch.history {
                put_hist
                    .execute(params![
                        h.noderole.0,
                        h.from.map(NodeRoleState::code),
                        h.to.code(),
                        to_json(&h.cause),
                        h.at.0
                    ])
                    .map_err(&e)?;
            }
        }
        let revision = revision + 1;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'revision'",
            params![revision],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(revision)
    }

    fn load_sync(conn: &mut Connection) -> Result<Snapshot, StoreError> {
        let e = db_err("load");
        let tx = conn.transaction().map_err(&e)?;
        let revision: u64 = tx
            .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                r.get(0)
            })
            .map_err(&e)?;
        fn bodies<T: serde::de::DeserializeOwned>(
            tx: &rusqlite::Transaction<'_>,
            sql: &str,
            what: &'static str,
        ) -> Result<Vec<T>, StoreError> {
            let e = db_err("load");
            let mut stmt = tx.prepare(sql).map_err(&e)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(&e)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(serde_json::from_str(&row.map_err(&e)?).map_err(corrupt(what))?);
            }
            Ok(out)
        }
        let roles: Vec<Role> = bodies(&tx, "SELECT body FROM roles ORDER BY id", "role")?;
        let deployments: Vec<Deployment> = bodies(
            &tx,
            "SELECT body FROM deployments ORDER BY id",
            "deployment",
        )?;
        let nodes: Vec<Node> = bodies(&tx, "SELECT body FROM nodes ORDER BY id", "node")?;
        let deployment_roles: Vec<DeploymentRole> =
            bodies(&tx, "SELECT body FROM deployment_roles", "deployment role")?;
        let mut noderoles = Vec::new();
        {
            let mut stmt = tx
                .prepare("SELECT body, state, run_count, cohort FROM noderoles ORDER BY id")
                .map_err(&e)?;
            let mut rows = stmt.query([]).map_err(&e)?;
            while let Some(row) = rows.next().map_err(&e)? {
                let body: String = row.get(0).map_err(&e)?;
                let mut nr: NodeRole = serde_json::from_str(&body).map_err(corrupt("noderole"))?;
                let code: i64 = row.get(1).map_err(&e)?;
                nr.state = NodeRoleState::from_code(code).ok_or(StoreError::Corrupt {
                    what: "noderole state",
                    message: format!("unknown state code {code}"),
                })?;
                nr.run_count = row.get(2).map_err(&e)?;
                nr.cohort = row.get(3).map_err(&e)?;
                noderoles.push(nr);
            }
        }
        let mut edges = Vec::new();
        {
            let mut stmt = tx.prepare("SELECT parent, child FROM edges").map_err(&e)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Edge {
                        parent: NodeRoleId(r.get(0)?),
                        child: NodeRoleId(r.get(1)?),
                    })
                })
                .map_err(&e)?;
            for row in rows {
                edges.push(row.map_err(&e)?);
            }
        }
        let mut records = Vec::new();
        {
            let mut stmt = tx
                .prepare("SELECT tbl, key, value FROM records ORDER BY tbl, key")
                .map_err(&e)?;
            let mut rows = stmt.query([]).map_err(&e)?;
            while let Some(row) = rows.next().map_err(&e)? {
                let value: String = row.get(2).map_err(&e)?;
                records.push(Record {
                    table: row.get(0).map_err(&e)?,
                    key: row.get(1).map_err(&e)?,
                    value: serde_json::from_str(&value).map_err(corrupt("record"))?,
                });
            }
        }
        Ok(Snapshot {
            revision,
            nodes,
            roles,
            deployments,
            deployment_roles,
            noderoles,
            edges,
            records,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn apply(&self, batch: Batch) -> Result<u64, StoreError> {
        self.blocking(move |conn| SqliteStore::apply_sync(conn, &batch))
            .await
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        self.blocking(SqliteStore::load_sync).await
    }

    async fn history(&self, noderole: NodeRoleId) -> Result<Vec<HistoryEntry>, StoreError> {
        self.blocking(move |conn| {
            let e = db_err("history");
            let mut stmt = conn
                .prepare_cached(
                    "SELECT from_state, to_state, cause, at FROM history
                     WHERE noderole = ?1 ORDER BY seq",
                )
                .map_err(&e)?;
            let mut rows = stmt.query(params![noderole.0]).map_err(&e)?;
            let mut out = Vec::new();
            let state = |code: i64| {
                NodeRoleState::from_code(code).ok_or(StoreError::Corrupt {
                    what: "history state",
                    message: format!("unknown state code {code}"),
                })
            };
            while let Some(row) = rows.next().map_err(&e)? {
                let from: Option<i64> = row.get(0).map_err(&e)?;
                let cause: String = row.get(2).map_err(&e)?;
                out.push(HistoryEntry {
                    noderole,
                    from: from.map(state).transpose()?,
                    to: state(row.get(1).map_err(&e)?)?,
                    cause: serde_json::from_str::<Cause>(&cause)
                        .map_err(corrupt("history cause"))?,
                    at: Timestamp(row.get(3).map_err(&e)?),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        self.blocking(|conn| {
            conn.query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db_err("revision"))
            .map(|v| v.unwrap_or(0))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_existing_refuses_missing_and_foreign_files_without_touching_them() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sqlite");
        let err = SqliteStore::open_existing(&missing).unwrap_err();
        assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
        assert!(!missing.exists(), "nothing is created");

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not a database at all, just some text").unwrap();
        let foreign = dir.path().join("other.sqlite");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        for path in [&text, &foreign] {
            let before = std::fs::read(path).unwrap();
            let err = SqliteStore::open_existing(path).unwrap_err();
            assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
            assert_eq!(
                std::fs::read(path).unwrap(),
                before,
                "{} changed",
                path.display()
            );
        }

        let ours = dir.path().join("crowbar.sqlite");
        drop(SqliteStore::open(&ours).unwrap());
        let store = SqliteStore::open_existing(&ours).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn migrates_an_old_file_and_refuses_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        {
            let mut conn = Connection::open(&path).unwrap();
            SqliteStore::migrate(&mut conn, 1).unwrap();
            let v: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(v, 1);
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        drop(store);
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        match SqliteStore::open(&path) {
            Err(StoreError::SchemaTooNew { found, known }) => {
                assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }
}
