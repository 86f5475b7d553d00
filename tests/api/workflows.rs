//! Workflow definitions over HTTP (the list, one definition, its diagram) and the start-up checks
//! of the definitions folder.

use std::path::Path;

use itaku::clock::Clock;
use itaku::startup::Application;
use itaku::workflow::content_hash;
use serde_json::{json, Value};

use crate::helpers::{
    assert_api_error, id_of, instance_path, spawn_app, spawn_app_with, Backend, Cast,
    ScratchDatabase, TestApp, MEGURO, WORKFLOW,
};
use crate::instances::notice_definition;

/// The product definition, as deployed.
const PRODUCT: &str = include_str!("../../workflows/subcontract_permission.toml");

/// A signed-in user who may read definitions (any user may).
async fn reader(app: &TestApp) -> String {
    app.create_organisation(MEGURO).await;
    app.person("meguro_officer", &[(MEGURO, "officer")])
        .await
        .token
}

/// GETs an SVG expecting 200 with the image's headers; returns the body.
async fn svg(app: &TestApp, path: &str, token: &str) -> String {
    let response = app.get_with_token(path, token).await;
    assert_eq!(response.status(), 200, "GET {path}");
    let header = |name: &str| {
        let value = response.headers().get(name).map(|v| v.to_str().unwrap());
        value.unwrap_or_default().to_owned()
    };
    assert!(
        header("content-type").starts_with("image/svg+xml"),
        "GET {path}"
    );
    assert_eq!(
        header("content-security-policy"),
        "default-src 'none'; style-src 'unsafe-inline'"
    );
    response.text().await.unwrap()
}

