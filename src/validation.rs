//! Request validation: the `validator` crate's derive on request bodies, turned into the API's
//! `validation_failed` shape (every invalid field at once, with its path and a reason in
//! Japanese and English), plus the product-wide rule that no individual number (個人番号) is
//! ever accepted in any text field.

use std::borrow::Cow;

use serde::Serialize;
use validator::{Validate, ValidationError, ValidationErrors, ValidationErrorsKind};

use crate::error::{ApiError, FieldError};

/// Validates a request body: the derive's rules, then the individual-number scan over every
/// string in it. `Err` lists every invalid field.
pub fn check<T: Validate + Serialize>(body: &T) -> Result<(), ApiError> {
    finish(errors_of(body))
}

/// What [`check`] would report, for callers that add checks of their own before answering.
pub fn errors_of<T: Validate + Serialize>(body: &T) -> Vec<FieldError> {
    let mut errors = match body.validate() {
        Ok(()) => Vec::new(),
        Err(e) => field_errors(&e),
    };
    errors.extend(no_individual_numbers(body));
    errors
}

/// `Ok` when there is nothing to report, else the 422 listing every field.
pub fn finish(mut errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort_by(|a, b| a.field.cmp(&b.field));
    errors.dedup();
    Err(ApiError::validation(errors))
}

/// Every string of `body` that holds an individual number, by field path.
pub fn no_individual_numbers<T: Serialize>(body: &T) -> Vec<FieldError> {
    match serde_json::to_value(body) {
        Ok(value) => crate::domain::numbers::scan_json_for_individual_numbers(&value, ""),
        Err(_) => Vec::new(),
    }
}

/// Flattens the derive's errors into `{field, reason}` with dotted paths (`tiers[1].manager`).
pub fn field_errors(errors: &ValidationErrors) -> Vec<FieldError> {
    let mut out = Vec::new();
    walk(errors, "", &mut out);
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn walk(errors: &ValidationErrors, prefix: &str, out: &mut Vec<FieldError>) {
    for (name, kind) in errors.errors() {
        let path = if name == "__all__" {
            prefix.to_owned()
        } else {
            join(prefix, name)
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                out.extend(list.iter().map(|e| {
                    let (ja, en) = reason(e);
                    FieldError::new(path.clone(), ja, en)
                }));
            }
            ValidationErrorsKind::Struct(inner) => walk(inner, &path, out),
            ValidationErrorsKind::List(items) => {
                for (ix, inner) in items {
                    walk(inner, &format!("{path}[{ix}]"), out);
                }
            }
        }
    }
}

fn param(e: &ValidationError, name: &str) -> Option<String> {
    e.params.get(name).map(|v| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The bilingual reason for one error. Custom validators put both languages in their code's
/// message as `ja|en`; the built-in rules are translated here.
fn reason(e: &ValidationError) -> (String, String) {
    if let Some(message) = &e.message {
        if let Some((ja, en)) = message.split_once('|') {
            return (ja.to_owned(), en.to_owned());
        }
    }
    match e.code.as_ref() {
        "length" => match (param(e, "min"), param(e, "max")) {
            (Some(min), Some(max)) if min == "1" => (
                format!("入力してください({max}文字以内)。"),
                format!("Required; at most {max} characters."),
            ),
            (Some(min), Some(max)) => (
                format!("{min}文字以上{max}文字以内で入力してください。"),
                format!("Must be {min} to {max} characters long."),
            ),
            (Some(min), None) if min == "1" => {
                ("入力してください。".to_owned(), "Required.".to_owned())
            }
            (Some(min), None) => (
                format!("{min}件(文字)以上を入力してください。"),
                format!("Must have at least {min} entries (characters)."),
            ),
            (None, Some(max)) => (
                format!("{max}文字(件)以内で入力してください。"),
                format!("Must be at most {max} characters (entries)."),
            ),
            (None, None) => (
                "長さが正しくありません。".to_owned(),
                "Wrong length.".to_owned(),
            ),
        },
        "email" => (
            "メールアドレスの形式が正しくありません。".to_owned(),
            "Not a valid e-mail address.".to_owned(),
        ),
        "range" => match (param(e, "min"), param(e, "max")) {
            (Some(min), Some(max)) => (
                format!("{min}以上{max}以下の値を入力してください。"),
                format!("Must be between {min} and {max}."),
            ),
            (Some(min), None) => (
                format!("{min}以上の値を入力してください。"),
                format!("Must be at least {min}."),
            ),
            (None, Some(max)) => (
                format!("{max}以下の値を入力してください。"),
                format!("Must be at most {max}."),
            ),
            (None, None) => ("値が範囲外です。".to_owned(), "Out of range.".to_owned()),
        },
        "required" => ("入力してください。".to_owned(), "Required.".to_owned()),
        other => (
            format!("入力内容が正しくありません({other})。"),
            format!("Not valid ({other})."),
        ),
    }
}

/// A custom validator's error with a bilingual reason.
pub fn invalid(code: &'static str, ja: &str, en: &str) -> ValidationError {
    let mut e = ValidationError::new(code);
    e.message = Some(Cow::Owned(format!("{ja}|{en}")));
    e
}

/// Rejects text that is blank after trimming (the derive's `length(min = 1)` accepts spaces).
pub fn not_blank(value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(invalid(
            "blank",
            "入力してください。",
            "Required; must not be blank.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Validate)]
    struct Inner {
        #[validate(custom(function = "not_blank"))]
        manager: String,
    }

    #[derive(Debug, Serialize, Validate)]
    struct Body {
        #[validate(length(min = 1, max = 5))]
        title: String,
        #[validate(email)]
        contact: String,
        #[validate(nested)]
        tiers: Vec<Inner>,
        note: String,
    }

    #[test]
    fn every_invalid_field_is_listed_with_its_path_in_both_languages() {
        let body = Body {
            title: "toolong".to_owned(),
            contact: "not-an-address".to_owned(),
            tiers: vec![
                Inner {
                    manager: "山田".to_owned(),
                },
                Inner {
                    manager: "  ".to_owned(),
                },
            ],
            note: "ok".to_owned(),
        };
        let Err(e) = body.validate() else {
            panic!("must be invalid")
        };
        let fields = field_errors(&e);
        let paths: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(paths, ["contact", "tiers[1].manager", "title"]);
        assert_eq!(fields[1].reason.ja, "入力してください。");
        assert_eq!(fields[1].reason.en, "Required; must not be blank.");
        assert_eq!(fields[2].reason.en, "Required; at most 5 characters.");
    }
}
