//! A compact text language for scenarios: roles, deployments, nodes, binds and events in; the
//! resulting state changes (with causes) out.
//!
//! ```text
//! role NAME [requires=A,B] [provides=X] [conflicts=Y] [FLAG...]
//! deployment NAME [parent=P]
//! node FQDN [alive] [available] [admin] [deployment=D]
//! bind ROLE NODE [DEPLOYMENT]
//! require ROLE PARENT
//! commit-node NODE | commit-deployment D | propose-deployment D | delete-node NODE
//! commit|start|succeed|retry|block|deactivate|propose|rerun ROLE@NODE
//! fail ROLE@NODE MESSAGE...
//! data ROLE@NODE JSON
//! alive NODE true|false | available NODE true|false
//! show
//! ```
//!
//! Every command prints `> command`, then each state change of the batch it produced
//! (`  label: FROM -> TO (cause)`, `  + label PROPOSED` for creations), or `  error: ...`. An
//! error must leave nothing pending: the harness checks that.

use std::fmt::Write;
use std::sync::Arc;

use crowbar_core::{
    Cause, Cluster, ManualClock, NodeRoleId, NodeSpec, RoleFlag, RoleSpec, RunResult, Timestamp,
};

fn label_cause(c: &Cluster, cause: &Cause) -> String {
    match cause {
        Cause::ParentActive { parent } => format!("parent {} active", c.label(*parent)),
        Cause::Ripple { origin } => format!("ripple from {}", c.label(*origin)),
        Cause::ClusterPeer { peer } => format!("cluster peer {} joined", c.label(*peer)),
        other => other.to_string(),
    }
}

fn noderole(c: &Cluster, spec: &str) -> Result<NodeRoleId, String> {
    let (role, node) = spec
        .split_once('@')
        .ok_or_else(|| format!("expected ROLE@NODE, got {spec:?}"))?;
    let r = c.find_role(role).ok_or_else(|| format!("no role {role}"))?;
    let n = c.find_node(node).ok_or_else(|| format!("no node {node}"))?;
    c.noderole_for(r, n)
        .ok_or_else(|| format!("{role} is not bound to {node}"))
}

fn show(c: &Cluster, out: &mut String) {
    for nr in c.noderoles() {
        let parents: Vec<String> = c.parents(nr.id).iter().map(|p| c.label(*p)).collect();
        let dep = &c.deployment(nr.deployment).unwrap().name;
        writeln!(
            out,
            "  {} [{}] {} cohort={} runs={} parents=[{}]",
            c.label(nr.id),
            dep,
            nr.state,
            nr.cohort,
            nr.run_count,
            parents.join(", ")
        )
        .unwrap();
    }
}

