//! Strict money-moving requests: checked before the typed handlers see them.
//!
//! poem-openapi turns a JSON number or boolean into a `String` field, keeps the last of two
//! equal fields, drops a header it cannot read as text, and does not name the field in its
//! parse errors. A payment request needs each of those refused and named, so it is checked
//! here first: bearer, `Idempotency-Key` (once, visible ASCII), `application/json`, at most
//! [`MAX_BODY_BYTES`], then the body: a JSON object, no repeated field, no unknown field, every
//! required field present, every field a JSON string.

use std::sync::Arc;

use poem::{
    Body, Endpoint, IntoResponse, Request, Response,
    http::{Method, header},
    web::headers::{Authorization, HeaderMapExt, authorization::Bearer},
};
use serde::{
    Deserialize, Deserializer,
    de::{MapAccess, Visitor},
};
use serde_json::{Map, Value};

use crate::{
    auth::key_matches,
    problem::{ProblemResponse, body_too_large, invalid_body, unsupported_media_type},
    state::AppState,
};

/// A body field: its name and whether it must be present.
pub struct FieldRule {
    pub name: &'static str,
    pub required: bool,
}

const fn required(name: &'static str) -> FieldRule {
    FieldRule {
        name,
        required: true,
    }
}

const fn optional(name: &'static str) -> FieldRule {
    FieldRule {
        name,
        required: false,
    }
}

/// The fields of `POST /api/v1/send`.
pub const SEND_FIELDS: &[FieldRule] = &[
    required("to"),
    required("amount"),
    optional("token"),
    optional("memo"),
];

fn rules_for(method: &Method, path: &str) -> Option<&'static [FieldRule]> {
    (method == Method::POST && path == "/api/v1/send").then_some(SEND_FIELDS)
}

/// The largest body a money-moving request may have; real ones are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// A JSON object read without letting a repeated field silently overwrite the first one.
struct UniqueObject {
    fields: Map<String, Value>,
    duplicate: Option<String>,
}

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueObjectVisitor)
    }
}

struct UniqueObjectVisitor;

impl<'de> Visitor<'de> for UniqueObjectVisitor {
    type Value = UniqueObject;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueObject, A::Error> {
        let mut object = UniqueObject {
            fields: Map::new(),
            duplicate: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if object.fields.contains_key(&key) && object.duplicate.is_none() {
                object.duplicate = Some(key.clone());
            }
            object.fields.insert(key, value);
        }
        Ok(object)
    }
}

/// Checks a JSON body against its rules; the problem names the first offending field.
pub fn check(body: &[u8], rules: &[FieldRule]) -> Result<(), ProblemResponse> {
    let object: UniqueObject = serde_json::from_slice(body)
        .map_err(|e| invalid_body(format!("the body must be a JSON object: {e}")))?;
    if let Some(field) = object.duplicate {
        return Err(ProblemResponse::invalid_field(
            &field,
            "appears more than once; send it once",
        ));
    }
    let fields = object.fields;
    if let Some(unknown) = fields.keys().find(|k| !rules.iter().any(|r| r.name == *k)) {
        return Err(ProblemResponse::invalid_field(
            unknown,
            "is not a field of this request; remove it",
        ));
    }
    for rule in rules {
        match fields.get(rule.name) {
            None if rule.required => {
                return Err(ProblemResponse::invalid_field(rule.name, "is required"));
            }
            // A client whose variable is unset must not silently get the default (a token
            // `null` would pay in pathUSD).
            Some(Value::Null) => {
                return Err(ProblemResponse::invalid_field(
                    rule.name,
                    "is null; give a JSON string, or leave the field out for its default",
                ));
            }
            None | Some(Value::String(_)) => {}
            Some(_) if rule.name == "amount" => {
                return Err(ProblemResponse::invalid_field(
                    "amount",
                    "must be a JSON string holding a decimal such as \"1.25\", not a JSON number",
                ));
            }
            Some(_) => {
                return Err(ProblemResponse::invalid_field(
                    rule.name,
                    "must be a JSON string",
                ));
            }
        }
    }
    Ok(())
}

