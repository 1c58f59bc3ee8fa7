//! The built-in jigs against real processes: scripts in a temporary directory.

mod common;

use std::path::Path;
use std::time::Duration;

use common::script;
use crowbar_core::{Fqdn, NodeId, NodeRoleId};
use crowbar_jig::{
    Jig, JigError, JigOutput, JigRegistry, NodeInfo, NoopJig, RunContext, ScriptConfig, ScriptJig,
    TestJig,
};
use serde_json::json;

fn node() -> NodeInfo {
    NodeInfo::new(NodeId(1), Fqdn::new("n1.example.com").unwrap())
}

fn jig(dir: &Path, timeout: Duration) -> ScriptJig {
    capped_jig(dir, timeout, ScriptConfig::new("").max_log_bytes)
}

fn capped_jig(dir: &Path, timeout: Duration, max_log_bytes: usize) -> ScriptJig {
    let mut config = ScriptConfig::new(dir.join("scripts"));
    config.work_dir = dir.to_owned();
    config.timeout = timeout;
    config.max_log_bytes = max_log_bytes;
    ScriptJig::new(config).unwrap()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("scriptjig-"))
        .collect()
}

#[tokio::test]
async fn scripts_run_in_order_over_the_attrs_tree_and_their_walls_come_back() {
    let dir = tempfile::tempdir().unwrap();
    script(
        dir.path(),
        "ntp",
        "10-second.sh",
        "set -e\nmkdir -p attrs/ntp/order\necho \"$(cat attrs/ntp/order/wall)-second\" > attrs/ntp/order/wall.new\nmv attrs/ntp/order/wall.new attrs/ntp/order/wall\necho second ran",
    );
    script(
        dir.path(),
        "ntp",
        "01-first.sh",
        "set -e\nmkdir -p attrs/ntp/order attrs/ntp/count attrs/ntp/on\necho first > attrs/ntp/order/wall\n\
         ls attrs/ntp/servers | wc -l | tr -d ' ' > attrs/ntp/count/wall\necho true > attrs/ntp/on/wall\n\
         echo to-stderr >&2",
    );
    script(dir.path(), "ntp", "README", "exit 1");
    let cx = RunContext::new(NodeRoleId(3), "ntp", node())
        .with_data(json!({"ntp": {"servers": ["a.pool", "b.pool", "c.pool"]}}));
    let out = jig(dir.path(), Duration::from_secs(60))
        .run(cx)
        .await
        .unwrap();
    assert_eq!(
        out.wall,
        Some(json!({"ntp": {"order": "first-second", "count": 3, "on": true}}))
    );
    assert_eq!(
        out.runlog,
        "== 01-first.sh\nto-stderr\n== 10-second.sh\nsecond ran\n"
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "the run directory is removed"
    );
}

