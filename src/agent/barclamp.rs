//! Barclamps: Crowbar's YAML bundles of jigs and roles (reference §1.4), imported into a
//! cluster.
//!
//! ```yaml
//! barclamp:
//!   name: test
//!   description: Roles for testing the annealer
//! jigs:
//!   - name: test
//! roles:
//!   - name: test-admin
//!     jig: test
//!     flags: [implicit]
//!   - name: test-server
//!     jig: test
//!     requires: [test-admin]
//!     provides: [test-service]
//!     conflicts: [test-other]
//!     attribs:
//!       - name: test-delay
//!         map: test/delay
//!     template: {test: {delay: 0}}
//! ```
//!
//! Parsing checks the shape (unknown keys are refused, with the line); [`Barclamp::apply`]
//! creates the roles that do not exist yet, in order, in one transaction of the model.

use std::str::FromStr;

use crowbar_core::{Cluster, CoreError, RoleFlag, RoleSpec};
use serde::Deserialize;
use serde_json::Value;

/// Why a barclamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BarclampError {
    /// Not YAML of the barclamp shape.
    #[error("{source_name}: {message}")]
    Syntax {
        /// The file or "the request body".
        source_name: String,
        /// What the parser said, with the line.
        message: String,
    },
    /// A role names a jig neither the barclamp nor the agent has.
    #[error("role {role:?} names the unknown jig {jig:?}")]
    UnknownJig {
        /// The role.
        role: String,
        /// The jig.
        jig: String,
    },
    /// A role has an unknown flag.
    #[error("role {role:?}: unknown flag {flag:?}")]
    UnknownFlag {
        /// The role.
        role: String,
        /// The flag.
        flag: String,
    },
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "the whole shape is parsed and checked; attribs are not modelled yet"
)]
struct Header {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    version: Option<Value>,
    #[serde(default)]
    source_url: Option<String>,
}

/// A jig a barclamp declares.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JigDecl {
    /// Its name.
    pub name: String,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// Crowbar's implementing class (kept for reference; the agent maps names to jigs).
    #[serde(default)]
    pub class: Option<String>,
    /// The role every role on this jig requires (Crowbar's `implementor`).
    #[serde(default)]
    pub implementor: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "the whole shape is parsed and checked; attribs are not modelled yet"
)]
struct AttribDecl {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    map: Option<String>,
    #[serde(default)]
    schema: Option<Value>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "the whole shape is parsed and checked; attribs are not modelled yet"
)]
struct RoleDecl {
    name: String,
    #[serde(default)]
    description: String,
    jig: String,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default, rename = "wants-attribs")]
    wants_attribs: Vec<String>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    provides: Vec<String>,
    #[serde(default)]
    conflicts: Vec<String>,
    #[serde(default)]
    attribs: Vec<AttribDecl>,
    #[serde(default)]
    template: Option<Value>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "the whole shape is parsed and checked; attribs are not modelled yet"
)]
struct Raw {
    barclamp: Header,
    #[serde(default)]
    jigs: Vec<JigDecl>,
    #[serde(default)]
    roles: Vec<RoleDecl>,
    #[serde(default)]
    attribs: Vec<AttribDecl>,
}

/// A parsed barclamp, ready to import.
#[derive(Debug, Clone)]
pub struct Barclamp {
    /// Its name.
    pub name: String,
    /// The jigs it declares.
    pub jigs: Vec<JigDecl>,
    roles: Vec<(RoleDecl, Vec<RoleFlag>)>,
}

