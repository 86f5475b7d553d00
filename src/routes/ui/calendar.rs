//! `/calendar`: the obligations and the evidence expiries the user may see, one month at a
//! time, each linking to its screen; overdue ones and today marked in words as well as colour.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Datelike, Months, NaiveDate};
use serde::Deserialize;
use serde_json::{json, Value};

use super::view::{self, Lang, Page, UiLang};
use super::{html, Csrf, UiError, UiUser};
use crate::domain::evidence::EvidenceKind;
use crate::routes::api::chains::viewer;
use crate::services::{evidence, obligations};
use crate::startup::AppState;

/// Query of the calendar: the month shown (`2026-12`), default the current one.
#[derive(Debug, Deserialize)]
pub struct CalendarQuery {
    #[serde(default)]
    month: Option<String>,
}

/// The first day of the month `text` names (`YYYY-MM`).
pub fn parse_month(text: &str) -> Option<NaiveDate> {
    let (year, month) = text.trim().split_once('-')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
}

fn month_code(first: NaiveDate) -> String {
    first.format("%Y-%m").to_string()
}

/// The month's days as weeks from Monday to Sunday, the days outside it blank.
fn weeks(first: NaiveDate) -> Vec<Vec<Option<NaiveDate>>> {
    let lead = first.weekday().num_days_from_monday() as usize;
    let mut days: Vec<Option<NaiveDate>> = vec![None; lead];
    days.extend(
        first
            .iter_days()
            .take_while(|d| d.month() == first.month())
            .map(Some),
    );
    while days.len() % 7 != 0 {
        days.push(None);
    }
    days.chunks(7).map(<[_]>::to_vec).collect()
}

/// `GET /calendar[?month=YYYY-MM]`.
pub async fn month(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: UiUser,
    q: web::Query<CalendarQuery>,
) -> Result<HttpResponse, UiError> {
    let lang = Lang::of(&request);
    let fail = |e| UiError::api(e, lang);
    let today = state.clock.today_jst();
    let this_month = today.with_day(1).unwrap_or(today);
    let (first, month_error) = match q.month.as_deref() {
        None | Some("") => (this_month, None),
        Some(text) => match parse_month(text) {
            Some(first) => (first, None),
            None => (this_month, Some(lang.text("calendar.month_invalid", ""))),
        },
    };
    let last = first
        .checked_add_months(Months::new(1))
        .and_then(|d| d.pred_opt())
        .unwrap_or(first);
    let v = viewer(&user.0);
    let due = obligations::due_between(&state.db, &v, first, last, today)
        .await
        .map_err(|e| fail(e.into()))?;
    let expiring = evidence::expiring_between(&state.db, &v, None, (first, last), today)
        .await
        .map_err(fail)?;
    let names = crate::services::chains::names(
        &state.db,
        expiring.iter().map(|e| e.organisation_id.clone()),
    )
    .await
    .map_err(fail)?;
    let overdue_word = lang.text("obligations.overdue", "");
    let mut entries: Vec<(NaiveDate, Value)> = due
        .iter()
        .map(|o| {
            (
                o.due_on,
                json!({
                    "href": format!("/obligations/{}", o.id),
                    "kind": "obligation",
                    "title": view::text_of(lang, serde_json::to_value(&o.title).ok().as_ref()),
                    "who": o.organisation_name,
                    "status": lang.text(&format!("obligations.status_{}", o.status), &o.status),
                    "overdue": o.overdue,
                    "mark": if o.overdue { overdue_word.clone() } else { String::new() },
                }),
            )
        })
        .collect();
    let expired_word = lang.text("calendar.expired", "");
    entries.extend(expiring.iter().filter_map(|e| {
        let until = e.valid_until?;
        let lapsed = until < today;
        let kind = EvidenceKind::parse(&e.kind).map_or_else(
            || e.kind.clone(),
            |k| lang.pick(k.label_ja(), k.label_en()).to_owned(),
        );
        Some((
            until,
            json!({
                "href": format!("/organisations/{}/evidence#evidence-{}", e.organisation_id, e.id),
                "kind": "evidence",
                "title": format!("{} {}", lang.text("calendar.expiry", ""), kind),
                "who": names.get(&e.organisation_id).cloned().unwrap_or_else(|| e.organisation_id.clone()),
                "status": lang.text(&format!("evidence_ui.status_{}", e.status), e.status),
                "overdue": lapsed,
                "mark": if lapsed { expired_word.clone() } else { String::new() },
            }),
        ))
    }));
    entries.sort_by_key(|(d, _)| *d);
    let weekdays: Vec<String> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| lang.text(&format!("calendar.{d}"), d))
        .collect();
    let today_word = lang.text("calendar.today", "");
    let rows: Vec<Value> = weeks(first)
        .into_iter()
        .map(|week| {
            let cells: Vec<Value> = week
                .into_iter()
                .map(|day| match day {
                    None => json!({ "blank": true }),
                    Some(d) => {
                        let list: Vec<&Value> = entries
                            .iter()
                            .filter(|(at, _)| *at == d)
                            .map(|(_, e)| e)
                            .collect();
                        json!({
                            "blank": false,
                            "date": d.to_string(),
                            "day": d.day(),
                            "today": d == today,
                            "today_word": today_word,
                            "weekend": d.weekday().num_days_from_monday() >= 5,
                            "entries": list,
                        })
                    }
                })
                .collect();
            json!({ "cells": cells })
        })
        .collect();
    let heading = match lang {
        Lang::Ja => format!("{}年{}月", first.year(), first.month()),
        Lang::En => first.format("%B %Y").to_string(),
    };
    let prev = first.checked_sub_months(Months::new(1)).unwrap_or(first);
    let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
    let csrf = Csrf::of(&request);
    let page = Page::for_user(&state, &user.0, lang, &csrf.token, "/calendar")
        .await
        .map_err(fail)?;
    let title = lang.text("calendar.title", "");
    let data = page.data(
        &title,
        json!({
            "heading": heading,
            "month": month_code(first),
            "prev": month_code(prev),
            "next": month_code(next),
            "this_month": month_code(this_month),
            "weekdays": weekdays,
            "weeks": rows,
            "count": entries.len(),
            "month_error": month_error,
        }),
    );
    let status = if month_error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = view::render("calendar", &data).map_err(fail)?;
    Ok(csrf.apply(html(status, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_parses_only_as_year_dash_month() {
        assert_eq!(parse_month("2026-12"), NaiveDate::from_ymd_opt(2026, 12, 1));
        for bad in ["2026-13", "2026-1", "26-12", "2026/12", "december", ""] {
            assert_eq!(parse_month(bad), None, "{bad}");
        }
    }

    #[test]
    fn weeks_run_monday_to_sunday_with_blanks_outside_the_month() {
        // 1 February 2026 is a Sunday; the month ends on a Saturday.
        let first = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
        let w = weeks(first);
        assert_eq!(w.len(), 5);
        assert_eq!(w[0][..6], [None; 6]);
        assert_eq!(w[0][6], Some(first));
        assert_eq!(w[4][5], NaiveDate::from_ymd_opt(2026, 2, 28));
        assert_eq!(w[4][6], None);
    }
}
