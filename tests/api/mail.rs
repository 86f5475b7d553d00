//! Mail delivery end to end against a real SMTP server on loopback (`scripts/smtp_sink.py`,
//! started by `scripts/test.sh`), the `.eml` files of the default mode, retries and the admin
//! API, and the workflow timers.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use entity::outbox::{self, OutboxStatus};
use itaku::clock::Clock;
use itaku::config::Settings;
use itaku::notify::{Dispatcher, SmtpSecurity};
use itaku::schedule::calendar::BusinessCalendar;
use itaku::services::outbox::Recorded;
use itaku::services::{notifications, timers};
use itaku::workflow::Now;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use crate::helpers::{assert_api_error, id_of, spawn_app_with, Backend, Cast, TestApp, MEGURO};

/// The SMTP server the test command started: its port and the folder of what it received.
struct SmtpSink {
    port: u16,
    dir: PathBuf,
}

impl SmtpSink {
    fn get() -> Self {
        let missing = |name: &str| -> String {
            panic!(
                "{name} is not set: the mail tests need the SMTP sink that `bash scripts/test.sh` \
                 starts (python3 scripts/smtp_sink.py --port PORT --dir DIR, then export \
                 TEST_SMTP_PORT=PORT TEST_SMTP_DIR=DIR)"
            )
        };
        let port = std::env::var("TEST_SMTP_PORT")
            .unwrap_or_else(|_| missing("TEST_SMTP_PORT"))
            .parse()
            .expect("a port number");
        let dir = std::env::var("TEST_SMTP_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(missing("TEST_SMTP_DIR")));
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "the SMTP sink does not answer on 127.0.0.1:{port}"
        );
        Self { port, dir }
    }

    /// Points the application's mail at this server.
    fn configure(&self, settings: &mut Settings) {
        settings.mail.smtp_host = Some("127.0.0.1".to_owned());
        settings.mail.smtp_port = Some(self.port);
        settings.mail.smtp_security = SmtpSecurity::None;
    }

    /// Every message received with this outbox row's Message-ID.
    fn received(&self, row_id: &str) -> Vec<Value> {
        let wanted = format!("<{row_id}@localhost>");
        std::fs::read_dir(&self.dir)
            .expect("the sink folder")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter_map(|t| serde_json::from_str::<Value>(&t).ok())
            .filter(|m| m["message_id"] == wanted.as_str())
            .collect()
    }

