//! ARCHITECTURE.md must stay true, and the layout must stay the design card's: every workspace
//! member is a directory at the top level of the repository, every member has a section in
//! ARCHITECTURE.md, and every crate ARCHITECTURE.md describes is a member that exists.

use std::path::Path;

/// The workspace members, read from the root manifest's `members = [...]` list.
fn members(manifest: &str) -> Vec<String> {
    let start = manifest
        .find("members = [")
        .expect("the root manifest lists its members");
    let list = &manifest[start..];
    let end = list.find(']').expect("the members list is closed");
    list["members = [".len()..end]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The crates ARCHITECTURE.md has a code-map section for (`### \`name\``).
fn described(map: &str) -> Vec<String> {
    map.lines()
        .filter_map(|l| l.strip_prefix("### `"))
        .filter_map(|l| l.strip_suffix('`'))
        .filter(|name| name.starts_with("crowbar-"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_crate_sits_at_the_top_level_and_is_in_the_architecture_map() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members = members(&manifest);
    let expected = [
        "crowbar-core",
        "crowbar-net",
        "crowbar-jig",
        "crowbar-anneal",
        "crowbar-pxe",
        "crowbar-dns",
    ];
    for name in expected {
        assert!(
            members.iter().any(|m| m == name),
            "{name} is not a workspace member: {members:?}"
        );
    }
    for member in &members {
        assert!(
            !member.contains('/'),
            "workspace member {member} is not at the top level (the design card's layout)"
        );
        assert!(
            root.join(member).join("Cargo.toml").is_file(),
            "workspace member {member} has no {member}/Cargo.toml"
        );
        assert!(
            map.contains(&format!("### `{member}`")),
            "ARCHITECTURE.md has no section for {member}"
        );
    }
    let described = described(&map);
    assert!(
        described.len() >= expected.len(),
        "sections found: {described:?}"
    );
    for name in described {
        assert!(
            members.contains(&name) && root.join(&name).join("Cargo.toml").is_file(),
            "ARCHITECTURE.md describes {name}, which is not a crate at the top level"
        );
    }
}

#[test]
fn the_old_crates_directory_is_gone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        !root.join("crates").exists(),
        "crates/ is back: the crates live at the top level"
    );
}
