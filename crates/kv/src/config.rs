//! Spin's `runtime-config.toml`, the `[key_value_store.<label>]` tables of it:
//! which backend serves each store label.
//!
//! ```toml
//! [key_value_store.default]
//! type = "spin"                      # embedded SQLite, Spin's own default
//! path = ".spin/sqlite_key_value.db" # relative to this file
//!
//! [key_value_store.shared]
//! type = "redis"                     # Spin's Redis store, same key layout
//! url = "redis://127.0.0.1:6379/0"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// The file name of Spin's embedded store, kept so Vigil and `spin up` can share it.
pub const DEFAULT_DB_FILE: &str = "sqlite_key_value.db";

/// A backend for one store label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// Embedded, durable SQLite file in Spin's schema.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A Redis database, Spin's key layout (each key a plain string under itself).
    Redis {
        /// `redis://[user:password@]host[:port][/db]`.
        url: String,
    },
}

#[derive(Deserialize)]
struct RuntimeConfigFile {
    #[serde(default)]
    key_value_store: BTreeMap<String, StoreTable>,
}

#[derive(Deserialize)]
struct StoreTable {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
    url: Option<String>,
}

/// Store label → backend. Without a file, `default` is embedded SQLite in `data_dir`.
pub fn load(file: Option<&Path>, data_dir: &Path) -> anyhow::Result<BTreeMap<String, StoreConfig>> {
    let mut stores = BTreeMap::new();
    stores.insert(
        "default".to_owned(),
        StoreConfig::Sqlite {
            path: data_dir.join(DEFAULT_DB_FILE),
        },
    );
    let Some(file) = file else { return Ok(stores) };
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading runtime config {}", file.display()))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let parsed: RuntimeConfigFile = toml::from_str(&text)
        .with_context(|| format!("parsing runtime config {}", file.display()))?;
    for (label, table) in parsed.key_value_store {
        let config = match table.kind.as_str() {
            "spin" | "sqlite" => StoreConfig::Sqlite {
                path: base.join(table.path.unwrap_or_else(|| data_dir.join(DEFAULT_DB_FILE))),
            },
            "redis" => StoreConfig::Redis {
                url: table
                    .url
                    .with_context(|| format!("key_value_store.{label}: `type = \"redis\"` needs a `url`"))?,
            },
            other => bail!(
                "key_value_store.{label}: backend type `{other}` is not supported (supported: spin, redis)"
            ),
        };
        stores.insert(label, config);
    }
    Ok(stores)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vigil-rc-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("runtime-config.toml");
        std::fs::write(&f, text).unwrap();
        f
    }

    #[test]
    fn default_is_embedded_in_the_data_dir() {
        let s = load(None, Path::new("/data")).unwrap();
        assert_eq!(
            s["default"],
            StoreConfig::Sqlite {
                path: "/data/sqlite_key_value.db".into()
            }
        );
    }

    #[test]
    fn spin_type_path_is_relative_to_the_file() {
        let f = write("[key_value_store.default]\ntype = \"spin\"\npath = \"kv.db\"\n");
        let s = load(Some(&f), Path::new("/data")).unwrap();
        assert_eq!(
            s["default"],
            StoreConfig::Sqlite {
                path: f.parent().unwrap().join("kv.db")
            }
        );
    }

    #[test]
    fn redis_type_takes_a_url() {
        let f = write("[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://h:1/2\"\n");
        let s = load(Some(&f), Path::new("/data")).unwrap();
        assert_eq!(
            s["default"],
            StoreConfig::Redis {
                url: "redis://h:1/2".into()
            }
        );
        let f = write("[key_value_store.default]\ntype = \"redis\"\n");
        let e = load(Some(&f), Path::new("/data")).unwrap_err();
        assert!(format!("{e:#}").contains("needs a `url`"), "{e:#}");
    }

    #[test]
    fn unknown_backends_are_refused_by_name() {
        let f = write("[key_value_store.default]\ntype = \"azure_cosmos\"\n");
        let e = load(Some(&f), Path::new("/data")).unwrap_err();
        assert!(format!("{e:#}").contains("azure_cosmos"));
    }
}