#[tokio::test]
async fn a_failing_script_stops_the_run_with_its_status_and_output() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "db", "01-ok.sh", "echo fine");
    script(
        dir.path(),
        "db",
        "02-bad.sh",
        "echo 'disk full' >&2; exit 3",
    );
    script(dir.path(), "db", "03-never.sh", "echo never");
    script(dir.path(), "retry", "01-later.sh", "exit 75");
    let j = jig(dir.path(), Duration::from_secs(60));
    let err = j
        .run(RunContext::new(NodeRoleId(1), "db", node()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        JigError::Script {
            script: "02-bad.sh".into(),
            status: Some(3),
            runlog: "== 01-ok.sh\nfine\n== 02-bad.sh\ndisk full\n".into(),
        }
    );
    assert!(!err.retryable());
    let err = j
        .run(RunContext::new(NodeRoleId(1), "retry", node()))
        .await
        .unwrap_err();
    assert!(err.retryable(), "exit 75 is EX_TEMPFAIL");
    let err = j
        .run(RunContext::new(NodeRoleId(1), "none", node()))
        .await
        .unwrap_err();
    assert!(matches!(err, JigError::NoScripts { ref role, .. } if role == "none"));
    let err = j
        .run(RunContext::new(NodeRoleId(1), "../db", node()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            JigError::Invalid {
                what: "role name",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_script_past_the_time_limit_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    script(
        dir.path(),
        "hang",
        "01-hang.sh",
        &format!(
            "echo started\necho $$ > {}\nexec sleep 600",
            pidfile.display()
        ),
    );
    let err = jig(dir.path(), Duration::from_millis(300))
        .run(RunContext::new(NodeRoleId(1), "hang", node()))
        .await
        .unwrap_err();
    match &err {
        JigError::Timeout { after_ms, runlog } => {
            assert_eq!(*after_ms, 300);
            // What the script wrote before it hung is kept, then why it ended.
            assert!(
                runlog.starts_with("== 01-hang.sh\nstarted\n== killed:"),
                "{runlog}"
            );
            assert!(runlog.contains("ran out of time"), "{runlog}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(err.retryable());
    // The child is gone: kill -0 fails once it has been reaped.
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let alive = std::process::Command::new("kill")
            .args(["-0", &pid])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        if !alive {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pid {pid} still alive"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn output_and_errors_stay_in_the_order_they_were_written() {
    let dir = tempfile::tempdir().unwrap();
    script(
        dir.path(),
        "trace",
        "01-trace.sh",
        "set -x\necho one\necho two >&2\necho three\nprintf 'no newline at the end'",
    );
    let out = jig(dir.path(), Duration::from_secs(60))
        .run(RunContext::new(NodeRoleId(5), "trace", node()))
        .await
        .unwrap();
    assert_eq!(
        out.runlog,
        "== 01-trace.sh\n+ echo one\none\n+ echo two\ntwo\n+ echo three\nthree\n\
         + printf no newline at the end\nno newline at the end"
    );
}

#[tokio::test]
async fn a_flood_of_output_is_cut_at_the_cap_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    // 8 MiB of lines of 127 bytes (63 two-byte characters and a newline), then a line on
    // standard error.
    script(
        dir.path(),
        "flood",
        "01-flood.sh",
        "yes 'ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé' | head -c 8388608\n\
         echo done >&2",
    );
    let out = capped_jig(dir.path(), Duration::from_secs(60), 1000)
        .run(RunContext::new(NodeRoleId(6), "flood", node()))
        .await
        .unwrap();
    let (kept, note) = out
        .runlog
        .split_once("\n[")
        .expect("a note of what was dropped");
    // 15 bytes of header, then the lines: the cap falls between two characters.
    assert_eq!(kept.len(), 1000, "cut at the cap");
    assert!(kept.starts_with("== 01-flood.sh\néé"), "{kept}");
    // Everything past the cap is counted: the header line is 15 bytes, "done\n" 5.
    assert_eq!(
        note,
        format!("{} bytes of output dropped]\n", 15 + 8_388_608 + 5 - 1000)
    );
}

/// Kills a process by pid when dropped.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg(&self.0).status();
    }
}

/// Runs role `svc`, whose one script is `body` with `{pidfile}` standing for the file where it
/// writes the pid of the background process it leaves; that process is killed when the
/// returned guard drops.
async fn run_leaving_a_process(
    body: &str,
    max_log_bytes: usize,
) -> (Result<JigOutput, JigError>, KillOnDrop) {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("background.pid");
    let body = body.replace("{pidfile}", &pidfile.display().to_string());
    script(dir.path(), "svc", "01-start.sh", &body);
    let ran = capped_jig(dir.path(), Duration::from_secs(60), max_log_bytes)
        .run(RunContext::new(NodeRoleId(8), "svc", node()))
        .await;
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
    (ran, KillOnDrop(pid))
}

#[tokio::test]
async fn a_background_process_holding_the_output_does_not_keep_the_run_open() {
    // A daemon started the careless way: in the background, with the script's output.
    let (ran, _daemon) = run_leaving_a_process(
        "sleep 600 &\necho $! > {pidfile}\necho started\nprintf 'last words'",
        1 << 20,
    )
    .await;
    let out = ran.expect("the run ends with its script, not at the time limit");
    assert_eq!(out.runlog, "== 01-start.sh\nstarted\nlast words");
}

#[tokio::test]
async fn a_background_process_that_never_stops_writing_does_not_keep_the_run_open() {
    // The writer fills more than a pipe's worth, says so, and goes on writing; the script
    // waits for that (a busy loop: no sleep) and exits while the pipe is being filled, so the
    // jig must notice the exit while its reads are always ready. (After the exit it reads at
    // most a pipe's worth, whoever writes.)
    let (ran, _writer) = run_leaving_a_process(
        "sh -c 'yes | head -c 70000; touch ready; exec yes' &\necho $! > {pidfile}\n\
         while [ ! -e ready ]; do :; done\nexit 0",
        100,
    )
    .await;
    let out = ran.expect("the run ends with its script");
    assert!(
        out.runlog.starts_with("== 01-start.sh\ny\ny\n"),
        "{}",
        out.runlog
    );
    assert!(
        out.runlog.contains("bytes of output dropped]"),
        "{}",
        out.runlog
    );
}

#[tokio::test]
async fn scripts_see_a_clean_environment() {
    let dir = tempfile::tempdir().unwrap();
    script(
        dir.path(),
        "env",
        "01-env.sh",
        "mkdir -p attrs/env/count && env | grep -cv '^PWD=\\|^SHLVL=\\|^_=\\|^PATH=' > attrs/env/count/wall || true",
    );
    let out = jig(dir.path(), Duration::from_secs(60))
        .run(RunContext::new(NodeRoleId(1), "env", node()))
        .await
        .unwrap();
    assert_eq!(out.wall, Some(json!({"env": {"count": 0}})));
}

#[tokio::test(start_paused = true)]
async fn the_test_jig_follows_its_data_like_crowbars() {
    let t = TestJig;
    let cx = |role: &str, data| RunContext::new(NodeRoleId(1), role, node()).with_data(data);
    let start = tokio::time::Instant::now();
    let out = t
        .run(cx("t", json!({"test": {"delay_ms": 2500}})))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(2500));
    assert_eq!(
        out.wall,
        Some(json!({"test": {"ran": true, "attempt": 1, "node": "n1.example.com"}}))
    );
    let err = t.run(cx("test-fails", json!({}))).await.unwrap_err();
    assert!(!err.retryable());
    let err = t
        .run(cx(
            "t",
            json!({"test": {"fail": "nope", "retryable": true}}),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "nope");
    assert!(err.retryable());
    let flaky = json!({"test": {"fail_attempts": 1}});
    assert!(t.run(cx("t", flaky.clone())).await.is_err());
    assert!(t.run(cx("t", flaky).with_attempt(2)).await.is_ok());
}

#[tokio::test]
async fn noop_succeeds_at_once_and_the_registry_finds_jigs_by_name() {
    let reg = JigRegistry::with_builtins();
    let cx = RunContext::new(NodeRoleId(1), "x", node());
    assert_eq!(NoopJig.run(cx.clone()).await, Ok(JigOutput::empty()));
    assert!(!reg.get("noop").unwrap().needs_data());
    assert!(reg.get("test").unwrap().run_now(cx.view()).is_none());
    assert_eq!(NoopJig.run_now(cx.view()), Some(Ok(JigOutput::empty())));
    assert!(reg.get("script").is_none());
}
