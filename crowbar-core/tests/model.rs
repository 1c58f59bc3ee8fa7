//! Hooks, data layering, history causes and bad input at the model boundary.

use std::sync::{Arc, Mutex};

use crowbar_core::{
    Bootenv, Cause, Cluster, CoreError, HookError, MemStore, NodeId, NodeRoleId, NodeRoleState,
    NodeSpec, RoleFlag, RoleHooks, RoleSpec, RunResult, Store,
};
use serde_json::json;

/// Records every hook call as a line.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    refuse_proposed: bool,
}

impl Recorder {
    fn log(&self, c: &Cluster, hook: &str, nr: NodeRoleId) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("{hook} {}", c.label(nr)));
    }

    fn log_node(&self, c: &Cluster, hook: &str, node: NodeId) {
        let name = c.node(node).map_or("?".into(), |n| n.alias.clone());
        self.calls.lock().unwrap().push(format!("{hook} {name}"));
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }
}

impl RoleHooks for Recorder {
    fn on_proposed(&self, c: &mut Cluster, nr: NodeRoleId) -> Result<(), HookError> {
        self.log(c, "on_proposed", nr);
        if self.refuse_proposed {
            return Err(HookError::new("no addresses left"));
        }
        // What a network role does: write sysdata in the same transaction.
        c.set_sysdata(nr, json!({"address": "10.0.0.5"}))
            .map_err(|e| HookError::new(e.to_string()))
    }
    fn on_todo(&self, c: &mut Cluster, nr: NodeRoleId) -> Result<(), HookError> {
        self.log(c, "on_todo", nr);
        Ok(())
    }
    fn on_transition(&self, c: &mut Cluster, nr: NodeRoleId) -> Result<(), HookError> {
        self.log(c, "on_transition", nr);
        Ok(())
    }
    fn on_active(&self, c: &mut Cluster, nr: NodeRoleId) -> Result<(), HookError> {
        self.log(c, "on_active", nr);
        Ok(())
    }
    fn on_error(&self, c: &mut Cluster, nr: NodeRoleId) -> Result<(), HookError> {
        self.log(c, "on_error", nr);
        Ok(())
    }
    fn on_blocked(&self, c: &mut Cluster, nr: NodeRoleId) -> Result<(), HookError> {
        self.log(c, "on_blocked", nr);
        Ok(())
    }
    fn on_node_create(&self, c: &mut Cluster, node: NodeId) -> Result<(), HookError> {
        self.log_node(c, "on_node_create", node);
        Ok(())
    }
    fn on_node_change(&self, c: &mut Cluster, node: NodeId) -> Result<(), HookError> {
        self.log_node(c, "on_node_change", node);
        Ok(())
    }
    fn on_node_delete(&self, c: &mut Cluster, node: NodeId) -> Result<(), HookError> {
        self.log_node(c, "on_node_delete", node);
        Ok(())
    }
    fn on_deployment_create(
        &self,
        c: &mut Cluster,
        deployment: crowbar_core::DeploymentId,
        role: crowbar_core::RoleId,
    ) -> Result<(), HookError> {
        let d = c.deployment(deployment).unwrap().name.clone();
        let r = c.role(role).unwrap().name.clone();
        self.calls
            .lock()
            .unwrap()
            .push(format!("on_deployment_create {r} in {d}"));
        Ok(())
    }
}