/// An idempotency key: 1 to 255 visible ASCII characters.
pub fn validate_idempotency_key(key: &str) -> Result<(), ProblemResponse> {
    let visible = key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX_LEN || !visible {
        return Err(ProblemResponse::invalid_field(
            IDEMPOTENCY_KEY_HEADER,
            "must be 1 to 255 visible ASCII characters (no spaces), sent once",
        ));
    }
    Ok(())
}

/// At most one `Idempotency-Key`, and a valid one: a key the handler could not read would
/// otherwise be dropped silently and a retry would pay again.
fn check_idempotency_headers(req: &Request) -> Result<(), ProblemResponse> {
    let values: Vec<_> = req
        .headers()
        .get_all(IDEMPOTENCY_KEY_HEADER)
        .iter()
        .collect();
    if values.len() > 1 {
        return Err(ProblemResponse::invalid_field(
            IDEMPOTENCY_KEY_HEADER,
            "must be sent once",
        ));
    }
    match values.first() {
        None => Ok(()),
        Some(v) => validate_idempotency_key(v.to_str().unwrap_or("\u{0}")),
    }
}

fn is_json(req: &Request) -> bool {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim);
    essence.is_some_and(|e| e.eq_ignore_ascii_case("application/json"))
}

/// Checks a money-moving request in the order a client can act on: credentials, idempotency
/// key, content type, size, then the body's fields.
async fn guard(req: &mut Request, rules: &[FieldRule]) -> Result<(), Response> {
    let state = req
        .data::<Arc<AppState>>()
        .cloned()
        .expect("state is attached");
    // The same decoder as poem-openapi's bearer extractor on the read routes (the scheme in
    // any case, RFC 9110 §11.1), so both kinds of route take the same headers.
    let bearer = req.headers().typed_get::<Authorization<Bearer>>();
    if !bearer.is_some_and(|b| key_matches(b.token(), state.config.api_key.expose())) {
        return Err(ProblemResponse::unauthorized().into_response());
    }
    check_idempotency_headers(req).map_err(IntoResponse::into_response)?;
    if !is_json(req) {
        return Err(unsupported_media_type());
    }
    let bytes = req
        .take_body()
        .into_bytes_limit(MAX_BODY_BYTES)
        .await
        .map_err(|_| body_too_large())?;
    check(&bytes, rules).map_err(IntoResponse::into_response)?;
    req.set_body(Body::from(bytes));
    Ok(())
}

/// Middleware: refuses a money-moving request that breaks its rules, else passes it on.
pub async fn strict_bodies<E: Endpoint>(ep: E, mut req: Request) -> poem::Result<Response> {
    if let Some(rules) = rules_for(req.method(), req.uri().path())
        && let Err(refusal) = guard(&mut req, rules).await
    {
        return Ok(refusal);
    }
    Ok(ep.call(req).await?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> Option<String> {
        match check(body.as_bytes(), SEND_FIELDS) {
            Ok(()) => None,
            Err(ProblemResponse::BadRequest(p)) => Some(p.0.field.unwrap_or_default()),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn names_the_offending_field() {
        assert_eq!(
            field_of(r#"{"to":"0x1","amount":1.5}"#).as_deref(),
            Some("amount")
        );
        assert_eq!(
            field_of(r#"{"to":"0x1","amount":"1","x":1}"#).as_deref(),
            Some("x")
        );
        assert_eq!(field_of(r#"{"amount":"1"}"#).as_deref(), Some("to"));
        assert_eq!(
            field_of(r#"{"to":true,"amount":"1"}"#).as_deref(),
            Some("to")
        );
        assert_eq!(field_of(r#"{"to":"0x1","amount":"1"}"#), None);
        assert_eq!(
            field_of(r#"{"to":"0x1","amount":"1","memo":null}"#).as_deref(),
            Some("memo")
        );
        assert_eq!(
            field_of(r#"{"to":"0x1","amount":"1","token":null}"#).as_deref(),
            Some("token")
        );
        assert_eq!(
            field_of(r#"{"to":"0x1","amount":"1","amount":"9"}"#).as_deref(),
            Some("amount")
        );
        assert_eq!(field_of("[1]").as_deref(), Some(""));
        assert_eq!(field_of("{").as_deref(), Some(""));
    }
}
