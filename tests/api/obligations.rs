//! Evidence-expiry reminders and obligations: generation from the chains in force, reminder
//! stages on business days, each once however many schedulers race, closing records and who
//! may see and act on what.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use entity::{obligation, obligation_event, outbox};
use itaku::clock::Clock;
use itaku::schedule::calendar::BusinessCalendar;
use itaku::schedule::Scheduler;
use itaku::workflow::Now;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::{json, Value};

use crate::helpers::{
    assert_api_error, day, spawn_app_with, Backend, Cast, TestApp, CHUOKAI, KOKUHOREN, MEGURO,
};

/// 09:00 in Japan on the day.
pub fn jst(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    itaku::clock::jst()
        .with_ymd_and_hms(y, m, d, 9, 0, 0)
        .single()
        .expect("a valid time")
        .with_timezone(&Utc)
}

/// The application on a fixed day, with the background scheduler and dispatcher off (the tests
/// run the passes themselves).
async fn app_on(backend: Backend, at: DateTime<Utc>) -> TestApp {
    spawn_app_with(backend, Clock::Fixed(at), |s| {
        s.timer_interval_seconds = 0;
        s.mail.dispatch_interval_seconds = 0;
    })
    .await
}

/// `itaku remind --at DAY`, as cron would run it.
async fn remind(app: &TestApp, on: NaiveDate) {
    let code = itaku::commands::remind(app.settings.clone(), Some(on))
        .await
        .expect("remind ran");
    assert_eq!(code, std::process::ExitCode::SUCCESS);
}

/// The idempotency keys of the outbox rows starting with `prefix`, sorted.
async fn keys(app: &TestApp, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = outbox::Entity::find()
        .filter(outbox::Column::IdempotencyKey.starts_with(prefix))
        .all(&app.db)
        .await
        .expect("outbox read")
        .into_iter()
        .map(|r| r.idempotency_key)
        .collect();
    keys.sort();
    keys
}

async fn obligations_of(app: &TestApp) -> Vec<obligation::Model> {
    obligation::Entity::find()
        .order_by_asc(obligation::Column::GenerationKey)
        .all(&app.db)
        .await
        .expect("obligations read")
}