#[test]
fn every_hook_fires_when_the_reference_says() {
    let mut c = Cluster::new();
    let rec = Arc::new(Recorder::default());
    c.register_hooks("watched", rec.clone());
    c.create_role(RoleSpec::new("parent")).unwrap();
    c.create_role(RoleSpec::new("watched").requires(["parent"]))
        .unwrap();
    c.create_role(RoleSpec::new("child").requires(["watched"]))
        .unwrap();
    let n = c
        .create_node(NodeSpec::new("n1.example.com").alive(true))
        .unwrap();
    c.set_node_bootenv(n, Bootenv::Local).unwrap(); // not available: no on_node_change
    let child = c.bind_by_name("child", "n1", None).unwrap();
    let watched = c.parents(child)[0];
    let parent = c.parents(watched)[0];
    assert_eq!(
        rec.take(),
        vec![
            "on_node_create n1",
            "on_deployment_create watched in system",
            "on_proposed watched@n1"
        ]
    );
    assert_eq!(
        *c.noderole(watched).unwrap().sysdata,
        json!({"address": "10.0.0.5"}),
        "what a hook writes lands with the operation"
    );
    c.commit_node(n).unwrap(); // now available
    assert_eq!(
        rec.take(),
        vec!["on_node_change n1", "on_blocked watched@n1"]
    );
    c.start_run(parent).unwrap();
    c.finish_run(
        parent,
        RunResult::Succeeded {
            wall: None,
            runlog: String::new(),
        },
    )
    .unwrap();
    assert_eq!(rec.take(), vec!["on_todo watched@n1"]);
    c.start_run(watched).unwrap();
    c.finish_run(
        watched,
        RunResult::Failed {
            message: "x".into(),
            runlog: String::new(),
        },
    )
    .unwrap();
    assert_eq!(
        rec.take(),
        vec!["on_transition watched@n1", "on_error watched@n1"]
    );
    c.retry(watched, Cause::Retry).unwrap();
    c.start_run(watched).unwrap();
    c.finish_run(
        watched,
        RunResult::Succeeded {
            wall: None,
            runlog: String::new(),
        },
    )
    .unwrap();
    assert_eq!(
        rec.take(),
        vec![
            "on_todo watched@n1",
            "on_transition watched@n1",
            "on_active watched@n1"
        ]
    );
    // Bulk-blocked descendants get no hook: fail the parent.
    c.start_run(parent).unwrap();
    c.finish_run(
        parent,
        RunResult::Failed {
            message: "x".into(),
            runlog: String::new(),
        },
    )
    .unwrap();
    assert_eq!(c.noderole(watched).unwrap().state, NodeRoleState::Blocked);
    assert_eq!(rec.take(), Vec::<String>::new());
    c.delete_node(n).unwrap();
    assert_eq!(rec.take(), vec!["on_node_delete n1"]);
}

/// Makes `network-admin` (implicit) refuse every proposal through a hook, and `os` require it:
/// binding `os` is then refused and rolled back.
fn refuse_network_admin(c: &mut Cluster) {
    c.register_hooks(
        "network-admin",
        Arc::new(Recorder {
            refuse_proposed: true,
            ..Recorder::default()
        }),
    );
    c.create_role(RoleSpec::new("network-admin").flag(RoleFlag::Implicit))
        .unwrap();
    c.create_role(RoleSpec::new("os").requires(["network-admin"]))
        .unwrap();
}

#[test]
fn a_failing_hook_rolls_the_whole_bind_back() {
    let mut c = Cluster::new();
    refuse_network_admin(&mut c);
    c.create_node(NodeSpec::new("n1.example.com")).unwrap();
    c.take_batch();
    let err = c.bind_by_name("os", "n1", None).unwrap_err();
    assert_eq!(
        err,
        CoreError::Hook {
            role: "network-admin".into(),
            hook: "on_proposed",
            message: "no addresses left".into()
        }
    );
    assert_eq!(
        c.noderole_count(),
        0,
        "no noderole survives the refused bind"
    );
    assert!(!c.has_pending(), "nothing to persist");
}

/// Refuses every state change to ACTIVE.
struct RefuseActive;

impl RoleHooks for RefuseActive {
    fn on_active(&self, _: &mut Cluster, _: NodeRoleId) -> Result<(), HookError> {
        Err(HookError::new("not today"))
    }
}

