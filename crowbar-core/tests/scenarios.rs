//! Data-driven scenarios for the noderole state machine and role binding: a topology and a
//! stream of events in, every resulting state change out, compared whole.
//!
//! Update the expectations with `UPDATE_EXPECT=1 cargo test -p crowbar-core --test scenarios`
//! and review the diff.

mod scenario;

use expect_test::{Expect, expect};

fn check(input: &str, expected: Expect) {
    expected.assert_eq(&scenario::run(input));
}

#[test]
fn commit_is_todo_when_every_parent_is_active_else_blocked() {
    check(
        "
        role a
        role b requires=a
        role c requires=b
        node n1.example.com alive available
        bind c n1
        # committing the child alone: its parent is PROPOSED, so it is BLOCKED
        commit c@n1
        commit-node n1
        runnable
        commit a@n1
        ",
        expect![[r#"
            > role a
            > role b requires=a
            > role c requires=b
            > node n1.example.com alive available
            > bind c n1
              + a@n1 PROPOSED
              + b@n1 PROPOSED
              + c@n1 PROPOSED
            > commit c@n1
              c@n1: PROPOSED -> BLOCKED (commit)
            > commit-node n1
              a@n1: PROPOSED -> TODO (commit)
              b@n1: PROPOSED -> BLOCKED (commit)
            > runnable
              runnable: [a@n1]
            > commit a@n1
              error: noderole#1: cannot commit from TODO: only a PROPOSED noderole can be committed
        "#]],
    );
}

#[test]
fn active_unblocks_children_one_generation_at_a_time_when_all_parents_are_active() {
    check(
        "
        role a
        role b
        role c requires=a,b
        role d requires=c
        node n1.example.com alive available
        node n2.example.com alive available
        bind a n1
        bind b n2
        bind c n1
        bind d n1
        commit-deployment system
        start a@n1
        succeed a@n1
        # c still waits for b on the other node
        start b@n2
        succeed b@n2
        start c@n1
        succeed c@n1
        show
        ",
        expect![[r#"
            > role a
            > role b
            > role c requires=a,b
            > role d requires=c
            > node n1.example.com alive available
            > node n2.example.com alive available
            > bind a n1
              + a@n1 PROPOSED
            > bind b n2
              + b@n2 PROPOSED
            > bind c n1
              + c@n1 PROPOSED
            > bind d n1
              + d@n1 PROPOSED
            > commit-deployment system
              a@n1: PROPOSED -> TODO (commit)
              b@n2: PROPOSED -> TODO (commit)
              c@n1: PROPOSED -> BLOCKED (commit)
              d@n1: PROPOSED -> BLOCKED (commit)
            > start a@n1
              a@n1: TODO -> TRANSITION (jig started)
            > succeed a@n1
              a@n1: TRANSITION -> ACTIVE (jig succeeded)
            > start b@n2
              b@n2: TODO -> TRANSITION (jig started)
            > succeed b@n2
              b@n2: TRANSITION -> ACTIVE (jig succeeded)
              c@n1: BLOCKED -> TODO (parent b@n2 active)
            > start c@n1
              c@n1: TODO -> TRANSITION (jig started)
            > succeed c@n1
              c@n1: TRANSITION -> ACTIVE (jig succeeded)
              d@n1: BLOCKED -> TODO (parent c@n1 active)
            > show
              a@n1 [system] ACTIVE cohort=0 runs=1 parents=[]
              b@n2 [system] ACTIVE cohort=0 runs=1 parents=[]
              c@n1 [system] ACTIVE cohort=1 runs=1 parents=[a@n1, b@n2]
              d@n1 [system] TODO cohort=2 runs=0 parents=[c@n1]
        "#]],
    );
}

#[test]
fn error_blocks_descendants_except_proposed_and_transition_ones() {
    check(
        "
        role a
        role b requires=a
        role c requires=b
        role x requires=a
        role y requires=a
        node n1.example.com alive available
        node n2.example.com alive available
        node n3.example.com alive available
        bind c n1
        bind x n2
        bind y n3
        commit-node n1
        commit-node n2
        start a@n1
        succeed a@n1
        start b@n1
        succeed b@n1
        start x@n2
        # a re-runs and fails: y@n3 stays PROPOSED, x@n2 stays in TRANSITION, b and c block
        start a@n1
        fail a@n1 disk full
        show
        # an ERROR on a BLOCKED noderole is ignored
        error b@n1 timeout
        ",
        expect![[r#"
            > role a
            > role b requires=a
            > role c requires=b
            > role x requires=a
            > role y requires=a
            > node n1.example.com alive available
            > node n2.example.com alive available
            > node n3.example.com alive available
            > bind c n1
              + a@n1 PROPOSED
              + b@n1 PROPOSED
              + c@n1 PROPOSED
            > bind x n2
              + x@n2 PROPOSED
            > bind y n3
              + y@n3 PROPOSED
            > commit-node n1
              a@n1: PROPOSED -> TODO (commit)
              b@n1: PROPOSED -> BLOCKED (commit)
              c@n1: PROPOSED -> BLOCKED (commit)
            > commit-node n2
              x@n2: PROPOSED -> BLOCKED (commit)
            > start a@n1
              a@n1: TODO -> TRANSITION (jig started)
            > succeed a@n1
              a@n1: TRANSITION -> ACTIVE (jig succeeded)
              b@n1: BLOCKED -> TODO (parent a@n1 active)
              x@n2: BLOCKED -> TODO (parent a@n1 active)
            > start b@n1
              b@n1: TODO -> TRANSITION (jig started)
            > succeed b@n1
              b@n1: TRANSITION -> ACTIVE (jig succeeded)
              c@n1: BLOCKED -> TODO (parent b@n1 active)
            > start x@n2
              x@n2: TODO -> TRANSITION (jig started)
            > start a@n1
              a@n1: ACTIVE -> TRANSITION (jig started)
            > fail a@n1 disk full
              a@n1: TRANSITION -> ERROR (jig failed: disk full)
              b@n1: ACTIVE -> BLOCKED (ripple from a@n1)
              c@n1: TODO -> BLOCKED (ripple from a@n1)
            > show
              a@n1 [system] ERROR cohort=0 runs=1 parents=[]
              b@n1 [system] BLOCKED cohort=1 runs=1 parents=[a@n1]
              c@n1 [system] BLOCKED cohort=2 runs=0 parents=[b@n1]
              x@n2 [system] TRANSITION cohort=1 runs=0 parents=[a@n1]
              y@n3 [system] PROPOSED cohort=1 runs=0 parents=[a@n1]
            > error b@n1 timeout
        "#]],
    );
}

#[test]
fn retry_needs_active_parents_and_blocks_todo_and_error_children() {
    check(
        "
        role a
        role b requires=a
        role c requires=b
        node n1.example.com alive available
        bind c n1
        commit-node n1
        retry b@n1
        start a@n1
        fail a@n1 oops
        retry a@n1
        start a@n1
        succeed a@n1
        start b@n1
        succeed b@n1
        start c@n1
        fail c@n1 broken
        # retrying b (ACTIVE) re-blocks its ERROR child c
        retry b@n1
        retry c@n1
        start b@n1
        succeed b@n1
        show
        ",
        expect![[r#"
            > role a
            > role b requires=a
            > role c requires=b
            > node n1.example.com alive available
            > bind c n1
              + a@n1 PROPOSED
              + b@n1 PROPOSED
              + c@n1 PROPOSED
            > commit-node n1
              a@n1: PROPOSED -> TODO (commit)
              b@n1: PROPOSED -> BLOCKED (commit)
              c@n1: PROPOSED -> BLOCKED (commit)
            > retry b@n1
              error: noderole#2: cannot retry from BLOCKED: not all parents are ACTIVE
            > start a@n1
              a@n1: TODO -> TRANSITION (jig started)
            > fail a@n1 oops
              a@n1: TRANSITION -> ERROR (jig failed: oops)
            > retry a@n1
              a@n1: ERROR -> TODO (retry)
            > start a@n1
              a@n1: TODO -> TRANSITION (jig started)
            > succeed a@n1
              a@n1: TRANSITION -> ACTIVE (jig succeeded)
              b@n1: BLOCKED -> TODO (parent a@n1 active)
            > start b@n1
              b@n1: TODO -> TRANSITION (jig started)
            > succeed b@n1
              b@n1: TRANSITION -> ACTIVE (jig succeeded)
              c@n1: BLOCKED -> TODO (parent b@n1 active)
            > start c@n1
              c@n1: TODO -> TRANSITION (jig started)
            > fail c@n1 broken
              c@n1: TRANSITION -> ERROR (jig failed: broken)
            > retry b@n1
              b@n1: ACTIVE -> TODO (retry)
              c@n1: ERROR -> BLOCKED (ripple from b@n1)
            > retry c@n1
              error: noderole#3: cannot retry from BLOCKED: not all parents are ACTIVE
            > start b@n1
              b@n1: TODO -> TRANSITION (jig started)
            > succeed b@n1
              b@n1: TRANSITION -> ACTIVE (jig succeeded)
              c@n1: BLOCKED -> TODO (parent b@n1 active)
            > show
              a@n1 [system] ACTIVE cohort=0 runs=1 parents=[]
              b@n1 [system] ACTIVE cohort=1 runs=2 parents=[a@n1]
              c@n1 [system] TODO cohort=2 runs=0 parents=[b@n1]
        "#]],
    );
}

#[test]
fn node_death_deactivates_its_noderoles_in_cohort_order_and_they_rerun() {
    check(
        "
        role a
        role b requires=a
        role c requires=b
        node n1.example.com alive available
        node n2.example.com alive available
        bind a n2
        bind c n1
        commit-deployment system
        start a@n2
        succeed a@n2
        start b@n1
        succeed b@n1
        start c@n1
        # n1 dies while c runs: b goes back to TODO (its parent a@n2 is ACTIVE), c to BLOCKED
        alive n1 false
        runnable
        succeed c@n1
        alive n1 true
        runnable
        # a node dying does not ripple to other nodes, but b@n1 waits for its parent again
        alive n2 false
        show
        runnable
        ",
        expect![[r#"
            > role a
            > role b requires=a
            > role c requires=b
            > node n1.example.com alive available
            > node n2.example.com alive available
            > bind a n2
              + a@n2 PROPOSED
            > bind c n1
              + b@n1 PROPOSED
              + c@n1 PROPOSED
            > commit-deployment system
              a@n2: PROPOSED -> TODO (commit)
              b@n1: PROPOSED -> BLOCKED (commit)
              c@n1: PROPOSED -> BLOCKED (commit)
            > start a@n2
              a@n2: TODO -> TRANSITION (jig started)
            > succeed a@n2
              a@n2: TRANSITION -> ACTIVE (jig succeeded)
              b@n1: BLOCKED -> TODO (parent a@n2 active)
            > start b@n1
              b@n1: TODO -> TRANSITION (jig started)
            > succeed b@n1
              b@n1: TRANSITION -> ACTIVE (jig succeeded)
              c@n1: BLOCKED -> TODO (parent b@n1 active)
            > start c@n1
              c@n1: TODO -> TRANSITION (jig started)
            > alive n1 false
              b@n1: ACTIVE -> TODO (node died)
              c@n1: TRANSITION -> BLOCKED (node died)
            > runnable
              runnable: []
            > succeed c@n1
              error: noderole#3: cannot finish a run from BLOCKED: no run is in progress
            > alive n1 true
            > runnable
              runnable: [b@n1]
            > alive n2 false
              a@n2: ACTIVE -> TODO (node died)
            > show
              a@n2 [system] TODO cohort=0 runs=1 parents=[]
              b@n1 [system] TODO cohort=1 runs=1 parents=[a@n2]
              c@n1 [system] BLOCKED cohort=2 runs=0 parents=[b@n1]
            > runnable
              runnable: []
        "#]],
    );
}

#[test]
fn runnable_needs_committed_deployment_alive_available_node_and_no_busy_noderole() {
    check(
        "
        role a
        role b
        role c
        deployment prod
        node n1.example.com alive available
        node n2.example.com alive deployment=prod
        node n3.example.com available
        bind a n1
        bind b n1
        bind a n2
        bind a n3
        commit-node n1
        commit-node n2
        commit-node n3
        runnable
        commit-deployment prod
        runnable
        available n2 false
        runnable
        # an ERROR on n1 freezes n1
        start a@n1
        runnable
        fail a@n1 boom
        runnable
        propose-deployment prod
        propose-deployment system
        deployment-state prod
        deployment-state system
        ",
        expect![[r#"
            > role a
            > role b
            > role c
            > deployment prod
            > node n1.example.com alive available
            > node n2.example.com alive deployment=prod
            > node n3.example.com available
            > bind a n1
              + a@n1 PROPOSED
            > bind b n1
              + b@n1 PROPOSED
            > bind a n2
              + a@n2 PROPOSED
            > bind a n3
              + a@n3 PROPOSED
            > commit-node n1
              a@n1: PROPOSED -> TODO (commit)
              b@n1: PROPOSED -> TODO (commit)
            > commit-node n2
              a@n2: PROPOSED -> TODO (commit)
            > commit-node n3
              a@n3: PROPOSED -> TODO (commit)
            > runnable
              runnable: [a@n1, b@n1]
            > commit-deployment prod
            > runnable
              runnable: [a@n1, b@n1, a@n2]
            > available n2 false
            > runnable
              runnable: [a@n1, b@n1]
            > start a@n1
              a@n1: TODO -> TRANSITION (jig started)
            > runnable
              runnable: []
            > fail a@n1 boom
              a@n1: TRANSITION -> ERROR (jig failed: boom)
            > runnable
              runnable: []
            > propose-deployment prod
            > propose-deployment system
              error: the system deployment cannot be proposed
            > deployment-state prod
              PROPOSED
            > deployment-state system
              ERROR
        "#]],
    );
}

#[test]
fn binding_prefers_the_same_node_then_the_deployment_chain_then_creates() {
    check(
        "
        role server
        role agent requires=server
        role base implicit
        role app requires=base,server
        role storage abstract
        role store provides=storage
        role backup requires=storage
        deployment prod
        deployment canary parent=prod
        node n1.example.com alive available
        node n2.example.com alive available deployment=prod
        node n3.example.com alive available deployment=canary
        node n4.example.com alive available deployment=canary
        # no server anywhere: created on n2, in prod
        bind agent n2
        # canary finds the server in its parent deployment, on n2
        bind agent n3
        # a server on the same node wins over the deployment chain
        bind server n4
        bind agent n4
        # implicit parents are always on the same node
        bind app n3
        # an abstract role cannot be bound; a provider on the same node satisfies it
        bind backup n1
        bind store n1
        bind backup n1
        show
        ",
        expect![[r#"
            > role server
            > role agent requires=server
            > role base implicit
            > role app requires=base,server
            > role storage abstract
            > role store provides=storage
            > role backup requires=storage
            > deployment prod
            > deployment canary parent=prod
            > node n1.example.com alive available
            > node n2.example.com alive available deployment=prod
            > node n3.example.com alive available deployment=canary
            > node n4.example.com alive available deployment=canary
            > bind agent n2
              + server@n2 PROPOSED
              + agent@n2 PROPOSED
            > bind agent n3
              + agent@n3 PROPOSED
            > bind server n4
              + server@n4 PROPOSED
            > bind agent n4
              + agent@n4 PROPOSED
            > bind app n3
              + base@n3 PROPOSED
              + app@n3 PROPOSED
            > bind backup n1
              error: role "storage" is abstract and cannot be bound to a node
            > bind store n1
              + store@n1 PROPOSED
            > bind backup n1
              + backup@n1 PROPOSED
            > show
              server@n2 [prod] PROPOSED cohort=0 runs=0 parents=[]
              agent@n2 [prod] PROPOSED cohort=1 runs=0 parents=[server@n2]
              agent@n3 [canary] PROPOSED cohort=1 runs=0 parents=[server@n2]
              server@n4 [canary] PROPOSED cohort=0 runs=0 parents=[]
              agent@n4 [canary] PROPOSED cohort=1 runs=0 parents=[server@n4]
              base@n3 [canary] PROPOSED cohort=0 runs=0 parents=[]
              app@n3 [canary] PROPOSED cohort=1 runs=0 parents=[base@n3, server@n4]
              store@n1 [system] PROPOSED cohort=0 runs=0 parents=[]
              backup@n1 [system] PROPOSED cohort=1 runs=0 parents=[store@n1]
        "#]],
    );
}

#[test]
fn cluster_roles_link_every_peer_and_a_new_peer_waits_its_children() {
    check(
        "
        role db cluster
        role app requires=db
        deployment prod
        node n1.example.com alive available deployment=prod
        node n2.example.com alive available deployment=prod
        node n3.example.com alive available deployment=prod
        node n4.example.com alive available deployment=prod
        bind db n1
        bind db n2
        bind app n3
        commit-deployment prod
        start db@n1
        succeed db@n1
        start db@n2
        succeed db@n2
        # a third member joins: app@n3 now waits for it too
        bind db n4
        show
        ",
        expect![[r#"
            > role db cluster
            > role app requires=db
            > deployment prod
            > node n1.example.com alive available deployment=prod
            > node n2.example.com alive available deployment=prod
            > node n3.example.com alive available deployment=prod
            > node n4.example.com alive available deployment=prod
            > bind db n1
              + db@n1 PROPOSED
            > bind db n2
              + db@n2 PROPOSED
            > bind app n3
              + app@n3 PROPOSED
            > commit-deployment prod
              db@n1: PROPOSED -> TODO (commit)
              db@n2: PROPOSED -> TODO (commit)
              app@n3: PROPOSED -> BLOCKED (commit)
            > start db@n1
              db@n1: TODO -> TRANSITION (jig started)
            > succeed db@n1
              db@n1: TRANSITION -> ACTIVE (jig succeeded)
            > start db@n2
              db@n2: TODO -> TRANSITION (jig started)
            > succeed db@n2
              db@n2: TRANSITION -> ACTIVE (jig succeeded)
              app@n3: BLOCKED -> TODO (parent db@n2 active)
            > bind db n4
              + db@n4 PROPOSED
              app@n3: TODO -> BLOCKED (cluster peer db@n4 joined)
            > show
              db@n1 [prod] ACTIVE cohort=0 runs=1 parents=[]
              db@n2 [prod] ACTIVE cohort=0 runs=1 parents=[]
              app@n3 [prod] BLOCKED cohort=1 runs=0 parents=[db@n1, db@n2, db@n4]
              db@n4 [prod] PROPOSED cohort=0 runs=0 parents=[]
        "#]],
    );
}

#[test]
fn refused_binds_and_role_edits_name_the_problem_and_change_nothing() {
    check(
        "
        role base abstract
        role web provides=http
        role nginx provides=http
        role apache conflicts=web
        role php provides=web
        role orphan requires=ghost
        role needs-orphan requires=orphan
        node n1.example.com alive available
        bind base n1
        bind needs-orphan n1
        bind web n1
        bind nginx n1
        bind apache n1
        bind php n1
        bind web n9
        bind nosuch n1
        role a requires=b
        role b requires=c
        role c requires=a
        role c
        require b a
        require base web
        role web
        role 9lives
        node bad_name.com
        node n1.EXAMPLE.com
        node n2.example.com deployment=nowhere
        show
        ",
        expect![[r#"
            > role base abstract
            > role web provides=http
            > role nginx provides=http
            > role apache conflicts=web
            > role php provides=web
            > role orphan requires=ghost
            > role needs-orphan requires=orphan
            > node n1.example.com alive available
            > bind base n1
              error: role "base" is abstract and cannot be bound to a node
            > bind needs-orphan n1
              error: role "needs-orphan" has missing prerequisites: ghost
            > bind web n1
              + web@n1 PROPOSED
            > bind nginx n1
              error: role "nginx" cannot join role "web" on node n1.example.com: both stand for "http"
            > bind apache n1
              error: role "apache" conflicts with role "web" already on node n1.example.com
            > bind php n1
              error: role "php" cannot join role "web" on node n1.example.com: both stand for "web"
            > bind web n9
              error: unknown node "n9"
            > bind nosuch n1
              error: unknown role "nosuch"
            > role a requires=b
            > role b requires=c
            > role c requires=a
              error: requirement makes the role graph cyclic: c -> a -> b -> c
            > role c
            > require b a
              error: requirement makes the role graph cyclic: b -> a -> b
            > require base web
            > role web
              error: role "web" exists already
            > role 9lives
              error: invalid role name "9lives": a letter, then letters, digits, '-' or '_'
            > node bad_name.com
              error: invalid FQDN "bad_name.com": needs at least three labels (host.domain.tld)
            > node n1.EXAMPLE.com
              error: node "n1.example.com" exists already
            > node n2.example.com deployment=nowhere
              error: no such deployment
            > show
              web@n1 [system] PROPOSED cohort=0 runs=0 parents=[]
        "#]],
    );
}

#[test]
fn user_data_is_editable_only_while_proposed() {
    check(
        "
        role a
        node n1.example.com alive available
        bind a n1
        data a@n1 {\"x\": 1}
        commit a@n1
        data a@n1 {\"x\": 2}
        propose a@n1
        data a@n1 [1, 2]
        data a@n1 {\"x\": 2}
        commit a@n1
        ",
        expect![[r#"
            > role a
            > node n1.example.com alive available
            > bind a n1
              + a@n1 PROPOSED
            > data a@n1 {"x": 1}
            > commit a@n1
              a@n1: PROPOSED -> TODO (commit)
            > data a@n1 {"x": 2}
              error: noderole#1: data can only be edited while PROPOSED, it is TODO
            > propose a@n1
              a@n1: TODO -> PROPOSED (propose)
            > data a@n1 [1, 2]
              error: noderole data must be a JSON object
            > data a@n1 {"x": 2}
            > commit a@n1
              a@n1: PROPOSED -> TODO (commit)
        "#]],
    );
}

#[test]
fn transitions_allowed_only_from_the_right_states() {
    check(
        "
        role a
        role d destructive
        node n1.example.com alive available
        bind a n1
        start a@n1
        succeed a@n1
        commit a@n1
        rerun a@n1
        start a@n1
        succeed a@n1
        start a@n1
        start a@n1
        propose a@n1
        retry a@n1
        fail a@n1 failed
        rerun a@n1
        commit a@n1
        ",
        expect![[r#"
            > role a
            > role d destructive
            > node n1.example.com alive available
            > bind a n1
              + a@n1 PROPOSED
            > start a@n1
              error: noderole#1: cannot start a run from PROPOSED: only TODO, ACTIVE or TRANSITION can run
            > succeed a@n1
              error: noderole#1: cannot finish a run from PROPOSED: no run is in progress
            > commit a@n1
              a@n1: PROPOSED -> TODO (commit)
            > rerun a@n1
              error: noderole#1: cannot rerun from TODO: only an ERROR noderole can be rerun
            > start a@n1
              a@n1: TODO -> TRANSITION (jig started)
            > succeed a@n1
              a@n1: TRANSITION -> ACTIVE (jig succeeded)
            > start a@n1
              a@n1: ACTIVE -> TRANSITION (jig started)
            > start a@n1
            > propose a@n1
              error: noderole#1: cannot propose from TRANSITION: a run is in progress
            > retry a@n1
              error: noderole#1: cannot retry from TRANSITION: a run is in progress
            > fail a@n1 failed
              a@n1: TRANSITION -> ERROR (jig failed: failed)
            > rerun a@n1
              a@n1: ERROR -> TODO (operator)
            > commit a@n1
              error: noderole#1: cannot commit from TODO: only a PROPOSED noderole can be committed
        "#]],
    );
}

#[test]
fn deployment_state_is_derived_from_its_noderoles() {
    check(
        "
        role a
        role b requires=a
        deployment prod
        node n1.example.com alive available deployment=prod
        deployment-state prod
        commit-deployment prod
        deployment-state prod
        bind b n1
        deployment-state prod
        commit-deployment prod
        deployment-state prod
        start a@n1
        fail a@n1 x
        deployment-state prod
        retry a@n1
        start a@n1
        succeed a@n1
        start b@n1
        succeed b@n1
        deployment-state prod
        ",
        expect![[r#"
            > role a
            > role b requires=a
            > deployment prod
            > node n1.example.com alive available deployment=prod
            > deployment-state prod
              PROPOSED
            > commit-deployment prod
            > deployment-state prod
              ACTIVE
            > bind b n1
              + a@n1 PROPOSED
              + b@n1 PROPOSED
            > deployment-state prod
              COMMITTED
            > commit-deployment prod
              a@n1: PROPOSED -> TODO (commit)
              b@n1: PROPOSED -> BLOCKED (commit)
            > deployment-state prod
              COMMITTED
            > start a@n1
              a@n1: TODO -> TRANSITION (jig started)
            > fail a@n1 x
              a@n1: TRANSITION -> ERROR (jig failed: x)
            > deployment-state prod
              ERROR
            > retry a@n1
              a@n1: ERROR -> TODO (retry)
            > start a@n1
              a@n1: TODO -> TRANSITION (jig started)
            > succeed a@n1
              a@n1: TRANSITION -> ACTIVE (jig succeeded)
              b@n1: BLOCKED -> TODO (parent a@n1 active)
            > start b@n1
              b@n1: TODO -> TRANSITION (jig started)
            > succeed b@n1
              b@n1: TRANSITION -> ACTIVE (jig succeeded)
            > deployment-state prod
              ACTIVE
        "#]],
    );
}

#[test]
fn deleting_a_node_is_refused_while_other_nodes_depend_on_it() {
    check(
        "
        role server
        role client requires=server
        node n1.example.com alive available
        node n2.example.com alive available
        bind server n1
        bind client n2
        delete-node n1
        delete-node n2
        delete-node n1
        show
        ",
        expect![[r#"
            > role server
            > role client requires=server
            > node n1.example.com alive available
            > node n2.example.com alive available
            > bind server n1
              + server@n1 PROPOSED
            > bind client n2
              + client@n2 PROPOSED
            > delete-node n1
              error: node n1.example.com cannot be deleted: noderoles on other nodes depend on it (noderole#2)
            > delete-node n2
            > delete-node n1
            > show
        "#]],
    );
}

#[test]
fn noderoles_put_back_without_ripple_are_still_blocked_by_a_later_ripple() {
    // `deactivate` (a node's death) puts noderoles back without touching their children, so a
    // TODO child can sit under a TODO parent; the next ripple through them must still block
    // it (the model skips that walk only while no such noderole exists).
    check(
        "
        role a
        role b requires=a
        role c requires=b
        node n1.example.com alive available
        bind c n1
        commit-node n1
        start a@n1
        succeed a@n1
        start b@n1
        succeed b@n1
        deactivate b@n1
        deactivate a@n1
        show
        retry a@n1
        show
        ",
        expect![[r#"
            > role a
            > role b requires=a
            > role c requires=b
            > node n1.example.com alive available
            > bind c n1
              + a@n1 PROPOSED
              + b@n1 PROPOSED
              + c@n1 PROPOSED
            > commit-node n1
              a@n1: PROPOSED -> TODO (commit)
              b@n1: PROPOSED -> BLOCKED (commit)
              c@n1: PROPOSED -> BLOCKED (commit)
            > start a@n1
              a@n1: TODO -> TRANSITION (jig started)
            > succeed a@n1
              a@n1: TRANSITION -> ACTIVE (jig succeeded)
              b@n1: BLOCKED -> TODO (parent a@n1 active)
            > start b@n1
              b@n1: TODO -> TRANSITION (jig started)
            > succeed b@n1
              b@n1: TRANSITION -> ACTIVE (jig succeeded)
              c@n1: BLOCKED -> TODO (parent b@n1 active)
            > deactivate b@n1
              b@n1: ACTIVE -> TODO (operator)
            > deactivate a@n1
              a@n1: ACTIVE -> TODO (operator)
            > show
              a@n1 [system] TODO cohort=0 runs=1 parents=[]
              b@n1 [system] TODO cohort=1 runs=1 parents=[a@n1]
              c@n1 [system] TODO cohort=2 runs=0 parents=[b@n1]
            > retry a@n1
              b@n1: TODO -> BLOCKED (ripple from a@n1)
              c@n1: TODO -> BLOCKED (ripple from a@n1)
            > show
              a@n1 [system] TODO cohort=0 runs=1 parents=[]
              b@n1 [system] BLOCKED cohort=1 runs=1 parents=[a@n1]
              c@n1 [system] BLOCKED cohort=2 runs=0 parents=[b@n1]
        "#]],
    );
}
