//! Strict request bodies: checked before the typed handlers see them.
//!
//! poem-openapi turns a JSON number or boolean into a `String` field and does not name the
//! field in its parse errors. Money fields need both refused and named, so each money-moving
//! body is first checked here against its field list: valid JSON object, no unknown field,
//! every required field present, every field a JSON string.

use poem::{Body, Endpoint, IntoResponse, Request, Response, http::Method};
use serde_json::Value;

use crate::problem::{ProblemResponse, invalid_body};

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

/// Checks a JSON body against its rules; the problem names the first offending field.
pub fn check(body: &[u8], rules: &[FieldRule]) -> Result<(), ProblemResponse> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid_body(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(invalid_body("the body must be a JSON object".into()));
    };
    if let Some(unknown) = fields.keys().find(|k| !rules.iter().any(|r| r.name == *k)) {
        return Err(ProblemResponse::invalid_field(
            unknown,
            "is not a field of this request; remove it",
        ));
    }
    for rule in rules {
        match fields.get(rule.name) {
            None | Some(Value::Null) if rule.required => {
                return Err(ProblemResponse::invalid_field(rule.name, "is required"));
            }
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(_) => {
                return Err(ProblemResponse::invalid_field(
                    rule.name,
                    "must be a JSON string (amounts too: \"1.25\", not 1.25)",
                ));
            }
        }
    }
    Ok(())
}

/// Middleware: refuses a body that breaks its rules, else passes the request on unchanged.
pub async fn strict_bodies<E: Endpoint>(ep: E, mut req: Request) -> poem::Result<Response> {
    if let Some(rules) = rules_for(req.method(), req.uri().path()) {
        let bytes = req.take_body().into_bytes().await?;
        if let Err(problem) = check(&bytes, rules) {
            return Ok(problem.into_response());
        }
        req.set_body(Body::from(bytes));
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
        assert_eq!(field_of(r#"{"to":"0x1","amount":"1","memo":null}"#), None);
        assert_eq!(field_of("[1]").as_deref(), Some(""));
        assert_eq!(field_of("{").as_deref(), Some(""));
    }
}