#[test]
fn a_refused_finish_leaves_state_run_count_and_runlog_as_they_were() {
    let mut c = Cluster::new();
    c.register_hooks("db", Arc::new(RefuseActive));
    c.create_role(RoleSpec::new("os").flag(RoleFlag::Implicit))
        .unwrap();
    c.create_role(RoleSpec::new("db").requires(["os"])).unwrap();
    let n = c
        .create_node(NodeSpec::new("n1.example.com").alive(true))
        .unwrap();
    let db = c.bind_by_name("db", "n1", None).unwrap();
    c.commit_node(n).unwrap();
    let os = c.parents(db)[0];
    c.start_run(os).unwrap();
    let ok = |log: &str| RunResult::Succeeded {
        wall: Some(json!({"done": true})),
        runlog: log.into(),
    };
    c.finish_run(os, ok("os is up")).unwrap();
    c.start_run(db).unwrap();
    c.take_batch();
    let before = c.noderole(db).unwrap().to_row();
    let err = c.finish_run(db, ok("db is up")).unwrap_err();
    assert!(
        matches!(
            err,
            CoreError::Hook {
                hook: "on_active",
                ..
            }
        ),
        "{err}"
    );
    let after = c.noderole(db).unwrap();
    assert_eq!(after.to_row(), before, "the row is as it was");
    assert_eq!(after.state, NodeRoleState::Transition);
    assert_eq!((after.run_count, after.runlog), (0, ""));
    c.check_consistency().unwrap();
    assert!(!c.has_pending());

    // The facts read through `brief`, the view and the owned row agree for every noderole.
    for nr in c.noderoles() {
        let b = c.brief(nr.id).unwrap();
        let row = nr.to_row();
        assert_eq!(
            (b.node, b.role, b.deployment, b.state, b.cohort, b.run_count),
            (
                row.node,
                row.role,
                row.deployment,
                row.state,
                row.cohort,
                row.run_count
            )
        );
        assert_eq!((row.runlog.as_str(), &row.wall), (nr.runlog, nr.wall));
    }
    let os_row = c.noderole(os).unwrap();
    assert_eq!((os_row.run_count, os_row.runlog), (1, "os is up"));
    assert_eq!(*os_row.wall, json!({"done": true}));
    assert_eq!(c.brief(NodeRoleId(999)), None);
}

#[test]
fn run_data_layers_template_deployment_role_own_data_then_parent_walls() {
    let mut c = Cluster::new();
    c.create_role(RoleSpec::new("far").template(json!({"k": "far-template"})))
        .unwrap();
    c.create_role(RoleSpec::new("near").requires(["far"]))
        .unwrap();
    c.create_role(RoleSpec::new("remote")).unwrap();
    c.create_role(
        RoleSpec::new("app")
            .requires(["near", "remote"])
            .template(json!({"k": "template", "t": 1, "nested": {"a": 1, "b": 1}})),
    )
    .unwrap();
    let n1 = c
        .create_node(NodeSpec::new("n1.example.com").alive(true))
        .unwrap();
    let n2 = c
        .create_node(NodeSpec::new("n2.example.com").alive(true))
        .unwrap();
    let remote = c.bind_by_name("remote", "n2", None).unwrap();
    let app = c.bind_by_name("app", "n1", None).unwrap();
    let app_role = c.find_role("app").unwrap();
    let near = c.parents(app)[0];
    let far = c.parents(near)[0];
    c.set_deployment_role_data(
        crowbar_core::SYSTEM_DEPLOYMENT,
        app_role,
        json!({"k": "deployment", "d": 2, "nested": {"b": 2, "c": 2}}),
    )
    .unwrap();
    c.set_noderole_data(app, json!({"k": "own", "o": 3, "nested": {"c": 3}}))
        .unwrap();
    c.set_wall(far, json!({"k": "far-wall", "w": "far", "fw": 1}))
        .unwrap();
    c.set_wall(near, json!({"k": "near-wall", "w": "near"}))
        .unwrap();
    c.set_wall(remote, json!({"r": "remote"})).unwrap();
    c.commit_node(n1).unwrap();
    c.commit_node(n2).unwrap();
    assert_eq!(
        c.run_data(app).unwrap(),
        json!({
            "t": 1, "d": 2, "o": 3,
            "nested": {"a": 1, "b": 2, "c": 3},
            "fw": 1, "r": "remote",
            // near has a higher cohort than far, so it wins; the walls win over own data.
            "k": "near-wall", "w": "near"
        })
    );
    // The far parent's own template is not part of app's data: only walls travel down.
    assert_ne!(c.run_data(app).unwrap()["k"], "far-template");
}

