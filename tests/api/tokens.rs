//! Tokens built by hand: expired, tampered, `alg: none`, other algorithms, no `exp`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{assert_api_error, spawn_app, Backend, TestApp, JWT_SECRET};

fn sign(algorithm: Algorithm, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

fn claims(user_id: &str, iat: i64, exp: i64) -> Value {
    json!({ "sub": user_id, "jti": uuid::Uuid::new_v4().to_string(), "iat": iat, "exp": exp })
}

async fn assert_refused(app: &TestApp, token: &str) {
    assert_api_error(
        app.get_with_token("/api/v1/me", token).await,
        401,
        "unauthenticated",
    )
    .await;
}

async fn a_well_formed_hand_made_token_is_accepted(backend: Backend) {
    // The control for the refusals below: the same construction with valid values works.
    let app = spawn_app(backend).await;
    let id = app.create_user("tanaka").await;
    let now = app.now().timestamp();
    let token = sign(Algorithm::HS256, &claims(&id, now, now + 600));
    assert_eq!(app.get_with_token("/api/v1/me", &token).await.status(), 200);
}

async fn an_expired_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_user("tanaka").await;
    let now = app.now().timestamp();
    assert_refused(
        &app,
        &sign(Algorithm::HS256, &claims(&id, now - 1200, now - 1)),
    )
    .await;
}

async fn a_tampered_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let victim = app.create_user("tanaka").await;
    let attacker = app.create_user("sato").await;
    let now = app.now().timestamp();
    let token = sign(Algorithm::HS256, &claims(&attacker, now, now + 600));
    let parts: Vec<&str> = token.split('.').collect();
    let forged_payload = URL_SAFE_NO_PAD.encode(claims(&victim, now, now + 600).to_string());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_refused(&app, &tampered).await;
}

async fn an_unsigned_alg_none_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_user("tanaka").await;
    let now = app.now().timestamp();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(&id, now, now + 600).to_string());
    assert_refused(&app, &format!("{header}.{payload}.")).await;
}

async fn a_token_signed_with_another_algorithm_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_user("tanaka").await;
    let now = app.now().timestamp();
    assert_refused(&app, &sign(Algorithm::HS512, &claims(&id, now, now + 600))).await;
}

async fn a_token_without_an_expiry_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_user("tanaka").await;
    let now = app.now().timestamp();
    let no_exp = json!({ "sub": id, "jti": uuid::Uuid::new_v4().to_string(), "iat": now });
    assert_refused(&app, &sign(Algorithm::HS256, &no_exp)).await;
}

async fn a_token_for_a_user_who_no_longer_exists_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let now = app.now().timestamp();
    let ghost = uuid::Uuid::new_v4().to_string();
    assert_refused(
        &app,
        &sign(Algorithm::HS256, &claims(&ghost, now, now + 600)),
    )
    .await;
}

crate::on_both_backends!(
    a_well_formed_hand_made_token_is_accepted,
    an_expired_token_is_refused,
    a_tampered_token_is_refused,
    an_unsigned_alg_none_token_is_refused,
    a_token_signed_with_another_algorithm_is_refused,
    a_token_without_an_expiry_is_refused,
    a_token_for_a_user_who_no_longer_exists_is_refused,
);
