use serde_json::json;

use crate::helpers::{assert_api_error, spawn_app, Backend};

async fn an_unknown_route_is_not_found_in_the_error_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = assert_api_error(app.get("/api/v1/no-such-thing").await, 404, "not_found").await;
    assert_eq!(body["details"], serde_json::Value::Null);
}

async fn a_known_route_with_the_wrong_method_is_method_not_allowed(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/api/v1/auth/sign-in").await;
    assert_api_error(response, 405, "method_not_allowed").await;
}

async fn a_malformed_json_body_is_malformed_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_raw(
            "/api/v1/auth/sign-in",
            "application/json",
            r#"{"login": "tanaka", "password": "#,
        )
        .await;
    let body = assert_api_error(response, 400, "malformed_json").await;
    assert!(body["details"]["line"].is_number(), "{body}");
}

async fn a_body_not_declared_as_json_is_an_unsupported_media_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_raw(
            "/api/v1/auth/sign-in",
            "text/plain",
            r#"{"login": "tanaka", "password": "x"}"#,
        )
        .await;
    assert_api_error(response, 415, "unsupported_media_type").await;
}

async fn missing_and_unknown_fields_are_validation_failures_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = app
        .post_json("/api/v1/auth/sign-in", &json!({ "login": "tanaka" }))
        .await;
    let body = assert_api_error(missing, 422, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "password", "{body}");
    assert!(body["details"][0]["reason"]["ja"].is_string(), "{body}");

    let unknown = app
        .post_json(
            "/api/v1/auth/sign-in",
            &json!({ "login": "tanaka", "password": "x", "admin": true }),
        )
        .await;
    let body = assert_api_error(unknown, 422, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "admin", "{body}");
}

async fn empty_credentials_are_validation_failures_listing_every_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/api/v1/auth/sign-in",
            &json!({ "login": " ", "password": "" }),
        )
        .await;
    let body = assert_api_error(response, 422, "validation_failed").await;
    let fields: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["login", "password"]);
}

async fn an_oversized_body_is_payload_too_large(backend: Backend) {
    let app = spawn_app(backend).await;
    let huge = "x".repeat(itaku::startup::JSON_BODY_LIMIT + 1);
    let response = app
        .post_json(
            "/api/v1/auth/sign-in",
            &json!({ "login": huge, "password": "x" }),
        )
        .await;
    assert_api_error(response, 413, "payload_too_large").await;
}

crate::on_both_backends!(
    an_unknown_route_is_not_found_in_the_error_shape,
    a_known_route_with_the_wrong_method_is_method_not_allowed,
    a_malformed_json_body_is_malformed_json,
    a_body_not_declared_as_json_is_an_unsupported_media_type,
    missing_and_unknown_fields_are_validation_failures_naming_the_field,
    empty_credentials_are_validation_failures_listing_every_field,
    an_oversized_body_is_payload_too_large,
);