#[tokio::test]
async fn bad_input_is_a_typed_error_and_the_store_is_unchanged() {
    let store = MemStore::new();
    let mut c = Cluster::new();
    c.create_role(RoleSpec::new("a")).unwrap();
    c.create_role(RoleSpec::new("b").requires(["a"])).unwrap();
    c.create_node(NodeSpec::new("n1.example.com")).unwrap();
    let nr = c.bind_by_name("b", "n1", None).unwrap();
    c.commit_noderole(nr).unwrap();
    store.apply(c.take_batch()).await.unwrap();
    let before = store.load().await.unwrap();

    let errors = [
        c.create_node(NodeSpec::new("not a name")).unwrap_err(),
        c.bind_by_name("nope", "n1", None).unwrap_err(),
        c.create_role(RoleSpec::new("c").requires(["c"]))
            .unwrap_err(),
        c.set_noderole_data(nr, json!({"x": 1})).unwrap_err(),
        c.create_node(NodeSpec::new("n2.example.com").hint(json!([1])))
            .unwrap_err(),
        c.retry(nr, Cause::Operator).unwrap_err(),
    ];
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        vec![
            "invalid FQDN \"not a name\": needs at least three labels (host.domain.tld)",
            "unknown role \"nope\"",
            "requirement makes the role graph cyclic: c -> c",
            "noderole#2: data can only be edited while PROPOSED, it is BLOCKED",
            "node hint must be a JSON object",
            "noderole#2: cannot retry from BLOCKED: not all parents are ACTIVE",
        ]
    );
    assert!(!c.has_pending());
    store.apply(c.take_batch()).await.unwrap();
    let after = store.load().await.unwrap();
    assert_eq!(
        crowbar_core::conformance::describe(&after),
        crowbar_core::conformance::describe(&before)
    );
}

/// A node `n1` with `top` bound (requiring `base`, implicit): the node and the two noderoles.
fn base_and_top() -> (Cluster, NodeId, NodeRoleId, NodeRoleId) {
    let mut c = Cluster::new();
    c.create_role(RoleSpec::new("base").flag(RoleFlag::Implicit))
        .unwrap();
    c.create_role(RoleSpec::new("top").requires(["base"]))
        .unwrap();
    let top = c.find_role("top").unwrap();
    let node = c
        .create_node(NodeSpec::new("n1.example.com").alive(true))
        .unwrap();
    c.bind(top, node, None).unwrap();
    let base_nr = c.noderole_for(c.find_role("base").unwrap(), node).unwrap();
    let top_nr = c.noderole_for(top, node).unwrap();
    (c, node, base_nr, top_nr)
}

