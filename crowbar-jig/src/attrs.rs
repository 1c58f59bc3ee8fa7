//! The staged data as a directory tree, the way Crowbar's script jig laid it out
//! (`attrs/<path...>/attr`), and the wall data read back from the `wall` files scripts write.

use std::path::Path;

use serde_json::{Map, Value};

use crate::JigError;

fn io(operation: &'static str, path: &Path, e: std::io::Error) -> JigError {
    JigError::Io {
        operation,
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Whether `key` can be a single path component: not empty, not `.` or `..`, no `/` or NUL.
pub(crate) fn safe_component(key: &str) -> bool {
    !key.is_empty() && key != "." && key != ".." && !key.contains(['/', '\0'])
}

/// Writes `value` under `dir`: objects become directories per key, arrays directories per
/// index, scalars an `attr` file holding their text (strings raw, `null` empty). Keys that
/// cannot be path components are skipped and listed in the returned notes.
pub(crate) fn write_attrs(
    dir: &Path,
    value: &Value,
    notes: &mut Vec<String>,
) -> Result<(), JigError> {
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let scalar = match value {
        Value::Object(map) => {
            for (k, v) in map {
                if safe_component(k) {
                    write_attrs(&dir.join(k), v, notes)?;
                } else {
                    notes.push(format!(
                        "skipped attribute key {k:?} under {}",
                        dir.display()
                    ));
                }
            }
            return Ok(());
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                write_attrs(&dir.join(i.to_string()), v, notes)?;
            }
            return Ok(());
        }
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let file = dir.join("attr");
    std::fs::write(&file, scalar).map_err(|e| io("write", &file, e))
}

/// Coerces a `wall` file's text as Crowbar's runner did: `true`/`false`, decimal, `0x`/`0o`/
/// `0b` integers become JSON booleans and numbers; anything else stays a string. A single
/// trailing newline is dropped.
pub(crate) fn coerce(text: &str) -> Value {
    let t = text.strip_suffix('\n').unwrap_or(text);
    let t = t.strip_suffix('\r').unwrap_or(t);
    match t {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let parsed = if let Some(h) = digits.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = digits.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = digits.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i64>().ok()
    } else {
        None
    };
    match parsed {
        Some(n) => Value::from(if negative { -n } else { n }),
        None => Value::String(t.to_owned()),
    }
}

/// Reads every `wall` file under `dir` into one object: the file `a/b/wall` sets `{"a": {"b":
/// value}}`; a `wall` file directly in `dir` is ignored. Returns `None` when there is none.
pub(crate) fn read_walls(dir: &Path) -> Result<Option<Value>, JigError> {
    let mut out = Value::Object(Map::new());
    let mut found = false;
    let mut stack = vec![(dir.to_owned(), Vec::<String>::new())];
    while let Some((d, path)) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("read", &d, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io("read", &d, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry
                .file_type()
                .map_err(|e| io("stat", &entry.path(), e))?;
            if kind.is_dir() {
                let mut p = path.clone();
                p.push(name);
                stack.push((entry.path(), p));
            } else if kind.is_file() && name == "wall" && !path.is_empty() {
                let text = std::fs::read_to_string(entry.path())
                    .map_err(|e| io("read", &entry.path(), e))?;
                set_path(&mut out, &path, coerce(&text));
                found = true;
            }
        }
    }
    Ok(found.then_some(out))
}

fn set_path(root: &mut Value, path: &[String], value: Value) {
    let mut cur = root;
    for (i, key) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let map = cur.as_object_mut().expect("made an object above");
        if i + 1 == path.len() {
            map.insert(key.clone(), value);
            return;
        }
        cur = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn coercion_follows_crowbar_runner() {
        assert_eq!(coerce("true\n"), json!(true));
        assert_eq!(coerce("false"), json!(false));
        assert_eq!(coerce("42\n"), json!(42));
        assert_eq!(coerce("-7"), json!(-7));
        assert_eq!(coerce("0x1f"), json!(31));
        assert_eq!(coerce("0o17"), json!(15));
        assert_eq!(coerce("0b101"), json!(5));
        assert_eq!(coerce("1.5"), json!("1.5"));
        assert_eq!(coerce("eth0\n"), json!("eth0"));
        assert_eq!(coerce(""), json!(""));
    }

    #[test]
    fn attrs_tree_round_trips_through_wall_files() {
        let dir = tempfile::tempdir().unwrap();
        let attrs = dir.path().join("attrs");
        let mut notes = Vec::new();
        let data = json!({"ntp": {"servers": ["a", "b"], "port": 123, "on": true, "none": null},
                          "bad/key": 1, "..": 2});
        write_attrs(&attrs, &data, &mut notes).unwrap();
        let read = |p: &str| std::fs::read_to_string(attrs.join(p)).unwrap();
        assert_eq!(read("ntp/servers/0/attr"), "a");
        assert_eq!(read("ntp/servers/1/attr"), "b");
        assert_eq!(read("ntp/port/attr"), "123");
        assert_eq!(read("ntp/on/attr"), "true");
        assert_eq!(read("ntp/none/attr"), "");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert_eq!(read_walls(&attrs).unwrap(), None);

        std::fs::write(attrs.join("ntp/port/wall"), "0x7b\n").unwrap();
        std::fs::create_dir_all(attrs.join("ntp/state")).unwrap();
        std::fs::write(attrs.join("ntp/state/wall"), "synced\n").unwrap();
        assert_eq!(
            read_walls(&attrs).unwrap(),
            Some(json!({"ntp": {"port": 123, "state": "synced"}}))
        );
    }
}
