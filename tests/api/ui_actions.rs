//! The application detail's actions that take input (return to the applicant or an earlier
//! step, reject with a reason, proxy decision, skip, pull-up), and the upload forms' CSRF check
//! before their body is read.

use std::time::Duration;

use itaku::services::users::{self, NewDeputy};
use reqwest::header::LOCATION;
use reqwest::Response;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{
    day, id_of, instance_path, spawn_app, Backend, Cast, Person, TestApp, KOKUHOREN, MEGURO,
};
use crate::on_both_backends;
use crate::ui::{csrf_of, page, Jar};

/// The application (id, target id) whose decision instance is `instance`.
async fn application_of(app: &TestApp, cast: &Cast, instance: &Value) -> (String, String) {
    let apps = app
        .get_json("/api/v1/applications", &cast.officer.token)
        .await;
    let found = apps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["targets"][0]["instance_id"] == instance["id"])
        .unwrap();
    (
        found["id"].as_str().unwrap().to_owned(),
        found["targets"][0]["id"].as_str().unwrap().to_owned(),
    )
}

/// The detail page as `who` sees it: the jar, the page and its CSRF token.
async fn detail(app: &TestApp, who: &Person, application: &str) -> (Jar, String, String) {
    let mut jar = Jar::with_session(&who.token);
    let html = page(
        jar.get(app, &format!("/applications/{application}")).await,
        200,
    )
    .await;
    let csrf = csrf_of(&html);
    (jar, html, csrf)
}