/// The change journal names every noderole whose state or runnability changed, each once per
/// take, and nothing while it is off.
#[test]
fn the_change_journal_names_what_changed_once() {
    use crowbar_core::Changes;
    let (mut c, node, base_nr, top_nr) = base_and_top();
    let mut changes = Changes::default();
    c.take_changes(&mut changes);
    assert!(changes.is_empty(), "off by default: {changes:?}");

    c.track_changes(true);
    c.commit_node(node).unwrap();
    c.take_changes(&mut changes);
    let mut seen = changes.noderoles.clone();
    seen.sort();
    assert_eq!(seen, [base_nr, top_nr]);
    assert!(!c.has_changes());

    // Two transitions of one noderole and the child they unblock: each listed once.
    c.start_run(base_nr).unwrap();
    let done = RunResult::Succeeded {
        wall: None,
        runlog: String::new(),
    };
    c.finish_run(base_nr, done).unwrap();
    c.take_changes(&mut changes);
    assert_eq!(changes.noderoles, [base_nr, top_nr]);
    assert_eq!(c.noderole(top_nr).unwrap().state, NodeRoleState::Todo);

    // A node flag change names the node; a refused operation may leave entries, never lose one.
    c.set_node_available(node, false).unwrap();
    assert!(c.start_run(top_nr).is_ok());
    assert!(c.retry(top_nr, Cause::Operator).is_err());
    c.take_changes(&mut changes);
    assert_eq!(changes.nodes, [node]);
    assert_eq!(changes.noderoles, [top_nr]);
    c.check_consistency().unwrap();

    c.track_changes(false);
    c.set_node_available(node, true).unwrap();
    assert!(!c.has_changes());
}

/// A follower's quiet start and finish journal nothing on the lean path (the finish hands back
/// the child it unblocked); with a hook registered they take the general path and journal as
/// `start_run` and `finish_run` do.
#[test]
fn quiet_starts_and_finishes_leave_the_journal_to_the_follower() {
    use crowbar_core::Changes;
    let done = || RunResult::Succeeded {
        wall: None,
        runlog: String::new(),
    };
    for hooked in [false, true] {
        let (mut c, node, base_nr, top_nr) = base_and_top();
        if hooked {
            c.register_hooks("base", Arc::new(Recorder::default()));
        }
        c.track_changes(true);
        c.commit_node(node).unwrap();
        let mut changes = Changes::default();
        c.take_changes(&mut changes);
        c.take_batch();

        assert_eq!(c.start_run_quietly(base_nr).unwrap(), !hooked);
        assert_eq!(
            c.noderole(base_nr).unwrap().state,
            NodeRoleState::Transition
        );
        c.take_changes(&mut changes);
        let journaled: &[NodeRoleId] = if hooked { &[base_nr] } else { &[] };
        assert_eq!(changes.noderoles, journaled, "hooked: {hooked}");

        let mut unblocked = Vec::new();
        assert_eq!(
            c.finish_run_quietly(base_nr, done(), &mut unblocked)
                .unwrap(),
            !hooked
        );
        assert_eq!(c.noderole(base_nr).unwrap().state, NodeRoleState::Active);
        assert_eq!(c.noderole(top_nr).unwrap().state, NodeRoleState::Todo);
        c.take_changes(&mut changes);
        if hooked {
            assert!(unblocked.is_empty());
            assert_eq!(changes.noderoles, [top_nr, base_nr]);
        } else {
            assert_eq!(unblocked, [top_nr]);
            assert!(changes.noderoles.is_empty(), "{changes:?}");
        }
        // Both paths record the same history and batch.
        let batch = c.take_batch();
        let steps: Vec<_> = batch
            .history
            .iter()
            .filter(|h| h.noderole == base_nr || h.noderole == top_nr)
            .map(|h| (h.noderole, h.to))
            .collect();
        assert_eq!(
            steps,
            [
                (base_nr, NodeRoleState::Transition),
                (base_nr, NodeRoleState::Active),
                (top_nr, NodeRoleState::Todo),
            ],
            "hooked: {hooked}"
        );
        c.check_consistency().unwrap();
    }
}

