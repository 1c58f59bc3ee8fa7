//! The scheduling core's rules, data-driven: a compact topology and a script of events, the
//! whole output (runs started, every state change with its cause, answers) compared with
//! expect-test. Run with `UPDATE_EXPECT=1` to see a changed output in full.
//!
//! Topology lines: `role NAME [requires=A,B] [implicit] [destructive] [retry=N/BACKOFF/MAX] [timeout=MS]`,
//! `node ALIAS [dead] [unavailable]`, `bind ROLE ALIAS`, `commit ALIAS`, `cap N`.
//! Events: `ready` (start what may start), `ok LABEL`, `fail LABEL [retryable]`,
//! `time MS` (advance and tick), `kill ALIAS`, `revive ALIAS`, `retry LABEL`, `status`,
//! `explain LABEL`, `plan`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use crowbar_anneal::{Annealer, AnnealerConfig, PlanScope, RunId};
use crowbar_core::{
    Cluster, ManualClock, NodeRoleId, NodeSpec, RetryPolicy, RoleFlag, RoleSpec, Timestamp,
};
use crowbar_jig::{JigError, JigOutput};
use expect_test::{Expect, expect};

struct World {
    annealer: Annealer,
    clock: Arc<ManualClock>,
    runs: BTreeMap<String, RunId>,
    out: String,
}

impl World {
    fn label(&self, id: NodeRoleId) -> String {
        self.annealer.cluster().label(id)
    }

    fn find(&self, label: &str) -> NodeRoleId {
        let (role, node) = label.split_once('@').expect("role@node");
        let c = self.annealer.cluster();
        let r = c.find_role(role).expect("role");
        let n = c.find_node(node).expect("node");
        c.noderole_for(r, n).expect("noderole")
    }

    fn now(&self) -> Timestamp {
        use crowbar_core::Clock;
        self.clock.now()
    }

    fn step(&mut self) {
        loop {
            let now = self.now();
            let ready = self.annealer.ready(now);
            if ready.is_empty() {
                break;
            }
            for h in &ready.batch.history {
                let from = h.from.map_or("-", |s| s.name());
                let _ = writeln!(
                    self.out,
                    "  {:<16} {:>10} -> {:<10} ({})",
                    self.label(h.noderole),
                    from,
                    h.to.name(),
                    h.cause
                );
            }
            for c in &ready.cancels {
                let _ = writeln!(
                    self.out,
                    "  cancel {} ({:?})",
                    self.label(c.noderole),
                    c.reason
                );
                self.runs.retain(|_, r| *r != c.run);
            }
            for r in &ready.runs {
                let label = self.label(r.noderole);
                let deadline = r
                    .deadline
                    .map(|d| format!(" until {}", d.0))
                    .unwrap_or_default();
                let before = match r.run_count {
                    0 => String::new(),
                    n => format!(" after {n} run(s)"),
                };
                let _ = writeln!(
                    self.out,
                    "  start {label} attempt {}{before}{deadline}",
                    r.attempt
                );
                self.runs.insert(label, r.run);
            }
            self.annealer.advance();
        }
    }
}

