//! Helpers shared by the jig tests.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes an executable `sh` script `<dir>/scripts/<role>/<name>` with `body`.
pub(crate) fn script(dir: &Path, role: &str, name: &str, body: &str) {
    let d = dir.join("scripts").join(role);
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}
