//! API tokens: bearer tokens with a role, kept as SHA-256 hashes only.
//!
//! On first start the agent makes an operator token and a reader token, writes their hashes to
//! the token file and the tokens themselves, once, to the secret file (both mode 0600); the
//! tokens are never logged and never kept in memory past that write.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    /// Read only: GET requests.
    Reader,
    /// Everything.
    Operator,
}

/// The agent's tokens, by hash.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], (String, TokenRole)>,
}

#[derive(Serialize, Deserialize)]
struct TokenFile {
    #[serde(default)]
    token: Vec<TokenRow>,
}

#[derive(Serialize, Deserialize)]
struct TokenRow {
    name: String,
    role: TokenRole,
    sha256: String,
}

/// Why the tokens could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The file could not be read or written.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a token file.
    #[error("token file {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn write_private(path: &Path, text: &str) -> Result<(), TokenError> {
    let io = |source| TokenError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    // An existing file keeps its mode through `open`: make it private too.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

impl Tokens {
    /// Tokens made from plain secrets (for embedding and tests).
    pub fn from_secrets<'a>(secrets: impl IntoIterator<Item = (&'a str, TokenRole)>) -> Tokens {
        let mut t = Tokens::default();
        for (i, (secret, role)) in secrets.into_iter().enumerate() {
            t.by_hash.insert(hash(secret), (format!("token{i}"), role));
        }
        t
    }

    /// Loads the token file, or makes it (and the secret file) on first start. Returns the
    /// tokens and whether they were just made.
    pub fn load_or_create(file: &Path, secret_file: &Path) -> Result<(Tokens, bool), TokenError> {
        let invalid = |reason: String| TokenError::Invalid {
            path: file.display().to_string(),
            reason,
        };
        match std::fs::read_to_string(file) {
            Ok(text) => {
                let parsed: TokenFile =
                    toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
                let mut t = Tokens::default();
                for row in parsed.token {
                    let h = unhex(&row.sha256).ok_or_else(|| {
                        invalid(format!("token {:?}: sha256 is not 64 hex digits", row.name))
                    })?;
                    t.by_hash.insert(h, (row.name, row.role));
                }
                if t.by_hash.is_empty() {
                    return Err(invalid("holds no token".into()));
                }
                Ok((t, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut rng = rand::rng();
                let mut secret = || {
                    let mut b = [0u8; 32];
                    rng.fill_bytes(&mut b);
                    hex(&b)
                };
                let (operator, reader) = (secret(), secret());
                let rows = TokenFile {
                    token: vec![
                        TokenRow {
                            name: "operator".into(),
                            role: TokenRole::Operator,
                            sha256: hex(&hash(&operator)),
                        },
                        TokenRow {
                            name: "reader".into(),
                            role: TokenRole::Reader,
                            sha256: hex(&hash(&reader)),
                        },
                    ],
                };
                write_private(
                    secret_file,
                    &format!(
                        "# crowbar-agent API tokens, shown once: keep them, then delete this file.\n\
                         operator = \"{operator}\"\nreader = \"{reader}\"\n"
                    ),
                )?;
                let text = toml::to_string(&rows).map_err(|e| invalid(e.to_string()))?;
                write_private(file, &text)?;
                Ok((
                    Tokens::from_secrets([
                        (operator.as_str(), TokenRole::Operator),
                        (reader.as_str(), TokenRole::Reader),
                    ]),
                    true,
                ))
            }
            Err(source) => Err(TokenError::Io {
                path: file.display().to_string(),
                source,
            }),
        }
    }

    /// The role of a presented token, if it is one of ours.
    pub fn check(&self, token: &str) -> Option<TokenRole> {
        self.by_hash.get(&hash(token)).map(|(_, role)| *role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_makes_private_files_and_later_starts_read_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let (file, secret) = (
            dir.path().join("tokens.toml"),
            dir.path().join("tokens.secret"),
        );
        let (tokens, made) = Tokens::load_or_create(&file, &secret).unwrap();
        assert!(made);
        for f in [&file, &secret] {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
        let secrets: toml::Table =
            toml::from_str(&std::fs::read_to_string(&secret).unwrap()).unwrap();
        let operator = secrets["operator"].as_str().unwrap();
        let reader = secrets["reader"].as_str().unwrap();
        // The token file holds hashes, not the tokens.
        let stored = std::fs::read_to_string(&file).unwrap();
        assert!(!stored.contains(operator) && !stored.contains(reader));
        assert_eq!(tokens.check(operator), Some(TokenRole::Operator));

        let (again, made) = Tokens::load_or_create(&file, &secret).unwrap();
        assert!(!made);
        assert_eq!(again.check(operator), Some(TokenRole::Operator));
        assert_eq!(again.check(reader), Some(TokenRole::Reader));
        assert_eq!(again.check("not-a-token"), None);
    }

    #[test]
    fn a_damaged_token_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.toml");
        std::fs::write(
            &file,
            "[[token]]\nname = \"x\"\nrole = \"operator\"\nsha256 = \"zz\"\n",
        )
        .unwrap();
        let err = Tokens::load_or_create(&file, &dir.path().join("s")).unwrap_err();
        assert!(
            err.to_string().contains("sha256 is not 64 hex digits"),
            "{err}"
        );
        assert!(err.to_string().contains("tokens.toml"), "{err}");
    }
}
