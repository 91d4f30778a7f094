//! Spin's HTTP route syntax: exact paths, `:name` parameters and a trailing `/...`
//! wildcard. Exact routes win over wildcards; among wildcards the longest prefix wins.

/// One route of the manifest.
#[derive(Debug, Clone)]
pub struct Route {
    /// The pattern as written, e.g. `/api/...`.
    pub pattern: String,
    /// Index of the component serving it.
    pub component: usize,
    segments: Vec<String>,
    wildcard: bool,
}

/// What a request matched.
#[derive(Debug, PartialEq, Eq)]
pub struct Match<'a> {
    /// Index of the component.
    pub component: usize,
    /// The pattern as written (`spin-matched-route`).
    pub pattern: &'a str,
    /// The pattern without the wildcard (`spin-component-route`).
    pub base: String,
    /// Path after the matched prefix (`spin-path-info`).
    pub path_info: String,
    /// `:name` parameters (`spin-path-match-<name>`).
    pub params: Vec<(String, String)>,
}

impl Route {
    /// Parses `pattern`.
    pub fn new(pattern: &str, component: usize) -> Self {
        let trimmed = pattern.trim_end_matches('/');
        let (body, wildcard) = match trimmed.strip_suffix("/...") {
            Some(b) => (b, true),
            None if trimmed == "..." => ("", true),
            None => (trimmed, false),
        };
        let segments = body
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        Self {
            pattern: pattern.to_owned(),
            component,
            segments,
            wildcard,
        }
    }

    fn matches<'a>(&'a self, path: &[&str]) -> Option<Match<'a>> {
        let n = self.segments.len();
        if path.len() < n || (!self.wildcard && path.len() != n) {
            return None;
        }
        let mut params = Vec::new();
        for (pat, seg) in self.segments.iter().zip(path) {
            match pat.strip_prefix(':') {
                Some(name) => params.push((name.to_owned(), (*seg).to_owned())),
                None if pat == seg => {}
                None => return None,
            }
        }
        let rest = &path[n..];
        Some(Match {
            component: self.component,
            pattern: &self.pattern,
            base: format!("/{}", self.segments.join("/")),
            path_info: if rest.is_empty() {
                String::new()
            } else {
                format!("/{}", rest.join("/"))
            },
            params,
        })
    }
}

/// The manifest's routes, in match order.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Orders `routes` for matching.
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by_key(|r| (r.wildcard, std::cmp::Reverse(r.segments.len())));
        Self { routes }
    }

    /// The route serving `path`, if any.
    pub fn find(&self, path: &str) -> Option<Match<'_>> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        self.routes.iter().find_map(|r| r.matches(&segs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new(vec![
            Route::new("/api/...", 0),
            Route::new("/health", 1),
            Route::new("/api/special", 2),
            Route::new("/users/:id", 3),
            Route::new("/...", 4),
        ])
    }

    #[test]
    fn exact_beats_wildcard_and_longest_prefix_wins() {
        let r = router();
        assert_eq!(r.find("/api/special").unwrap().component, 2);
        let m = r.find("/api/v1/tasks").unwrap();
        assert_eq!(
            (m.component, m.base.as_str(), m.path_info.as_str()),
            (0, "/api", "/v1/tasks")
        );
        assert_eq!(r.find("/health").unwrap().component, 1);
        assert_eq!(r.find("/elsewhere").unwrap().component, 4);
        assert_eq!(r.find("/api").unwrap().path_info, "");
    }

    #[test]
    fn parameters_are_captured() {
        let r = router();
        let m = r.find("/users/42").unwrap();
        assert_eq!(m.params, [("id".to_owned(), "42".to_owned())]);
        assert_eq!(r.find("/users/42/x").unwrap().component, 4);
    }

    #[test]
    fn nothing_matches_without_a_catch_all() {
        let r = Router::new(vec![Route::new("/health", 0)]);
        assert!(r.find("/nope").is_none());
        assert!(r.find("/health/x").is_none());
    }
}