fn run_line(c: &mut Cluster, line: &str, out: &mut String) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (cmd, args) = words.split_first().ok_or("empty line")?;
    let arg = |i: usize| {
        args.get(i)
            .copied()
            .ok_or(format!("{cmd}: missing argument {i}"))
    };
    let e = |err: crowbar_core::CoreError| err.to_string();
    let bool_arg = |s: &str| match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got {s}")),
    };
    match *cmd {
        "role" => {
            let mut spec = RoleSpec::new(arg(0)?);
            for a in &args[1..] {
                match a.split_once('=') {
                    Some(("requires", v)) => spec = spec.requires(v.split(',')),
                    Some(("provides", v)) => spec = spec.provides(v.split(',')),
                    Some(("conflicts", v)) => spec = spec.conflicts(v.split(',')),
                    Some(("template", v)) => {
                        spec = spec.template(serde_json::from_str(v).map_err(|e| e.to_string())?)
                    }
                    Some(_) => return Err(format!("unknown role option {a}")),
                    None => spec = spec.flag(a.parse::<RoleFlag>().map_err(e)?),
                }
            }
            c.create_role(spec).map_err(e)?;
        }
        "require" => {
            let r = c.find_role(arg(0)?).ok_or("no such role")?;
            c.add_requirement(r, arg(1)?).map_err(e)?;
        }
        "deployment" => {
            let parent = match args.get(1).and_then(|a| a.strip_prefix("parent=")) {
                Some(p) => Some(c.find_deployment(p).ok_or("no such parent")?),
                None => None,
            };
            c.create_deployment(arg(0)?, parent).map_err(e)?;
        }
        "node" => {
            let mut spec = NodeSpec::new(arg(0)?);
            for a in &args[1..] {
                match *a {
                    "alive" => spec = spec.alive(true),
                    "available" => spec = spec.available(true),
                    "admin" => spec = spec.admin(true),
                    other => match other.strip_prefix("deployment=") {
                        Some(d) => {
                            spec =
                                spec.deployment(c.find_deployment(d).ok_or("no such deployment")?)
                        }
                        None => return Err(format!("unknown node option {other}")),
                    },
                }
            }
            c.create_node(spec).map_err(e)?;
        }
        "bind" => {
            c.bind_by_name(arg(0)?, arg(1)?, args.get(2).copied())
                .map_err(e)?;
        }
        "commit-node" => {
            let n = c.find_node(arg(0)?).ok_or("no such node")?;
            c.commit_node(n).map_err(e)?;
        }
        "delete-node" => {
            let n = c.find_node(arg(0)?).ok_or("no such node")?;
            c.delete_node(n).map_err(e)?;
        }
        "commit-deployment" | "propose-deployment" => {
            let d = c.find_deployment(arg(0)?).ok_or("no such deployment")?;
            if *cmd == "commit-deployment" {
                c.commit_deployment(d).map_err(e)?;
            } else {
                c.propose_deployment(d).map_err(e)?;
            }
        }
        "alive" | "available" => {
            let n = c.find_node(arg(0)?).ok_or("no such node")?;
            let v = bool_arg(arg(1)?)?;
            if *cmd == "alive" {
                c.set_node_alive(n, v).map_err(e)?;
            } else {
                c.set_node_available(n, v).map_err(e)?;
            }
        }
        "data" => {
            let nr = noderole(c, arg(0)?)?;
            let json = args[1..].join(" ");
            c.set_noderole_data(nr, serde_json::from_str(&json).map_err(|e| e.to_string())?)
                .map_err(e)?;
        }
        "show" => show(c, out),
        "runnable" => {
            let list: Vec<String> = c
                .noderoles()
                .filter(|nr| c.is_runnable(nr.id))
                .map(|nr| c.label(nr.id))
                .collect();
            writeln!(out, "  runnable: [{}]", list.join(", ")).unwrap();
        }
        "deployment-state" => {
            let d = c.find_deployment(arg(0)?).ok_or("no such deployment")?;
            writeln!(out, "  {}", c.deployment_state(d).unwrap()).unwrap();
        }
        _ => {
            let nr = noderole(c, arg(0)?)?;
            match *cmd {
                "commit" => c.commit_noderole(nr),
                "start" => c.start_run(nr),
                "succeed" => c.finish_run(
                    nr,
                    RunResult::Succeeded {
                        wall: None,
                        runlog: String::new(),
                    },
                ),
                "fail" => c.finish_run(
                    nr,
                    RunResult::Failed {
                        message: args[1..].join(" "),
                        runlog: String::new(),
                    },
                ),
                "retry" => c.retry(nr, Cause::Retry),
                "block" => c.block(nr, Cause::Operator),
                "deactivate" => c.deactivate(nr, Cause::Operator),
                "propose" => c.propose_noderole(nr),
                "rerun" => c.rerun(nr, Cause::Operator),
                "error" => c.fail(nr, Cause::Timeout, Some(args[1..].join(" "))),
                other => return Err(format!("unknown command {other}")),
            }
            .map_err(e)?;
        }
    }
    Ok(())
}

/// Runs a scenario and returns its transcript.
pub(crate) fn run(input: &str) -> String {
    let mut c = Cluster::with_clock(Arc::new(ManualClock::new(Timestamp(0))));
    c.take_batch();
    let mut out = String::new();
    for line in input.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        writeln!(out, "> {line}").unwrap();
        let result = run_line(&mut c, line, &mut out);
        if let Err(e) = c.check_consistency() {
            panic!("after `{line}` the model's indices are out of step: {e}");
        }
        match result {
            Ok(()) => {
                let batch = c.take_batch();
                for h in &batch.history {
                    match h.from {
                        None => writeln!(out, "  + {} {}", c.label(h.noderole), h.to).unwrap(),
                        Some(from) => writeln!(
                            out,
                            "  {}: {} -> {} ({})",
                            c.label(h.noderole),
                            from,
                            h.to,
                            label_cause(&c, &h.cause)
                        )
                        .unwrap(),
                    }
                }
            }
            Err(msg) => {
                writeln!(out, "  error: {msg}").unwrap();
                assert!(
                    !c.has_pending(),
                    "a refused command must leave nothing pending: {line}"
                );
            }
        }
    }
    out
}
