//! What the UI's forms share: the posted values, the errors next to each field, and each
//! field's description for the `form_field` partial.
//!
//! Forms only turn text into the typed request the services take (a date, a number, a list of
//! lines); every rule about the values is the services' own, and their field errors are shown
//! next to the field they name.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use super::view::{Lang, UiLang};
use crate::error::{ApiError, FieldError, Msg};

/// A multipart form read whole, its CSRF token checked.
pub struct CheckedForm {
    pub values: Values,
    pub files: Vec<crate::services::evidence::Upload>,
    /// A file was over `max_upload_mb` (reading stopped there).
    pub too_large: bool,
}

/// Reads a multipart form (files up to `max_upload_mb`) whose first part is its `csrf` token,
/// checked before anything else is read ([`super::Csrf::check_multipart`]).
pub async fn read_checked(
    state: &crate::startup::AppState,
    request: &actix_web::HttpRequest,
    payload: &mut actix_multipart::Multipart,
) -> Result<CheckedForm, super::UiError> {
    use crate::routes::api::evidence::{read_multipart, upload_limit};
    let lang = Lang::of(request);
    super::Csrf::check_multipart(request, payload).await?;
    let parts = read_multipart(payload, upload_limit(state))
        .await
        .map_err(|e| super::UiError::api(e, lang))?;
    let values = Values::from_pairs(parts.texts);
    Ok(CheckedForm {
        values,
        files: parts.files,
        too_large: parts.too_large,
    })
}

/// The `file` field's reason when a file was over `max_upload_mb`.
pub fn too_large_msg(state: &crate::startup::AppState) -> Msg {
    let spec = crate::routes::api::evidence::too_large(state).code().spec();
    let max_mb = state.settings.max_upload_mb;
    Msg::new(
        format!("{}（上限 {max_mb} MB）", spec.ja),
        format!("{} (at most {max_mb} MB)", spec.en),
    )
}

/// The values of a posted form, by field name (a checkbox group has several).
#[derive(Debug, Default, Clone)]
pub struct Values(BTreeMap<String, Vec<String>>);

impl Values {
    /// The values of `(name, value)` pairs, in order.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in pairs {
            map.entry(name).or_default().push(value);
        }
        Self(map)
    }

    /// The first value of `name`, or the empty string.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .get(name)
            .and_then(|v| v.first())
            .map_or("", String::as_str)
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .get(name)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Whether a checkbox `name` was ticked.
    pub fn ticked(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The values with every one that holds an individual number emptied, so that a form
    /// shown again never echoes the number back.
    pub fn scrubbed(&self) -> Self {
        let mut out = self.clone();
        for values in out.0.values_mut() {
            for v in values.iter_mut() {
                if crate::domain::numbers::find_individual_number(v).is_some() {
                    v.clear();
                }
            }
        }
        out
    }

    /// Sets a value (to show a stored record in a form).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), vec![value.into()]);
    }
}

/// Field errors by form field name, each in both languages.
#[derive(Debug, Default, Clone)]
pub struct Errors(BTreeMap<String, Vec<Msg>>);

impl Errors {
    /// Adds a reason to `field`.
    pub fn add(&mut self, field: impl Into<String>, reason: Msg) {
        let list = self.0.entry(field.into()).or_default();
        if !list.contains(&reason) {
            list.push(reason);
        }
    }

    /// Adds the services' field errors, each under the form field `to_field` names.
    pub fn extend(&mut self, errors: &[FieldError], to_field: impl Fn(&str) -> String) {
        for e in errors {
            self.add(to_field(&e.field), e.reason.clone());
        }
    }

    /// [`Self::extend`], leaving out the errors of fields that did not parse (their own error
    /// says enough).
    pub fn extend_parsed(
        &mut self,
        errors: Vec<FieldError>,
        unparsed: &[String],
        to_field: impl Fn(&str) -> String,
    ) {
        for e in errors {
            let field = to_field(&e.field);
            if !unparsed.contains(&field) {
                self.add(field, e.reason);
            }
        }
    }