fn check(script: &str, expected: Expect) {
    let clock = Arc::new(ManualClock::new(Timestamp(0)));
    let mut cluster = Cluster::with_clock(clock.clone());
    let mut cap = 10;
    let mut lines = script.lines().map(str::trim).filter(|l| !l.is_empty());
    // Topology, up to the first event.
    let mut events = Vec::new();
    for line in lines.by_ref() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[0] {
            "role" => {
                let mut spec = RoleSpec::new(words[1]);
                for w in &words[2..] {
                    if let Some(r) = w.strip_prefix("requires=") {
                        spec = spec.requires(r.split(','));
                    } else if *w == "implicit" {
                        spec = spec.flag(RoleFlag::Implicit);
                    } else if *w == "destructive" {
                        spec = spec.flag(RoleFlag::Destructive);
                    } else if let Some(r) = w.strip_prefix("retry=") {
                        let n: Vec<u64> = r.split('/').map(|x| x.parse().unwrap()).collect();
                        spec = spec.retry(RetryPolicy {
                            max_retries: n[0] as u32,
                            backoff_ms: n[1],
                            max_backoff_ms: n[2],
                        });
                    } else if let Some(t) = w.strip_prefix("timeout=") {
                        spec = spec.timeout_ms(t.parse().unwrap());
                    } else {
                        panic!("unknown role option {w}");
                    }
                }
                cluster.create_role(spec).unwrap();
            }
            "node" => {
                let mut spec = NodeSpec::new(format!("{}.example.com", words[1])).alive(true);
                for w in &words[2..] {
                    match *w {
                        "dead" => spec = spec.alive(false),
                        "unavailable" => spec = spec.available(false),
                        _ => panic!("unknown node option {w}"),
                    }
                }
                cluster.create_node(spec).unwrap();
            }
            "bind" => {
                cluster.bind_by_name(words[1], words[2], None).unwrap();
            }
            "commit" => {
                let n = cluster.find_node(words[1]).unwrap();
                cluster.commit_node(n).unwrap();
                if line.ends_with("unavailable") {
                    cluster.set_node_available(n, false).unwrap();
                }
            }
            "cap" => cap = words[1].parse().unwrap(),
            _ => {
                events.push(line.to_owned());
                break;
            }
        }
    }
    events.extend(lines.map(str::to_owned));
    let annealer = Annealer::new(cluster, AnnealerConfig::with_max_running(cap)).unwrap();
    let mut w = World {
        annealer,
        clock,
        runs: BTreeMap::new(),
        out: String::new(),
    };
    // The commit's own changes come out with the first step.
    w.out.push_str("(start)\n");
    w.step();
    for line in events {
        let words: Vec<&str> = line.split_whitespace().collect();
        let _ = writeln!(w.out, "{line}");
        let now = w.now();
        match words[0] {
            "ready" => {}
            "ok" | "fail" => {
                let run = w.runs.remove(words[1]).expect("a run of that label");
                let outcome = if words[0] == "ok" {
                    Ok(JigOutput::empty())
                } else {
                    Err(JigError::failed("boom", words.get(2) == Some(&"retryable")))
                };
                let f = w.annealer.handle_run_finished(run, outcome, now);
                let _ = writeln!(w.out, "  = {f:?}");
            }
            "time" => {
                w.clock.advance(words[1].parse().unwrap());
                let now = w.now();
                w.annealer.handle_tick(now);
            }
            "kill" | "revive" => {
                let n = w.annealer.cluster().find_node(words[1]).unwrap();
                w.annealer
                    .handle_node_alive(n, words[0] == "revive")
                    .unwrap();
            }
            "retry" => {
                let id = w.find(words[1]);
                let r = w.annealer.handle_retry(id);
                let _ = writeln!(w.out, "  = {:?}", r.map_err(|e| e.to_string()));
            }
            "status" => {
                let _ = writeln!(w.out, "  = {}", w.annealer.status());
            }
            "explain" => {
                let id = w.find(words[1]);
                let e = w.annealer.explain(id).unwrap();
                for l in e.to_string().lines() {
                    let _ = writeln!(w.out, "  | {l}");
                }
            }
            "plan" => {
                let plan = w.annealer.plan(PlanScope::Everything);
                for r in &plan.runs {
                    let _ = writeln!(w.out, "  wave {} {}", r.wave, w.label(r.noderole));
                }
                for s in &plan.stuck {
                    let _ = writeln!(w.out, "  stuck {} {:?}", w.label(s.noderole), s.reason);
                }
            }
            other => panic!("unknown event {other}"),
        }
        w.step();
        // The core's queues, heads, runs and retries, recomputed from the model, agree with
        // what it kept step by step.
        if let Err(e) = w.annealer.check_consistency() {
            panic!("after `{line}`: {e}\n{}", w.out);
        }
    }
    expected.assert_eq(&w.out);
}

