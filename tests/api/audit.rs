//! Tamper evidence end to end: an edited record, a cut-off chain and a rewound head are found by
//! `services::audit::verify` and by `itaku verify-audit`; the server anchors the heads itself.

use std::process::ExitCode;
use std::time::Duration;

use entity::{audit_anchor, audit_record, workflow_instance};
use itaku::clock::Clock;
use itaku::commands::verify_audit_to;
use itaku::services::audit::{self, Problem, VerifyReport};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::helpers::{ghost_record, id_of, spawn_app, spawn_app_with, Backend, Cast, TestApp};

/// A tier-2 application the officer returned with a comment (seq 3), resubmitted and approved
/// at the officer's step: five records.
async fn returned_once(app: &TestApp, cast: &Cast) -> String {
    let submitted = cast.submitted_tier2(app).await;
    let id = id_of(&submitted).to_owned();
    let officer = cast.officer.token.as_str();
    let fired = [
        (
            officer,
            json!({ "event": "return", "comment": "監督体制の記載が不足しています" }),
        ),
        (&cast.kokuhoren.token, json!({ "event": "submit" })),
        (officer, json!({ "event": "approve" })),
    ];
    for (token, body) in fired {
        app.fire_ok(token, &id, body).await;
    }
    assert_eq!(app.audit_rows(&id).await.len(), 5);
    id
}

/// Asserts that a verification found exactly one problem, and that it matches the pattern.
macro_rules! assert_one_problem {
    ($report:expr, $($pattern:tt)+) => {{
        let report = &$report;
        assert_eq!(report.problems, 1, "{}", audit::render(report));
        assert!(matches!(&report.first_problem, $($pattern)+), "{report:?}");
    }};
}

async fn verified(app: &TestApp) -> VerifyReport {
    audit::verify(&app.db).await.unwrap()
}

async fn edit_comment(app: &TestApp, id: &str, seq: i64, comment: &str) {
    let edited = audit_record::Entity::update_many()
        .col_expr(audit_record::Column::Comment, Expr::value(comment))
        .filter(audit_record::Column::InstanceId.eq(id))
        .filter(audit_record::Column::Seq.eq(seq))
        .exec(&app.db)
        .await
        .unwrap();
    assert_eq!(edited.rows_affected, 1);
}

async fn delete_record(app: &TestApp, id: &str, seq: i64) {
    let deleted = audit_record::Entity::delete_many()
        .filter(audit_record::Column::InstanceId.eq(id))
        .filter(audit_record::Column::Seq.eq(seq))
        .exec(&app.db)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected, 1);
}

async fn an_edited_comment_is_reported_with_its_instance_and_seq(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let id = returned_once(&app, &cast).await;
    let report = verified(&app).await;
    assert!(report.is_clean(), "{}", audit::render(&report));

    edit_comment(&app, &id, 3, "問題ありません").await;
    let report = verified(&app).await;
    assert_one_problem!(
        report,
        Some(Problem::HashMismatch { instance_id, seq: 3, .. })
            if *instance_id == id
    );
}

async fn a_deleted_last_record_is_caught_by_the_instance_head(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let id = returned_once(&app, &cast).await;

    delete_record(&app, &id, 5).await;
    let report = verified(&app).await;
    assert_one_problem!(
        report,
        Some(Problem::HeadMismatch { instance_id, row_seq: 5, last_seq: 4, .. })
            if *instance_id == id
    );
}

async fn a_cut_off_chain_with_a_rewound_head_is_caught_by_the_anchor(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let id = returned_once(&app, &cast).await;
    let anchored = audit::anchor(&app.db, app.now()).await.unwrap().unwrap();
    assert_eq!((anchored.seq, anchored.heads), (1, 1));

    // Cut the last record and rewind the instance's head: what is left is a valid chain.
    let fourth = app.audit_rows(&id).await.remove(3);
    delete_record(&app, &id, 5).await;
    workflow_instance::Entity::update_many()
        .col_expr(workflow_instance::Column::AuditSeq, Expr::value(fourth.seq))
        .col_expr(
            workflow_instance::Column::AuditHead,
            Expr::value(fourth.hash),
        )
        .filter(workflow_instance::Column::Id.eq(id.as_str()))
        .exec(&app.db)
        .await
        .unwrap();

    let report = verified(&app).await;
    assert_one_problem!(
        report,
        Some(Problem::AnchoredHeadMissing { anchor_seq: 1, instance_id, seq: 5 })
            if *instance_id == id
    );
}

/// The audit records have no foreign key to the instances (it cost PostgreSQL a query and a row
/// lock per record); a chain whose instance row is missing is reported instead, even when the
/// chain itself is sound.
async fn a_chain_without_its_instance_row_is_reported(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    returned_once(&app, &cast).await;
    audit::append(
        &app.db,
        audit::ChainHead::genesis(),
        ghost_record(app.now()),
    )
    .await
    .unwrap();

    let report = verified(&app).await;
    assert_one_problem!(
        report,
        Some(Problem::InstanceRowMissing { instance_id, last_seq: 1 })
            if instance_id == "ghost"
    );
}

async fn verify_audit_exits_zero_when_clean_and_one_naming_the_tampered_instance(backend: Backend) {
    let app = spawn_app(backend).await;
    let cast = Cast::create(&app).await;
    let id = returned_once(&app, &cast).await;
    let run = || async {
        let mut out = Vec::new();
        let code = verify_audit_to(&app.settings, &mut out).await.unwrap();
        (code, String::from_utf8(out).unwrap())
    };

    let (code, text) = run().await;
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    assert!(text.contains("no problems found"), "{text}");
    edit_comment(&app, &id, 3, "問題ありません").await;
    let (code, text) = run().await;
    assert_eq!(code, ExitCode::FAILURE, "{text}");
    assert!(
        text.contains(&format!(
            "First problem: instance {id}, record seq 3: hash mismatch"
        )),
        "{text}"
    );
    let anchors = audit_anchor::Entity::find().count(&app.db).await.unwrap();
    assert_eq!(anchors, 0, "verify-audit never writes");
}

async fn the_server_anchors_changed_heads_on_its_interval(backend: Backend) {
    let app = spawn_app_with(backend, Clock::System, |settings| {
        settings.audit_anchor_interval_seconds = 1;
    })
    .await;
    let cast = Cast::create(&app).await;
    let draft = cast.apply_tier2(&app).await;
    let head = app.audit_rows(id_of(&draft)).await.remove(0);
    let committed = format!(r#"["{}",1,"{}"]"#, head.instance_id, head.hash);

    let mut anchors = Vec::new();
    for _ in 0..100 {
        anchors = audit_anchor::Entity::find().all(&app.db).await.unwrap();
        if anchors.iter().any(|a| a.heads.contains(&committed)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        anchors.iter().any(|a| a.heads.contains(&committed)),
        "no anchor commits {committed}: {anchors:?}"
    );
    let report = verified(&app).await;
    assert!(report.is_clean(), "{}", audit::render(&report));
    assert!(report.anchored_heads >= 1, "{report:?}");
}

crate::on_both_backends!(
    an_edited_comment_is_reported_with_its_instance_and_seq,
    a_deleted_last_record_is_caught_by_the_instance_head,
    a_cut_off_chain_with_a_rewound_head_is_caught_by_the_anchor,
    a_chain_without_its_instance_row_is_reported,
    verify_audit_exits_zero_when_clean_and_one_naming_the_tampered_instance,
    the_server_anchors_changed_heads_on_its_interval,
);
