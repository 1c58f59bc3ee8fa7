//! ARCHITECTURE.md must stay true: every workspace crate appears in it.

#[test]
fn every_workspace_crate_is_in_the_architecture_map() {
    let root = env!("CARGO_MANIFEST_DIR");
    let map = std::fs::read_to_string(format!("{root}/ARCHITECTURE.md")).unwrap();
    let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    let members: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("\"crates/"))
        .map(|l| l.trim_end_matches(['"', ',']))
        .collect();
    assert!(members.len() >= 6, "found the members: {members:?}");
    for crate_name in members {
        assert!(
            map.contains(&format!("### `{crate_name}`")),
            "ARCHITECTURE.md has no section for {crate_name}"
        );
    }
}