#[test]
fn a_chain_runs_in_cohort_order_one_run_per_node() {
    check(
        "role a implicit
         role b requires=a implicit
         role c requires=b
         node n1
         node n2
         bind c n1
         bind c n2
         commit n1
         commit n2
         ready
         status
         explain b@n1
         ok a@n1
         ok a@n2
         ok b@n2
         ok b@n1
         ok c@n1
         ok c@n2
         status",
        expect![[r#"
            (start)
              a@n1                      - -> PROPOSED   (bind)
              b@n1                      - -> PROPOSED   (bind)
              c@n1                      - -> PROPOSED   (bind)
              a@n2                      - -> PROPOSED   (bind)
              b@n2                      - -> PROPOSED   (bind)
              c@n2                      - -> PROPOSED   (bind)
              a@n1               PROPOSED -> TODO       (commit)
              b@n1               PROPOSED -> BLOCKED    (commit)
              c@n1               PROPOSED -> BLOCKED    (commit)
              a@n2               PROPOSED -> TODO       (commit)
              b@n2               PROPOSED -> BLOCKED    (commit)
              c@n2               PROPOSED -> BLOCKED    (commit)
              a@n1                   TODO -> TRANSITION (jig started)
              a@n2                   TODO -> TRANSITION (jig started)
              start a@n1 attempt 1
              start a@n2 attempt 1
            ready
            status
              = working
            explain b@n1
              | b@n1 (noderole#2) is BLOCKED
              |   - parent noderole#1 is TRANSITION
              |   - node#1 is held by noderole#1 (TRANSITION)
            ok a@n1
              = Succeeded
              a@n1             TRANSITION -> ACTIVE     (jig succeeded)
              b@n1                BLOCKED -> TODO       (parent noderole#1 active)
              b@n1                   TODO -> TRANSITION (jig started)
              start b@n1 attempt 1
            ok a@n2
              = Succeeded
              a@n2             TRANSITION -> ACTIVE     (jig succeeded)
              b@n2                BLOCKED -> TODO       (parent noderole#4 active)
              b@n2                   TODO -> TRANSITION (jig started)
              start b@n2 attempt 1
            ok b@n2
              = Succeeded
              b@n2             TRANSITION -> ACTIVE     (jig succeeded)
              c@n2                BLOCKED -> TODO       (parent noderole#5 active)
              c@n2                   TODO -> TRANSITION (jig started)
              start c@n2 attempt 1
            ok b@n1
              = Succeeded
              b@n1             TRANSITION -> ACTIVE     (jig succeeded)
              c@n1                BLOCKED -> TODO       (parent noderole#2 active)
              c@n1                   TODO -> TRANSITION (jig started)
              start c@n1 attempt 1
            ok c@n1
              = Succeeded
              c@n1             TRANSITION -> ACTIVE     (jig succeeded)
            ok c@n2
              = Succeeded
              c@n2             TRANSITION -> ACTIVE     (jig succeeded)
            status
              = finished
        "#]],
    );
}

#[test]
fn an_error_bulk_blocks_descendants_across_nodes_and_freezes_its_node() {
    check(
        "role server
         role client requires=server
         role ntp
         role late
         node s
         node c1
         node c2
         bind server s
         bind ntp s
         bind client c1
         bind client c2
         commit s
         commit c1
         commit c2
         ok server@s
         ok client@c1
         ok ntp@s
         retry server@s
         fail server@s
         ok client@c2
         status
         explain client@c1
         explain server@s
         retry server@s
         ok server@s
         ok client@c1
         status",
        expect![[r#"
            (start)
              server@s                  - -> PROPOSED   (bind)
              ntp@s                     - -> PROPOSED   (bind)
              client@c1                 - -> PROPOSED   (bind)
              client@c2                 - -> PROPOSED   (bind)
              server@s           PROPOSED -> TODO       (commit)
              ntp@s              PROPOSED -> TODO       (commit)
              client@c1          PROPOSED -> BLOCKED    (commit)
              client@c2          PROPOSED -> BLOCKED    (commit)
              server@s               TODO -> TRANSITION (jig started)
              start server@s attempt 1
            ok server@s
              = Succeeded
              server@s         TRANSITION -> ACTIVE     (jig succeeded)
              client@c1           BLOCKED -> TODO       (parent noderole#1 active)
              client@c2           BLOCKED -> TODO       (parent noderole#1 active)
              ntp@s                  TODO -> TRANSITION (jig started)
              client@c1              TODO -> TRANSITION (jig started)
              client@c2              TODO -> TRANSITION (jig started)
              start ntp@s attempt 1
              start client@c1 attempt 1
              start client@c2 attempt 1
            ok client@c1
              = Succeeded
              client@c1        TRANSITION -> ACTIVE     (jig succeeded)
            ok ntp@s
              = Succeeded
              ntp@s            TRANSITION -> ACTIVE     (jig succeeded)
            retry server@s
              = Ok(())
              server@s             ACTIVE -> TODO       (operator)
              server@s               TODO -> TRANSITION (jig started)
              start server@s attempt 1 after 1 run(s)
            fail server@s
              = Failed { retry_at: None }
              server@s         TRANSITION -> ERROR      (jig failed: boom)
              client@c1            ACTIVE -> BLOCKED    (ripple from noderole#1)
            ok client@c2
              = Succeeded
              client@c2        TRANSITION -> ACTIVE     (jig succeeded)
            status
              = failed
            explain client@c1
              | client@c1 (noderole#3) is BLOCKED
              |   - parent noderole#1 is ERROR
            explain server@s
              | server@s (noderole#1) is ERROR
              |   - failed; waits for a retry
            retry server@s
              = Ok(())
              server@s              ERROR -> TODO       (operator)
              server@s               TODO -> TRANSITION (jig started)
              start server@s attempt 1 after 1 run(s)
            ok server@s
              = Succeeded
              server@s         TRANSITION -> ACTIVE     (jig succeeded)
              client@c1           BLOCKED -> TODO       (parent noderole#1 active)
              client@c1              TODO -> TRANSITION (jig started)
              start client@c1 attempt 1 after 1 run(s)
            ok client@c1
              = Succeeded
              client@c1        TRANSITION -> ACTIVE     (jig succeeded)
            status
              = finished
        "#]],
    );
}

#[test]
fn retries_back_off_exponentially_and_stop_when_exhausted() {
    check(
        "role flaky retry=2/100/1000
         role firm retry=2/100/1000
         node n1
         node n2
         bind flaky n1
         bind firm n2
         commit n1
         commit n2
         fail flaky@n1 retryable
         fail firm@n2
         explain flaky@n1
         time 99
         time 1
         fail flaky@n1 retryable
         time 200
         fail flaky@n1 retryable
         status
         time 10000
         retry flaky@n1
         ok flaky@n1
         status",
        expect![[r#"
            (start)
              flaky@n1                  - -> PROPOSED   (bind)
              firm@n2                   - -> PROPOSED   (bind)
              flaky@n1           PROPOSED -> TODO       (commit)
              firm@n2            PROPOSED -> TODO       (commit)
              flaky@n1               TODO -> TRANSITION (jig started)
              firm@n2                TODO -> TRANSITION (jig started)
              start flaky@n1 attempt 1
              start firm@n2 attempt 1
            fail flaky@n1 retryable
              = Failed { retry_at: Some(Timestamp(100)) }
              flaky@n1         TRANSITION -> ERROR      (jig failed: boom)
            fail firm@n2
              = Failed { retry_at: None }
              firm@n2          TRANSITION -> ERROR      (jig failed: boom)
            explain flaky@n1
              | flaky@n1 (noderole#1) is ERROR
              |   - failed; retry at 100
            time 99
            time 1
              flaky@n1              ERROR -> TODO       (retry)
              flaky@n1               TODO -> TRANSITION (jig started)
              start flaky@n1 attempt 2
            fail flaky@n1 retryable
              = Failed { retry_at: Some(Timestamp(300)) }
              flaky@n1         TRANSITION -> ERROR      (jig failed: boom)
            time 200
              flaky@n1              ERROR -> TODO       (retry)
              flaky@n1               TODO -> TRANSITION (jig started)
              start flaky@n1 attempt 3
            fail flaky@n1 retryable
              = Failed { retry_at: None }
              flaky@n1         TRANSITION -> ERROR      (jig failed: boom)
            status
              = failed
            time 10000
            retry flaky@n1
              = Ok(())
              flaky@n1              ERROR -> TODO       (operator)
              flaky@n1               TODO -> TRANSITION (jig started)
              start flaky@n1 attempt 1
            ok flaky@n1
              = Succeeded
              flaky@n1         TRANSITION -> ACTIVE     (jig succeeded)
            status
              = failed
        "#]],
    );
}

#[test]
fn a_run_past_its_timeout_is_abandoned_then_retried() {
    check(
        "role slow timeout=500 retry=1/100/100 implicit
         role after requires=slow
         node n1
         bind after n1
         commit n1
         time 499
         time 1
         status
         time 100
         ok slow@n1
         ok after@n1
         status",
        expect![[r#"
            (start)
              slow@n1                   - -> PROPOSED   (bind)
              after@n1                  - -> PROPOSED   (bind)
              slow@n1            PROPOSED -> TODO       (commit)
              after@n1           PROPOSED -> BLOCKED    (commit)
              slow@n1                TODO -> TRANSITION (jig started)
              start slow@n1 attempt 1 until 500
            time 499
            time 1
              slow@n1          TRANSITION -> ERROR      (timeout)
              cancel slow@n1 (Timeout)
            status
              = working
            time 100
              slow@n1               ERROR -> TODO       (retry)
              slow@n1                TODO -> TRANSITION (jig started)
              start slow@n1 attempt 2 until 1100
            ok slow@n1
              = Succeeded
              slow@n1          TRANSITION -> ACTIVE     (jig succeeded)
              after@n1            BLOCKED -> TODO       (parent noderole#1 active)
              after@n1               TODO -> TRANSITION (jig started)
              start after@n1 attempt 1
            ok after@n1
              = Succeeded
              after@n1         TRANSITION -> ACTIVE     (jig succeeded)
            status
              = finished
        "#]],
    );
}

#[test]
fn node_death_abandons_the_run_and_everything_reruns_when_it_returns() {
    check(
        "role server
         role client requires=server
         node s
         node c
         bind server s
         bind client c
         commit s
         commit c
         ok server@s
         kill c
         kill s
         explain client@c
         revive c
         explain client@c
         revive s
         ok server@s
         ok client@c
         status",
        expect![[r#"
            (start)
              server@s                  - -> PROPOSED   (bind)
              client@c                  - -> PROPOSED   (bind)
              server@s           PROPOSED -> TODO       (commit)
              client@c           PROPOSED -> BLOCKED    (commit)
              server@s               TODO -> TRANSITION (jig started)
              start server@s attempt 1
            ok server@s
              = Succeeded
              server@s         TRANSITION -> ACTIVE     (jig succeeded)
              client@c            BLOCKED -> TODO       (parent noderole#1 active)
              client@c               TODO -> TRANSITION (jig started)
              start client@c attempt 1
            kill c
              client@c         TRANSITION -> TODO       (node died)
              cancel client@c (NodeLost)
            kill s
              server@s             ACTIVE -> TODO       (node died)
            explain client@c
              | client@c (noderole#2) is TODO
              |   - parent noderole#1 is TODO
              |   - node#2 is not alive
            revive c
            explain client@c
              | client@c (noderole#2) is TODO
              |   - parent noderole#1 is TODO
            revive s
              server@s               TODO -> TRANSITION (jig started)
              start server@s attempt 1 after 1 run(s)
            ok server@s
              = Succeeded
              server@s         TRANSITION -> ACTIVE     (jig succeeded)
              client@c               TODO -> TRANSITION (jig started)
              start client@c attempt 1
            ok client@c
              = Succeeded
              client@c         TRANSITION -> ACTIVE     (jig succeeded)
            status
              = finished
        "#]],
    );
}

#[test]
fn the_global_cap_queues_runs() {
    check(
        "cap 2
         role a
         node n1
         node n2
         node n3
         bind a n1
         bind a n2
         bind a n3
         commit n1
         commit n2
         commit n3
         explain a@n3
         ok a@n2
         explain a@n3
         ok a@n1
         ok a@n3",
        expect![[r#"
            (start)
              a@n1                      - -> PROPOSED   (bind)
              a@n2                      - -> PROPOSED   (bind)
              a@n3                      - -> PROPOSED   (bind)
              a@n1               PROPOSED -> TODO       (commit)
              a@n2               PROPOSED -> TODO       (commit)
              a@n3               PROPOSED -> TODO       (commit)
              a@n1                   TODO -> TRANSITION (jig started)
              a@n2                   TODO -> TRANSITION (jig started)
              start a@n1 attempt 1
              start a@n2 attempt 1
            explain a@n3
              | a@n3 (noderole#3) is TODO
              |   - cap reached: 2/2 runs
            ok a@n2
              = Succeeded
              a@n2             TRANSITION -> ACTIVE     (jig succeeded)
              a@n3                   TODO -> TRANSITION (jig started)
              start a@n3 attempt 1
            explain a@n3
              | a@n3 (noderole#3) is TRANSITION
              |   - running as run#3 since 0
            ok a@n1
              = Succeeded
              a@n1             TRANSITION -> ACTIVE     (jig succeeded)
            ok a@n3
              = Succeeded
              a@n3             TRANSITION -> ACTIVE     (jig succeeded)
        "#]],
    );
}

#[test]
fn a_destructive_role_runs_its_jig_once() {
    check(
        "role wipe destructive implicit
         role after requires=wipe
         node n1
         bind after n1
         commit n1
         ok wipe@n1
         ok after@n1
         retry wipe@n1
         status",
        expect![[r#"
            (start)
              wipe@n1                   - -> PROPOSED   (bind)
              after@n1                  - -> PROPOSED   (bind)
              wipe@n1            PROPOSED -> TODO       (commit)
              after@n1           PROPOSED -> BLOCKED    (commit)
              wipe@n1                TODO -> TRANSITION (jig started)
              start wipe@n1 attempt 1
            ok wipe@n1
              = Succeeded
              wipe@n1          TRANSITION -> ACTIVE     (jig succeeded)
              after@n1            BLOCKED -> TODO       (parent noderole#1 active)
              after@n1               TODO -> TRANSITION (jig started)
              start after@n1 attempt 1
            ok after@n1
              = Succeeded
              after@n1         TRANSITION -> ACTIVE     (jig succeeded)
            retry wipe@n1
              = Ok(())
              wipe@n1              ACTIVE -> TODO       (operator)
              wipe@n1                TODO -> TRANSITION (jig started)
              wipe@n1          TRANSITION -> ACTIVE     (jig succeeded)
            status
              = finished
        "#]],
    );
}

#[test]
fn unavailable_and_dead_nodes_run_nothing_and_the_plan_says_so() {
    check(
        "role base implicit
         role app requires=base
         node up
         node down dead
         node off
         bind app up
         bind app down
         bind app off
         commit up
         commit down
         commit off unavailable
         plan
         explain base@down
         explain base@off
         ok base@up
         ok app@up
         status",
        expect![[r#"
            (start)
              base@up                   - -> PROPOSED   (bind)
              app@up                    - -> PROPOSED   (bind)
              base@down                 - -> PROPOSED   (bind)
              app@down                  - -> PROPOSED   (bind)
              base@off                  - -> PROPOSED   (bind)
              app@off                   - -> PROPOSED   (bind)
              base@up            PROPOSED -> TODO       (commit)
              app@up             PROPOSED -> BLOCKED    (commit)
              base@down          PROPOSED -> TODO       (commit)
              app@down           PROPOSED -> BLOCKED    (commit)
              base@off           PROPOSED -> TODO       (commit)
              app@off            PROPOSED -> BLOCKED    (commit)
              base@up                TODO -> TRANSITION (jig started)
              start base@up attempt 1
            plan
              wave 0 base@up
              wave 1 app@up
              stuck base@down NodeNotAlive(NodeId(2))
              stuck app@down NodeNotAlive(NodeId(2))
              stuck base@off NodeNotAvailable(NodeId(3))
              stuck app@off NodeNotAvailable(NodeId(3))
            explain base@down
              | base@down (noderole#3) is TODO
              |   - node#2 is not alive
            explain base@off
              | base@off (noderole#5) is TODO
              |   - node#3 is not available
            ok base@up
              = Succeeded
              base@up          TRANSITION -> ACTIVE     (jig succeeded)
              app@up              BLOCKED -> TODO       (parent noderole#1 active)
              app@up                 TODO -> TRANSITION (jig started)
              start app@up attempt 1
            ok app@up
              = Succeeded
              app@up           TRANSITION -> ACTIVE     (jig succeeded)
            status
              = scheduled
        "#]],
    );
}

#[test]
fn plan_previews_a_deployment_commit_without_changing_anything() {
    let mut c = Cluster::new();
    c.create_role(RoleSpec::new("base").flag(RoleFlag::Implicit))
        .unwrap();
    c.create_role(RoleSpec::new("app").requires(["base"]))
        .unwrap();
    for n in ["n1", "n2"] {
        c.create_node(
            NodeSpec::new(format!("{n}.example.com"))
                .alive(true)
                .available(true),
        )
        .unwrap();
    }
    let prod = c.create_deployment("prod", None).unwrap();
    c.bind_by_name("app", "n1", Some("prod")).unwrap();
    c.bind_by_name("app", "n2", Some("prod")).unwrap();
    let mut a = Annealer::new(c, AnnealerConfig::with_max_running(1)).unwrap();
    let labels = |a: &Annealer, plan: &crowbar_anneal::Plan| -> Vec<String> {
        plan.runs
            .iter()
            .map(|r| format!("{} {}", r.wave, a.cluster().label(r.noderole)))
            .collect()
    };
    let plan = a.plan(PlanScope::Deployment(prod));
    assert_eq!(
        labels(&a, &plan),
        ["0 base@n1", "1 base@n2", "2 app@n1", "3 app@n2"]
    );
    assert_eq!(plan.waves, 4);
    assert!(plan.stuck.is_empty());
    // Without the commit nothing would run, and planning changed nothing.
    let current = a.plan(PlanScope::Current);
    assert!(current.runs.is_empty() && current.stuck.is_empty());
    let ready = a.ready(Timestamp(0));
    assert!(ready.runs.is_empty());
    a.advance();
    assert!(
        a.cluster()
            .noderoles()
            .all(|n| n.state == crowbar_core::NodeRoleState::Proposed)
    );
    // Committing runs exactly what the plan said, in that order.
    a.update(|c| c.commit_deployment(prod)).unwrap();
    let mut order = Vec::new();
    loop {
        let ready = a.ready(Timestamp(0));
        a.advance();
        if ready.is_empty() {
            break;
        }
        for r in ready.runs {
            order.push(a.cluster().label(r.noderole));
            a.handle_run_finished(r.run, Ok(JigOutput::empty()), Timestamp(0));
        }
    }
    let planned: Vec<String> = plan
        .runs
        .iter()
        .map(|r| a.cluster().label(r.noderole))
        .collect();
    assert_eq!(order, planned);
}

#[test]
fn a_deleted_node_leaves_the_queues() {
    let mut c = Cluster::new();
    c.create_role(RoleSpec::new("a")).unwrap();
    let mut nodes = Vec::new();
    for n in ["n1", "n2"] {
        nodes.push(
            c.create_node(NodeSpec::new(format!("{n}.example.com")).alive(true))
                .unwrap(),
        );
        c.bind_by_name("a", n, None).unwrap();
    }
    for n in &nodes {
        c.commit_node(*n).unwrap();
    }
    let mut a = Annealer::new(c, AnnealerConfig::with_max_running(1)).unwrap();
    let first = a.ready(Timestamp(0));
    a.advance();
    assert_eq!(first.runs.len(), 1);
    a.update(|c| c.delete_node(nodes[1])).unwrap();
    a.check_consistency().unwrap();
    a.handle_run_finished(first.runs[0].run, Ok(JigOutput::empty()), Timestamp(0));
    let next = a.ready(Timestamp(0));
    a.advance();
    assert!(next.runs.is_empty(), "{:?}", next.runs);
    assert!(a.is_idle());
    a.check_consistency().unwrap();
    assert_eq!(next.batch.deleted_nodes, [nodes[1]]);
}
