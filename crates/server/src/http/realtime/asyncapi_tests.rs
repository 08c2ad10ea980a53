//! The AsyncAPI document held to the protocol crate: the message types both ways, every error
//! and close code, the subprotocols and limits, every public match event, and examples that the
//! protocol's own types read (the server's also written back unchanged) and that the document's
//! schemas accept.
//!
//! Schemas are checked by the small validator at the bottom, which knows the keywords the
//! document uses and fails on any other, so the document cannot outgrow the check unnoticed.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use game::fairness::{Salt, commitment};
use game::{Choice, Seat};
use protocol::{ClientMessage, ServerMessage};

use super::ASYNCAPI;

/// The protocol crate's source, read for the constants of its `codes` and `close` modules.
const PROTOCOL_SOURCE: &str = include_str!("../../../../protocol/src/lib.rs");
/// The match log's source, read for the names of its event kinds.
const EVENT_SOURCE: &str = include_str!("../../../../game/src/matches/event.rs");

fn document() -> Value {
    serde_json::from_str(ASYNCAPI).expect("asyncapi.json is valid JSON")
}

/// Follows local `$ref`s (`#/a/b`) to what they name.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    let mut value = value;
    while let Some(target) = value.get("$ref").and_then(Value::as_str) {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{target} is not a local reference"));
        value = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{target} names nothing"));
    }
    value
}

/// A message of the `/ws` channel as an operation names it.
struct Documented<'a> {
    key: String,
    message: &'a Value,
    /// The `type` its payload schema fixes.
    kind: String,
}

/// The messages of every operation with `action` (`receive`: the client's, `send`: the
/// server's), in document order.
fn messages_of<'a>(doc: &'a Value, action: &str) -> Vec<Documented<'a>> {
    let mut found = Vec::new();
    for operation in doc["operations"].as_object().unwrap().values() {
        if operation["action"] != action {
            continue;
        }
        for reference in operation["messages"].as_array().unwrap() {
            let target = reference["$ref"].as_str().unwrap();
            let key = target
                .strip_prefix("#/channels/play/messages/")
                .unwrap_or_else(|| panic!("{target} is not a message of the /ws channel"));
            let message = resolve(doc, reference);
            let payload = resolve(doc, &message["payload"]);
            let kind = payload["properties"]["type"]["const"]
                .as_str()
                .unwrap_or_else(|| panic!("{key}'s payload fixes no `type`"));
            found.push(Documented {
                key: key.to_owned(),
                message,
                kind: kind.to_owned(),
            });
        }
    }
    found
}

fn sorted_kinds(messages: &[Documented<'_>]) -> Vec<String> {
    let mut kinds: Vec<String> = messages.iter().map(|m| m.kind.clone()).collect();
    kinds.sort();
    kinds
}

fn sorted(types: &[&str]) -> Vec<String> {
    let mut types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
    types.sort();
    types
}

/// The example payload called `name` of the component message `key`.
fn example<'a>(doc: &'a Value, key: &str, name: &str) -> &'a Value {
    doc["components"]["messages"][key]["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|example| example["name"] == name)
        .map(|example| &example["payload"])
        .unwrap_or_else(|| panic!("{key} has no example {name}"))
}

/// The values a `pub mod {module}` of the protocol crate defines with `pattern` (one capture
/// group), checked to be every `pub const` of the module.
fn protocol_constants(module: &str, pattern: &str) -> BTreeSet<String> {
    let start = PROTOCOL_SOURCE
        .find(&format!("pub mod {module} {{"))
        .unwrap_or_else(|| panic!("the protocol crate has no module {module}"));
    let body = &PROTOCOL_SOURCE[start..];
    let body = &body[..body.find("\n}").expect("the module ends")];
    let pattern = regex::Regex::new(pattern).unwrap();
    let values: Vec<String> = pattern
        .captures_iter(body)
        .map(|captures| captures[1].to_owned())
        .collect();
    assert!(!values.is_empty());
    assert_eq!(
        values.len(),
        body.matches("pub const").count(),
        "every constant of {module} has the expected shape"
    );
    values.into_iter().collect()
}

