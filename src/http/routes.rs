//! The route table: which paths exist and which methods each accepts.
//!
//! One enum is the single source for the router, the `Allow` header of a 405, metrics labels
//! and the test that keeps the OpenAPI document in step with what is served.

use http::Method;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Play,
    Healthz,
    Readyz,
    OpenApi,
}

impl Route {
    pub const ALL: [Route; 4] = [Route::Play, Route::Healthz, Route::Readyz, Route::OpenApi];

    /// The path as written in the OpenAPI document.
    pub const fn template(self) -> &'static str {
        match self {
            Route::Play => "/play",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::OpenApi => "/openapi.json",
        }
    }

    /// The methods a client may use, as the documented operations (HEAD is implied by GET).
    pub fn methods(self) -> &'static [Method] {
        match self {
            Route::Play => &[Method::POST],
            Route::Healthz | Route::Readyz | Route::OpenApi => &[Method::GET],
        }
    }

    /// The value of the `Allow` header for this route.
    pub const fn allow(self) -> &'static str {
        match self {
            Route::Play => "POST",
            Route::Healthz | Route::Readyz | Route::OpenApi => "GET, HEAD",
        }
    }

    /// The route serving `path` (without query string), if any.
    pub fn recognize(path: &str) -> Option<Route> {
        Route::ALL
            .into_iter()
            .find(|route| route.template() == path)
    }

    pub fn accepts(self, method: &Method) -> bool {
        let methods = self.methods();
        methods.contains(method) || (*method == Method::HEAD && methods.contains(&Method::GET))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_recognizes_its_own_template_only() {
        for route in Route::ALL {
            assert_eq!(Route::recognize(route.template()), Some(route));
        }
        for path in ["/", "/play/", "/PLAY", "/play/x", "//play", ""] {
            assert_eq!(Route::recognize(path), None, "{path:?}");
        }
    }

    #[test]
    fn allow_lists_exactly_the_accepted_methods() {
        let candidates = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ];
        for route in Route::ALL {
            let allowed: Vec<&str> = route.allow().split(", ").collect();
            for method in &candidates {
                assert_eq!(
                    route.accepts(method),
                    allowed.contains(&method.as_str()),
                    "{route:?} {method}"
                );
            }
        }
    }
}