/// A bind rolled back takes its noderoles out of the change journal with their slots: the id,
/// made again by the next bind, is listed once.
#[test]
fn a_rolled_back_bind_leaves_no_journal_entry_behind() {
    use crowbar_core::Changes;
    let mut c = Cluster::new();
    refuse_network_admin(&mut c);
    c.create_role(RoleSpec::new("plain")).unwrap();
    c.create_node(NodeSpec::new("n1.example.com")).unwrap();
    c.track_changes(true);
    c.bind_by_name("os", "n1", None).unwrap_err();
    let mut changes = Changes::default();
    c.take_changes(&mut changes);
    assert!(changes.noderoles.is_empty(), "{changes:?}");

    let plain = c.bind_by_name("plain", "n1", None).unwrap();
    c.take_changes(&mut changes);
    assert_eq!(changes.noderoles, [plain]);
    c.check_consistency().unwrap();
}

/// Without hooks a start and a finish apply with no undo log (nothing can refuse them once
/// checked): what the check refuses must then leave nothing behind, and the undo log must be
/// back for the operations after them, which hooks can refuse.
#[test]
fn a_finish_refused_by_its_check_changes_nothing_and_the_undo_log_comes_back() {
    let (mut c, node, base_nr, _) = base_and_top();
    c.commit_node(node).unwrap();
    c.start_run(base_nr).unwrap();
    c.take_batch();
    let before = c.noderole(base_nr).unwrap().to_row();
    let not_an_object = RunResult::Succeeded {
        wall: Some(json!(["not", "an", "object"])),
        runlog: "done".into(),
    };
    let err = c.finish_run(base_nr, not_an_object).unwrap_err();
    assert!(matches!(err, CoreError::NotAnObject { .. }), "{err}");
    assert_eq!(c.noderole(base_nr).unwrap().to_row(), before);
    assert!(!c.has_pending(), "nothing to persist");

    c.finish_run(
        base_nr,
        RunResult::Succeeded {
            wall: Some(json!({"kernel": "6.1"})),
            runlog: "done".into(),
        },
    )
    .unwrap();
    let done = c.noderole(base_nr).unwrap().to_row();
    assert_eq!((done.state, done.run_count), (NodeRoleState::Active, 1));
    assert_eq!(*c.noderole(base_nr).unwrap().wall, json!({"kernel": "6.1"}));
    c.take_batch();

    // A bind refused by a hook after those runs is rolled back whole: its steps were logged.
    refuse_network_admin(&mut c);
    c.take_batch();
    let count = c.noderole_count();
    assert!(c.bind_by_name("os", "n1", None).is_err());
    assert_eq!(
        c.noderole_count(),
        count,
        "the refused bind left no noderole"
    );
    assert!(!c.has_pending(), "nor anything to persist");
    assert_eq!(c.noderole(base_nr).unwrap().to_row(), done);
    c.check_consistency().unwrap();
}

#[test]
fn issue_23_provided_and_conflicting_roles_are_distinct_errors() {
    let mut c = Cluster::new();
    c.create_role(RoleSpec::new("web").provides(["http"]))
        .unwrap();
    c.create_role(RoleSpec::new("nginx").provides(["http"]))
        .unwrap();
    c.create_role(RoleSpec::new("apache").conflicts(["web"]))
        .unwrap();
    c.create_role(RoleSpec::new("php").provides(["web"]))
        .unwrap();
    c.create_role(RoleSpec::new("http")).unwrap();
    let n = c.create_node(NodeSpec::new("n1.example.com")).unwrap();
    c.bind(c.find_role("web").unwrap(), n, None).unwrap();
    let bind = |c: &mut Cluster, role: &str| {
        let r = c.find_role(role).unwrap();
        c.bind(r, n, None).unwrap_err()
    };
    let node = "n1.example.com".to_owned();
    assert_eq!(
        bind(&mut c, "apache"),
        CoreError::Conflict {
            role: "apache".into(),
            node: node.clone(),
            existing: "web".into()
        }
    );
    // Both provide "http".
    let both = bind(&mut c, "nginx");
    assert_eq!(
        both,
        CoreError::AlreadyProvided {
            role: "nginx".into(),
            node: node.clone(),
            existing: "web".into(),
            provided: "http".into(),
        }
    );
    // The new role provides the existing one's name.
    assert_eq!(
        bind(&mut c, "php"),
        CoreError::AlreadyProvided {
            role: "php".into(),
            node: node.clone(),
            existing: "web".into(),
            provided: "web".into(),
        }
    );
    // The existing role provides the new one's name.
    assert_eq!(
        bind(&mut c, "http"),
        CoreError::AlreadyProvided {
            role: "http".into(),
            node,
            existing: "web".into(),
            provided: "http".into(),
        }
    );
    assert_eq!(
        both.to_string(),
        "role \"nginx\" cannot join role \"web\" on node n1.example.com: both stand for \"http\""
    );
}

