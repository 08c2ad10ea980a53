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
    /// A season's rating board of real-time play.
    RatingBoard,
    /// A season's win-rate board of real-time play.
    WinRateBoard,
    GuestAccounts,
    Accounts,
    Sessions,
    SessionRefresh,
    CurrentSession,
    Me,
    MyCredentials,
    MyExport,
    MySessions,
    MySession,
    Realtime,
    RealtimeTickets,
    Match,
    MyMatches,
    /// Players online, queued and in a match, over every instance.
    Presence,
    /// One account's presence.
    AccountPresence,
    AsyncApi,
    MyFairness,
    MyFairnessRotation,
    /// The web page (`GET /`), served from assets embedded in the binary.
    Web,
    /// The page's fingerprinted scripts, styles and icon.
    WebAsset,
}

impl Route {
    pub const ALL: [Route; 31] = [
        Route::Play,
        Route::Healthz,
        Route::Readyz,
        Route::OpenApi,
        Route::PlayerStats,
        Route::PlayerGames,
        Route::PlayerRank,
        Route::Leaderboard,
        Route::RatingBoard,
        Route::WinRateBoard,
        Route::GuestAccounts,
        Route::Accounts,
        Route::Sessions,
        Route::SessionRefresh,
        Route::CurrentSession,
        Route::Me,
        Route::MyCredentials,
        Route::MyExport,
        Route::MySessions,
        Route::MySession,
        Route::Realtime,
        Route::RealtimeTickets,
        Route::Match,
        Route::MyMatches,
        Route::Presence,
        Route::AccountPresence,
        Route::AsyncApi,
        Route::MyFairness,
        Route::MyFairnessRotation,
        Route::Web,
        Route::WebAsset,
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
            Route::RatingBoard => "/leaderboard/rating",
            Route::WinRateBoard => "/leaderboard/win-rate",
            Route::GuestAccounts => "/accounts/guest",
            Route::Accounts => "/accounts",
            Route::Sessions => "/sessions",
            Route::SessionRefresh => "/sessions/refresh",
            Route::CurrentSession => "/sessions/current",
            Route::Me => "/me",
            Route::MyCredentials => "/me/credentials",
            Route::MyExport => "/me/export",
            Route::MySessions => "/me/sessions",
            Route::MySession => "/me/sessions/{id}",
            Route::Realtime => "/ws",
            Route::RealtimeTickets => "/realtime/tickets",
            Route::Match => "/matches/{id}",
            Route::MyMatches => "/me/matches",
            Route::Presence => "/presence",
            Route::AccountPresence => "/presence/{id}",
            Route::AsyncApi => "/asyncapi.json",
            Route::MyFairness => "/me/fairness",
            Route::MyFairnessRotation => "/me/fairness/rotation",
            Route::Web => "/",
            Route::WebAsset => "/assets/{name}",
        }
    }

    /// The methods a client may use, as the documented operations (HEAD is implied by GET).
    pub fn methods(self) -> &'static [Method] {
        match self {
            Route::Play
            | Route::GuestAccounts
            | Route::Accounts
            | Route::Sessions
            | Route::SessionRefresh
            | Route::RealtimeTickets
            | Route::MyFairnessRotation => &[Method::POST],
            Route::CurrentSession | Route::MySession => &[Method::DELETE],
            Route::Me => &[Method::GET, Method::PATCH, Method::DELETE],
            Route::MyCredentials => &[Method::PUT],
            Route::MyFairness => &[Method::GET, Method::PUT],
            _ => &[Method::GET],
        }
    }

    /// The value of the `Allow` header for this route.
    pub const fn allow(self) -> &'static str {
        match self {
            Route::Play
            | Route::GuestAccounts
            | Route::Accounts
            | Route::Sessions
            | Route::SessionRefresh
            | Route::RealtimeTickets
            | Route::MyFairnessRotation => "POST",
            Route::CurrentSession | Route::MySession => "DELETE",
            Route::Me => "GET, HEAD, PATCH, DELETE",
            Route::MyCredentials => "PUT",
            Route::MyFairness => "GET, HEAD, PUT",
            // An upgrade is a GET; a HEAD cannot switch protocols.
            Route::Realtime => "GET",
            _ => "GET, HEAD",
        }
    }

    /// Whether the route acts for the bearer of an access token, and so reads one.
    pub const fn uses_identity(self) -> bool {
        matches!(
            self,
            Route::Play
                | Route::CurrentSession
                | Route::Me
                | Route::MyCredentials
                | Route::MyExport
                | Route::MySessions
                | Route::MySession
                | Route::RealtimeTickets
                | Route::MyMatches
                | Route::MyFairness
                | Route::MyFairnessRotation
        )
    }

    /// The route serving `path` (without query string), if any.
    pub fn recognize(path: &str) -> Option<Route> {
        if let Some(id) = path.strip_prefix("/me/sessions/") {
            return (!id.contains('/')).then_some(Route::MySession);
        }
        if let Some((_, tail)) = Self::player_path(path) {
            return match tail {
                "stats" => Some(Route::PlayerStats),
                "games" => Some(Route::PlayerGames),
                "rank" => Some(Route::PlayerRank),
                _ => None,
            };
        }
        // The page's assets are looked for last, so the API's routes pay nothing for them.
        Route::ALL
            .into_iter()
            .find(|route| route.template() == path)
            .or_else(|| {
                if let Some(id) = path.strip_prefix("/matches/") {
                    return (!id.is_empty() && !id.contains('/')).then_some(Route::Match);
                }
                if let Some(id) = path.strip_prefix("/presence/") {
                    return (!id.is_empty() && !id.contains('/')).then_some(Route::AccountPresence);
                }
                let name = path.strip_prefix("/assets/")?;
                (!name.is_empty() && !name.contains('/')).then_some(Route::WebAsset)
            })
    }

    /// `/players/{id}/{tail}` split into the id (possibly empty or invalid; the handler
    /// checks it) and the tail.
    fn player_path(path: &str) -> Option<(&str, &str)> {
        let rest = path.strip_prefix("/players/")?;
        let (id, tail) = rest.split_once('/')?;
        (!tail.contains('/')).then_some((id, tail))
    }

    /// The `{id}` of `/me/sessions/{id}`.
    pub fn session_id(path: &str) -> &str {
        path.strip_prefix("/me/sessions/").unwrap_or("")
    }

    /// The `{id}` of `/matches/{id}`.
    pub fn match_id(path: &str) -> &str {
        path.strip_prefix("/matches/").unwrap_or("")
    }

    /// The `{id}` of `/presence/{id}`.
    pub fn presence_id(path: &str) -> &str {
        path.strip_prefix("/presence/").unwrap_or("")
    }

    /// The `{name}` of `/assets/{name}`.
    pub fn asset_name(path: &str) -> &str {
        path.strip_prefix("/assets/").unwrap_or("")
    }

    /// The `{id}` of a player route's path.
    pub fn player_id(path: &str) -> &str {
        Self::player_path(path).map_or("", |(id, _)| id)
    }

    pub fn accepts(self, method: &Method) -> bool {
        let methods = self.methods();
        // HEAD is implied by GET, except for an upgrade, which cannot switch protocols.
        methods.contains(method)
            || (*method == Method::HEAD
                && self != Route::Realtime
                && methods.contains(&Method::GET))
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
            "/play/",
            "/PLAY",
            "/play/x",
            "//play",
            "",
            "/players/a",
            "/players/a/stats/x",
            "/players/a/other",
            "/leaderboard/",
            "/leaderboard/rating/",
            "/leaderboard/win_rate",
            "/assets/",
            "/assets/a/b",
            "/index.html",
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
        assert_eq!(Route::recognize("/me/sessions/abc"), Some(Route::MySession));
        assert_eq!(Route::session_id("/me/sessions/abc"), "abc");
        assert_eq!(Route::recognize("/me/sessions/abc/x"), None);
        assert_eq!(Route::recognize("/me/"), None);
        assert_eq!(Route::recognize("/"), Some(Route::Web));
        assert_eq!(
            Route::recognize("/assets/app.0123456789.js"),
            Some(Route::WebAsset)
        );
        assert_eq!(Route::asset_name("/assets/app.js"), "app.js");
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