/// The `<form>` of one event on a detail page, if the page offers it.
fn form_of<'a>(html: &'a str, event: &str, target: &str) -> Option<&'a str> {
    let start = html.find(&format!(r#"id="form-{event}-{target}""#))?;
    let end = html[start..].find("</form>")? + start;
    Some(&html[start..end])
}

/// Posts one of the detail page's forms.
#[allow(clippy::too_many_arguments)]
async fn post_form(
    jar: &mut Jar,
    app: &TestApp,
    application: &str,
    csrf: &str,
    target: &str,
    version: i64,
    fields: &[(&str, &str)],
) -> Response {
    let version = version.to_string();
    let mut form = vec![
        ("csrf", csrf),
        ("target", target),
        ("version", version.as_str()),
    ];
    form.extend_from_slice(fields);
    jar.post(app, &format!("/applications/{application}/events"), &form)
        .await
}

async fn version_of(app: &TestApp, instance: &str, token: &str) -> i64 {
    app.get_json(&instance_path(instance), token).await["version"]
        .as_i64()
        .unwrap()
}

async fn the_manager_returns_to_an_earlier_step_or_the_applicant_chosen_from_what_the_engine_allows(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let waiting = cast.at_manager_step(&app).await;
    let instance = id_of(&waiting).to_owned();
    let (id, target) = application_of(&app, &cast, &waiting).await;

    let (mut jar, html, csrf) = detail(&app, &cast.manager, &id).await;
    let form = form_of(&html, "return", &target).expect("the return form");
    assert!(form.contains(r#"name="csrf""#));
    let options: Vec<&str> = form
        .match_indices("<option value=\"")
        .map(|(i, m)| {
            let rest = &form[i + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(
        options,
        ["", "officer_check", "chief"],
        "the applicant and the earlier steps, nothing later: {form}"
    );
    assert!(form.contains("担当者審査") && form.contains("係長決裁"));
    assert!(form_of(&html, "reject", &target).is_some());
    assert!(
        form_of(&html, "proxy", &target).is_none(),
        "not a deputy of anyone"
    );
    assert!(
        form_of(&html, "skip", &target).is_none() && form_of(&html, "pull_up", &target).is_none()
    );

    // Without the reason: refused with the requirement named, nothing written.
    let version = version_of(&app, &instance, &cast.manager.token).await;
    let before = app.footprint(&instance).await;
    let refused = post_form(
        &mut jar,
        &app,
        &id,
        &csrf,
        &target,
        version,
        &[("event", "return"), ("to_step", "chief"), ("comment", "  ")],
    )
    .await;
    let html = page(refused, 422).await;
    assert!(
        html.contains(r#"<li data-code="comment_required">"#),
        "{html}"
    );
    assert!(html.contains("コメント(理由)を入力してください"));
    assert_eq!(app.footprint(&instance).await, before);

    // To the officer's step: the earlier approvals are undone, the state stays.
    let returned = post_form(
        &mut jar,
        &app,
        &id,
        &csrf,
        &target,
        version,
        &[
            ("event", "return"),
            ("to_step", "officer_check"),
            ("comment", "体制図の監督体制を確認してください"),
        ],
    )
    .await;
    assert_eq!(returned.status(), 303);
    assert_eq!(
        returned.headers()[LOCATION],
        format!("/applications/{id}?done=1").as_str()
    );
    let shown = app
        .get_json(&instance_path(&instance), &cast.officer.token)
        .await;
    assert_eq!(shown["state"], "decision");
    assert_eq!(shown["progress"]["route"]["current"], 0);
    let record = app.audit_rows(&instance).await.pop().unwrap();
    assert_eq!(
        (record.event.as_str(), record.step.as_deref()),
        ("return", Some("officer_check"))
    );
    assert_eq!(
        record.comment.as_deref(),
        Some("体制図の監督体制を確認してください")
    );

    // The same page posted again is stale: the conflict message, nothing written.
    let before = app.footprint(&instance).await;
    let stale = post_form(
        &mut jar,
        &app,
        &id,
        &csrf,
        &target,
        version,
        &[
            ("event", "return"),
            ("to_step", "chief"),
            ("comment", "もう一度"),
        ],
    )
    .await;
    assert!(page(stale, 409).await.contains("他の人が先に操作しました"));
    assert_eq!(app.footprint(&instance).await, before);

    // The officer, now at the first step, may only send it back to the applicant.
    let (mut officer, html, csrf) = detail(&app, &cast.officer, &id).await;
    let form = form_of(&html, "return", &target).unwrap();
    assert_eq!(form.matches("<option").count(), 1, "{form}");
    let version = version_of(&app, &instance, &cast.officer.token).await;
    let to_applicant = post_form(
        &mut officer,
        &app,
        &id,
        &csrf,
        &target,
        version,
        &[
            ("event", "return"),
            ("to_step", ""),
            ("comment", "安全管理措置を添付してください"),
        ],
    )
    .await;
    assert_eq!(to_applicant.status(), 303);
    let shown = app
        .get_json(&instance_path(&instance), &cast.officer.token)
        .await;
    assert_eq!(shown["state"], "draft");
}

async fn a_rejection_needs_its_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let submitted = cast.submitted_tier2(&app).await;
    let instance = id_of(&submitted).to_owned();
    let (id, target) = application_of(&app, &cast, &submitted).await;
    let (mut jar, html, csrf) = detail(&app, &cast.officer, &id).await;
    let form = form_of(&html, "reject", &target).expect("the reject form");
    assert!(form.contains("不許諾の理由"));
    let version = version_of(&app, &instance, &cast.officer.token).await;
    let before = app.footprint(&instance).await;
    let refused = post_form(
        &mut jar,
        &app,
        &id,
        &csrf,
        &target,
        version,
        &[("event", "reject"), ("comment", "")],
    )
    .await;
    assert!(page(refused, 422)
        .await
        .contains(r#"<li data-code="comment_required">"#));
    assert_eq!(app.footprint(&instance).await, before);
    let rejected = post_form(
        &mut jar,
        &app,
        &id,
        &csrf,
        &target,
        version,
        &[
            ("event", "reject"),
            ("comment", "国外にデータを保管するため"),
        ],
    )
    .await;
    assert_eq!(rejected.status(), 303);
    let shown = app
        .get_json(&instance_path(&instance), &cast.officer.token)
        .await;
    assert_eq!(shown["state"], "rejected");
}

async fn a_registered_deputy_decides_for_the_absent_manager_chosen_on_the_form(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let deputy = app.person("meguro_deputy", &[(MEGURO, "chief")]).await;
    users::add_deputy(
        &app.db,
        NewDeputy {
            principal_user_id: cast.manager.id.clone(),
            deputy_user_id: deputy.id.clone(),
            role: "manager".to_owned(),
            organisation_id: MEGURO.to_owned(),
            valid_from: day(2020, 4, 1),
            valid_until: None,
        },
        app.now(),
    )
    .await
    .unwrap();
    let waiting = cast.at_manager_step(&app).await;
    let instance = id_of(&waiting).to_owned();
    let (id, target) = application_of(&app, &cast, &waiting).await;

    // The chief, who deputises for nobody, is offered no proxy decision; a forged post is
    // refused with the reason listed.
    let (mut chief, html, csrf) = detail(&app, &cast.chief, &id).await;
    assert!(form_of(&html, "proxy", &target).is_none());
    let version = version_of(&app, &instance, &cast.manager.token).await;
    let before = app.footprint(&instance).await;
    let forged = post_form(
        &mut chief,
        &app,
        &id,
        &csrf,
        &target,
        version,
        &[("event", "proxy"), ("on_behalf_of", &cast.manager.id)],
    )
    .await;
    let html = page(forged, 403).await;
    assert!(html.contains(r#"<li data-code="not_a_deputy">"#), "{html}");
    assert_eq!(app.footprint(&instance).await, before);

    let (mut jar, html, csrf) = detail(&app, &deputy, &id).await;
    let form = form_of(&html, "proxy", &target).expect("the proxy form");
    assert!(
        form.contains(&format!(
            r#"<option value="{}">meguro_manager さん</option>"#,
            cast.manager.id
        )),
        "{form}"
    );
    assert!(
        !html.contains(r#"id="event-approve""#),
        "not their own step"
    );
    let decided = post_form(
        &mut jar,
        &app,
        &id,
        &csrf,
        &target,
        version,
        &[
            ("event", "proxy"),
            ("on_behalf_of", &cast.manager.id),
            ("comment", "課長出張のため代決"),
        ],
    )
    .await;
    assert_eq!(decided.status(), 303);
    let record = app.audit_rows(&instance).await.pop().unwrap();
    assert_eq!(record.to_state, "permitted");
    assert_eq!(record.actor_id, deputy.id);
    assert_eq!(
        record.on_behalf_of.as_deref(),
        Some(cast.manager.id.as_str())
    );

    // Both names on the timeline; the manager is asked to review it afterwards (後閲).
    let (mut manager, html, csrf) = detail(&app, &cast.manager, &id).await;
    assert!(html.contains("meguro_deputy さん"));
    assert!(html.contains(r#"id="event-acknowledge""#), "{html}");
    let version = version_of(&app, &instance, &cast.manager.token).await;
    let reviewed = post_form(
        &mut manager,
        &app,
        &id,
        &csrf,
        &target,
        version,
        &[("event", "acknowledge")],
    )
    .await;
    assert_eq!(reviewed.status(), 303);
    let shown = app
        .get_json(&instance_path(&instance), &cast.manager.token)
        .await;
    assert_eq!(
        shown["progress"]["post_reviews"][0]["done_by"],
        cast.manager.id.as_str()
    );
}

async fn the_manager_skips_the_absent_chief_or_pulls_the_stalled_step_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let submitted = cast.submitted_tier2(&app).await;
        app.fire_ok(
            &cast.officer.token,
            id_of(&submitted),
            json!({ "event": "approve" }),
        )
        .await;
        let (id, target) = application_of(&app, &cast, &submitted).await;
        ids.push((id_of(&submitted).to_owned(), id, target));
    }

    // Skip: the chief's step is passed over (後閲 owed) and the manager decides.
    let (instance, id, target) = &ids[0];
    let (mut jar, html, csrf) = detail(&app, &cast.manager, id).await;
    assert!(form_of(&html, "skip", target).is_some(), "{html}");
    assert!(form_of(&html, "pull_up", target).is_some());
    assert!(form_of(&html, "proxy", target).is_none());
    let version = version_of(&app, instance, &cast.manager.token).await;
    let skipped = post_form(
        &mut jar,
        &app,
        id,
        &csrf,
        target,
        version,
        &[("event", "skip"), ("comment", "係長不在")],
    )
    .await;
    assert_eq!(skipped.status(), 303);
    let shown = app
        .get_json(&instance_path(instance), &cast.manager.token)
        .await;
    assert_eq!(shown["state"], "permitted");
    let review = &shown["progress"]["post_reviews"][0];
    assert_eq!(
        (review["step"].as_str(), review["reason"].as_str()),
        (Some("chief"), Some("skipped")),
        "{review}"
    );

    // Pull-up: the manager acts for the chief's step and the route waits at their own.
    let (instance, id, target) = &ids[1];
    let (mut jar, _, csrf) = detail(&app, &cast.manager, id).await;
    let version = version_of(&app, instance, &cast.manager.token).await;
    let pulled = post_form(
        &mut jar,
        &app,
        id,
        &csrf,
        target,
        version,
        &[("event", "pull_up"), ("comment", "")],
    )
    .await;
    assert_eq!(pulled.status(), 303);
    let shown = app
        .get_json(&instance_path(instance), &cast.manager.token)
        .await;
    assert_eq!(shown["state"], "decision");
    assert_eq!(shown["progress"]["route"]["current"], 2);
    let (_, html, _) = detail(&app, &cast.manager, id).await;
    assert!(html.contains(r#"id="event-approve""#));
    assert!(
        form_of(&html, "pull_up", target).is_none(),
        "nothing left to pull up"
    );
}

/// Sends the head of a multipart upload over a raw connection and never the rest; returns
/// what the server answered within `wait`, if anything.
async fn unfinished_upload(
    app: &TestApp,
    jar: &Jar,
    first: (&str, &str),
    wait: Duration,
) -> Option<String> {
    let boundary = "itakuBoundary7MA4YWxkTrZu0gW";
    let (name, value) = first;
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    );
    let cookies = format!(
        "itaku_token={}; itaku_csrf={}",
        jar.get_value("itaku_token").unwrap(),
        jar.get_value("itaku_csrf").unwrap()
    );
    let request = format!(
        "POST /organisations/{KOKUHOREN}/evidence HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Cookie: {cookies}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: 900000\r\n\r\n{head}"
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'%'; 4096]).await.unwrap();
    let mut answer = vec![0u8; 4096];
    match tokio::time::timeout(wait, stream.read(&mut answer)).await {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&answer[..n]).into_owned()),
        _ => None,
    }
}

async fn an_upload_without_its_token_first_is_refused_before_its_files_are_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let mut jar = Jar::with_session(&cast.kokuhoren.token);
    let library = format!("/organisations/{KOKUHOREN}/evidence");
    let html = page(
        jar.get(&app, &format!("{library}/new?kind=iso27001")).await,
        200,
    )
    .await;
    let csrf = csrf_of(&html);
    let form = &html[html.find("enctype=\"multipart/form-data\"").unwrap()..];
    assert!(
        form.trim_start_matches(|c| c != '<').starts_with(&format!(
            r#"<input type="hidden" name="csrf" value="{csrf}">"#
        )),
        "the token is the form's first part"
    );
    let records = crate::ui_screens::evidence_count(&app).await;
    let files = crate::ui_screens::file_count(&app).await;

    let wrong = "0".repeat(64);
    for first in [("csrf", wrong.as_str()), ("csrf", ""), ("kind", "iso27001")] {
        let answer = unfinished_upload(&app, &jar, first, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{first:?}: no answer while the body is still coming"));
        assert!(answer.starts_with("HTTP/1.1 403"), "{first:?}: {answer}");
    }
    // With the right token the server reads on, waiting for the rest of the body.
    let waiting = unfinished_upload(&app, &jar, ("csrf", &csrf), Duration::from_millis(1500)).await;
    assert_eq!(waiting, None, "the right token lets the body be read");

    // A complete post with the token after the file is refused too, and nothing is stored.
    let late = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(crate::ui_screens::PDF.to_vec()).file_name("c.pdf"),
        )
        .text("csrf", csrf.clone())
        .text("kind", "iso27001");
    page(jar.post_multipart(&app, &library, late).await, 403).await;
    assert_eq!(crate::ui_screens::evidence_count(&app).await, records);
    assert_eq!(crate::ui_screens::file_count(&app).await, files);
}

on_both_backends!(
    the_manager_returns_to_an_earlier_step_or_the_applicant_chosen_from_what_the_engine_allows,
    a_rejection_needs_its_reason,
    a_registered_deputy_decides_for_the_absent_manager_chosen_on_the_form,
    the_manager_skips_the_absent_chief_or_pulls_the_stalled_step_up,
    an_upload_without_its_token_first_is_refused_before_its_files_are_read,
);