    /// No errors.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The reasons of `field` in `lang`, joined.
    pub fn text(&self, lang: Lang, field: &str) -> String {
        self.0
            .get(field)
            .map(|list| {
                list.iter()
                    .map(|m| lang.pick(&m.ja, &m.en))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }

    /// Every error as `{field id, text}` for the summary above a form, in field order.
    pub fn summary(
        &self,
        lang: Lang,
        order: &[String],
        labels: &BTreeMap<String, String>,
    ) -> Vec<Value> {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort_by_key(|n| order.iter().position(|o| o == *n).unwrap_or(usize::MAX));
        names
            .into_iter()
            .map(|n| {
                json!({
                    "href": format!("#{}", field_id(n)),
                    "label": labels.get(n).cloned().unwrap_or_default(),
                    "text": self.text(lang, n),
                })
            })
            .collect()
    }
}

/// The field errors a service's refusal carries (`details` as `[{field, reason}]`).
pub fn field_errors_of(error: &ApiError) -> Vec<FieldError> {
    let Some(details) = error.details() else {
        return Vec::new();
    };
    // A validation failure lists its fields; a conflict names its one field.
    serde_json::from_value::<Vec<FieldError>>(details.clone())
        .or_else(|_| serde_json::from_value::<FieldError>(details.clone()).map(|f| vec![f]))
        .unwrap_or_default()
}

/// A message of the catalogue in both languages.
pub fn catalogue_msg(key: &str) -> Msg {
    Msg::new(Lang::Ja.text(key, key), Lang::En.text(key, key))
}

/// The HTML id of a field: its name with anything but letters, digits and `_` as `-`.
pub fn field_id(name: &str) -> String {
    let mut id = String::from("f-");
    id.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '-'
        }
    }));
    id
}

/// How a field is entered.
#[derive(Debug, Clone)]
pub enum Input {
    Text,
    Area,
    Date,
    Number,
    /// One entry per line.
    Lines,
    Check,
    /// One of `(value, label)`.
    Select(Vec<(String, String)>),
    /// Any of `(value, label)`, as checkboxes.
    Checks(Vec<(String, String)>),
}

/// One field of a form.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub label: String,
    pub input: Input,
    pub required: bool,
    pub hint: Option<String>,
}

impl Field {
    pub fn new(name: impl Into<String>, label: impl Into<String>, input: Input) -> Self {
        Self {
            name: name.into(),
            label: label.into(),
            input,
            required: false,
            hint: None,
        }
    }

