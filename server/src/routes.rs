//! The router's own list of its routes. Every route of the server (not the Leptos pages and
//! server functions, which Leptos lists itself) is added through [`route!`], which builds the
//! method router *and* records the path and methods from the same tokens, so the list cannot
//! drift from what is served. The authorization matrix test and the OpenAPI test read it
//! ([`crate::route_table`]) and fail when a route has no row or no documentation.

use axum::Router;
use axum::routing::MethodRouter;

/// A route as registered: its path template and the methods it answers (lower case, as the
/// `MethodRouter` builder methods are named: `get`, `post`, `patch`, `delete`, `any`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub path: &'static str,
    pub methods: Vec<&'static str>,
}

/// A router together with the list of what it serves.
pub struct Routes<S> {
    router: Router<S>,
    table: Vec<RouteSpec>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Use [`route!`] rather than this: it keeps `methods` and `method_router` in step.
    pub fn add(
        mut self,
        path: &'static str,
        methods: &[&'static str],
        method_router: MethodRouter<S>,
    ) -> Self {
        self.router = self.router.route(path, method_router);
        self.table.push(RouteSpec {
            path,
            methods: methods.to_vec(),
        });
        self
    }

    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    pub fn into_parts(self) -> (Router<S>, Vec<RouteSpec>) {
        (self.router, self.table)
    }
}

/// `route!(routes, "/path", get(handler).post(other))`: adds the route and records its
/// methods from the same builder calls.
#[macro_export]
macro_rules! route {
    ($routes:expr, $path:literal, $($method:ident($handler:expr)).+) => {
        $routes.add(
            $path,
            &[$(stringify!($method)),+],
            axum::routing::MethodRouter::new()$(.$method($handler))+,
        )
    };
}

/// Whether a concrete request path matches a route template (`{param}` and `:param` match
/// one segment, `{*rest}` the remainder).
pub fn template_matches(template: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let mut t = template.trim_matches('/').split('/');
    let mut p = path.trim_matches('/').split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), _) if ts.starts_with("{*") => return true,
            (Some(ts), Some(ps)) => {
                let param = (ts.starts_with('{') && ts.ends_with('}')) || ts.starts_with(':');
                if !param && ts != ps {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_paths() {
        let cases = [
            ("/api/v1/users/{id}", "/api/v1/users/42", true),
            ("/api/v1/users/{id}", "/api/v1/users", false),
            ("/api/v1/users/{id}", "/api/v1/users/42/x", false),
            ("/api/v1/{*rest}", "/api/v1/a/b/c", true),
            ("/incidents/:key", "/incidents/INC-1", true),
            ("/healthz", "/healthz", true),
            ("/healthz", "/readyz", false),
            ("/", "/", true),
            (
                "/kafka/{target}/groups/{group}/lag",
                "/kafka/1/groups/g/lag?from=x",
                true,
            ),
        ];
        for (t, p, want) in cases {
            assert_eq!(template_matches(t, p), want, "{t} {p}");
        }
    }

    #[test]
    fn the_macro_records_what_it_builds() {
        async fn h() {}
        let r: Routes<()> = Routes::new();
        let r = route!(r, "/x/{id}", get(h).post(h).delete(h));
        let (_, table) = r.into_parts();
        assert_eq!(
            table,
            vec![RouteSpec {
                path: "/x/{id}",
                methods: vec!["get", "post", "delete"]
            }]
        );
    }
}