    /// Waits up to 30 s for the message of this row.
    async fn wait_for(&self, row_id: &str) -> Value {
        for _ in 0..300 {
            if let Some(m) = self.received(row_id).into_iter().next() {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the SMTP sink never received the message of outbox row {row_id}");
    }
}

/// The instance's mail row for `template`.
async fn mail_row(app: &TestApp, instance: &str, template: &str) -> outbox::Model {
    outbox::Entity::find()
        .filter(outbox::Column::InstanceId.eq(instance))
        .filter(outbox::Column::Template.eq(template))
        .one(&app.db)
        .await
        .expect("outbox read")
        .unwrap_or_else(|| panic!("no {template} row for {instance}"))
}

async fn reload(app: &TestApp, id: &str) -> outbox::Model {
    outbox::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("outbox read")
        .expect("the row exists")
}

/// A dispatcher of the application's database with these mail settings.
fn dispatcher(app: &TestApp, adjust: impl FnOnce(&mut Settings)) -> Dispatcher {
    let mut settings = app.settings.clone();
    adjust(&mut settings);
    Dispatcher::new(
        app.db.clone(),
        app.state.workflows.clone(),
        &settings.mail,
        &settings.mail_dir,
        &settings.public_url(),
    )
    .expect("a dispatcher")
}

/// Delivers every message due at `at`, returning what became of each.
async fn drain(d: &Dispatcher, at: DateTime<Utc>) -> Vec<Recorded> {
    let mut out = Vec::new();
    while let Some(r) = d.deliver_next(at).await.expect("delivery") {
        out.push(r);
    }
    out
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    listener.local_addr().expect("an address").port()
}

async fn a_submitted_application_is_mailed_to_the_officer_with_both_parts_and_the_link(
    backend: Backend,
) {
    let sink = SmtpSink::get();
    let app = spawn_app_with(backend, Clock::System, |s| {
        sink.configure(s);
        s.mail.dispatch_interval_seconds = 1;
        s.public_url = Some("https://itaku.example.lg.jp".to_owned());
    })
    .await;
    let cast = Cast::create(&app).await;
    let submitted = cast.submitted_tier2(&app).await;
    let instance = id_of(&submitted);
    let application = submitted["context"]["application_id"]
        .as_str()
        .expect("the application id");
    let row = mail_row(&app, instance, "application_submitted").await;

    let mail = sink.wait_for(&row.id).await;
    assert_eq!(mail["rcpt_tos"], json!(["meguro_officer@example.lg.jp"]));
    assert_eq!(mail["mail_from"], "itaku@localhost");
    assert_eq!(mail["to"], "meguro_officer@example.lg.jp");
    assert_eq!(mail["content_type"], "multipart/alternative");
    let subject = mail["subject"].as_str().expect("a subject");
    assert!(
        subject.starts_with("再委託申請が提出されました 令和")
            && subject.ends_with(" / Subcontract application submitted"),
        "{subject}"
    );
    let link = format!("https://itaku.example.lg.jp/applications/{application}");
    let text = mail["text"].as_str().expect("a text part");
    assert!(
        text.starts_with("東京都国民健康保険団体連合会から、株式会社テストへの再委託について許諾の申請が提出されました。"),
        "{text}"
    );
    assert!(text.contains("Please review the application."), "{text}");
    assert!(text.contains(&link), "{text}");
    let html = mail["html"].as_str().expect("an HTML part");
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
    assert!(html.contains("<p lang=\"ja\">"), "{html}");

    // The row says where it went, once.
    let mut sent = reload(&app, &row.id).await;
    for _ in 0..50 {
        if sent.status == OutboxStatus::Sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        sent = reload(&app, &row.id).await;
    }
    assert_eq!(sent.status, OutboxStatus::Sent);
    assert_eq!(sent.attempts, 1);
    assert_eq!(
        sent.delivered_to.as_deref(),
        Some(r#"["meguro_officer@example.lg.jp"]"#)
    );
    // The step notification went to the same officer (the actor of officer_check).
    let waiting = mail_row(&app, instance, "step_waiting").await;
    let waiting_mail = sink.wait_for(&waiting.id).await;
    assert_eq!(
        waiting_mail["rcpt_tos"],
        json!(["meguro_officer@example.lg.jp"])
    );
    assert!(
        waiting_mail["subject"]
            .as_str()
            .is_some_and(|s| s.contains("担当者審査")),
        "{waiting_mail}"
    );
    assert_eq!(sink.received(&row.id).len(), 1, "sent once");
}

async fn an_unreachable_server_is_retried_with_back_off_then_fails_and_an_admin_retries_it(
    backend: Backend,
) {
    let sink = SmtpSink::get();
    let app = spawn_app_with(backend, Clock::System, |_| {}).await;
    let cast = Cast::create(&app).await;
    let admin = app.person("operator", &[(MEGURO, "admin")]).await;
    let submitted = cast.submitted_tier2(&app).await;
    let row = mail_row(&app, id_of(&submitted), "application_submitted").await;

    let port = closed_port();
    let down = dispatcher(&app, |s| {
        s.mail.smtp_host = Some("127.0.0.1".to_owned());
        s.mail.smtp_port = Some(port);
        s.mail.smtp_security = SmtpSecurity::None;
        s.mail.max_attempts = 3;
        s.mail.retry_base_seconds = 60;
    });
    let t0 = row.next_attempt_at;
    let first = drain(&down, t0).await;
    assert!(
        matches!(first.as_slice(), [Recorded::Retry(at), ..] if *at == t0 + chrono::Duration::seconds(60)),
        "{first:?}"
    );
    let failed_once = reload(&app, &row.id).await;
    assert_eq!(failed_once.attempts, 1);
    assert_eq!(failed_once.status, OutboxStatus::Pending);
    assert!(
        failed_once
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("SMTP: ")),
        "{failed_once:?}"
    );
    // Not due again before the back-off ends; then the wait doubles.
    assert!(drain(&down, t0 + chrono::Duration::seconds(59))
        .await
        .is_empty());
    drain(&down, t0 + chrono::Duration::seconds(60)).await;
    let twice = reload(&app, &row.id).await;
    assert_eq!(twice.attempts, 2);
    assert_eq!(
        twice.next_attempt_at,
        t0 + chrono::Duration::seconds(60 + 120)
    );
    drain(&down, t0 + chrono::Duration::seconds(180)).await;
    let failed = reload(&app, &row.id).await;
    assert_eq!(failed.status, OutboxStatus::Failed);
    assert_eq!(failed.attempts, 3);
    assert!(failed.last_error.is_some());
    assert!(
        drain(&down, t0 + chrono::Duration::days(1))
            .await
            .is_empty(),
        "failed for good"
    );

    // The admin sees it with its error; nobody else sees the route at all.
    let list = app
        .get_json("/api/v1/admin/outbox?status=failed", &admin.token)
        .await;
    let listed = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|m| m["id"] == row.id.as_str())
        .expect("the failed message is listed")
        .clone();
    assert_eq!(listed["status"], "failed");
    assert_eq!(listed["attempts"], 3);
    assert!(listed["last_error"]
        .as_str()
        .is_some_and(|e| e.starts_with("SMTP: ")));
    let officer = app
        .get_with_token("/api/v1/admin/outbox?status=failed", &cast.officer.token)
        .await;
    assert_api_error(officer, 404, "not_found").await;
    let path = format!("/api/v1/admin/outbox/{}/retry", row.id);
    let officer = app
        .post_json_with_token(&path, &cast.officer.token, &json!({}))
        .await;
    assert_api_error(officer, 404, "not_found").await;
    let bad = app
        .get_with_token("/api/v1/admin/outbox?status=lost", &admin.token)
        .await;
    assert_api_error(bad, 400, "invalid_parameter").await;

    // Retried, it goes out at the next run once the server is back.
    let retried = app
        .post_json_with_token(&path, &admin.token, &json!({}))
        .await;
    assert_eq!(retried.status(), 200);
    let retried: Value = retried.json().await.expect("json");
    assert_eq!(retried["status"], "pending");
    assert_eq!(retried["attempts"], 0);
    assert!(
        retried["last_error"].as_str().is_some(),
        "the last error is kept until the next attempt"
    );
    let again = app
        .post_json_with_token(&path, &admin.token, &json!({}))
        .await;
    assert_api_error(again, 409, "conflict").await;
    let up = dispatcher(&app, |s| sink.configure(s));
    let now = t0 + chrono::Duration::days(2);
    assert!(drain(&up, now).await.contains(&Recorded::Sent));
    assert_eq!(reload(&app, &row.id).await.status, OutboxStatus::Sent);
    assert_eq!(sink.received(&row.id).len(), 1);
}

async fn a_refused_recipient_fails_at_once_without_retries(backend: Backend) {
    let sink = SmtpSink::get();
    let app = spawn_app_with(backend, Clock::System, |_| {}).await;
    let cast = Cast::create(&app).await;
    // 目黒区 declares a notification address the server refuses (550).
    use sea_orm::{ActiveModelTrait, Set};
    entity::organisation::ActiveModel {
        id: Set(MEGURO.to_owned()),
        contacts: Set(r#"["kokuho@refused.example"]"#.to_owned()),
        ..Default::default()
    }
    .update(&app.db)
    .await
    .expect("contacts set");
    let submitted = cast.submitted_tier2(&app).await;
    let row = mail_row(&app, id_of(&submitted), "application_submitted").await;
    let d = dispatcher(&app, |s| sink.configure(s));
    drain(&d, row.next_attempt_at).await;
    let failed = reload(&app, &row.id).await;
    assert_eq!(failed.status, OutboxStatus::Failed);
    assert_eq!(failed.attempts, 1);
    assert!(
        failed
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("550")),
        "{failed:?}"
    );
}

/// `n` notifications to `user`, created at `now`; their ids.
async fn enqueue_many(app: &TestApp, user: &str, n: usize, now: DateTime<Utc>) -> Vec<String> {
    let mut ids = Vec::new();
    for k in 0..n {
        let inserted = itaku::services::outbox::enqueue(
            &app.db,
            itaku::services::outbox::OutboxRow {
                idempotency_key: format!("test:{k}:{}", uuid::Uuid::new_v4()),
                instance_id: None,
                effect: "notify".to_owned(),
                template: Some("obligation_due".to_owned()),
                recipients: json!([{ "user": user }]),
                payload: json!({ "obligation": {
                    "title": { "ja": "研修", "en": "Training" },
                    "organisation": "株式会社テスト",
                    "due": "2027-03-31",
                } }),
                now,
            },
        )
        .await
        .expect("enqueued");
        let itaku::services::idempotency::Insertion::Inserted { id } = inserted else {
            panic!("a new row");
        };
        ids.push(id);
    }
    ids
}

/// 100 notifications written while the server is down all arrive, once each, when it is back;
/// while it is down a run stops at the first failure instead of trying every message.
async fn messages_written_while_the_server_is_down_arrive_once_when_it_is_back(backend: Backend) {
    let sink = SmtpSink::get();
    let app = spawn_app_with(backend, Clock::System, |_| {}).await;
    let user = app.create_user("outage").await;
    let t0 = app.now();
    let ids = enqueue_many(&app, &user, 100, t0).await;
    let port = closed_port();
    let down = dispatcher(&app, |s| {
        s.mail.smtp_host = Some("127.0.0.1".to_owned());
        s.mail.smtp_port = Some(port);
        s.mail.smtp_security = SmtpSecurity::None;
    });
    let report = down
        .run_once(&Clock::Fixed(t0), || true)
        .await
        .expect("a run");
    assert_eq!((report.sent, report.retrying, report.failed), (0, 1, 0));
    let up = dispatcher(&app, |s| sink.configure(s));
    let report = up
        .run_once(&Clock::Fixed(t0 + chrono::Duration::hours(1)), || true)
        .await
        .expect("a run");
    assert_eq!(report.sent, 100, "{report:?}");
    for id in &ids {
        assert_eq!(sink.received(id).len(), 1, "{id} arrived once");
    }
}

/// A dispatcher that dies after claiming a message (before sending) loses nothing: on
/// PostgreSQL its lock goes with its transaction and the next dispatcher sends the message at
/// once; on SQLite the message is due again when the dead one's lease ends.
async fn a_message_claimed_by_a_dispatcher_that_died_is_sent_once_by_the_next(backend: Backend) {
    let sink = SmtpSink::get();
    let app = spawn_app_with(backend, Clock::System, |_| {}).await;
    let user = app.create_user("phoenix").await;
    let t0 = app.now();
    let ids = enqueue_many(&app, &user, 1, t0).await;
    let next = dispatcher(&app, |s| sink.configure(s));
    match backend {
        Backend::Postgres => {
            use sea_orm::TransactionTrait;
            let txn = app.db.begin().await.expect("a transaction");
            let claimed = itaku::services::outbox::claim_next_locked(&txn, t0)
                .await
                .expect("claimed");
            assert_eq!(claimed.map(|r| r.id), Some(ids[0].clone()));
            // While the claim is held, nobody else gets the row.
            assert_eq!(next.deliver_next(t0).await.expect("a try"), None);
            // The dispatcher dies: sea-orm rolls the dropped transaction back in the
            // background, so the lock goes a moment later; the next dispatcher then sends it.
            drop(txn);
            let mut delivered = None;
            for _ in 0..100 {
                delivered = next.deliver_next(t0).await.expect("a try");
                if delivered.is_some() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            assert_eq!(delivered, Some(Recorded::Sent));
        }
        Backend::Sqlite => {
            let leased =
                itaku::services::outbox::lease_next(&app.db, t0, chrono::Duration::minutes(6))
                    .await
                    .expect("leased");
            assert_eq!(leased.map(|r| r.id), Some(ids[0].clone()));
            assert_eq!(next.deliver_next(t0).await.expect("a try"), None);
            let after = t0 + chrono::Duration::minutes(6);
            assert_eq!(
                next.deliver_next(after).await.expect("a try"),
                Some(Recorded::Sent)
            );
        }
    }
    assert_eq!(sink.received(&ids[0]).len(), 1);
    assert_eq!(reload(&app, &ids[0]).await.attempts, 1);
}

/// Two dispatchers (two pools, as two replicas) drain the same outbox at once: row locks on
/// PostgreSQL, leases on SQLite.
async fn two_dispatchers_racing_send_each_message_once(backend: Backend) {
    let sink = SmtpSink::get();
    let app = spawn_app_with(backend, Clock::System, |_| {}).await;
    let user = app.create_user("racer").await;
    let now = app.now();
    let ids = enqueue_many(&app, &user, 40, now).await;
    let other_pool = itaku::db::connect(&app.settings)
        .await
        .expect("a second pool");
    let mut settings = app.settings.clone();
    sink.configure(&mut settings);
    let a = dispatcher(&app, |s| sink.configure(s));
    let b = Dispatcher::new(
        other_pool,
        app.state.workflows.clone(),
        &settings.mail,
        &settings.mail_dir,
        &settings.public_url(),
    )
    .expect("a dispatcher");
    let clock = Clock::Fixed(now + chrono::Duration::seconds(1));
    let (ra, rb) = tokio::join!(a.run_once(&clock, || true), b.run_once(&clock, || true));
    let (ra, rb) = (ra.expect("a ran"), rb.expect("b ran"));
    assert_eq!(ra.sent + rb.sent, 40, "{ra:?} {rb:?}");
    for id in &ids {
        assert_eq!(sink.received(id).len(), 1, "message {id} sent once");
        assert_eq!(reload(&app, id).await.status, OutboxStatus::Sent);
    }
}

async fn without_an_smtp_server_each_message_is_an_eml_file_named_by_its_row(backend: Backend) {
    let app = spawn_app_with(backend, Clock::System, |s| {
        s.mail.dispatch_interval_seconds = 1;
    })
    .await;
    let cast = Cast::create(&app).await;
    let submitted = cast.submitted_tier2(&app).await;
    let row = mail_row(&app, id_of(&submitted), "application_submitted").await;
    let file = app.settings.mail_dir.join(format!("{}.eml", row.id));
    for _ in 0..100 {
        if file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let eml = std::fs::read_to_string(&file).expect("the .eml file");
    assert!(
        eml.starts_with("X-Envelope-To: meguro_officer@example.lg.jp\r\n"),
        "{eml}"
    );
    assert!(
        eml.contains(&format!("Message-ID: <{}@localhost>", row.id)),
        "{eml}"
    );
    assert!(eml.contains("multipart/alternative"), "{eml}");
    assert!(eml.contains("Subject: =?utf-8?"), "{eml}");
    // Once every message of the instance is sent, each has its file and no temporary is left.
    for _ in 0..100 {
        let rows = app.outbox_rows(id_of(&submitted)).await;
        if rows.iter().all(|r| r.status == OutboxStatus::Sent) {
            for r in rows {
                assert!(app.settings.mail_dir.join(format!("{}.eml", r.id)).exists());
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        app.outbox_rows(id_of(&submitted))
            .await
            .iter()
            .all(|r| r.status == OutboxStatus::Sent),
        "every message of the instance is sent"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&app.settings.mail_dir)
        .expect("the mail folder")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// --- Timers ------------------------------------------------------------------------------

fn jst(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    itaku::clock::jst()
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("a valid time")
        .with_timezone(&Utc)
}

fn on(day: chrono::NaiveDate, at: DateTime<Utc>) -> Now {
    Now { at, today: day }
}

/// What the dispatcher would send for `row` on `day`.
async fn prepare_row(
    app: &TestApp,
    row: &outbox::Model,
    day: chrono::NaiveDate,
) -> notifications::Prepared {
    notifications::prepare(
        &app.db,
        &app.state.workflows,
        row,
        day,
        &app.settings.public_url(),
    )
    .await
    .expect("prepared")
}

/// Submitted on Thu 2026-11-19: the reminder (5 business days) skips the weekend and 勤労感謝の日
/// (Mon 11/23) and is due Fri 11/27; the escalation (10) is due Fri 12/4.
async fn reminders_and_escalations_fire_once_on_their_business_day_across_a_holiday(
    backend: Backend,
) {
    use crate::helpers::day;
    let submitted_at = jst(2026, 11, 19, 10);
    let app = spawn_app_with(backend, Clock::Fixed(submitted_at), |_| {}).await;
    let cast = Cast::create(&app).await;
    let submitted = cast.submitted_tier2(&app).await;
    let instance = id_of(&submitted).to_owned();
    let mut calendar = BusinessCalendar::new();
    let workflows = app.state.workflows.clone();
    let later = submitted_at + chrono::Duration::days(8);

    let fired = timers::fire_due(
        &app.db,
        &workflows,
        &mut calendar,
        on(day(2026, 11, 26), later),
    )
    .await
    .expect("timers");
    assert!(
        fired.is_empty(),
        "nothing is due on the fourth business day: {fired:?}"
    );

    let fired = timers::fire_due(
        &app.db,
        &workflows,
        &mut calendar,
        on(day(2026, 11, 27), later),
    )
    .await
    .expect("timers");
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(
        (fired[0].timer.as_str(), fired[0].due),
        ("decision_reminder", day(2026, 11, 27))
    );
    let again = timers::fire_due(
        &app.db,
        &workflows,
        &mut calendar,
        on(day(2026, 11, 27), later),
    )
    .await
    .expect("timers");
    assert!(again.is_empty(), "a timer fires once");

    // The reminder goes to the actors of the current step (the officer), the escalation to the
    // root consignor's managers.
    let reminder = mail_row(&app, &instance, "decision_reminder").await;
    assert_eq!(reminder.idempotency_key, format!("timer:{}", fired[0].id));
    let prepared = prepare_row(&app, &reminder, day(2026, 11, 27)).await;
    assert_eq!(prepared.addresses, ["meguro_officer@example.lg.jp"]);
    assert_eq!(prepared.data["timer"]["business_days"], 5);
    assert_eq!(prepared.data["timer"]["due"], "2026-11-27");

    // Two schedulers racing on the escalation's day: it fires once.
    let (mut c1, mut c2) = (BusinessCalendar::new(), BusinessCalendar::new());
    let (w1, w2) = (workflows.clone(), workflows.clone());
    let (db1, db2) = (app.db.clone(), app.db.clone());
    let now = on(day(2026, 12, 4), later);
    let (a, b) = tokio::join!(
        async move { timers::fire_due(&db1, &w1, &mut c1, now).await },
        async move { timers::fire_due(&db2, &w2, &mut c2, now).await },
    );
    let (a, b) = (a.expect("a"), b.expect("b"));
    assert_eq!(a.len() + b.len(), 1, "{a:?} {b:?}");
    let escalation = mail_row(&app, &instance, "decision_escalated").await;
    assert_eq!(
        serde_json::from_str::<Value>(&escalation.recipients).expect("json"),
        json!([{ "role": "manager", "org": MEGURO }])
    );
    let prepared = prepare_row(&app, &escalation, day(2026, 12, 4)).await;
    assert_eq!(prepared.addresses, ["meguro_manager@example.lg.jp"]);
    let timers_left = app
        .timer_rows(&instance)
        .await
        .into_iter()
        .filter(|t| t.fired_at.is_none() && t.cancelled_at.is_none())
        .count();
    assert_eq!(timers_left, 0);
}

/// `itaku remind --at DATE` fires what is due by that day, once; a decided instance's timers
/// were cancelled and never fire.
async fn the_remind_command_fires_due_timers_once_and_never_cancelled_ones(backend: Backend) {
    use crate::helpers::day;
    let submitted_at = jst(2026, 12, 25, 10);
    let app = spawn_app_with(backend, Clock::Fixed(submitted_at), |_| {}).await;
    let cast = Cast::create(&app).await;
    let waiting = cast.submitted_tier2(&app).await;
    let decided = cast.permitted_tier2(&app).await;
    // Fri 12/25 + 5 business days: 12/28, (12/29–1/3 closed), 1/4, 1/5, 1/6, 1/7.
    let code = itaku::commands::remind(app.settings.clone(), Some(day(2027, 1, 6)))
        .await
        .expect("remind ran");
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert!(app
        .timer_rows(id_of(&waiting))
        .await
        .iter()
        .all(|t| t.fired_at.is_none()));
    itaku::commands::remind(app.settings.clone(), Some(day(2027, 1, 7)))
        .await
        .expect("remind ran");
    itaku::commands::remind(app.settings.clone(), Some(day(2027, 1, 7)))
        .await
        .expect("remind ran again");
    let fired: Vec<String> = app
        .timer_rows(id_of(&waiting))
        .await
        .into_iter()
        .filter(|t| t.fired_at.is_some())
        .map(|t| t.timer)
        .collect();
    assert_eq!(fired, ["decision_reminder"]);
    let reminders = outbox::Entity::find()
        .filter(outbox::Column::Template.eq("decision_reminder"))
        .all(&app.db)
        .await
        .expect("outbox read");
    assert_eq!(reminders.len(), 1, "one reminder row");
    assert!(app
        .timer_rows(id_of(&decided))
        .await
        .iter()
        .all(|t| t.fired_at.is_none() && t.cancelled_at.is_some()));
}

/// An evidence-expiry stage written by `itaku remind` reaches the owner and the root
/// municipality's officer through the real SMTP server, with the link to the evidence.
async fn an_evidence_expiry_reminder_reaches_the_owner_and_the_officer(backend: Backend) {
    use crate::helpers::{day, KOKUHOREN};
    let sink = SmtpSink::get();
    let app = spawn_app_with(backend, Clock::Fixed(jst(2026, 11, 25, 10)), |s| {
        sink.configure(s);
        s.mail.dispatch_interval_seconds = 1;
        s.timer_interval_seconds = 0;
        s.public_url = Some("https://itaku.example.lg.jp".to_owned());
    })
    .await;
    let _cast = Cast::create(&app).await;
    let evidence = app
        .insert_evidence(
            KOKUHOREN,
            "privacy_mark",
            json!({}),
            day(2026, 12, 25),
            true,
        )
        .await;
    itaku::commands::remind(app.settings.clone(), Some(day(2026, 11, 25)))
        .await
        .expect("remind ran");
    let row = outbox::Entity::find()
        .filter(outbox::Column::IdempotencyKey.eq(format!("evidence:{evidence}:expiring:30")))
        .one(&app.db)
        .await
        .expect("outbox read")
        .expect("the 30-day reminder");
    let mail = sink.wait_for(&row.id).await;
    assert_eq!(
        mail["rcpt_tos"],
        json!(["kokuhoren@example.lg.jp", "meguro_officer@example.lg.jp"])
    );
    let subject = mail["subject"].as_str().expect("a subject");
    assert_eq!(
        subject,
        "証跡の有効期限が近づいています: プライバシーマーク / Evidence expires soon: PrivacyMark"
    );
    let text = mail["text"].as_str().expect("a text part");
    assert!(
        text.starts_with("東京都国民健康保険団体連合会の証跡「プライバシーマーク」の有効期限は 2026-12-25 です。"),
        "{text}"
    );
    assert!(
        text.contains(&format!("https://itaku.example.lg.jp/evidence/{evidence}")),
        "{text}"
    );
    assert_eq!(sink.received(&row.id).len(), 1, "sent once");
}

/// The mail about one change of an obligation (`obligation:<id>:<event>:<version>`).
async fn obligation_mail(app: &TestApp, id: &str, event: &str) -> outbox::Model {
    outbox::Entity::find()
        .filter(outbox::Column::IdempotencyKey.starts_with(format!("obligation:{id}:{event}:")))
        .one(&app.db)
        .await
        .expect("outbox read")
        .unwrap_or_else(|| panic!("no {event} mail for obligation {id}"))
}

/// A submitted record reaches the root municipality's officer and its return the contractor,
/// through the real SMTP server, Japanese first, with a link that opens the obligation's screen.
async fn obligation_records_submitted_and_returned_are_mailed_to_who_acts_next(backend: Backend) {
    use crate::helpers::day;
    let sink = SmtpSink::get();
    let app = spawn_app_with(backend, Clock::Fixed(jst(2026, 11, 25, 10)), |s| {
        sink.configure(s);
        s.mail.dispatch_interval_seconds = 0;
        s.timer_interval_seconds = 0;
    })
    .await;
    let cast = Cast::create(&app).await;
    itaku::commands::remind(app.settings.clone(), Some(day(2026, 11, 25)))
        .await
        .expect("remind ran");
    // An inspection finding gives 東京都国保連 a follow-up, closed by a corrective action.
    let inspections = app
        .get_json("/api/v1/obligations?kind=inspection", &cast.kokuhoren.token)
        .await;
    let inspection = inspections["items"][0]["id"]
        .as_str()
        .expect("an inspection");
    let reported = app
        .post_json_with_token(
            &format!("/api/v1/obligations/{inspection}/record"),
            &cast.officer.token,
            &json!({ "record": { "kind": "inspection", "date": "2026-11-20", "mode": "remote",
                "inspectors": ["目黒 太郎"], "findings": [{ "description": "鍵の管理簿に記載漏れ",
                "follow_up": "管理簿の運用を改め報告する" }] } }),
        )
        .await;
    assert_eq!(reported.status(), 200);
    let followups = app
        .get_json(
            "/api/v1/obligations?kind=inspection_followup",
            &cast.kokuhoren.token,
        )
        .await;
    let id = followups["items"][0]["id"]
        .as_str()
        .expect("a follow-up")
        .to_owned();
    let submitted = app
        .post_json_with_token(
            &format!("/api/v1/obligations/{id}/record"),
            &cast.kokuhoren.token,
            &json!({ "record": { "kind": "corrective_action", "date": "2026-11-24",
                "description": "管理簿を毎日確認する手順にした" } }),
        )
        .await;
    assert_eq!(submitted.status(), 200);
    let returned = app
        .post_json_with_token(
            &format!("/api/v1/obligations/{id}/return"),
            &cast.officer.token,
            &json!({ "reason": "確認者の氏名を記載してください。" }),
        )
        .await;
    assert_eq!(returned.status(), 200);

    let d = dispatcher(&app, |s| s.public_url = Some(app.address.clone()));
    drain(&d, app.now()).await;
    let link = format!("{}/obligations/{id}", app.address);

    let row = obligation_mail(&app, &id, "submitted").await;
    let mail = sink.wait_for(&row.id).await;
    assert_eq!(mail["rcpt_tos"], json!(["meguro_officer@example.lg.jp"]));
    let subject = mail["subject"].as_str().expect("a subject");
    assert_eq!(
        subject,
        "記録が提出されました: 立入調査の指摘事項への対応(東京都国民健康保険団体連合会) / Record submitted: Follow-up of an inspection finding"
    );
    let text = mail["text"].as_str().expect("a text part");
    assert!(
        text.starts_with("東京都国民健康保険団体連合会から「立入調査の指摘事項への対応」"),
        "{text}"
    );
    assert!(text.contains(&link), "{text}");
    let html = mail["html"].as_str().expect("an HTML part");
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");

    let row = obligation_mail(&app, &id, "returned").await;
    let mail = sink.wait_for(&row.id).await;
    assert_eq!(mail["rcpt_tos"], json!(["kokuhoren@example.lg.jp"]));
    assert!(
        mail["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("記録が差し戻されました: 立入調査の指摘事項への対応 / ")),
        "{mail}"
    );
    let text = mail["text"].as_str().expect("a text part");
    assert!(text.contains("確認者の氏名を記載してください。"), "{text}");
    assert!(
        text.find("差し戻されました") < text.find("was returned"),
        "{text}"
    );
    assert_eq!(sink.received(&row.id).len(), 1, "sent once");
    // The link opens the follow-up's screen for the contractor: returned, with the reason and
    // the form to correct it.
    let screen = app
        .client
        .get(&link)
        .header("Cookie", format!("itaku_token={}", cast.kokuhoren.token))
        .send()
        .await
        .expect("the obligation's screen");
    assert_eq!(screen.status(), 200);
    let page = screen.text().await.expect("a page");
    assert!(page.contains("立入調査の指摘事項への対応"), "{page}");
    assert!(page.contains(r#"data-status="returned""#), "{page}");
    assert!(page.contains("確認者の氏名を記載してください。"), "{page}");
    assert!(
        page.contains(&format!(r#"action="/obligations/{id}/record""#)),
        "{page}"
    );
}

/// A user who takes the daily digest (set through the API) gets the day's messages in one
/// `daily_digest` mail the next day, once however many schedulers race; a colleague who takes
/// mail as it comes gets each message at once.
async fn a_digest_user_gets_one_daily_digest_listing_what_they_would_have_received(
    backend: Backend,
) {
    use crate::helpers::day;
    use itaku::services::digests;
    let sink = SmtpSink::get();
    let at = jst(2026, 11, 25, 10);
    let app = spawn_app_with(backend, Clock::Fixed(at), |s| {
        sink.configure(s);
        s.mail.dispatch_interval_seconds = 0;
        s.timer_interval_seconds = 0;
    })
    .await;
    let cast = Cast::create(&app).await;
    let _colleague = app.person("meguro_officer2", &[(MEGURO, "officer")]).await;
    let preference = "/api/v1/me/mail-preference";
    let refused = app
        .put_json_with_token(
            preference,
            &cast.officer.token,
            &json!({ "mail": "weekly" }),
        )
        .await;
    let body = assert_api_error(refused, 422, "validation_failed").await;
    assert_eq!(body["details"][0]["field"], "mail");
    assert_eq!(
        app.get_json(preference, &cast.officer.token).await["mail"],
        "immediate",
        "nothing changed"
    );
    let set = app
        .put_json_with_token(
            preference,
            &cast.officer.token,
            &json!({ "mail": "daily_digest" }),
        )
        .await;
    assert_eq!(set.status(), 200);
    assert_eq!(
        app.get_json(preference, &cast.officer.token).await["mail"],
        "daily_digest"
    );

    let first = cast.submitted_tier2(&app).await;
    let second = cast.submitted_tier2(&app).await;
    let d = dispatcher(&app, |s| s.public_url = Some(app.address.clone()));
    drain(&d, at).await;
    for instance in [id_of(&first), id_of(&second)] {
        let row = reload(
            &app,
            &mail_row(&app, instance, "application_submitted").await.id,
        )
        .await;
        assert_eq!(row.status, OutboxStatus::Sent);
        let mail = sink.wait_for(&row.id).await;
        assert_eq!(
            mail["rcpt_tos"],
            json!(["meguro_officer2@example.lg.jp"]),
            "{mail}"
        );
    }
    // Nothing for the digest user today, even after a scheduler pass.
    assert!(digests::write_due(&app.db, day(2026, 11, 25), at)
        .await
        .unwrap()
        .is_empty());
    // The next day, two schedulers race: one digest.
    let other = itaku::db::connect(&app.settings)
        .await
        .expect("a connection");
    let next = jst(2026, 11, 26, 7);
    let (a, b) = tokio::join!(
        digests::write_due(&app.db, day(2026, 11, 26), next),
        digests::write_due(&other, day(2026, 11, 26), next)
    );
    let written: Vec<_> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0].user_id, cast.officer.id);
    // The submissions and the officer's step notifications: four messages.
    assert_eq!(written[0].items, 4, "{written:?}");
    let key = format!("digest:{}:2026-11-26", cast.officer.id);
    let digest = outbox::Entity::find()
        .filter(outbox::Column::IdempotencyKey.eq(key.as_str()))
        .one(&app.db)
        .await
        .unwrap()
        .expect("the digest row");
    assert!(digests::write_due(&app.db, day(2026, 11, 27), next)
        .await
        .unwrap()
        .is_empty());
    drain(&d, next).await;
    let mail = sink.wait_for(&digest.id).await;
    assert_eq!(mail["rcpt_tos"], json!(["meguro_officer@example.lg.jp"]));
    assert_eq!(
        mail["subject"],
        "本日のお知らせ(4件) / Today's notifications (4)"
    );
    let text = mail["text"].as_str().expect("a text part");
    assert!(
        text.starts_with("itaku からの本日のお知らせです。"),
        "{text}"
    );
    assert_eq!(
        text.matches("再委託申請が提出されました").count(),
        2,
        "{text}"
    );
    let application = first["context"]["application_id"].as_str().unwrap();
    let link = format!("{}/applications/{application}", app.address);
    assert!(text.contains(&link), "{text}");
    assert_eq!(sink.received(&digest.id).len(), 1, "sent once");
    // The listed link opens the application for the officer.
    let page = app
        .client
        .get(&link)
        .header("Cookie", format!("itaku_token={}", cast.officer.token))
        .send()
        .await
        .expect("the application page");
    assert_eq!(page.status(), 200);
}

// Multi-threaded: the dispatchers and schedulers race for real.
/// Runs `openssl` with `args` in `dir`; it must succeed.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private CA (`ca.pem`) and a server certificate for 127.0.0.1 it signed (`server.pem`,
/// `server.key`), in `dir`.
fn private_ca(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=itaku test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions written");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// `scripts/smtp_sink.py` with STARTTLS required, stopped when dropped.
struct TlsSink {
    child: std::process::Child,
    sink: SmtpSink,
}

impl TlsSink {
    async fn start(certs: &std::path::Path) -> Self {
        let port = closed_port();
        let dir = certs.join("received");
        let mut child = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/smtp_sink.py"))
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(&dir)
            .arg("--tls-cert")
            .arg(certs.join("server.pem"))
            .arg("--tls-key")
            .arg(certs.join("server.key"))
            .spawn()
            .expect("the SMTP sink starts (pip install aiosmtpd)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self {
                    child,
                    sink: SmtpSink { port, dir },
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the STARTTLS sink does not answer on 127.0.0.1:{port}");
    }
}

impl Drop for TlsSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn a_starttls_server_trusted_only_through_the_ca_file_receives_the_mail(backend: Backend) {
    let certs = tempfile::tempdir().expect("a folder");
    private_ca(certs.path());
    let server = TlsSink::start(certs.path()).await;
    let app = spawn_app_with(backend, Clock::System, |s| {
        s.mail.dispatch_interval_seconds = 0;
    })
    .await;
    let cast = Cast::create(&app).await;
    let submitted = cast.submitted_tier2(&app).await;
    let row = mail_row(&app, id_of(&submitted), "application_submitted").await;
    let starttls = |s: &mut Settings| {
        s.mail.smtp_host = Some("127.0.0.1".to_owned());
        s.mail.smtp_port = Some(server.sink.port);
        s.mail.smtp_security = SmtpSecurity::Starttls;
    };

    // Without the CA file the server's certificate is not trusted: nothing is delivered.
    let untrusted = dispatcher(&app, starttls);
    let t0 = row.next_attempt_at;
    let first = drain(&untrusted, t0).await;
    assert!(
        matches!(first.first(), Some(Recorded::Retry(_))),
        "{first:?}"
    );
    let refused = reload(&app, &row.id).await;
    assert!(
        refused
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("certificate") || e.contains("UnknownIssuer")),
        "{refused:?}"
    );
    assert!(server.sink.received(&row.id).is_empty());

    // With it, the message goes over STARTTLS and arrives once.
    let trusted = dispatcher(&app, |s| {
        starttls(s);
        s.mail.smtp_ca_file = Some(certs.path().join("ca.pem"));
    });
    let later = t0 + chrono::Duration::days(1);
    let sent = drain(&trusted, later).await;
    assert!(sent.contains(&Recorded::Sent), "{sent:?}");
    let mail = server.sink.wait_for(&row.id).await;
    assert_eq!(mail["rcpt_tos"], json!(["meguro_officer@example.lg.jp"]));
    assert_eq!(reload(&app, &row.id).await.status, OutboxStatus::Sent);
    assert_eq!(server.sink.received(&row.id).len(), 1);

    // A CA file that is not PEM is refused before anything is sent.
    std::fs::write(certs.path().join("bad.pem"), "not a certificate").expect("written");
    let mut settings = app.settings.clone();
    starttls(&mut settings);
    settings.mail.smtp_ca_file = Some(certs.path().join("bad.pem"));
    let error = Dispatcher::new(
        app.db.clone(),
        app.state.workflows.clone(),
        &settings.mail,
        &settings.mail_dir,
        &settings.public_url(),
    )
    .expect_err("refused")
    .to_string();
    assert!(error.contains("mail.smtp_ca_file"), "{error}");
}

crate::on_both_backends!(
    multi_thread: a_submitted_application_is_mailed_to_the_officer_with_both_parts_and_the_link,
    a_starttls_server_trusted_only_through_the_ca_file_receives_the_mail,
    an_unreachable_server_is_retried_with_back_off_then_fails_and_an_admin_retries_it,
    a_refused_recipient_fails_at_once_without_retries,
    without_an_smtp_server_each_message_is_an_eml_file_named_by_its_row,
    reminders_and_escalations_fire_once_on_their_business_day_across_a_holiday,
    the_remind_command_fires_due_timers_once_and_never_cancelled_ones,
    two_dispatchers_racing_send_each_message_once,
    messages_written_while_the_server_is_down_arrive_once_when_it_is_back,
    a_message_claimed_by_a_dispatcher_that_died_is_sent_once_by_the_next,
    an_evidence_expiry_reminder_reaches_the_owner_and_the_officer,
    obligation_records_submitted_and_returned_are_mailed_to_who_acts_next,
    a_digest_user_gets_one_daily_digest_listing_what_they_would_have_received,
);