    /// Marks the field as required (shown beside the label).
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// A hint under the field.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The field as the `form_field` partial shows it, with its value and error.
    pub fn render(&self, lang: Lang, values: &Values, errors: &Errors) -> Value {
        let id = field_id(&self.name);
        let error = errors.text(lang, &self.name);
        let mut described = Vec::new();
        if self.hint.is_some() {
            described.push(format!("{id}-hint"));
        }
        if !error.is_empty() {
            described.push(format!("{id}-error"));
        }
        let kind = match &self.input {
            Input::Text => "text",
            Input::Area | Input::Lines => "area",
            Input::Date => "date",
            Input::Number => "number",
            Input::Check => "check",
            Input::Select(_) => "select",
            Input::Checks(_) => "checks",
        };
        let options: Vec<Value> = match &self.input {
            Input::Select(options) | Input::Checks(options) => {
                let chosen = values.all(&self.name);
                options
                    .iter()
                    .enumerate()
                    .map(|(ix, (value, label))| {
                        json!({
                            "id": format!("{id}-{ix}"),
                            "value": value,
                            "label": label,
                            "selected": chosen.contains(&value.as_str()),
                        })
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        json!({
            "id": id,
            "name": self.name,
            "label": self.label,
            "kind": kind,
            "is_text": kind == "text",
            "is_area": kind == "area",
            "is_date": kind == "date",
            "is_number": kind == "number",
            "is_check": kind == "check",
            "is_select": kind == "select",
            "is_checks": kind == "checks",
            "rows": if matches!(self.input, Input::Lines) { 3 } else { 4 },
            "value": values.get(&self.name),
            "checked": values.ticked(&self.name),
            "options": options,
            "required": self.required,
            "required_text": lang.text("form.required", ""),
            "hint": self.hint.clone().unwrap_or_default(),
            "error": error,
            "described_by": described.join(" "),
        })
    }
}

/// A titled group of fields.
pub struct Section {
    pub legend: String,
    pub fields: Vec<Field>,
}

impl Section {
    pub fn new(legend: impl Into<String>, fields: Vec<Field>) -> Self {
        Self {
            legend: legend.into(),
            fields,
        }
    }
}

/// The sections as the template shows them, the field names in order and their labels.
pub fn render_sections(
    lang: Lang,
    sections: &[Section],
    values: &Values,
    errors: &Errors,
) -> (Vec<Value>, Vec<String>, BTreeMap<String, String>) {
    let mut order = Vec::new();
    let mut labels = BTreeMap::new();
    let rendered = sections
        .iter()
        .map(|s| {
            let fields: Vec<Value> = s
                .fields
                .iter()
                .map(|f| {
                    order.push(f.name.clone());
                    let label = if s.legend.is_empty() {
                        f.label.clone()
                    } else {
                        format!("{} — {}", s.legend, f.label)
                    };
                    labels.insert(f.name.clone(), label);
                    f.render(lang, values, errors)
                })
                .collect();
            json!({ "legend": s.legend, "fields": fields })
        })
        .collect();
    (rendered, order, labels)
}

/// Reads form text into JSON: dates, numbers and lists parsed, errors noted per field. The
/// JSON then goes through the services' own types and rules.
pub struct Reader<'a> {
    pub values: &'a Values,
    pub errors: Errors,
    /// Fields that failed to parse: the services' errors about them are not added.
    pub unparsed: Vec<String>,
}

/// A date that stands in for one that did not parse, so the rest can still be checked (early
/// enough that no "not before" rule fires on its account).
pub const PLACEHOLDER_DATE: &str = "1900-01-01";

impl<'a> Reader<'a> {
    pub fn new(values: &'a Values) -> Self {
        Self {
            values,
            errors: Errors::default(),
            unparsed: Vec::new(),
        }
    }

    fn fail(&mut self, name: &str, key: &str) {
        self.errors.add(name, catalogue_msg(key));
        self.unparsed.push(name.to_owned());
    }

    /// The text, as typed.
    pub fn text(&self, name: &str) -> Value {
        Value::String(self.values.get(name).to_owned())
    }

    /// The text, or nothing when blank.
    pub fn optional_text(&self, name: &str) -> Option<Value> {
        let v = self.values.get(name);
        (!v.trim().is_empty()).then(|| Value::String(v.to_owned()))
    }

    /// A date (`YYYY-MM-DD`); a missing or malformed one is an error and a placeholder.
    pub fn date(&mut self, name: &str) -> Value {
        let raw = self.values.get(name).trim();
        if raw.is_empty() {
            self.fail(name, "form.date_required");
            return json!(PLACEHOLDER_DATE);
        }
        match raw.parse::<NaiveDate>() {
            Ok(d) => json!(d),
            Err(_) => {
                self.fail(name, "form.date_invalid");
                json!(PLACEHOLDER_DATE)
            }
        }
    }

    /// A date that may be left blank.
    pub fn optional_date(&mut self, name: &str) -> Option<Value> {
        if self.values.get(name).trim().is_empty() {
            return None;
        }
        let v = self.date(name);
        (!self.unparsed.iter().any(|n| n == name)).then_some(v)
    }

    /// A whole number; blank is `blank` (the services say what they need).
    pub fn number(&mut self, name: &str, blank: Option<i64>) -> Option<Value> {
        let raw: String = self
            .values
            .get(name)
            .trim()
            .chars()
            .filter(|c| *c != ',')
            .collect();
        if raw.is_empty() {
            return blank.map(Value::from);
        }
        match raw.parse::<i64>() {
            Ok(n) if n >= 0 => Some(Value::from(n)),
            _ => {
                self.fail(name, "form.number_invalid");
                blank.map(Value::from)
            }
        }
    }

    /// The non-blank lines.
    pub fn lines(&self, name: &str) -> Value {
        Value::Array(
            self.values
                .get(name)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| Value::String(l.to_owned()))
                .collect(),
        )
    }

    /// A checkbox.
    pub fn check(&self, name: &str) -> Value {
        Value::Bool(self.values.ticked(name))
    }

    /// Structure chart rows `prefix[i].…` up to the last row with anything in it (a blank row
    /// in between is sent as it is, and the services say what it lacks).
    pub fn tiers(&mut self, prefix: &str, rows: usize) -> Value {
        let filled = |i: usize| {
            TIER_FIELDS.iter().any(|f| {
                !self
                    .values
                    .get(&format!("{prefix}[{i}].{f}"))
                    .trim()
                    .is_empty()
            })
        };
        let last = (0..rows).rev().find(|i| filled(*i));
        let Some(last) = last else {
            return Value::Array(Vec::new());
        };
        let mut out = Vec::new();
        for i in 0..=last {
            let at = |f: &str| format!("{prefix}[{i}].{f}");
            let mut row = Map::new();
            for f in [
                "organisation_name",
                "responsible_person",
                "manager",
                "work_location",
            ] {
                row.insert(f.to_owned(), self.text(&at(f)));
            }
            let count = self.number(&at("staff_count"), Some(0)).unwrap_or(json!(0));
            row.insert("staff_count".to_owned(), count);
            if let Some(s) = self.optional_text(&at("supervised_by")) {
                row.insert("supervised_by".to_owned(), s);
            }
            out.push(Value::Object(row));
        }
        Value::Array(out)
    }
}

/// The fields of one structure chart row, in form order.
pub const TIER_FIELDS: [&str; 6] = [
    "organisation_name",
    "responsible_person",
    "manager",
    "staff_count",
    "work_location",
    "supervised_by",
];

/// Rows of a structure chart in a form.
pub const TIER_ROWS: usize = 3;

/// The structure chart's rows as sections of fields named `prefix[i].…`.
pub fn tier_sections(lang: Lang, prefix: &str) -> Vec<Section> {
    (0..TIER_ROWS)
        .map(|i| {
            let legend = format!("{} {}", lang.text("form.tier_row", ""), i + 1);
            let fields = TIER_FIELDS
                .iter()
                .map(|f| {
                    let input = if *f == "staff_count" {
                        Input::Number
                    } else {
                        Input::Text
                    };
                    let field = Field::new(
                        format!("{prefix}[{i}].{f}"),
                        lang.text(&format!("form.tier_{f}"), f),
                        input,
                    );
                    if i == 0 && *f != "supervised_by" {
                        field.required()
                    } else {
                        field
                    }
                })
                .collect();
            Section::new(legend, fields)
        })
        .collect()
}

/// A list field's errors (`covered_services[1]`) belong to the one text area.
pub fn strip_index(name: &str, list_fields: &[&str]) -> String {
    for f in list_fields {
        if let Some(rest) = name.strip_prefix(f) {
            if rest.starts_with('[') && !rest.contains('.') {
                return (*f).to_owned();
            }
        }
    }
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        Values::from_pairs(
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned())),
        )
    }

    #[test]
    fn dates_numbers_and_lines_are_read_and_bad_ones_named() {
        let v = values(&[
            ("a", "2026-04-01"),
            ("b", "2026/13/01"),
            ("n", "1,200"),
            ("m", "twelve"),
            ("l", " x \n\n y "),
        ]);
        let mut r = Reader::new(&v);
        assert_eq!(r.date("a"), json!("2026-04-01"));
        assert_eq!(r.date("b"), json!(PLACEHOLDER_DATE));
        assert_eq!(r.date("missing"), json!(PLACEHOLDER_DATE));
        assert_eq!(r.optional_date("blank"), None);
        assert_eq!(r.number("n", None), Some(json!(1200)));
        assert_eq!(r.number("m", Some(0)), Some(json!(0)));
        assert_eq!(r.lines("l"), json!(["x", "y"]));
        assert_eq!(r.unparsed, ["b", "missing", "m"]);
        assert!(r.errors.text(Lang::Ja, "b").contains("日付"));
        assert!(r.errors.text(Lang::En, "m").contains("number"));
    }

    #[test]
    fn structure_chart_rows_end_at_the_last_filled_one() {
        let v = values(&[("t[1].manager", "乙"), ("t[1].staff_count", "3")]);
        let mut r = Reader::new(&v);
        let tiers = r.tiers("t", TIER_ROWS);
        assert_eq!(tiers.as_array().map(Vec::len), Some(2));
        assert_eq!(tiers[1]["staff_count"], json!(3));
        assert_eq!(tiers[0]["manager"], json!(""));
        assert_eq!(Reader::new(&values(&[])).tiers("t", 3), json!([]));
    }

    #[test]
    fn ids_are_safe_and_list_errors_go_to_their_area() {
        assert_eq!(field_id("tiers[0].manager"), "f-tiers-0--manager");
        assert_eq!(
            strip_index("covered_services[1]", &["covered_services"]),
            "covered_services"
        );
        assert_eq!(
            strip_index("tiers[1].manager", &["tiers"]),
            "tiers[1].manager"
        );
    }
}