impl Barclamp {
    /// Parses barclamp YAML; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Barclamp, BarclampError> {
        let raw: Raw = serde_norway::from_str(text).map_err(|e| BarclampError::Syntax {
            source_name: source_name.to_owned(),
            message: e.to_string(),
        })?;
        let mut roles = Vec::with_capacity(raw.roles.len());
        for r in raw.roles {
            let flags = r
                .flags
                .iter()
                .map(|f| {
                    RoleFlag::from_str(f).map_err(|_| BarclampError::UnknownFlag {
                        role: r.name.clone(),
                        flag: f.clone(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            roles.push((r, flags));
        }
        Ok(Barclamp {
            name: raw.barclamp.name,
            jigs: raw.jigs,
            roles,
        })
    }

    /// Refuses a role whose jig is neither declared here nor in `known`.
    pub fn check_jigs(&self, known: &[String]) -> Result<(), BarclampError> {
        for (r, _) in &self.roles {
            if !known.contains(&r.jig) && !self.jigs.iter().any(|j| j.name == r.jig) {
                return Err(BarclampError::UnknownJig {
                    role: r.name.clone(),
                    jig: r.jig.clone(),
                });
            }
        }
        Ok(())
    }

    /// The names of the roles it defines, in order.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|(r, _)| r.name.as_str())
    }

    /// Creates every role that does not exist yet, in order, all or nothing; returns the
    /// names of those it created. Roles that exist are left as they are.
    pub fn apply(self, cluster: &mut Cluster) -> Result<Vec<String>, CoreError> {
        let mut created = Vec::new();
        for (r, flags) in self.roles {
            if cluster.find_role(&r.name).is_some() {
                continue;
            }
            let mut spec = RoleSpec::new(r.name.clone())
                .jig(r.jig)
                .requires(r.requires)
                .provides(r.provides)
                .conflicts(r.conflicts);
            spec.description = r.description;
            for f in flags {
                spec = spec.flag(f);
            }
            if let Some(t) = r.template {
                spec = spec.template(t);
            }
            if let Some(ms) = r.timeout_ms {
                spec = spec.timeout_ms(ms);
            }
            cluster.create_role(spec)?;
            created.push(r.name);
        }
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: &str = "barclamp:\n  name: test\njigs:\n  - name: test\nroles:\n  - name: test-admin\n    jig: test\n    flags: [implicit]\n  - name: test-server\n    jig: test\n    requires: [test-admin]\n    template: {test: {delay: 0}}\n";

    #[test]
    fn imports_roles_in_order_and_once() {
        let mut c = Cluster::new();
        let b = Barclamp::parse(TEST, "test.yml").unwrap();
        assert_eq!(
            b.role_names().collect::<Vec<_>>(),
            ["test-admin", "test-server"]
        );
        b.check_jigs(&[]).unwrap();
        assert_eq!(
            b.clone().apply(&mut c).unwrap(),
            ["test-admin", "test-server"]
        );
        let server = c.role(c.find_role("test-server").unwrap()).unwrap();
        assert_eq!(server.requires, ["test-admin"]);
        assert!(
            c.role(c.find_role("test-admin").unwrap())
                .unwrap()
                .has(RoleFlag::Implicit)
        );
        assert!(
            b.apply(&mut c).unwrap().is_empty(),
            "a second import creates nothing"
        );
    }

    #[test]
    fn refusals_say_what_and_where() {
        let err = Barclamp::parse(
            "barclamp:\n  name: x\nroles:\n  - name: a\n    jig: noop\n    colour: red\n",
            "x.yml",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("x.yml: "), "{msg}");
        assert!(
            msg.contains("unknown field `colour`") && msg.contains("line 6"),
            "{msg}"
        );
        let err = Barclamp::parse(
            "barclamp:\n  name: x\nroles:\n  - name: a\n    jig: noop\n    flags: [shiny]\n",
            "x.yml",
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "role \"a\": unknown flag \"shiny\"");
        let b = Barclamp::parse(
            "barclamp:\n  name: x\nroles:\n  - name: a\n    jig: chef\n",
            "x.yml",
        )
        .unwrap();
        assert_eq!(
            b.check_jigs(&["noop".into()]).unwrap_err().to_string(),
            "role \"a\" names the unknown jig \"chef\""
        );
    }
}
