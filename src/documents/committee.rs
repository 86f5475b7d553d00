//! The committee submission (付議) of one consignment (委託, a tier-1 node) or one subcontract
//! (再委託, a node below), in the layout of the 新宿区 seed: 件名, 保有課, 登録業務の名称, 委託先
//! (再委託先), 処理させる情報項目, その記録媒体, 委託 (再委託) 理由, 委託の内容, 委託の開始時期及び
//! 期限, 情報保護対策 (the node's evidence checklist). What changed since the last submission
//! is marked as the seed marks it (太字下線). Pure.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::documents::pia::esc;
use crate::domain::fiscal::date_label_ja;

/// A consignment or a subcontract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionKind {
    Consignment,
    Subcontract,
}

impl SubmissionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consignment => "consignment",
            Self::Subcontract => "subcontract",
        }
    }

    /// 委託 or 再委託, as the headings say it.
    pub fn word(self) -> &'static str {
        match self {
            Self::Consignment => "委託",
            Self::Subcontract => "再委託",
        }
    }
}

/// The fields of a submission, as rendered and as kept when it is submitted. An empty string is
/// a value not recorded (see [`CommitteeSubmission::missing`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubmissionFields {
    /// 件名.
    pub subject: String,
    /// 保有課(担当課).
    pub owning_section: String,
    /// 登録業務の名称.
    pub registered_work: String,
    /// 委託先 (再委託先).
    pub contractor: String,
    /// 処理させる情報項目.
    pub data_items: String,
    /// 処理させる情報項目の記録媒体.
    pub recording_medium: String,
    /// 委託理由 / 再委託理由.
    pub reason: String,
    /// 委託の内容.
    pub content: String,
    /// 委託の開始時期及び期限.
    pub period: String,
    /// 情報保護対策: one line per requirement of the node's evidence checklist.
    pub safeguards: Vec<String>,
}

/// The field names in the layout's order (the keys of `changed` and `missing`).
pub const FIELDS: [&str; 10] = [
    "subject",
    "owning_section",
    "registered_work",
    "contractor",
    "data_items",
    "recording_medium",
    "reason",
    "content",
    "period",
    "safeguards",
];

impl SubmissionFields {
    /// The single-valued fields by name, in the layout's order.
    pub fn texts(&self) -> [(&'static str, &str); 9] {
        [
            ("subject", &self.subject),
            ("owning_section", &self.owning_section),
            ("registered_work", &self.registered_work),
            ("contractor", &self.contractor),
            ("data_items", &self.data_items),
            ("recording_medium", &self.recording_medium),
            ("reason", &self.reason),
            ("content", &self.content),
            ("period", &self.period),
        ]
    }
}

/// The submission recorded last, against which changes are marked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LastSubmission {
    pub id: String,
    pub submitted_on: NaiveDate,
    pub submitted_at: DateTime<Utc>,
}

/// A committee submission as generated now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CommitteeSubmission {
    pub kind: SubmissionKind,
    pub municipality: String,
    pub item_id: String,
    pub node_id: String,
    pub fields: SubmissionFields,
    /// Fields the data does not hold yet (to be recorded on the item or the application).
    pub missing: Vec<String>,
    pub last_submission: Option<LastSubmission>,
    /// Fields that differ from the last submission (none without one).
    pub changed: Vec<String>,
    /// The lines of 情報保護対策 that the last submission did not have.
    pub changed_safeguards: Vec<usize>,
}

/// The period as the seed writes it: 令和6年4月1日から令和7年3月31日まで.
pub fn period_ja(start: NaiveDate, end: NaiveDate) -> String {
    format!("{}から{}まで", date_label_ja(start), date_label_ja(end))
}

/// Marks what differs from the last submission's fields.
pub fn compare(
    kind: SubmissionKind,
    municipality: &str,
    item_id: &str,
    node_id: &str,
    fields: SubmissionFields,
    missing: Vec<String>,
    last: Option<(LastSubmission, SubmissionFields)>,
) -> CommitteeSubmission {
    let (last_submission, changed, changed_safeguards) = match last {
        None => (None, Vec::new(), Vec::new()),
        Some((meta, before)) => {
            let mut changed: Vec<String> = fields
                .texts()
                .iter()
                .zip(before.texts())
                .filter(|((_, now), (_, then))| now != then)
                .map(|((name, _), _)| (*name).to_owned())
                .collect();
            let lines: Vec<usize> = fields
                .safeguards
                .iter()
                .enumerate()
                .filter(|(_, l)| !before.safeguards.contains(l))
                .map(|(ix, _)| ix)
                .collect();
            if fields.safeguards != before.safeguards {
                changed.push("safeguards".to_owned());
            }
            (Some(meta), changed, lines)
        }
    };
    CommitteeSubmission {
        kind,
        municipality: municipality.to_owned(),
        item_id: item_id.to_owned(),
        node_id: node_id.to_owned(),
        fields,
        missing,
        last_submission,
        changed,
        changed_safeguards,
    }
}

/// The headings of the layout for a kind (新宿区 seed).
fn headings(kind: SubmissionKind) -> [String; 10] {
    let w = kind.word();
    [
        "件名".to_owned(),
        "保有課(担当課)".to_owned(),
        "登録業務の名称".to_owned(),
        match kind {
            SubmissionKind::Consignment => "委託先".to_owned(),
            SubmissionKind::Subcontract => "委託先(再委託先)".to_owned(),
        },
        format!("{w}に伴い事業者に処理させる情報項目(だれの、どのような項目か)"),
        "処理させる情報項目の記録媒体".to_owned(),
        format!("{w}理由"),
        "委託の内容".to_owned(),
        "委託の開始時期及び期限".to_owned(),
        "情報保護対策(証跡の確認状況)".to_owned(),
    ]
}