async fn evidence_expiry_reminders_fire_once_per_stage_and_stop_when_renewed_or_revoked(
    backend: Backend,
) {
    let app = app_on(backend, jst(2026, 6, 1)).await;
    let _cast = Cast::create(&app).await;
    let until = day(2026, 9, 30);
    let renewed = app
        .insert_evidence(KOKUHOREN, "iso27018", json!({}), until, true)
        .await;
    let revoked = app
        .insert_evidence(KOKUHOREN, "iso27017", json!({}), until, true)
        .await;
    let plain = app
        .insert_evidence(KOKUHOREN, "privacy_mark", json!({}), until, true)
        .await;
    let unverified = app
        .insert_evidence(KOKUHOREN, "cs_mark_gold", json!({}), until, false)
        .await;

    remind(&app, day(2026, 7, 1)).await;
    assert!(keys(&app, "evidence:").await.is_empty(), "91 days before");
    // 90 days before, twice: one row per record.
    remind(&app, day(2026, 7, 2)).await;
    remind(&app, day(2026, 7, 2)).await;
    let mut expected: Vec<String> = [&renewed, &revoked, &plain]
        .iter()
        .map(|id| format!("evidence:{id}:expiring:90"))
        .collect();
    expected.sort();
    assert_eq!(keys(&app, "evidence:").await, expected);

    // Revoked: no more reminders. Renewed by a verified record that lasts longer: none either.
    use sea_orm::{ActiveModelTrait, Set};
    let mut row: entity::evidence_record::ActiveModel =
        entity::evidence_record::Entity::find_by_id(revoked.as_str())
            .one(&app.db)
            .await
            .unwrap()
            .unwrap()
            .into();
    row.revoked_at = Set(Some(app.now()));
    row.revoked_by = Set(Some("fixture".to_owned()));
    row.update(&app.db).await.unwrap();
    // 30 days before (and a later pass the same stage).
    remind(&app, day(2026, 8, 31)).await;
    remind(&app, day(2026, 9, 1)).await;
    app.insert_evidence(KOKUHOREN, "iso27018", json!({}), day(2029, 9, 30), true)
        .await;
    // 7 days before, then after expiry: the sweep's notification beside its cascade.
    remind(&app, day(2026, 9, 23)).await;
    itaku::commands::sweep(app.settings.clone(), Some(day(2026, 10, 1)))
        .await
        .unwrap();
    itaku::commands::sweep(app.settings.clone(), Some(day(2026, 10, 2)))
        .await
        .unwrap();

    let mut expected = vec![
        format!("evidence:{renewed}:expiring:30"),
        format!("evidence:{renewed}:expiring:90"),
        format!("evidence:{revoked}:expiring:90"),
        format!("evidence:{plain}:expired"),
        format!("evidence:{plain}:expiring:30"),
        format!("evidence:{plain}:expiring:7"),
        format!("evidence:{plain}:expiring:90"),
    ];
    expected.sort();
    assert_eq!(keys(&app, "evidence:").await, expected);
    assert!(!keys(&app, "evidence:")
        .await
        .iter()
        .any(|k| k.contains(&unverified)));

    // To the owner and to the officers of the municipality whose chain relies on it.
    let row = outbox::Entity::find()
        .filter(outbox::Column::IdempotencyKey.eq(format!("evidence:{plain}:expiring:7")))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.template.as_deref(), Some("evidence_expiring"));
    let recipients: Value = serde_json::from_str(&row.recipients).unwrap();
    assert_eq!(
        recipients,
        json!([
            { "organisation": KOKUHOREN, "fallback_role": "contractor" },
            { "role": "officer", "org": MEGURO },
        ])
    );
    let prepared = itaku::services::notifications::prepare(
        &app.db,
        &app.state.workflows,
        &row,
        day(2026, 9, 23),
        "https://itaku.example.lg.jp",
    )
    .await
    .unwrap();
    assert_eq!(
        prepared.addresses,
        ["kokuhoren@example.lg.jp", "meguro_officer@example.lg.jp"]
    );
    assert_eq!(
        prepared.data["link"],
        format!("https://itaku.example.lg.jp/evidence/{plain}")
    );
}

