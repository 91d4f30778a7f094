//! Spin variables: application variables resolved once at start-up, component
//! variables rendered from `{{ name }}` templates, and the host side of
//! `fermyon:spin/variables@2.0.0`.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context};

use crate::http::bindings::fermyon::spin::variables::{Error, Host};
use crate::http::ComponentState;
use crate::manifest::Manifest;

/// Resolves application variables: `SPIN_VARIABLE_<NAME>` from the environment (as
/// Spin's environment provider does), then `provided` (e.g. the host's JWT secret),
/// then the manifest default.
pub fn resolve_app(
    manifest: &Manifest,
    provided: &HashMap<String, String>,
) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (name, decl) in &manifest.variables {
        let env = std::env::var(format!("SPIN_VARIABLE_{}", name.to_uppercase())).ok();
        let value = env
            .or_else(|| provided.get(name).cloned())
            .or_else(|| decl.default.clone());
        match value {
            Some(v) => {
                out.insert(name.clone(), v);
            }
            None if decl.required => bail!("variable `{name}` is required but has no value"),
            None => {}
        }
    }
    Ok(out)
}

/// Renders a component's variables against the application's.
pub fn render_component(
    templates: &BTreeMap<String, String>,
    app: &HashMap<String, String>,
) -> anyhow::Result<HashMap<String, String>> {
    templates
        .iter()
        .map(|(k, t)| {
            Ok((
                k.clone(),
                render(t, app).with_context(|| format!("variable `{k}`"))?,
            ))
        })
        .collect()
}

fn render(template: &str, app: &HashMap<String, String>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            bail!("unclosed `{{{{`")
        };
        let name = rest[start + 2..start + end].trim();
        match app.get(name) {
            Some(v) => out.push_str(v),
            None => bail!("template names unknown application variable `{name}`"),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Host for ComponentState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        Ok(match self.component.variables.get(&name) {
            Some(v) => Ok(v.clone()),
            None => Err(Error::Undefined(format!("no variable named `{name}`"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_templates() {
        let app = HashMap::from([("secret".to_owned(), "s3".to_owned())]);
        assert_eq!(render("{{ secret }}", &app).unwrap(), "s3");
        assert_eq!(render("a-{{secret}}-b", &app).unwrap(), "a-s3-b");
        assert!(render("{{ nope }}", &app).is_err());
        assert!(render("{{ secret", &app).is_err());
    }

    #[test]
    fn environment_beats_provided_beats_default() {
        let m = Manifest::parse(
            r#"spin_manifest_version = 2
               [variables]
               vigil_test_a = { default = "d" }
               vigil_test_b = { default = "d" }
               vigil_test_req = { required = true }"#,
        )
        .unwrap();
        let provided = HashMap::from([
            ("vigil_test_b".to_owned(), "p".to_owned()),
            ("vigil_test_req".to_owned(), "r".to_owned()),
        ]);
        let v = resolve_app(&m, &provided).unwrap();
        assert_eq!(
            (v["vigil_test_a"].as_str(), v["vigil_test_b"].as_str()),
            ("d", "p")
        );
        assert!(
            resolve_app(&m, &HashMap::new()).is_err(),
            "required variable missing"
        );
    }
}
