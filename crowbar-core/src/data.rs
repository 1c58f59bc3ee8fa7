//! Data layering: what a jig run sees, merged from the role template up to the parents' wall
//! data.

use serde_json::Value;

use crate::{Cluster, CoreError, NodeRoleId};

/// Deep-merges `top` into `base`: objects merge key by key, recursively; any other value in
/// `top` replaces the one in `base`.
///
/// ```
/// use serde_json::json;
/// let mut base = json!({"a": {"x": 1, "y": 2}, "b": [1]});
/// crowbar_core::deep_merge(&mut base, &json!({"a": {"y": 3}, "b": [2]}));
/// assert_eq!(base, json!({"a": {"x": 1, "y": 3}, "b": [2]}));
/// ```
pub fn deep_merge(base: &mut Value, top: &Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(k) {
                    Some(slot) => deep_merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, t) => *b = t.clone(),
    }
}

impl Cluster {
    /// The data a jig run of `id` sees, as one JSON object, deep-merged in this order (later
    /// layers win):
    ///
    /// 1. the role's template;
    /// 2. the deployment role's user data;
    /// 3. the noderole's user data in force (committed, or proposed while PROPOSED);
    /// 4. the wall data of its parents: every ancestor on the same node and every direct parent
    ///    on another node, from the most distant (lowest cohort) to the closest (highest cohort),
    ///    ties by id, so the closest parent wins.
    pub fn run_data(&self, id: NodeRoleId) -> Result<Value, CoreError> {
        let nr = self.get_noderole(id)?;
        let role = self.get_role(nr.role)?;
        let mut out = Value::Object(Default::default());
        deep_merge(&mut out, &role.template);
        if let Some(dr) = self.deployment_role(nr.deployment, nr.role) {
            deep_merge(&mut out, &dr.data);
        }
        deep_merge(&mut out, nr.data());
        let mut ancestors: Vec<NodeRoleId> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<NodeRoleId> = self.parents(id).to_vec();
        let node = nr.node;
        while let Some(p) = stack.pop() {
            if !seen.insert(p) {
                continue;
            }
            ancestors.push(p);
            if self.nr(p).node == node {
                stack.extend(self.parents(p).iter().filter(|g| self.nr(**g).node == node));
            }
        }
        ancestors.sort_by_key(|p| (self.nr(*p).cohort, *p));
        for p in ancestors {
            deep_merge(&mut out, self.nr(p).wall);
        }
        Ok(out)
    }
}