async fn obligations_are_generated_once_per_node_and_year_on_business_days(backend: Backend) {
    let app = app_on(backend, jst(2028, 6, 1)).await;
    let cast = Cast::create(&app).await;
    // An application still being drafted: its node is not in force and owes nothing.
    cast.apply_tier2(&app).await;
    remind(&app, day(2028, 6, 1)).await;
    let first = obligations_of(&app).await;
    remind(&app, day(2028, 6, 1)).await;
    remind(&app, day(2028, 6, 2)).await;
    let again = obligations_of(&app).await;
    assert_eq!(first, again, "running it again creates nothing");

    let mut found: Vec<(String, &str, NaiveDate, i32)> = first
        .iter()
        .map(|o| (o.node_id.clone(), o.kind.as_str(), o.due_on, o.fiscal_year))
        .collect();
    found.sort();
    // 2029-03-31 is a Saturday: due on Friday 3/30.
    let due = day(2029, 3, 30);
    let mut expected = vec![
        (cast.tier1.clone(), "compliance_report", due, 2028),
        (cast.tier1.clone(), "inspection", due, 2028),
        (cast.tier1.clone(), "training", due, 2028),
        (cast.tier2.clone(), "compliance_report", due, 2028),
        (cast.tier2.clone(), "inspection", due, 2028),
        (cast.tier2.clone(), "training", due, 2028),
    ];
    expected.sort();
    assert_eq!(found, expected);
    let owners: Vec<&str> = first.iter().map(|o| o.organisation_id.as_str()).collect();
    assert_eq!(owners.iter().filter(|o| **o == KOKUHOREN).count(), 3);
    assert_eq!(owners.iter().filter(|o| **o == CHUOKAI).count(), 3);
    assert!(first.iter().all(|o| o.municipality_id == MEGURO));

    // Ten business days before 3/30: 3/20 (春分の日) does not count, so Thu 3/15.
    remind(&app, day(2029, 3, 14)).await;
    assert!(keys(&app, "obligation:").await.is_empty());
    remind(&app, day(2029, 3, 15)).await;
    remind(&app, day(2029, 3, 15)).await;
    let due_keys = keys(&app, "obligation:").await;
    assert_eq!(due_keys.len(), 6, "{due_keys:?}");
    assert!(due_keys.iter().all(|k| k.ends_with(":due")));
    // Overdue the business day after (Mon 4/2); escalated five business days after (Fri 4/6).
    remind(&app, day(2029, 3, 30)).await;
    assert_eq!(keys(&app, "obligation:").await.len(), 6);
    remind(&app, day(2029, 4, 2)).await;
    assert_eq!(keys(&app, "obligation:").await.len(), 12);
    remind(&app, day(2029, 4, 5)).await;
    assert_eq!(keys(&app, "obligation:").await.len(), 12);
    remind(&app, day(2029, 4, 6)).await;
    let all = keys(&app, "obligation:").await;
    assert_eq!(all.len(), 18);
    for o in &first {
        for stage in ["due", "overdue", "escalated"] {
            assert!(all.contains(&format!("obligation:{}:{stage}", o.id)));
        }
    }
    // The escalation goes to the root municipality's managers.
    let escalation = outbox::Entity::find()
        .filter(outbox::Column::IdempotencyKey.eq(format!("obligation:{}:escalated", first[0].id)))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(escalation.template.as_deref(), Some("obligation_escalated"));
    assert_eq!(
        serde_json::from_str::<Value>(&escalation.recipients).unwrap(),
        json!([{ "role": "manager", "org": MEGURO }])
    );
    let prepared = itaku::services::notifications::prepare(
        &app.db,
        &app.state.workflows,
        &escalation,
        day(2029, 4, 6),
        "https://itaku.example.lg.jp",
    )
    .await
    .unwrap();
    assert_eq!(prepared.addresses, ["meguro_manager@example.lg.jp"]);
    assert_eq!(prepared.data["obligation"]["due"], "2029-03-30");
    assert_eq!(
        prepared.data["link"],
        format!("https://itaku.example.lg.jp/obligations/{}", first[0].id)
    );
}

/// Two schedulers (the server's and a cron job's, on their own connections) run the same
/// passes at once: every obligation, evidence reminder and stage is written once.
async fn two_schedulers_racing_write_everything_once(backend: Backend) {
    let app = app_on(backend, jst(2026, 6, 1)).await;
    let _cast = Cast::create(&app).await;
    for ix in 0..5 {
        app.insert_evidence(
            KOKUHOREN,
            &format!("kind{ix}"),
            json!({}),
            day(2027, 3, 24),
            true,
        )
        .await;
    }
    let second = itaku::db::connect(&app.settings)
        .await
        .expect("a connection");
    let scheduler = |db| Scheduler {
        db,
        workflows: app.state.workflows.clone(),
        obligation_policy: Arc::new(
            itaku::domain::obligations::ObligationPolicy::default_policy().unwrap(),
        ),
        evidence_reminder_days: vec![90, 30, 7],
    };
    let (a, b) = (scheduler(app.db.clone()), scheduler(second));
    let mut fired_obligations = 0;
    let mut fired_evidence = 0;
    let mut created = 0;
    for on in [
        day(2026, 6, 1),
        day(2026, 12, 24),
        day(2027, 2, 22),
        day(2027, 3, 17),
        day(2027, 4, 1),
        day(2027, 4, 8),
    ] {
        let now = Now {
            at: app.now(),
            today: on,
        };
        let (mut ca, mut cb) = (BusinessCalendar::new(), BusinessCalendar::new());
        let (ra, rb) = tokio::join!(a.pass(&mut ca, now), b.pass(&mut cb, now));
        let (ra, rb) = (ra.expect("pass a"), rb.expect("pass b"));
        created += ra.obligations_created + rb.obligations_created;
        fired_obligations += ra.obligation_reminders.len() + rb.obligation_reminders.len();
        fired_evidence += ra.evidence_reminders.len() + rb.evidence_reminders.len();
    }
    // Training, inspection and compliance report for both nodes in 2026 (and the same again
    // from 2027-04-01).
    let rows = obligations_of(&app).await;
    assert_eq!(rows.len(), 12);
    assert_eq!(created, 12, "each obligation reported created once");
    // 5 records × 3 stages; 6 obligations × 3 stages (the 2027 ones are not due yet).
    let evidence_keys = keys(&app, "evidence:").await;
    assert_eq!(evidence_keys.len(), 15, "{evidence_keys:?}");
    assert_eq!(fired_evidence, 15);
    let obligation_keys = keys(&app, "obligation:").await;
    assert_eq!(obligation_keys.len(), 18, "{obligation_keys:?}");
    assert_eq!(fired_obligations, 18, "each stage reported fired once");
}

