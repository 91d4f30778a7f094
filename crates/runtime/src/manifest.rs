//! The parts of a Spin manifest (`spin.toml`, version 2) the host serves from.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

/// A parsed `spin.toml`.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    /// Must be 2.
    pub spin_manifest_version: u32,
    /// Application variables, with defaults.
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    /// Triggers; only HTTP ones are served.
    #[serde(default)]
    pub trigger: Triggers,
    /// Components by id.
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
}

/// An application variable.
#[derive(Debug, Deserialize)]
pub struct VariableDecl {
    /// Value when nothing else provides one.
    pub default: Option<String>,
    /// Start-up fails when no value is provided.
    #[serde(default)]
    pub required: bool,
}

/// `[[trigger.*]]` tables.
#[derive(Debug, Default, Deserialize)]
pub struct Triggers {
    /// `[[trigger.http]]`.
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
}

/// One `[[trigger.http]]`.
#[derive(Debug, Deserialize)]
pub struct HttpTrigger {
    /// Route pattern, e.g. `/api/...`.
    pub route: String,
    /// Id of the component that serves it.
    pub component: String,
}

/// One `[component.<id>]`.
#[derive(Debug, Deserialize)]
pub struct ComponentDecl {
    /// Path of the `.wasm`, relative to the manifest.
    pub source: String,
    /// Key-value store labels the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Component variables; values may be `{{ app_variable }}` templates.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in manifest {}", path.display()))
    }

    /// Parses and checks manifest text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let m: Manifest = toml::from_str(text)?;
        if m.spin_manifest_version != 2 {
            bail!(
                "spin_manifest_version must be 2, found {}",
                m.spin_manifest_version
            );
        }
        for t in &m.trigger.http {
            if !m.component.contains_key(&t.component) {
                bail!(
                    "route {} names unknown component `{}`",
                    t.route,
                    t.component
                );
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_manifest() {
        let m =
            Manifest::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml")).unwrap();
        let api = &m.component["api"];
        assert_eq!(api.key_value_stores, ["default"]);
        assert!(api.source.ends_with("vigil_api.wasm"));
        assert!(m.trigger.http.iter().any(|t| t.route == "/api/..."));
        assert!(m.variables.contains_key("jwt_secret"));
    }

    #[test]
    fn refuses_other_versions_and_dangling_routes() {
        assert!(Manifest::parse("spin_manifest_version = 1").is_err());
        let dangling = r#"
            spin_manifest_version = 2
            [[trigger.http]]
            route = "/..."
            component = "nope"
        "#;
        assert!(Manifest::parse(dangling).is_err());
    }
}
