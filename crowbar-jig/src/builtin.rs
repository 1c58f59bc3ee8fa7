//! The jigs that need no configuration: `noop` and `test`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use crate::{Jig, JigError, JigOutput, Outcome, RunContext, RunView};

/// Crowbar's `noop` jig: succeeds at once, reports nothing, needs no data.
///
/// ```
/// # use crowbar_jig::*;
/// # use crowbar_core::{Fqdn, NodeId, NodeRoleId};
/// # let node = NodeInfo::new(NodeId(1), Fqdn::new("n1.example.com")?);
/// let cx = RunContext::new(NodeRoleId(1), "ntp", node);
/// assert_eq!(NoopJig.run_now(cx.view()), Some(Ok(JigOutput::empty())));
/// # Ok::<(), crowbar_core::CoreError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopJig;

#[async_trait]
impl Jig for NoopJig {
    async fn run(&self, _cx: RunContext) -> Outcome {
        Ok(JigOutput::empty())
    }

    fn needs_data(&self) -> bool {
        false
    }

    fn run_now(&self, _cx: RunView<'_>) -> Option<Outcome> {
        Some(Ok(JigOutput::empty()))
    }
}

/// Crowbar's `test` jig, driven by the run data (usually the role's template), under `test`:
///
/// | key | effect |
/// |---|---|
/// | `delay_ms` | sleep this long first (on tokio's clock, so paused time applies) |
/// | `fail` | `true` or a message: fail every attempt |
/// | `fail_attempts` | fail the first N attempts, then succeed |
/// | `retryable` | whether those failures are retryable (default `false`) |
///
/// A role named `test-fails` always fails, as in Crowbar. On success the wall is
/// `{"test": {"ran": true, "attempt": N, "node": "<fqdn>"}}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TestJig;

#[async_trait]
impl Jig for TestJig {
    async fn run(&self, cx: RunContext) -> Outcome {
        let cfg = cx.data.get("test").cloned().unwrap_or_default();
        let delay = cfg.get("delay_ms").and_then(|v| v.as_u64()).unwrap_or(0);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let retryable = cfg
            .get("retryable")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let runlog = format!(
            "test jig: {} on {} attempt {} after {delay} ms\n",
            cx.role, cx.node.name, cx.attempt
        );
        let fail_message = match cfg.get("fail") {
            Some(serde_json::Value::Bool(true)) => Some("test jig told to fail".to_owned()),
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            _ if &*cx.role == "test-fails" => Some("role test-fails always fails".to_owned()),
            _ => cfg
                .get("fail_attempts")
                .and_then(|v| v.as_u64())
                .filter(|n| u64::from(cx.attempt) <= *n)
                .map(|n| format!("attempt {} of the first {n} that fail", cx.attempt)),
        };
        match fail_message {
            Some(message) => Err(JigError::Failed {
                message,
                retryable,
                runlog,
            }),
            None => Ok(JigOutput::with_wall(json!({"test": {
                "ran": true,
                "attempt": cx.attempt,
                "node": cx.node.name.as_str(),
            }}))
            .runlog(runlog)),
        }
    }
}
