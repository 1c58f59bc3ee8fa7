//! The annealer under deterministic simulation: properties over random role graphs, random
//! bindings and random failures, hangs and node deaths.

use std::sync::Arc;

use crowbar_anneal::{AnnealStatus, Annealer, AnnealerConfig, SimConfig, SimReport, Simulation};
use crowbar_core::{
    Cluster, ManualClock, NodeRoleState, NodeSpec, RetryPolicy, RoleFlag, RoleHooks, RoleSpec,
    Timestamp,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Topology {
    /// For each role: its parents (earlier roles), implicit, destructive, retries.
    roles: Vec<(Vec<usize>, bool, bool, u32)>,
    nodes: usize,
    binds: Vec<(usize, usize)>,
    cap: usize,
}

fn topology() -> impl Strategy<Value = Topology> {
    (1usize..8, 1usize..7, 1usize..5).prop_flat_map(|(nroles, nodes, cap)| {
        let roles = (0..nroles)
            .map(|i| {
                let parents = if i == 0 {
                    Just(Vec::new()).boxed()
                } else {
                    proptest::collection::vec(0..i, 0..3).boxed()
                };
                (parents, any::<bool>(), prop::bool::weighted(0.15), 0u32..3)
            })
            .collect::<Vec<_>>();
        let binds = proptest::collection::vec((0..nroles, 0..nodes), 1..16);
        (roles, binds).prop_map(move |(roles, binds)| Topology {
            roles,
            nodes,
            binds,
            cap,
        })
    })
}

/// Hooks that do nothing: registering them takes the model off its lean paths (which only
/// run with no hooks), so a run with them checks those paths against the general ones.
struct Quiet;

impl RoleHooks for Quiet {}

fn build(t: &Topology, clock: Arc<ManualClock>, hooks: bool) -> Annealer {
    let mut c = Cluster::with_clock(clock);
    if hooks {
        c.register_hooks("r0", Arc::new(Quiet));
    }
    for (i, (parents, implicit, destructive, retries)) in t.roles.iter().enumerate() {
        let mut parents = parents.clone();
        parents.sort();
        parents.dedup();
        let mut spec = RoleSpec::new(format!("r{i}"))
            .requires(parents.iter().map(|p| format!("r{p}")))
            .timeout_ms(20_000)
            .retry(RetryPolicy {
                max_retries: *retries,
                backoff_ms: 500,
                max_backoff_ms: 4_000,
            });
        if *implicit {
            spec = spec.flag(RoleFlag::Implicit);
        }
        if *destructive {
            spec = spec.flag(RoleFlag::Destructive);
        }
        c.create_role(spec).unwrap();
    }
    for n in 0..t.nodes {
        c.create_node(NodeSpec::new(format!("n{n}.example.com")).alive(true))
            .unwrap();
    }
    for (r, n) in &t.binds {
        c.bind_by_name(&format!("r{r}"), &format!("n{n}"), None)
            .unwrap();
    }
    for n in c.nodes().map(|n| n.id).collect::<Vec<_>>() {
        c.commit_node(n).unwrap();
    }
    Annealer::new(c, AnnealerConfig::with_max_running(t.cap)).unwrap()
}

fn simulate(t: &Topology, config: SimConfig) -> (SimReport, Vec<NodeRoleState>) {
    simulate_with(t, config, false)
}

fn simulate_with(t: &Topology, config: SimConfig, hooks: bool) -> (SimReport, Vec<NodeRoleState>) {
    let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
    let annealer = build(t, clock.clone(), hooks);
    let mut sim = Simulation::new(annealer, clock, config);
    let report = sim.run_to_end();
    let states = sim
        .annealer()
        .cluster()
        .noderoles()
        .map(|n| n.state)
        .collect();
    (report, states)
}

fn faulty(seed: u64, fail: u32, hang: u32, death: u32) -> SimConfig {
    SimConfig {
        seed,
        min_run_ms: 10,
        max_run_ms: 5_000,
        failure_per_mille: fail,
        retryable_per_mille: 600,
        hang_per_mille: hang,
        node_death_per_mille: death,
        revive_after_ms: 30_000,
        max_steps: 200_000,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// No node ever has two runs at once; the cap is never exceeded; a noderole runs only when
    /// all its parents are ACTIVE; every run ends (by result, time-out or node death).
    #[test]
    fn invariants_hold_under_failures_hangs_and_node_deaths(
        t in topology(),
        seed in any::<u64>(),
        fail in 0u32..400,
        hang in 0u32..100,
        death in 0u32..150,
    ) {
        let (report, _) = simulate(&t, faulty(seed, fail, hang, death));
        prop_assert!(report.violations.is_empty(), "{:?}", report.violations);
        prop_assert!(report.peak_running <= t.cap);
    }

    /// Without failures, every committed noderole ends ACTIVE and the status is finished.
    #[test]
    fn without_failures_everything_ends_active(t in topology(), seed in any::<u64>()) {
        let (report, states) = simulate(&t, faulty(seed, 0, 0, 0));
        prop_assert!(report.violations.is_empty(), "{:?}", report.violations);
        prop_assert!(states.iter().all(|s| *s == NodeRoleState::Active), "{states:?}");
        prop_assert_eq!(report.status, AnnealStatus::Finished);
    }

    /// The same seed gives the same history, to the millisecond.
    #[test]
    fn the_same_seed_gives_the_same_history(t in topology(), seed in any::<u64>()) {
        let config = faulty(seed, 200, 30, 50);
        let (a, _) = simulate(&t, config.clone());
        let (b, _) = simulate(&t, config);
        prop_assert_eq!(a, b);
    }

    /// The model's lean paths for starts and finishes (taken when no hook is registered) give
    /// exactly what its general paths give: the same history, events and end states.
    #[test]
    fn lean_paths_match_the_general_ones(t in topology(), seed in any::<u64>()) {
        let config = faulty(seed, 200, 30, 50);
        let lean = simulate_with(&t, config.clone(), false);
        let general = simulate_with(&t, config, true);
        prop_assert_eq!(lean, general);
    }
}

#[test]
fn node_deaths_with_revival_still_reach_stability() {
    let t = Topology {
        roles: vec![
            (vec![], true, false, 0),
            (vec![0], true, false, 0),
            (vec![1], false, false, 0),
        ],
        nodes: 6,
        binds: (0..6).map(|n| (2, n)).collect(),
        cap: 3,
    };
    let (report, states) = simulate(&t, faulty(7, 0, 0, 300));
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let deaths = report
        .events
        .iter()
        .filter(|e| matches!(e, crowbar_anneal::SimEvent::NodeDied { .. }))
        .count();
    assert!(deaths > 0, "the seed should kill some node");
    assert!(
        states.iter().all(|s| *s == NodeRoleState::Active),
        "{states:?}"
    );
}