/// The `const` values of a schema's `oneOf` alternatives.
fn one_of_consts(schema: &Value) -> BTreeSet<String> {
    schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alternative| {
            assert!(
                alternative["description"]
                    .as_str()
                    .is_some_and(|text| !text.is_empty()),
                "{alternative} says what it means"
            );
            alternative["const"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn it_is_asyncapi_3_for_this_version_at_the_ws_route() {
    let doc = document();
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["defaultContentType"], "application/json");
    let channels = doc["channels"].as_object().unwrap();
    assert_eq!(channels.len(), 1);
    assert_eq!(
        doc["channels"]["play"]["address"],
        crate::http::Route::Realtime.template()
    );
}

#[test]
fn every_operation_is_on_the_ws_channel_and_every_message_has_one() {
    let doc = document();
    let mut used = BTreeSet::new();
    let server_keys: BTreeSet<String> = messages_of(&doc, "send")
        .into_iter()
        .map(|m| m.key)
        .collect();
    for (name, operation) in doc["operations"].as_object().unwrap() {
        assert_eq!(operation["channel"]["$ref"], "#/channels/play", "{name}");
        assert!(
            matches!(operation["action"].as_str(), Some("send" | "receive")),
            "{name}"
        );
        for reference in operation["messages"].as_array().unwrap() {
            used.insert(reference["$ref"].as_str().unwrap().to_owned());
        }
        // What a request may be answered with are messages the server sends.
        if let Some(reply) = operation.get("reply") {
            assert_eq!(operation["action"], "receive", "{name}");
            assert_eq!(reply["channel"]["$ref"], "#/channels/play", "{name}");
            for reference in reply["messages"].as_array().unwrap() {
                let key = reference["$ref"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("#/channels/play/messages/");
                assert!(server_keys.contains(key), "{name} answers with {key}");
            }
        }
    }
    let channel: BTreeSet<String> = doc["channels"]["play"]["messages"]
        .as_object()
        .unwrap()
        .keys()
        .map(|key| format!("#/channels/play/messages/{key}"))
        .collect();
    assert_eq!(used, channel);
    let components = doc["components"]["messages"].as_object().unwrap();
    assert_eq!(components.len(), channel.len());
}

#[test]
fn the_documented_client_messages_are_exactly_the_protocols() {
    let doc = document();
    assert_eq!(
        sorted_kinds(&messages_of(&doc, "receive")),
        sorted(&ClientMessage::TYPES)
    );
}

#[test]
fn the_documented_server_messages_are_exactly_the_protocols() {
    let doc = document();
    assert_eq!(
        sorted_kinds(&messages_of(&doc, "send")),
        sorted(&ServerMessage::TYPES)
    );
}

#[test]
fn every_error_code_is_documented() {
    let doc = document();
    let codes = protocol_constants("codes", r#"pub const [A-Z_]+: &str = "([a-z_]+)";"#);
    let schemas = &doc["components"]["schemas"];
    let error = resolve(&doc, &schemas["ServerError"]["properties"]["code"]);
    assert_eq!(one_of_consts(error), codes);
    let warning = resolve(&doc, &schemas["ServerWarning"]["properties"]["code"]);
    let warnings = one_of_consts(warning);
    assert!(!warnings.is_empty() && warnings.is_subset(&codes));
    for (name, operation) in doc["operations"].as_object().unwrap() {
        let Some(listed) = operation.get("x-error-codes") else {
            continue;
        };
        for code in listed.as_array().unwrap() {
            assert!(codes.contains(code.as_str().unwrap()), "{name}: {code}");
        }
    }
}

#[test]
fn every_close_code_is_documented() {
    let doc = document();
    let source: BTreeSet<u16> = protocol_constants("close", r"pub const [A-Z_]+: u16 = (\d+);")
        .iter()
        .map(|code| code.parse().unwrap())
        .collect();
    let documented: BTreeSet<u16> = doc["channels"]["play"]["x-close-codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            assert!(entry["description"].as_str().is_some_and(|t| !t.is_empty()));
            u16::try_from(entry["code"].as_u64().unwrap()).unwrap()
        })
        .collect();
    assert_eq!(documented, source);
    assert!(documented.contains(&protocol::close::REPLACED));
}

#[test]
fn the_subprotocols_and_limits_are_the_protocols() {
    let doc = document();
    let channel = &doc["channels"]["play"];
    let names: Vec<&str> = channel["x-subprotocols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [protocol::SUBPROTOCOL_JSON, protocol::SUBPROTOCOL_MSGPACK]
    );
    let limits = &channel["x-limits"];
    assert_eq!(limits["max_message_bytes"], protocol::MAX_MESSAGE_BYTES);
    assert_eq!(limits["max_chat_chars"], protocol::MAX_CHAT_CHARS);
}

#[test]
fn every_public_event_kind_is_documented_and_illustrated() {
    let doc = document();
    let start = EVENT_SOURCE.find("pub enum EventKind {").unwrap();
    let body = &EVENT_SOURCE[start..];
    let body = &body[..body.find("\n}").unwrap()];
    let variant = regex::Regex::new(r"(?m)^    ([A-Z][A-Za-z]+)\b").unwrap();
    let snake = |name: &str| {
        let mut out = String::new();
        for (index, c) in name.chars().enumerate() {
            if c.is_ascii_uppercase() && index > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    };
    let mut public: BTreeSet<String> = variant
        .captures_iter(body)
        .map(|captures| snake(&captures[1]))
        .collect();
    // The one server-only kind (`EventKind::is_public`) is never sent.
    assert!(public.remove("move_sealed"));
    let documented: BTreeSet<String> =
        resolve(&doc, &doc["components"]["schemas"]["EventKind"])["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kind| {
                let kind = resolve(&doc, kind);
                kind["properties"]["type"]["const"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
    assert_eq!(documented, public);
    let illustrated: BTreeSet<String> = doc["components"]["messages"]["ServerEvent"]["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|example| {
            example["payload"]["event"]["kind"]["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(illustrated, public);
}

#[test]
fn client_examples_read_as_the_messages_they_illustrate() {
    let doc = document();
    for documented in messages_of(&doc, "receive") {
        let Documented { key, message, kind } = documented;
        let schema = &message["payload"];
        let examples = message["examples"].as_array().unwrap();
        assert!(!examples.is_empty(), "{key} has an example");
        for example in examples {
            let payload = &example["payload"];
            let read: ClientMessage = serde_json::from_value(payload.clone())
                .unwrap_or_else(|error| panic!("{key}: {payload}: {error}"));
            assert_eq!(read.kind(), kind);
            check(&doc, schema, payload).unwrap_or_else(|why| panic!("{key}: {payload}: {why}"));
            // The schema refuses what the server refuses: an unknown field, and a field left
            // out exactly when the server needs it.
            let mut extra = payload.clone();
            extra["extra"] = json!(1);
            assert!(serde_json::from_value::<ClientMessage>(extra.clone()).is_err());
            assert!(check(&doc, schema, &extra).is_err(), "{key}: {extra}");
            for field in payload.as_object().unwrap().keys() {
                let mut without = payload.clone();
                without.as_object_mut().unwrap().remove(field);
                let served = serde_json::from_value::<ClientMessage>(without.clone()).is_ok();
                let documented = check(&doc, schema, &without).is_ok();
                assert_eq!(documented, served, "{key} without {field}");
            }
        }
    }
}

#[test]
fn server_examples_are_exactly_what_the_server_writes() {
    let doc = document();
    for documented in messages_of(&doc, "send") {
        let Documented { key, message, kind } = documented;
        let schema = &message["payload"];
        let examples = message["examples"].as_array().unwrap();
        assert!(!examples.is_empty(), "{key} has an example");
        for example in examples {
            let payload = &example["payload"];
            let read: ServerMessage = serde_json::from_value(payload.clone())
                .unwrap_or_else(|error| panic!("{key}: {payload}: {error}"));
            assert_eq!(read.kind(), kind);
            assert_eq!(
                &serde_json::to_value(&read).unwrap(),
                payload,
                "{key}: written back unchanged"
            );
            check(&doc, schema, payload).unwrap_or_else(|why| panic!("{key}: {payload}: {why}"));
            let mut extra = payload.clone();
            extra["extra"] = json!(1);
            assert!(check(&doc, schema, &extra).is_err(), "{key}: {extra}");
        }
    }
}

#[test]
fn the_schemas_refuse_what_the_protocol_refuses() {
    let doc = document();
    let payload_schema = |key: &str| doc["components"]["messages"][key]["payload"].clone();
    for (key, payload) in [
        (
            "ClientMove",
            json!({"type": "move", "round": 1, "choice": "lizard"}),
        ),
        (
            "ClientMove",
            json!({"type": "move", "round": "1", "choice": "rock"}),
        ),
        (
            "ClientMove",
            json!({"type": "move", "round": -1, "choice": "rock"}),
        ),
        (
            "ClientMove",
            json!({"type": "move", "round": 4294967296u64, "choice": "rock"}),
        ),
        ("ClientQueue", json!({"type": "queue", "mode": "best_of_7"})),
        (
            "ClientQueue",
            json!({"type": "queue", "mode": "best_of_1", "moves": "open"}),
        ),
        ("ClientHello", json!({"type": "hello", "id": "one"})),
        ("ClientChat", json!({"type": "chat", "text": 7})),
    ] {
        assert!(
            serde_json::from_value::<ClientMessage>(payload.clone()).is_err(),
            "{payload}"
        );
        assert!(
            check(&doc, &payload_schema(key), &payload).is_err(),
            "{payload}"
        );
    }
    let mut welcome = example(&doc, "ServerWelcome", "welcome").clone();
    welcome.as_object_mut().unwrap().remove("rating");
    assert!(serde_json::from_value::<ServerMessage>(welcome.clone()).is_err());
    assert!(check(&doc, &payload_schema("ServerWelcome"), &welcome).is_err());
}

#[test]
fn the_examples_commitments_open_to_their_reveals() {
    let doc = document();
    let revealed = example(&doc, "ServerEvent", "roundRevealed");
    let match_id = revealed["match_id"].as_str().unwrap();
    let kind = &revealed["event"]["kind"];
    let round = u32::try_from(kind["round"].as_u64().unwrap()).unwrap();
    // Published before the moves: the bot's as its round opened, the person's with `commit`.
    let opened = &example(&doc, "ServerEvent", "roundOpened")["event"]["kind"];
    let committed = &example(&doc, "ServerEvent", "committed")["event"]["kind"];
    assert_eq!(opened["round"], round);
    assert_eq!(committed["round"], round);
    assert_eq!(committed["seat"], "a");
    assert_eq!(
        example(&doc, "ClientCommit", "commit")["commitment"],
        committed["commitment"]
    );
    let reveal = example(&doc, "ClientReveal", "reveal");
    assert_eq!(reveal["choice"], kind["moves"]["a"]);
    assert_eq!(reveal["salt"], kind["salts"]["a"]);
    for (seat, name, published) in [
        (Seat::A, "a", &committed["commitment"]),
        (Seat::B, "b", &opened["bot_commitments"]["b"]),
    ] {
        let choice: Choice = serde_json::from_value(kind["moves"][name].clone()).unwrap();
        let salt = Salt::from_hex(kind["salts"][name].as_str().unwrap()).unwrap();
        let made = commitment(match_id, round, seat, choice, &salt);
        assert_eq!(made.to_hex(), *published, "seat {name}");
    }
}

/// Whether `value` is valid under `schema`, for the keywords the document's schemas use; any
/// other keyword is an error rather than passing unchecked.
fn check(doc: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    let schema = resolve(doc, schema);
    let keywords = schema
        .as_object()
        .ok_or_else(|| format!("{schema} is not a schema"))?;
    for (keyword, expected) in keywords {
        match keyword.as_str() {
            "type" => check_type(expected, value)?,
            "const" if value != expected => return Err(format!("{value} is not {expected}")),
            "enum" if !expected.as_array().unwrap().contains(value) => {
                return Err(format!("{value} is not one of {expected}"));
            }
            "pattern" => {
                let pattern = regex::Regex::new(expected.as_str().unwrap()).unwrap();
                if let Some(text) = value.as_str()
                    && !pattern.is_match(text)
                {
                    return Err(format!("{text:?} does not match {pattern}"));
                }
            }
            "minimum" | "maximum" if value.is_number() && !within(keyword, value, expected) => {
                return Err(format!("{value} is out of {keyword} {expected}"));
            }
            "required" => {
                if let Some(object) = value.as_object() {
                    for field in expected.as_array().unwrap() {
                        let field = field.as_str().unwrap();
                        if !object.contains_key(field) {
                            return Err(format!("{value} lacks {field}"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(object) = value.as_object() {
                    for (field, property) in expected.as_object().unwrap() {
                        if let Some(inner) = object.get(field) {
                            check(doc, property, inner).map_err(|why| format!("{field}: {why}"))?;
                        }
                    }
                }
            }
            "additionalProperties" => {
                assert_eq!(expected, &json!(false), "only `false` is used");
                let allowed = schema["properties"].as_object();
                if let Some(object) = value.as_object() {
                    for field in object.keys() {
                        if !allowed.is_some_and(|allowed| allowed.contains_key(field)) {
                            return Err(format!("{field} is not allowed"));
                        }
                    }
                }
            }
            "oneOf" => {
                let passing = expected
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|alternative| check(doc, alternative, value).is_ok())
                    .count();
                if passing != 1 {
                    return Err(format!("{value} matches {passing} alternatives, not one"));
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for item in items {
                        check(doc, expected, item)?;
                    }
                }
            }
            "const" | "enum" | "minimum" | "maximum" | "description" | "title" | "default"
            | "examples" | "discriminator" => {}
            other => return Err(format!("the check does not know `{other}`")),
        }
    }
    Ok(())
}

/// Whether `value` keeps to the bound: integers compared as integers (a u64 bound loses
/// precision as a float), other numbers as floats.
fn within(keyword: &str, value: &Value, bound: &Value) -> bool {
    let integer = |v: &Value| {
        v.as_u64()
            .map(i128::from)
            .or_else(|| v.as_i64().map(i128::from))
    };
    let ordering = match (integer(value), integer(bound)) {
        (Some(value), Some(bound)) => value.cmp(&bound),
        _ => value
            .as_f64()
            .unwrap_or(f64::NAN)
            .total_cmp(&bound.as_f64().unwrap_or(f64::NAN)),
    };
    let outside = if keyword == "minimum" {
        std::cmp::Ordering::Less
    } else {
        std::cmp::Ordering::Greater
    };
    ordering != outside
}

fn check_type(expected: &Value, value: &Value) -> Result<(), String> {
    let names: Vec<&str> = match expected {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        _ => return Err(format!("{expected} is not a type")),
    };
    let fits = |name: &str| match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if names.into_iter().any(fits) {
        Ok(())
    } else {
        Err(format!("{value} is not of type {expected}"))
    }
}