#[test]
fn issue_23_typed_hints_keep_crowbars_keys() {
    use crowbar_core::NodeHints;
    let mut c = Cluster::new();
    let hints = NodeHints::new()
        .with_admin_mac("52:54:00:12:34:56")
        .with_admin_mac("52:54:00:12:34:56")
        .with_v4addr("admin", "192.168.124.83".parse().unwrap())
        .with_v6addr("storage", "fd00::9".parse().unwrap());
    let n = c
        .create_node(NodeSpec::new("d1.example.com").hints(hints))
        .unwrap();
    assert_eq!(
        c.node(n).unwrap().hint,
        json!({
            "admin_macs": ["52:54:00:12:34:56"],
            "admin-v4addr": "192.168.124.83",
            "storage-v6addr": "fd00::9",
        })
    );
    // Data stored before typed hints (a prefix length, an unknown key) still reads.
    let old = c
        .create_node(NodeSpec::new("d2.example.com").hint(json!({
            "admin-v4addr": "192.168.124.84/24",
            "admin_macs": ["52:54:00:00:00:01", 7],
            "rack": "r4",
        })))
        .unwrap();
    let view = c.node(old).unwrap().hints();
    assert_eq!(
        view.v4addr("admin"),
        Some("192.168.124.84".parse().unwrap())
    );
    assert_eq!(view.admin_macs().collect::<Vec<_>>(), ["52:54:00:00:00:01"]);
    assert_eq!(
        view.management_address(),
        Some("192.168.124.84".parse().unwrap())
    );
    c.update_node_hints(old, |h| h.set_address("10.0.0.4".parse().unwrap()))
        .unwrap();
    let node = c.node(old).unwrap();
    assert_eq!(node.hint["rack"], "r4", "unknown keys are kept");
    assert_eq!(
        node.hints().management_address(),
        Some("10.0.0.4".parse().unwrap())
    );
}

#[test]
fn issue_23_node_spec_builds_discovery_data() {
    let mut c = Cluster::new();
    let n = c
        .create_node(
            NodeSpec::new("d1.example.com")
                .discovery(json!({"ohai": {"dmi": {"system": {"product_name": "R720"}}}}))
                .discovered_interface("eth0", "52:54:00:12:34:56"),
        )
        .unwrap();
    let d = &c.node(n).unwrap().discovery;
    assert_eq!(d["ohai"]["dmi"]["system"]["product_name"], "R720");
    assert_eq!(
        d["ohai"]["network"]["interfaces"]["eth0"]["addresses"]["52:54:00:12:34:56"],
        json!({"family": "lladdr"})
    );
}

#[test]
fn issue_23_a_refused_transaction_undoes_every_step() {
    let mut c = Cluster::new();
    c.take_batch();
    let r: Result<(), CoreError> = c.transaction(|c| {
        let n = c.create_node(NodeSpec::new("a.example.com"))?;
        c.set_node_alive(n, true)?;
        c.create_role(RoleSpec::new("9bad"))?;
        Ok(())
    });
    assert!(matches!(r, Err(CoreError::InvalidName { .. })));
    assert_eq!(c.nodes().count(), 0);
    assert!(!c.has_pending());
    c.check_consistency().unwrap();
}