/// A value in the print view: escaped, `(未登録)` when not recorded, bold and underlined when
/// changed.
fn cell(value: &str, changed: bool) -> String {
    let text = if value.trim().is_empty() {
        "<span class=\"missing\">(未登録)</span>".to_owned()
    } else {
        esc(value)
    };
    if changed {
        format!("<strong class=\"changed\"><u>{text}</u></strong>")
    } else {
        text
    }
}

/// The A4 print view: standalone, no script, everything escaped; changed parts in bold
/// underline (also in print).
pub fn to_html(s: &CommitteeSubmission) -> String {
    let h = headings(s.kind);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>付議 {}</title>\
         <style>@page{{size:A4;margin:15mm}}body{{font-family:sans-serif;font-size:10.5pt}}\
         table{{border-collapse:collapse;width:100%}}th,td{{border:1px solid #000;padding:4px;\
         vertical-align:top;text-align:left}}th{{width:30%;background:#eee}}\
         tr{{break-inside:avoid}}.changed{{font-weight:bold;text-decoration:underline}}\
         .missing{{color:#a00}}ul{{margin:0;padding-left:1.2em}}</style></head><body>\
         <h1>個人情報保護管理運営会議 付議事項</h1><h2>件名 {}</h2>",
        esc(&s.fields.subject),
        cell(&s.fields.subject, s.changed.iter().any(|c| c == "subject")),
    );
    if let Some(last) = &s.last_submission {
        let _ = write!(
            out,
            "<p>※<strong class=\"changed\"><u>太字(下線)</u></strong>が、{}に付議した内容からの変更箇所</p>",
            esc(&date_label_ja(last.submitted_on))
        );
    }
    out.push_str("<table>");
    for ((name, value), heading) in s.fields.texts().iter().zip(&h).skip(1) {
        let changed = s.changed.iter().any(|c| c == name);
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            esc(heading),
            cell(value, changed)
        );
    }
    let _ = write!(out, "<tr><th>{}</th><td>", esc(&h[9]));
    if s.fields.safeguards.is_empty() {
        out.push_str(&cell("", false));
    } else {
        out.push_str("<ul>");
        for (ix, line) in s.fields.safeguards.iter().enumerate() {
            let _ = write!(
                out,
                "<li>{}</li>",
                cell(line, s.changed_safeguards.contains(&ix))
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</td></tr></table></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> SubmissionFields {
        SubmissionFields {
            subject: "国保情報集約システムに係る業務の再委託について".into(),
            owning_section: "医療保険年金課".into(),
            registered_work: "国民健康保険".into(),
            contractor: "【委託先】 東京都国保連 【再委託先】 国保中央会".into(),
            data_items: "被保険者の資格情報".into(),
            recording_medium: "AWSクラウド上のサーバ".into(),
            reason: "中央会が開発したシステムであるため".into(),
            content: "運用・保守".into(),
            period: period_ja(
                NaiveDate::from_ymd_opt(2024, 4, 1).unwrap(),
                NaiveDate::from_ymd_opt(2025, 3, 31).unwrap(),
            ),
            safeguards: vec!["秘密保持契約: 充足".into(), "ISO/IEC 27001: 充足".into()],
        }
    }

    fn last(f: SubmissionFields) -> Option<(LastSubmission, SubmissionFields)> {
        Some((
            LastSubmission {
                id: "s1".into(),
                submitted_on: NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(),
                submitted_at: DateTime::parse_from_rfc3339("2024-02-01T01:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc),
            },
            f,
        ))
    }

    #[test]
    fn exactly_the_changed_field_is_marked() {
        let mut now = fields();
        now.recording_medium = "ガバメントクラウド上のサーバ".into();
        now.safeguards[1] = "ISO/IEC 27001: 期限切れ".into();
        let s = compare(
            SubmissionKind::Subcontract,
            "新宿区",
            "i",
            "n",
            now,
            vec![],
            last(fields()),
        );
        assert_eq!(s.changed, ["recording_medium", "safeguards"]);
        assert_eq!(s.changed_safeguards, [1]);
        let html = to_html(&s);
        assert!(
            html.contains("<strong class=\"changed\"><u>ガバメントクラウド上のサーバ</u></strong>")
        );
        assert!(html.contains(
            "<li><strong class=\"changed\"><u>ISO/IEC 27001: 期限切れ</u></strong></li>"
        ));
        assert!(html.contains("<li>秘密保持契約: 充足</li>"));
        assert_eq!(
            html.matches("<u>").count(),
            3,
            "the two changes and the note"
        );
        assert!(html.contains("令和6年2月1日に付議した内容からの変更箇所"));
        assert!(html.contains("再委託に伴い事業者に処理させる情報項目"));
        assert!(html.contains("令和6年4月1日から令和7年3月31日まで"));
    }

    #[test]
    fn without_a_last_submission_nothing_is_marked_and_missing_values_say_so() {
        let mut f = fields();
        f.registered_work = String::new();
        f.subject = "<b>件名</b>".into();
        let s = compare(
            SubmissionKind::Consignment,
            "新宿区",
            "i",
            "n",
            f,
            vec!["registered_work".into()],
            None,
        );
        assert!(s.changed.is_empty());
        let html = to_html(&s);
        assert!(!html.contains("<u>"));
        assert!(html.contains("(未登録)"));
        assert!(html.contains("&lt;b&gt;件名&lt;/b&gt;") && !html.contains("<b>"));
        assert!(html.contains("<th>委託理由</th>"));
        assert_eq!(html, to_html(&s), "reproducible");
    }
}