/// Signs in and finds the caller's obligations of a kind.
async fn listed(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let page = app
        .get_json(&format!("/api/v1/obligations?{query}"), token)
        .await;
    page["items"].as_array().expect("items").clone()
}

async fn upload(
    app: &TestApp,
    token: &str,
    id: &str,
    name: &'static str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name),
    );
    app.client
        .post(app.url(&format!("/api/v1/obligations/{id}/file")))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("sent")
}

const PDF: &[u8] = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n";

async fn training_is_closed_by_an_accepted_attendance_record_and_absentees_are_followed_up(
    backend: Backend,
) {
    let app = app_on(backend, jst(2026, 11, 25)).await;
    let cast = Cast::create(&app).await;
    let auditor = app.person("meguro_auditor", &[(MEGURO, "auditor")]).await;
    remind(&app, day(2026, 11, 25)).await;
    let mine = listed(&app, &cast.kokuhoren.token, "kind=training").await;
    assert_eq!(mine.len(), 1, "only its own organisation's: {mine:?}");
    let id = mine[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(mine[0]["status"], "open");
    assert_eq!(mine[0]["title"]["ja"], "研修の実施と受講記録の提出");
    let path = |action: &str| format!("/api/v1/obligations/{id}/{action}");
    let attendance = |date: &str, absent: u32| {
        json!({ "record": { "kind": "attendance", "date": date, "topic": "特定個人情報の取扱い",
            "attendee_count": 12, "absent_count": absent } })
    };

    // The list file first; an executable named .pdf is refused.
    let refused = app
        .post_json_with_token(
            &path("record"),
            &cast.kokuhoren.token,
            &attendance("2026-11-20", 2),
        )
        .await;
    let body = assert_api_error(refused, 422, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "file");
    let elf = b"\x7fELF\x02\x01\x01\x00rest".to_vec();
    assert_api_error(
        upload(&app, &cast.kokuhoren.token, &id, "list.pdf", elf).await,
        415,
        "unsupported_file_type",
    )
    .await;
    let attached = upload(
        &app,
        &cast.kokuhoren.token,
        &id,
        "受講者名簿.pdf",
        PDF.to_vec(),
    )
    .await;
    assert_eq!(attached.status(), 200);
    let attached: Value = attached.json().await.unwrap();
    assert_eq!(attached["record_filename"], "受講者名簿.pdf");

    // A date in the future and no topic are refused, each named; nothing changes.
    let bad = json!({ "record": { "kind": "attendance", "date": "2026-12-01", "topic": " ",
        "attendee_count": 0 } });
    let refused = app
        .post_json_with_token(&path("record"), &cast.kokuhoren.token, &bad)
        .await;
    let body = assert_api_error(refused, 422, "validation_failed").await;
    let fields: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["record.attendee_count", "record.date", "record.topic"]
    );
    let submitted = app
        .post_json_with_token(
            &path("record"),
            &cast.kokuhoren.token,
            &attendance("2026-11-20", 2),
        )
        .await;
    assert_eq!(submitted.status(), 200);
    let submitted: Value = submitted.json().await.unwrap();
    assert_eq!(submitted["status"], "submitted");

    // The contractor and the auditor cannot accept; the officer returns it with a reason.
    let r = app
        .post_json_with_token(&path("accept"), &cast.kokuhoren.token, &json!({}))
        .await;
    assert_api_error(r, 403, "forbidden").await;
    let r = app
        .post_json_with_token(&path("accept"), &auditor.token, &json!({}))
        .await;
    assert_api_error(r, 403, "forbidden").await;
    assert_eq!(
        app.get_json(&format!("/api/v1/obligations/{id}"), &auditor.token)
            .await["status"],
        "submitted"
    );
    let r = app
        .post_json_with_token(&path("return"), &cast.officer.token, &json!({}))
        .await;
    assert_api_error(r, 422, "validation_failed").await;
    let returned: Value = app
        .post_json_with_token(
            &path("return"),
            &cast.officer.token,
            &json!({ "reason": "受講者名簿に日付がありません。" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(returned["status"], "returned");
    assert_eq!(returned["return_reason"], "受講者名簿に日付がありません。");

    // Submitted again and accepted: closed, and the two absentees get a follow-up.
    let again = app
        .post_json_with_token(
            &path("record"),
            &cast.kokuhoren.token,
            &attendance("2026-11-24", 2),
        )
        .await;
    assert_eq!(again.status(), 200);
    let version = again.json::<Value>().await.unwrap()["version"]
        .as_i64()
        .unwrap();
    let stale = app
        .post_json_with_token(
            &path("accept"),
            &cast.officer.token,
            &json!({ "version": version - 1 }),
        )
        .await;
    assert_api_error(stale, 409, "stale_version").await;
    let accepted: Value = app
        .post_json_with_token(
            &path("accept"),
            &cast.officer.token,
            &json!({ "version": version }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(accepted["status"], "closed");
    assert_eq!(accepted["decided_by"], cast.officer.id.as_str());
    assert_eq!(accepted["record"]["attendee_count"], 12);
    let followups = listed(&app, &cast.kokuhoren.token, "kind=training_followup").await;
    assert_eq!(followups.len(), 1);
    assert_eq!(followups[0]["parent_id"], id.as_str());
    assert_eq!(followups[0]["detail"]["absent_count"], 2);
    // 40 business days after 2026-11-25.
    let mut calendar = BusinessCalendar::new();
    assert_eq!(
        followups[0]["due_on"],
        calendar
            .add_business_days(day(2026, 11, 25), 40)
            .to_string()
    );

    let events: Vec<String> = obligation_event::Entity::find()
        .filter(obligation_event::Column::ObligationId.eq(id.as_str()))
        .order_by_asc(obligation_event::Column::Id)
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events,
        [
            "attach_file",
            "submit_record",
            "return",
            "submit_record",
            "accept"
        ]
    );
    // The file downloads as an attachment.
    let file = app
        .get_with_token(&format!("/api/v1/obligations/{id}/file"), &auditor.token)
        .await;
    assert_eq!(file.status(), 200);
    assert_eq!(file.bytes().await.unwrap().as_ref(), PDF);
}

async fn an_inspection_report_closes_the_inspection_and_findings_become_obligations(
    backend: Backend,
) {
    let app = app_on(backend, jst(2026, 11, 25)).await;
    let cast = Cast::create(&app).await;
    remind(&app, day(2026, 11, 25)).await;
    let inspections = listed(
        &app,
        &cast.officer.token,
        &format!("kind=inspection&organisation={KOKUHOREN}"),
    )
    .await;
    assert_eq!(inspections.len(), 1);
    let id = inspections[0]["id"].as_str().unwrap();
    let report = json!({ "record": { "kind": "inspection", "date": "2026-11-20", "mode": "on_site",
        "inspectors": ["目黒 太郎", "目黒 花子"],
        "findings": [
            { "description": "入退室記録が一部欠けている", "follow_up": "入退室管理の手順を見直し報告する" },
            { "description": "研修資料が最新版である" },
        ] } });
    let path = format!("/api/v1/obligations/{id}/record");
    let r = app
        .post_json_with_token(&path, &cast.kokuhoren.token, &report)
        .await;
    assert_api_error(r, 403, "forbidden").await;
    let bad = json!({ "record": { "kind": "inspection", "date": "2026-11-20", "mode": "by_phone",
        "inspectors": [], "findings": [] } });
    let r = app
        .post_json_with_token(&path, &cast.officer.token, &bad)
        .await;
    let body = assert_api_error(r, 422, "validation_failed").await;
    let fields: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["record.inspectors", "record.mode"]);
    let done = app
        .post_json_with_token(&path, &cast.officer.token, &report)
        .await;
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["status"], "closed");
    assert_eq!(done["record"]["inspectors"][1], "目黒 花子");
    let followups = listed(&app, &cast.kokuhoren.token, "kind=inspection_followup").await;
    assert_eq!(followups.len(), 1, "one finding had a follow-up");
    assert_eq!(
        followups[0]["detail"]["finding"],
        "入退室記録が一部欠けている"
    );
    assert_eq!(followups[0]["parent_id"], id);
    // The contractor closes it with its corrective action, which the officer accepts.
    let fid = followups[0]["id"].as_str().unwrap();
    let r = app
        .post_json_with_token(
            &format!("/api/v1/obligations/{fid}/record"),
            &cast.kokuhoren.token,
            &json!({ "record": { "kind": "corrective_action", "date": "2026-11-25",
                "description": "手順書を改訂し全員に周知した" } }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let accepted = decided(&app, &cast.officer.token, fid, "accept", json!({})).await;
    assert_eq!(accepted["status"], "closed");
}

async fn a_contractor_cannot_see_or_close_another_organisations_obligation(backend: Backend) {
    let app = app_on(backend, jst(2026, 11, 25)).await;
    let cast = Cast::create(&app).await;
    remind(&app, day(2026, 11, 25)).await;
    let theirs = listed(&app, &cast.kokuhoren.token, "kind=training").await;
    let id = theirs[0]["id"].as_str().unwrap();
    let mine = listed(&app, &cast.chuokai.token, "").await;
    assert_eq!(mine.len(), 3);
    assert!(mine.iter().all(|o| o["organisation_id"] == CHUOKAI));
    for who in [&cast.chuokai, &cast.outsider] {
        let r = app
            .get_with_token(&format!("/api/v1/obligations/{id}"), &who.token)
            .await;
        assert_api_error(r, 404, "not_found").await;
        let r = app
            .post_json_with_token(
                &format!("/api/v1/obligations/{id}/record"),
                &who.token,
                &json!({ "record": { "kind": "attendance", "date": "2026-11-20",
                    "topic": "研修", "attendee_count": 3 } }),
            )
            .await;
        assert_api_error(r, 404, "not_found").await;
        assert_api_error(
            upload(&app, &who.token, id, "list.pdf", PDF.to_vec()).await,
            404,
            "not_found",
        )
        .await;
    }
    assert!(listed(&app, &cast.outsider.token, "").await.is_empty());
    // Nothing changed.
    let row = obligation::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.status.as_str(), row.version, row.record_file),
        ("open", 1, None)
    );
    assert_eq!(
        obligation_event::Entity::find()
            .count(&app.db)
            .await
            .unwrap(),
        0
    );
}

/// An officer's decision (`accept`, `return`) on an obligation; the obligation as answered.
async fn decided(app: &TestApp, token: &str, id: &str, action: &str, body: Value) -> Value {
    app.post_json_with_token(&format!("/api/v1/obligations/{id}/{action}"), token, &body)
        .await
        .json()
        .await
        .expect("a JSON body")
}

/// Sets a node's period end directly (a contract that ends with the 年度).
async fn end_period(app: &TestApp, node: &str, on: NaiveDate) {
    use sea_orm::sea_query::Expr;
    entity::chain_node::Entity::update_many()
        .col_expr(entity::chain_node::Column::PeriodEnd, Expr::value(on))
        .filter(entity::chain_node::Column::Id.eq(node))
        .exec(&app.db)
        .await
        .expect("node updated");
}

async fn node(app: &TestApp, id: &str) -> entity::chain_node::Model {
    entity::chain_node::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("node read")
        .expect("the node exists")
}

/// The mail row one change of an obligation wrote.
async fn change_mail(app: &TestApp, id: &str, event: &str) -> outbox::Model {
    let mut rows = outbox::Entity::find()
        .filter(outbox::Column::IdempotencyKey.starts_with(format!("obligation:{id}:{event}:")))
        .all(&app.db)
        .await
        .expect("outbox read");
    assert_eq!(rows.len(), 1, "one {event} mail for {id}");
    rows.remove(0)
}

async fn renewal_and_compliance_reports_are_generated_once_and_closed_by_their_records(
    backend: Backend,
) {
    let app = app_on(backend, jst(2026, 11, 25)).await;
    let cast = Cast::create(&app).await;
    let permitted = cast.permitted_tier2(&app).await;
    let instance = crate::helpers::id_of(&permitted).to_owned();
    let target = entity::application_target::Entity::find()
        .filter(entity::application_target::Column::InstanceId.eq(instance.as_str()))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let fy_end = day(2027, 3, 31);
    // The tier-1 contract and the new subcontract end with the 年度; 国保中央会's runs on.
    end_period(&app, &cast.tier1, fy_end).await;
    end_period(&app, &target.node_id, fy_end).await;
    remind(&app, day(2026, 11, 25)).await;
    remind(&app, day(2026, 11, 25)).await;
    let rows = obligations_of(&app).await;
    let mut renewals: Vec<(String, NaiveDate)> = rows
        .iter()
        .filter(|o| o.kind == "contract_renewal")
        .map(|o| (o.node_id.clone(), o.due_on))
        .collect();
    renewals.sort();
    // 30 business days before Wed 2027-03-31 (3/22 and 2/23 are holidays): Mon 2/15.
    let mut expected = vec![
        (cast.tier1.clone(), day(2027, 2, 15)),
        (target.node_id.clone(), day(2027, 2, 15)),
    ];
    expected.sort();
    assert_eq!(renewals, expected);
    let reports: Vec<&obligation::Model> = rows
        .iter()
        .filter(|o| o.kind == "compliance_report")
        .collect();
    assert_eq!(reports.len(), 3, "one per node in force, yearly");
    assert!(reports.iter().all(|o| o.due_on == fy_end));
    assert!(rows
        .iter()
        .any(|o| o.generation_key == format!("contract_renewal:{}:2027-03-31", cast.tier1)));

    // The compliance report: the file first, then the report; the officer accepts it.
    let report = listed(&app, &cast.kokuhoren.token, "kind=compliance_report").await;
    assert_eq!(report.len(), 1);
    assert_eq!(report[0]["title"]["ja"], "遵守状況報告の提出");
    let rid = report[0]["id"].as_str().unwrap().to_owned();
    let body = json!({ "record": { "kind": "compliance_report", "date": "2026-11-24",
        "summary": "契約条項の遵守状況を点検し、問題はなかった。" } });
    let refused = app
        .post_json_with_token(
            &format!("/api/v1/obligations/{rid}/record"),
            &cast.kokuhoren.token,
            &body,
        )
        .await;
    let err = assert_api_error(refused, 422, "validation_failed").await;
    assert_eq!(err["details"][0]["field"], "file");
    let attached = upload(
        &app,
        &cast.kokuhoren.token,
        &rid,
        "遵守状況報告書.pdf",
        PDF.to_vec(),
    )
    .await;
    assert_eq!(attached.status(), 200);
    let submitted: Value = app
        .post_json_with_token(
            &format!("/api/v1/obligations/{rid}/record"),
            &cast.kokuhoren.token,
            &body,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(submitted["status"], "submitted");
    let mail = change_mail(&app, &rid, "submitted").await;
    assert_eq!(mail.template.as_deref(), Some("obligation_submitted"));
    assert_eq!(
        serde_json::from_str::<Value>(&mail.recipients).unwrap(),
        json!([{ "role": "officer", "org": MEGURO }])
    );
    let accepted = decided(&app, &cast.officer.token, &rid, "accept", json!({})).await;
    assert_eq!(accepted["status"], "closed");
    let mail = change_mail(&app, &rid, "accepted").await;
    assert_eq!(mail.template.as_deref(), Some("obligation_accepted"));
    assert_eq!(
        serde_json::from_str::<Value>(&mail.recipients).unwrap(),
        json!([{ "organisation": KOKUHOREN, "fallback_role": "contractor" }])
    );

    // The renewal of the subcontract: recorded by the root municipality only.
    let renewal = rows
        .iter()
        .find(|o| o.kind == "contract_renewal" && o.node_id == target.node_id)
        .unwrap();
    let path = format!("/api/v1/obligations/{}/record", renewal.id);
    let before = node(&app, &target.node_id).await;
    let audit_before = app.audit_rows(&instance).await.len();
    let renew = |end: &str, node_version: i64| {
        json!({ "record": { "kind": "renewal", "signed_on": "2026-11-20",
            "new_period_end": end, "node_version": node_version, "note": "令和9年度契約" } })
    };
    // The contractor sees its own renewal but may not record it.
    let own = rows
        .iter()
        .find(|o| o.kind == "contract_renewal" && o.node_id == cast.tier1)
        .unwrap();
    let r = app
        .post_json_with_token(
            &format!("/api/v1/obligations/{}/record", own.id),
            &cast.kokuhoren.token,
            &renew("2028-03-31", 1),
        )
        .await;
    assert_api_error(r, 403, "forbidden").await;
    let r = app
        .post_json_with_token(
            &path,
            &cast.officer.token,
            &renew("2027-03-31", before.version),
        )
        .await;
    let err = assert_api_error(r, 422, "validation_failed").await;
    assert_eq!(err["details"][0]["field"], "record.new_period_end");
    let r = app
        .post_json_with_token(
            &path,
            &cast.officer.token,
            &renew("2028-03-31", before.version - 1),
        )
        .await;
    assert_api_error(r, 409, "stale_version").await;
    assert_eq!(node(&app, &target.node_id).await, before, "nothing changed");
    let done = app
        .post_json_with_token(
            &path,
            &cast.officer.token,
            &renew("2028-03-31", before.version),
        )
        .await;
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["status"], "closed");
    assert_eq!(done["record"]["period_end_before"], "2027-03-31");
    let after = node(&app, &target.node_id).await;
    assert_eq!(after.period_end, day(2028, 3, 31));
    assert_eq!(after.version, before.version + 1);
    let audit = app.audit_rows(&instance).await;
    assert_eq!(audit.len(), audit_before + 1);
    let last = audit.last().unwrap();
    assert_eq!(last.event, "record_renewal");
    assert_eq!(last.actor_id, cast.officer.id);
    let events: Vec<String> = obligation_event::Entity::find()
        .filter(obligation_event::Column::ObligationId.eq(renewal.id.as_str()))
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["record_renewal"]);
    // Recorded once: a second record is refused.
    let r = app
        .post_json_with_token(
            &path,
            &cast.officer.token,
            &renew("2029-03-31", after.version),
        )
        .await;
    assert_api_error(r, 409, "conflict").await;

    // The next 年度: the renewed subcontract owes its next renewal (keyed by its new end);
    // the tier-1 contract, not renewed, is no longer in force and owes nothing.
    remind(&app, day(2027, 4, 1)).await;
    let next: Vec<String> = obligations_of(&app)
        .await
        .into_iter()
        .filter(|o| o.fiscal_year == 2027)
        .map(|o| o.generation_key)
        .collect();
    assert!(next.contains(&format!("contract_renewal:{}:2028-03-31", target.node_id)));
    assert!(
        !next.iter().any(|k| k.contains(cast.tier1.as_str())),
        "{next:?}"
    );
}

crate::on_both_backends!(
    renewal_and_compliance_reports_are_generated_once_and_closed_by_their_records,
    evidence_expiry_reminders_fire_once_per_stage_and_stop_when_renewed_or_revoked,
    obligations_are_generated_once_per_node_and_year_on_business_days,
    training_is_closed_by_an_accepted_attendance_record_and_absentees_are_followed_up,
    an_inspection_report_closes_the_inspection_and_findings_become_obligations,
    a_contractor_cannot_see_or_close_another_organisations_obligation,
);

/// Races need a multi-threaded runtime.
mod races {
    use super::*;

    async fn two_schedulers_racing_write_everything_once(backend: Backend) {
        super::two_schedulers_racing_write_everything_once(backend).await;
    }

    crate::on_both_backends!(multi_thread: two_schedulers_racing_write_everything_once);
}
