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
    PlayerStats,
    PlayerGames,
    PlayerRank,
    Leaderboard,
}

impl Route {
    pub const ALL: [Route; 8] = [
        Route::Play,
        Route::Healthz,
        Route::Readyz,
        Route::OpenApi,
        Route::PlayerStats,
        Route::PlayerGames,
        Route::PlayerRank,
        Route::Leaderboard,
    ];

    /// The path as written in the OpenAPI document.
    pub const fn template(self) -> &'static str {
        match self {
            Route::Play => "/play",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::OpenApi => "/openapi.json",
            Route::PlayerStats => "/players/{id}/stats",
            Route::PlayerGames => "/players/{id}/games",
            Route::PlayerRank => "/players/{id}/rank",
            Route::Leaderboard => "/leaderboard",
        }
    }

    /// The methods a client may use, as the documented operations (HEAD is implied by GET).
    pub fn methods(self) -> &'static [Method] {
        match self {
            Route::Play => &[Method::POST],
            _ => &[Method::GET],
        }
    }

    /// The value of the `Allow` header for this route.
    pub const fn allow(self) -> &'static str {
        match self {
            Route::Play => "POST",
            _ => "GET, HEAD",
        }
    }

    /// The route serving `path` (without query string), if any.
    pub fn recognize(path: &str) -> Option<Route> {
        if let Some((_, tail)) = Self::player_path(path) {
            return match tail {
                "stats" => Some(Route::PlayerStats),
                "games" => Some(Route::PlayerGames),
                "rank" => Some(Route::PlayerRank),
                _ => None,
            };
        }
        Route::ALL
            .into_iter()
            .find(|route| route.template() == path)
    }

    /// `/players/{id}/{tail}` split into the id (possibly empty or invalid; the handler
    /// checks it) and the tail.
    fn player_path(path: &str) -> Option<(&str, &str)> {
        let rest = path.strip_prefix("/players/")?;
        let (id, tail) = rest.split_once('/')?;
        (!tail.contains('/')).then_some((id, tail))
    }

    /// The `{id}` of a player route's path.
    pub fn player_id(path: &str) -> &str {
        Self::player_path(path).map_or("", |(id, _)| id)
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
        for path in [
            "/",
            "/play/",
            "/PLAY",
            "/play/x",
            "//play",
            "",
            "/players/a",
            "/players/a/stats/x",
            "/players/a/other",
            "/leaderboard/",
        ] {
            assert_eq!(Route::recognize(path), None, "{path:?}");
        }
        assert_eq!(
            Route::recognize("/players/ann/rank"),
            Some(Route::PlayerRank)
        );
        assert_eq!(Route::player_id("/players/ann/rank"), "ann");
        assert_eq!(
            Route::recognize("/players//games"),
            Some(Route::PlayerGames)
        );
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