/// The state the diagram marks as current, if exactly one is.
fn highlighted(svg: &str) -> Option<&str> {
    let mut marked = svg
        .match_indices(r#"" aria-current="step">"#)
        .map(|(end, _)| {
            let start = svg[..end].rfind(r#"data-state=""#).unwrap() + r#"data-state=""#.len();
            &svg[start..end]
        });
    let first = marked.next();
    assert!(marked.next().is_none(), "one state at most is current");
    first
}

async fn the_product_workflow_is_listed_as_its_latest_version(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = reader(&app).await;
    let list = app.get_json("/api/v1/workflows", &token).await;
    assert_eq!(
        list,
        json!([{
            "id": WORKFLOW,
            "version": 1,
            "title": { "ja": "再委託許諾", "en": "Subcontract permission" },
            "context": "subcontract",
            "content_hash": content_hash(PRODUCT),
            "latest": true,
        }])
    );
}

async fn a_workflow_is_described_with_its_states_and_transitions(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = reader(&app).await;
    let described = app
        .get_json(&format!("/api/v1/workflows/{WORKFLOW}/1"), &token)
        .await;
    assert_eq!(described["initial"], "draft");
    // A new application belongs to the applicant's organisation.
    assert_eq!(described["create_org"], "applicant");
    let states: Vec<&str> = described["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "draft",
            "endorsement",
            "decision",
            "permitted",
            "suspended",
            "rejected",
            "withdrawn",
            "revoked",
            "terminated"
        ]
    );
    let transitions = described["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 13);
    let permit = transitions
        .iter()
        .find(|t| t["event"] == "approve")
        .unwrap();
    assert_eq!(
        (&permit["from"], &permit["to"], &permit["completes_route"]),
        (&json!(["decision"]), &json!("permitted"), &json!(true))
    );
}

async fn the_workflow_diagram_highlights_the_state_asked_for(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = reader(&app).await;
    let path = format!("/api/v1/workflows/{WORKFLOW}/1/diagram.svg");

    let plain = svg(&app, &path, &token).await;
    assert!(plain.starts_with("<svg"), "{plain}");
    assert_eq!(highlighted(&plain), None);
    let deciding = svg(&app, &format!("{path}?state=decision"), &token).await;
    assert!(deciding.contains(r#"aria-current="step""#));
    assert_eq!(highlighted(&deciding), Some("decision"));
    let english = svg(&app, &format!("{path}?state=decision&lang=en"), &token).await;
    assert!(english.contains("Under review and decision"), "{english}");
}

async fn an_instance_diagram_highlights_the_state_the_instance_is_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let submitted = cast.submitted_tier2(&app).await;
    let path = format!("{}/diagram.svg", instance_path(id_of(&submitted)));

    let deciding = svg(&app, &path, &cast.officer.token).await;
    assert_eq!(highlighted(&deciding), Some("decision"));
    let permitted = cast.permitted_tier2(&app).await;
    let path = format!("{}/diagram.svg", instance_path(id_of(&permitted)));
    let decided = svg(&app, &path, &cast.kokuhoren.token).await;
    assert_eq!(highlighted(&decided), Some("permitted"));
}

async fn an_unknown_workflow_or_version_is_an_unknown_workflow(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = reader(&app).await;
    for path in [
        "/api/v1/workflows/bulk_permission/1".to_owned(),
        format!("/api/v1/workflows/{WORKFLOW}/2"),
        format!("/api/v1/workflows/{WORKFLOW}/2/diagram.svg"),
    ] {
        let response = app.get_with_token(&path, &token).await;
        let error = assert_api_error(response, 404, "unknown_workflow").await;
        assert_eq!(error["details"], Value::Null, "{path}");
    }
    let unauthenticated = app.get("/api/v1/workflows").await;
    assert_api_error(unauthenticated, 401, "unauthenticated").await;
}

/// Starts the application on `database` with the definitions in `dir`: `Ok(())` or the error.
async fn start(database: &ScratchDatabase, dir: &Path) -> Result<(), String> {
    let mut settings = database.settings();
    settings.workflows_dir = dir.to_owned();
    // Built, never served: dropping it closes the listener and the pool again.
    Application::build(settings)
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

async fn a_definition_changed_without_a_version_bump_is_refused_at_start_up(backend: Backend) {
    let database = ScratchDatabase::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("subcontract_permission.toml");
    std::fs::write(&file, PRODUCT).unwrap();
    start(&database, dir.path()).await.unwrap();
    start(&database, dir.path())
        .await
        .expect("an unchanged definition starts again");

    let relabelled = PRODUCT.replace(
        r#"label = { ja = "下書き", en = "Draft" }"#,
        r#"label = { ja = "下書き", en = "Draft application" }"#,
    );
    assert_ne!(relabelled, PRODUCT);
    std::fs::write(&file, &relabelled).unwrap();
    let refused = start(&database, dir.path()).await.unwrap_err();
    assert!(
        refused.contains(
            r#"workflow "subcontract_permission" version 1 was changed without a version bump"#
        ),
        "{refused}"
    );

    let bumped = relabelled.replace("\nversion = 1\n", "\nversion = 2\n");
    assert_ne!(bumped, relabelled);
    std::fs::write(&file, bumped).unwrap();
    start(&database, dir.path())
        .await
        .expect("a changed definition with a new version starts");
}

async fn an_invalid_definition_is_refused_at_start_up_naming_its_file_and_line(backend: Backend) {
    let database = ScratchDatabase::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("subcontract_permission.toml");
    // The approve transition goes to a state that does not exist.
    let approve = PRODUCT.find("event = \"approve\"\nfrom").unwrap();
    let broken = format!(
        "{}{}",
        &PRODUCT[..approve],
        PRODUCT[approve..].replacen("to = \"permitted\"", "to = \"granted\"", 1)
    );
    std::fs::write(&file, broken).unwrap();
    // Errors name the line of the transition's `[[transitions]]` header.
    let line = PRODUCT[..approve].lines().count();

    let refused = start(&database, dir.path()).await.unwrap_err();
    let expected = format!(
        "{}:{line}: transition \"approve\" to unknown state \"granted\"",
        file.display()
    );
    assert!(
        refused.contains(&expected),
        "{refused}\nexpected: {expected}"
    );
}

/// Version 2 of the product definition: the chief's step is gone from the decision route.
fn without_the_chief() -> String {
    let chief = "[[routes.steps]]\nid = \"chief\"\n";
    let start = PRODUCT.find(chief).unwrap();
    let end = start + PRODUCT[start..].find("\n\n").unwrap() + 2;
    let v2 = format!("{}{}", &PRODUCT[..start], &PRODUCT[end..])
        .replace("\nversion = 1\n", "\nversion = 2\n");
    assert!(!v2.contains("id = \"chief\"") && v2.contains("\nversion = 2\n"));
    v2
}

async fn instances_keep_their_version_after_a_redeployment_that_drops_the_old_file(
    backend: Backend,
) {
    let v1_dir = tempfile::tempdir().unwrap();
    std::fs::write(v1_dir.path().join("subcontract_permission.toml"), PRODUCT).unwrap();
    let v1_path = v1_dir.path().to_owned();
    let app = spawn_app_with(backend, Clock::System, |s| s.workflows_dir = v1_path).await;
    let cast = Cast::create(&app).await;
    let old = cast.submitted_tier2(&app).await;
    let old_id = id_of(&old).to_owned();
    assert_eq!(old["workflow_version"], 1);

    // Only version 2 is deployed now; version 1 lives on in the database.
    let v2_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        v2_dir.path().join("subcontract_permission.toml"),
        without_the_chief(),
    )
    .unwrap();
    let v2_path = v2_dir.path().to_owned();
    let app = app.redeploy(|s| s.workflows_dir = v2_path).await;
    let listed: Value = app
        .get_with_token("/api/v1/workflows", &cast.officer.token)
        .await
        .json()
        .await
        .unwrap();
    let versions: Vec<(u64, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["version"].as_u64().unwrap(),
                w["latest"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [(1, false), (2, true)]);

    // The old instance still needs its chief.
    let approve = || json!({ "event": "approve" });
    app.fire_ok(&cast.officer.token, &old_id, approve()).await;
    let early = app.fire(&cast.manager.token, &old_id, approve()).await;
    assert_api_error(early, 403, "transition_forbidden").await;
    app.fire_ok(&cast.chief.token, &old_id, approve()).await;
    let done = app.fire_ok(&cast.manager.token, &old_id, approve()).await;
    assert_eq!(
        (done["state"].as_str(), done["workflow_version"].as_u64()),
        (Some("permitted"), Some(1))
    );

    // A new instance starts on version 2, where the manager follows the officer.
    let new = cast.submitted_tier2(&app).await;
    let new_id = id_of(&new).to_owned();
    assert_eq!(new["workflow_version"], 2);
    app.fire_ok(&cast.officer.token, &new_id, approve()).await;
    let done = app.fire_ok(&cast.manager.token, &new_id, approve()).await;
    assert_eq!(
        (done["state"].as_str(), done["workflow_version"].as_u64()),
        (Some("permitted"), Some(2))
    );
}

/// `check-workflows` notes a definition that names no organisation scope for its instances.
#[test]
fn a_definition_without_create_org_is_reported_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let global = notice_definition("global_notice", None);
    let office = notice_definition("office_notice", Some("applicant"));
    std::fs::write(dir.path().join("global.toml"), &global).unwrap();
    std::fs::write(dir.path().join("office.toml"), &office).unwrap();
    let report = itaku::commands::workflow_report(dir.path()).unwrap();
    assert_eq!(
        report.lines().collect::<Vec<_>>(),
        [
            format!(
                "ok  global_notice v1  sha256={}  2 states, 1 transition",
                &content_hash(&global)[..12]
            ),
            format!("note  global_notice v1: {}", itaku::commands::UNSCOPED),
            format!(
                "ok  office_notice v1  sha256={}  2 states, 1 transition",
                &content_hash(&office)[..12]
            ),
        ]
    );
}

crate::on_both_backends!(
    instances_keep_their_version_after_a_redeployment_that_drops_the_old_file,
    the_product_workflow_is_listed_as_its_latest_version,
    a_workflow_is_described_with_its_states_and_transitions,
    the_workflow_diagram_highlights_the_state_asked_for,
    an_instance_diagram_highlights_the_state_the_instance_is_in,
    an_unknown_workflow_or_version_is_an_unknown_workflow,
    a_definition_changed_without_a_version_bump_is_refused_at_start_up,
    an_invalid_definition_is_refused_at_start_up_naming_its_file_and_line,
);
