//! `/openapi.json` and Swagger UI at `/docs`: poem-openapi's document of the
//! REST routes, completed with what its derives cannot say — how each route
//! family authenticates (so Swagger UI's Authorize works), the error
//! responses every operation can give with their bodies (all errors go
//! through `errors.rs`, so one description per family is the truth), and
//! that optional fields are sent as `null`.

use poem::{Endpoint, EndpointExt, Route, endpoint::make_sync, web::Html};
use serde_json::{Map, Value, json};

/// The statuses any operation may answer besides its own success.
const ERRORS: [(u16, &str); 10] = [
    (
        400,
        "Malformed request: a missing header, an unreadable body.",
    ),
    (401, "No API key, or an unknown or revoked one."),
    (
        403,
        "The key's role does not allow this, or HTTPS is required.",
    ),
    (404, "Not found (also for another workspace's objects)."),
    (
        409,
        "Conflicts with the current state (a name taken, a trait in use).",
    ),
    (413, "The body is larger than MAX_BODY_BYTES."),
    (415, "The body is not in a format the route takes."),
    (422, "A field is invalid; `field` names it."),
    (500, "An internal error; details are in the server log."),
    (
        503,
        "A dependency (database, queue, storage) is unavailable.",
    ),
];

fn schemas() -> Value {
    json!({
        "Error": {
            "type": "object",
            "description": "The error body of the traits, sources and segments API.",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": { "type": "string", "description": "Stable machine code, e.g. `invalid_input`." },
                        "message": { "type": "string" },
                        "field": { "type": "string", "description": "The input at fault (`invalid_input`)." }
                    }
                }
            }
        },
        "Envelope": {
            "type": "object",
            "description": "The player API's envelope, errors included.",
            "required": ["code", "message", "data"],
            "properties": {
                "code": { "type": "integer", "description": "The HTTP status." },
                "message": { "type": "string" },
                "data": { "nullable": true }
            }
        }
    })
}

/// Who may call an operation at `path`.
fn security(path: &str) -> Value {
    if path == "/v1/playfab" {
        json!([{ "playfab_key": [] }])
    } else if path.starts_with("/v1/") {
        json!([{ "bearer": [] }])
    } else {
        json!([{ "bearer": [], "workspace": [] }])
    }
}

/// Every property a schema does not require is sent as `null` when absent.
fn mark_nullable(schema: &mut Value) {
    let required: Vec<String> = schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (name, property) in properties.iter_mut() {
            if !required.contains(name)
                && let Some(p) = property.as_object_mut()
            {
                p.insert("nullable".into(), Value::Bool(true));
            }
        }
    }
}

/// The completed document.
pub fn complete(spec: &str) -> Value {
    let mut doc: Value = serde_json::from_str(spec).expect("poem-openapi writes JSON");
    let components = doc["components"]
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut components = Value::Object(components);
    if let Some(all) = components.get_mut("schemas").and_then(Value::as_object_mut) {
        for schema in all.values_mut() {
            mark_nullable(schema);
        }
    }
    let mut schemas_map = components["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    schemas_map.extend(schemas().as_object().cloned().unwrap_or_default());
    components["schemas"] = Value::Object(schemas_map);
    components["securitySchemes"] = json!({
        "bearer": { "type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer tf_…`." },
        "workspace": { "type": "apiKey", "in": "header", "name": "X-Workspace-ID", "description": "The key's workspace id, equal to `{id}` in the path." },
        "playfab_key": { "type": "apiKey", "in": "query", "name": "api_key", "description": "An ingest key, as PlayFab's webhook sends it." }
    });
    doc["components"] = components;
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(operations) = item.as_object_mut() else {
                continue;
            };
            let body = if path.starts_with("/v1/") {
                "#/components/schemas/Envelope"
            } else {
                "#/components/schemas/Error"
            };
            for operation in operations.values_mut() {
                operation["security"] = security(path);
                let responses = operation["responses"]
                    .as_object_mut()
                    .map(std::mem::take)
                    .unwrap_or_else(Map::new);
                let mut responses = responses;
                for (status, description) in ERRORS {
                    responses.entry(status.to_string()).or_insert_with(|| {
                        json!({
                            "description": description,
                            "content": { "application/json": { "schema": { "$ref": body } } }
                        })
                    });
                }
                operation["responses"] = Value::Object(responses);
            }
        }
    }
    doc
}

/// `/openapi.json` and `/docs` (Swagger UI over the completed document).
pub fn endpoints(spec: String, swagger_html: String) -> (impl Endpoint, impl Endpoint) {
    let document = serde_json::to_string_pretty(&complete(&spec)).expect("JSON");
    // Swagger UI embeds the document it was built with: give it the completed one.
    let html = swagger_html.replacen(&spec, &document, 1);
    let json = make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json")
            .body(document.clone())
    });
    let ui = Route::new().at("/", make_sync(move |_| Html(html.clone())));
    (json, ui.map_to_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_errors_and_nulls_are_added() {
        let spec = json!({
            "openapi": "3.0.0",
            "paths": {
                "/api/v1/workspaces/{id}/traits": { "get": { "responses": { "200": { "description": "ok" } } } },
                "/v1/playfab": { "post": { "responses": { "200": { "description": "ok" } } } },
                "/v1/userData": { "delete": { "responses": { "200": { "description": "ok" } } } }
            },
            "components": { "schemas": { "T": { "type": "object", "required": ["id"], "properties": { "id": { "type": "string" }, "note": { "type": "string" } } } } }
        })
        .to_string();
        let doc = complete(&spec);
        let traits = &doc["paths"]["/api/v1/workspaces/{id}/traits"]["get"];
        assert_eq!(
            traits["security"],
            json!([{ "bearer": [], "workspace": [] }])
        );
        assert_eq!(
            traits["responses"]["422"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error"
        );
        assert_eq!(traits["responses"]["200"]["description"], "ok");
        let playfab = &doc["paths"]["/v1/playfab"]["post"];
        assert_eq!(playfab["security"], json!([{ "playfab_key": [] }]));
        assert_eq!(
            doc["paths"]["/v1/userData"]["delete"]["responses"]["404"]["content"]["application/json"]
                ["schema"]["$ref"],
            "#/components/schemas/Envelope"
        );
        let t = &doc["components"]["schemas"]["T"]["properties"];
        assert_eq!(t["note"]["nullable"], true);
        assert!(t["id"].get("nullable").is_none());
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
