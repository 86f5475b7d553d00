use serde_json::Value;

use crate::helpers::{assert_api_error, spawn_app, Backend, PASSWORD};

async fn signing_in_gives_a_token_that_opens_me(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_user("tanaka").await;

    let response = app.sign_in("tanaka", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["id"], id);
    assert_eq!(body["user"]["login"], "tanaka");
    assert!(body["user"].get("password_hash").is_none());
    assert!(body["expires_at"].is_string());
    let token = body["token"].as_str().unwrap();

    assert!(
        cookie.starts_with(&format!("itaku_token={token}")),
        "{cookie}"
    );
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(
            cookie.contains(attribute),
            "{attribute} missing in {cookie}"
        );
    }

    let me = app.get_with_token("/api/v1/me", token).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["user"]["id"], id);
    assert_eq!(me["user"]["display_name"], "tanaka さん");
    assert_eq!(me["grants"], serde_json::json!([]));
    assert_eq!(me["deputy_for"], serde_json::json!([]));
}

async fn the_session_cookie_authenticates_like_the_bearer_header(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("tanaka").await;
    let token = app.token_for("tanaka").await;
    let response = app
        .client
        .get(app.url("/api/v1/me"))
        .header("cookie", format!("itaku_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// The cookie authenticates reads only: a change through the API with nothing but the
/// browser's session cookie (a cross-site form could send one) is refused and changes nothing;
/// the same request with the bearer token goes through.
async fn the_session_cookie_cannot_write_through_the_api(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("tanaka").await;
    let token = app.token_for("tanaka").await;
    let preference = "/api/v1/me/mail-preference";
    let body = serde_json::json!({ "mail": "daily_digest" });
    let refused = app
        .client
        .put(app.url(preference))
        .header("cookie", format!("itaku_token={token}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let answer = assert_api_error(refused, 403, "session_cookie_cannot_write").await;
    assert!(answer["message"]["ja"]
        .as_str()
        .unwrap()
        .contains("Authorization"));
    // A multipart upload, the kind a plain HTML form can send, is refused the same way.
    let form = reqwest::multipart::Form::new().text("file", "x");
    let refused = app
        .client
        .post(app.url("/api/v1/evidence/anything/files"))
        .header("cookie", format!("itaku_token={token}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_api_error(refused, 403, "session_cookie_cannot_write").await;
    assert_eq!(app.get_json(preference, &token).await["mail"], "immediate");
    let saved = app.put_json_with_token(preference, &token, &body).await;
    assert_eq!(saved.status(), 200);
    assert_eq!(
        app.get_json(preference, &token).await["mail"],
        "daily_digest"
    );
}

async fn me_without_a_token_is_unauthenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_api_error(app.get("/api/v1/me").await, 401, "unauthenticated").await;
    let basic = app
        .client
        .get(app.url("/api/v1/me"))
        .basic_auth("tanaka", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_api_error(basic, 401, "unauthenticated").await;
}

async fn a_wrong_password_and_an_unknown_login_get_identical_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("tanaka").await;

    let wrong_password = app.sign_in("tanaka", "not the password at all").await;
    let unknown_login = app.sign_in("nobody", PASSWORD).await;
    assert_eq!(wrong_password.status(), 401);
    assert_eq!(unknown_login.status(), 401);
    assert!(wrong_password.headers().get("set-cookie").is_none());
    let wrong_password: Value = wrong_password.json().await.unwrap();
    let unknown_login: Value = unknown_login.json().await.unwrap();
    assert_eq!(wrong_password, unknown_login);
    assert_eq!(wrong_password["code"], "invalid_credentials");
}

async fn repeated_failures_are_rate_limited_even_with_the_right_password(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("tanaka").await;
    for _ in 0..itaku::auth::rate_limit::SIGN_IN_MAX_FAILURES {
        assert_eq!(
            app.sign_in("tanaka", "guess guess guess").await.status(),
            401
        );
    }
    let limited = app.sign_in("tanaka", PASSWORD).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 15 * 60, "{retry_after}");
    let body = assert_api_error(limited, 429, "rate_limited").await;
    assert_eq!(body["details"]["retry_after_seconds"], retry_after);

    // Other logins from the same address are not affected.
    app.create_user("sato").await;
    assert_eq!(app.sign_in("sato", PASSWORD).await.status(), 200);
}

async fn a_signed_out_token_is_refused_and_the_cookie_cleared(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("tanaka").await;
    let token = app.token_for("tanaka").await;

    let signed_out = app
        .client
        .post(app.url("/api/v1/auth/sign-out"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 204);
    let cookie = signed_out.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("itaku_token=;"), "{cookie}");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");

    assert_api_error(
        app.get_with_token("/api/v1/me", &token).await,
        401,
        "unauthenticated",
    )
    .await;
    // A fresh sign-in still works.
    let again = app.token_for("tanaka").await;
    assert_eq!(app.get_with_token("/api/v1/me", &again).await.status(), 200);
}

crate::on_both_backends!(
    signing_in_gives_a_token_that_opens_me,
    the_session_cookie_authenticates_like_the_bearer_header,
    the_session_cookie_cannot_write_through_the_api,
    me_without_a_token_is_unauthenticated,
    a_wrong_password_and_an_unknown_login_get_identical_answers,
    repeated_failures_are_rate_limited_even_with_the_right_password,
    a_signed_out_token_is_refused_and_the_cookie_cleared,
);
