use std::process::ExitCode;

use crate::helpers::{assert_api_error, spawn_app, Backend};

async fn healthz_answers_ok(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "status": "ok" }));
}

async fn readyz_answers_ok_when_the_database_is_migrated(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

async fn every_response_carries_a_request_id_and_the_security_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ids = Vec::new();
    for path in ["/healthz", "/healthz", "/no/such/page"] {
        let response = app.get(path).await;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        let id = headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "each request gets its own id");
}

async fn the_healthcheck_command_passes_against_a_running_server_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut settings = app.settings.clone();
    settings.port = app.port;
    let healthy = tokio::task::spawn_blocking(move || itaku::commands::healthcheck(&settings))
        .await
        .unwrap();
    assert_eq!(healthy.unwrap(), ExitCode::SUCCESS);

    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = app.settings.clone();
    settings.port = closed_port;
    let unhealthy = tokio::task::spawn_blocking(move || itaku::commands::healthcheck(&settings))
        .await
        .unwrap();
    assert!(unhealthy.is_err());
}

async fn readyz_reports_pending_migrations(backend: Backend) {
    use migration::MigratorTrait as _;
    let app = spawn_app(backend).await;
    migration::Migrator::down(&app.db, Some(1)).await.unwrap();
    let body = assert_api_error(app.get("/readyz").await, 503, "migrations_pending").await;
    assert_eq!(body["details"]["pending"], 1);
}

crate::on_both_backends!(
    healthz_answers_ok,
    readyz_answers_ok_when_the_database_is_migrated,
    every_response_carries_a_request_id_and_the_security_headers,
    the_healthcheck_command_passes_against_a_running_server_only,
    readyz_reports_pending_migrations,
);
