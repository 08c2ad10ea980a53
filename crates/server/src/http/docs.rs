//! The docs resource: the OpenAPI 3.1 document served at `GET /openapi.json`.
//!
//! Kept as a hand-written JSON file beside this module (reviewed like code) and embedded at
//! compile time. The tests below hold it to the route table and the error codes, so a route or
//! error added without documenting it fails the build's tests.

use http::StatusCode;

use super::reply::Reply;
use super::wire;

pub const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /openapi.json`: the document, as it was compiled in.
pub(super) fn openapi(body: &mut Vec<u8>) -> Reply {
    body.extend_from_slice(DOCUMENT.as_bytes());
    Reply::new(StatusCode::OK, wire::JSON)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::http::Route;

    fn document() -> serde_json::Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is valid JSON")
    }

    #[test]
    fn it_is_openapi_3_1() {
        let doc = document();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn documented_operations_are_exactly_the_served_routes() {
        let doc = document();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|key| !matches!(key.as_str(), "summary" | "description" | "parameters"))
                    .map(move |method| (path.clone(), method.to_uppercase()))
            })
            .collect();
        let served: BTreeSet<(String, String)> = Route::ALL
            .iter()
            .flat_map(|route| {
                route
                    .methods()
                    .iter()
                    .map(move |method| (route.template().to_owned(), method.to_string()))
            })
            .collect();
        assert_eq!(documented, served);
    }

    #[test]
    fn every_error_code_is_documented() {
        let doc = document();
        let documented: BTreeSet<&str> =
            doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|code| code.as_str().unwrap())
                .collect();
        let source = include_str!("problem.rs");
        let used: BTreeSet<&str> = source
            .split("kind!(")
            .skip(1) // the text before the first use
            .filter_map(|call| call.split('"').nth(1))
            .collect();
        assert!(!used.is_empty());
        assert_eq!(documented, used);
    }

    proptest::proptest! {
        /// The document's pattern for `choice` accepts exactly what the server accepts, so a
        /// schema-driven fuzzer's valid values are never refused and its invalid ones never
        /// served.
        #[test]
        fn the_choice_pattern_agrees_with_the_server(
            before in "[ \t\n\r\x0c\u{a0}\u{3000}]{0,3}",
            word in "(?i:rock|paper|scissors|lizard|roc|rocks)|[a-zA-Z]{0,8}",
            after in "[ \t\n\r\x0c\u{85}]{0,3}",
        ) {
            let document = document();
            let pattern = document["components"]["schemas"]["PlayRequest"]["properties"]["choice"]["pattern"]
                .as_str()
                .unwrap();
            let pattern = regex::Regex::new(pattern).unwrap();
            let value = format!("{before}{word}{after}");
            proptest::prop_assert_eq!(
                pattern.is_match(&value),
                crate::game::Choice::parse(&value).is_ok(),
                "{:?}",
                value
            );
        }
    }
}
