//! The ISMAP cloud service list (ISMAPクラウドサービスリスト): reading an uploaded CSV, the
//! difference between two imports, and how an ISMAP evidence record compares with the list.
//!
//! Pure: the service loads and stores, this module decides. A file is read whole or not at all:
//! every problem (a missing column, a bad date at row N, a duplicate registration number) is
//! reported with its row and column, and nothing is imported.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::domain::evidence::IsmapFields;
use crate::error::{FieldError, Msg};

/// The fields of a list entry, in the documented column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Column {
    RegistrationNumber,
    ServiceName,
    Provider,
    RegistrationDate,
    ExpiryDate,
    Remarks,
}

impl Column {
    pub const ALL: [Column; 6] = [
        Column::RegistrationNumber,
        Column::ServiceName,
        Column::Provider,
        Column::RegistrationDate,
        Column::ExpiryDate,
        Column::Remarks,
    ];

    /// The name used in mappings and in the documented English header.
    pub fn key(self) -> &'static str {
        match self {
            Column::RegistrationNumber => "registration_number",
            Column::ServiceName => "service_name",
            Column::Provider => "provider",
            Column::RegistrationDate => "registration_date",
            Column::ExpiryDate => "expiry_date",
            Column::Remarks => "remarks",
        }
    }

    fn parse_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.key() == key)
    }

    /// The Japanese name of the column (the list's own header).
    pub fn label_ja(self) -> &'static str {
        match self {
            Column::RegistrationNumber => "登録番号",
            Column::ServiceName => "サービス名称",
            Column::Provider => "事業者名",
            Column::RegistrationDate => "登録日",
            Column::ExpiryDate => "有効期限",
            Column::Remarks => "備考",
        }
    }

    /// Headers recognised without a mapping (compared after trimming, ASCII case ignored).
    fn known_headers(self) -> &'static [&'static str] {
        match self {
            Column::RegistrationNumber => &[
                "registration_number",
                "registration number",
                "登録番号",
                "登録No",
                "登録No.",
            ],
            Column::ServiceName => &[
                "service_name",
                "service name",
                "サービス名称",
                "サービス名",
                "クラウドサービス名称",
            ],
            Column::Provider => &["provider", "事業者名", "クラウドサービス事業者名", "事業者"],
            Column::RegistrationDate => &[
                "registration_date",
                "registration date",
                "登録日",
                "登録年月日",
            ],
            Column::ExpiryDate => &[
                "expiry_date",
                "expiry date",
                "expiry",
                "有効期限",
                "登録有効期限",
                "有効期間満了日",
            ],
            Column::Remarks => &["remarks", "備考"],
        }
    }

    /// The remarks column may be absent; every other one is required.
    fn required(self) -> bool {
        self != Column::Remarks
    }
}

/// One registered cloud service of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    pub registration_number: String,
    pub service_name: String,
    pub provider: String,
    pub registration_date: NaiveDate,
    pub expiry_date: NaiveDate,
    /// Empty when the list has none.
    pub remarks: String,
}

/// The encodings an uploaded list may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// UTF-8 without a byte order mark.
    Utf8,
    /// UTF-8 with a byte order mark (what Excel writes for "CSV UTF-8").
    Utf8Bom,
    /// Shift_JIS as Windows writes it (Windows-31J / CP932), common on government sites.
    ShiftJis,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Utf8Bom => "utf-8-bom",
            Encoding::ShiftJis => "shift_jis",
        }
    }
}

/// A list read from a file: its entries by registration number and how it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub encoding: Encoding,
    /// Which header each field was read from.
    pub mapping: BTreeMap<String, String>,
    pub entries: Vec<Entry>,
}

fn file_error(ja: impl Into<String>, en: impl Into<String>) -> Vec<FieldError> {
    vec![FieldError::new("file", ja, en)]
}

/// The text of the file: UTF-8 (a byte order mark is dropped) when it is valid UTF-8, else
/// Shift_JIS (Windows-31J) when it decodes without a single invalid sequence; anything else is
/// refused rather than guessed.
pub fn decode(bytes: &[u8]) -> Result<(String, Encoding), Vec<FieldError>> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    if let Some(rest) = bytes.strip_prefix(BOM) {
        return std::str::from_utf8(rest)
            .map(|s| (s.to_owned(), Encoding::Utf8Bom))
            .map_err(|_| {
                file_error(
                    "UTF-8のBOMがありますが、内容がUTF-8として読めません。",
                    "The file starts with a UTF-8 byte order mark but is not valid UTF-8.",
                )
            });
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok((s.to_owned(), Encoding::Utf8));
    }
    let (text, had_errors) = encoding_rs::SHIFT_JIS.decode_without_bom_handling(bytes);
    if had_errors {
        return Err(file_error(
            "ファイルの文字コードがUTF-8でもShift_JISでもありません。",
            "The file is neither UTF-8 nor Shift_JIS.",
        ));
    }
    Ok((text.into_owned(), Encoding::ShiftJis))
}

fn norm_header(h: &str) -> String {
    h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase()
}

/// Which column of the header row each field is read from: the caller's mapping (field →
/// header) where given, else the documented and Japanese headers.
fn locate(
    headers: &[String],
    mapping: Option<&BTreeMap<String, String>>,
) -> Result<BTreeMap<Column, (usize, String)>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let given: BTreeMap<Column, &String> = match mapping {
        None => BTreeMap::new(),
        Some(m) => {
            let mut out = BTreeMap::new();
            for (key, header) in m {
                match Column::parse_key(key) {
                    Some(c) => {
                        out.insert(c, header);
                    }
                    None => errors.push(FieldError::new(
                        format!("mapping.{key}"),
                        format!(
                            "「{key}」は項目名ではありません(registration_number, service_name, provider, registration_date, expiry_date, remarks のいずれか)。"
                        ),
                        format!(
                            "\"{key}\" is not a field (one of registration_number, service_name, provider, registration_date, expiry_date, remarks)."
                        ),
                    )),
                }
            }
            out
        }
    };
    let position = |wanted: &str| {
        let wanted = norm_header(wanted);
        headers.iter().position(|h| norm_header(h) == wanted)
    };
    let mut found = BTreeMap::new();
    for column in Column::ALL {
        let hit = match given.get(&column) {
            Some(header) => match position(header) {
                Some(ix) => Some(ix),
                None => {
                    errors.push(FieldError::new(
                        format!("mapping.{}", column.key()),
                        format!(
                            "対応付けられた列「{header}」({})がファイルの見出し行にありません。",
                            column.label_ja()
                        ),
                        format!(
                            "The mapped column \"{header}\" ({}) is not in the file's header row.",
                            column.key()
                        ),
                    ));
                    continue;
                }
            },
            None => column.known_headers().iter().find_map(|h| position(h)),
        };
        match hit {
            Some(ix) => {
                found.insert(column, (ix, headers[ix].trim().to_owned()));
            }
            None if column.required() => errors.push(FieldError::new(
                format!("columns.{}", column.key()),
                format!(
                    "列「{}」({})がありません。見出し行に置くか、列の対応付け(mapping)で指定してください。",
                    column.label_ja(),
                    column.key()
                ),
                format!(
                    "The column \"{}\" ({}) is missing: put it in the header row or map it (mapping).",
                    column.key(),
                    column.label_ja()
                ),
            )),
            None => {}
        }
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

/// A date as the lists write it: `2021-03-12`, `2021/3/12`, `2021年3月12日`, `令和3年3月12日`
/// (also 平成, and 元年).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    for format in ["%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日", "%Y.%m.%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, format) {
            return Some(d);
        }
    }
    for (era, offset) in [("令和", 2018), ("平成", 1988)] {
        let Some(rest) = s.strip_prefix(era) else {
            continue;
        };
        let (year, rest) = rest.split_once('年')?;
        let year: i32 = if year == "元" {
            1
        } else {
            year.trim().parse().ok()?
        };
        let (month, rest) = rest.split_once('月')?;
        let day = rest.strip_suffix('日')?;
        return NaiveDate::from_ymd_opt(
            offset + year,
            month.trim().parse().ok()?,
            day.trim().parse().ok()?,
        );
    }
    None
}

/// Reads a list: the header row, then one registered service per row. Rows that are entirely
/// empty are skipped. The rows are numbered as a spreadsheet shows them (the header is row 1).
pub fn parse(
    bytes: &[u8],
    mapping: Option<&BTreeMap<String, String>>,
) -> Result<Parsed, Vec<FieldError>> {
    let (text, encoding) = decode(bytes)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let headers: Vec<String> = match records.next() {
        Some(Ok(r)) => r.iter().map(str::to_owned).collect(),
        Some(Err(e)) => {
            return Err(file_error(
                format!("1行目(見出し行)がCSVとして読めません: {e}"),
                format!("Row 1 (the header row) is not valid CSV: {e}"),
            ))
        }
        None => return Err(file_error("ファイルが空です。", "The file is empty.")),
    };
    let columns = locate(&headers, mapping)?;
    let mut errors = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut first_row: BTreeMap<String, usize> = BTreeMap::new();
    for (ix, record) in records.enumerate() {
        let row = ix + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(FieldError::new(
                    format!("rows[{row}]"),
                    format!("{row}行目がCSVとして読めません: {e}"),
                    format!("Row {row} is not valid CSV: {e}"),
                ));
                continue;
            }
        };
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let cell = |c: Column| {
            columns
                .get(&c)
                .and_then(|(i, _)| record.get(*i))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        let header = |c: Column| {
            columns
                .get(&c)
                .map_or_else(|| c.label_ja().to_owned(), |(_, h)| h.clone())
        };
        let mut row_ok = true;
        for c in Column::ALL.into_iter().filter(|c| c.required()) {
            if cell(c).is_empty() {
                row_ok = false;
                errors.push(FieldError::new(
                    format!("rows[{row}].{}", header(c)),
                    format!("{row}行目の列「{}」が空です。", header(c)),
                    format!("Row {row}: the column \"{}\" is empty.", header(c)),
                ));
            }
        }
        let mut date = |c: Column| {
            let raw = cell(c);
            if raw.is_empty() {
                return None;
            }
            let parsed = parse_date(&raw);
            if parsed.is_none() {
                errors.push(FieldError::new(
                    format!("rows[{row}].{}", header(c)),
                    format!(
                        "{row}行目の列「{}」の「{raw}」は日付として読めません(例: 2026-04-01、2026/4/1、令和8年4月1日)。",
                        header(c)
                    ),
                    format!(
                        "Row {row}: \"{raw}\" in the column \"{}\" is not a date (e.g. 2026-04-01, 2026/4/1, 令和8年4月1日).",
                        header(c)
                    ),
                ));
            }
            parsed
        };
        let registration_date = date(Column::RegistrationDate);
        let expiry_date = date(Column::ExpiryDate);
        let (Some(registration_date), Some(expiry_date), true) =
            (registration_date, expiry_date, row_ok)
        else {
            continue;
        };
        let number = number_key(&cell(Column::RegistrationNumber));
        if let Some(first) = first_row.get(&number) {
            errors.push(FieldError::new(
                format!("rows[{row}].{}", header(Column::RegistrationNumber)),
                format!("{row}行目の登録番号「{number}」は{first}行目と重複しています。"),
                format!("Row {row}: the registration number \"{number}\" repeats row {first}."),
            ));
            continue;
        }
        first_row.insert(number.clone(), row);
        let entry = Entry {
            registration_number: number,
            service_name: cell(Column::ServiceName),
            provider: cell(Column::Provider),
            registration_date,
            expiry_date,
            remarks: cell(Column::Remarks),
        };
        for e in crate::validation::no_individual_numbers(&entry) {
            errors.push(FieldError {
                field: format!("rows[{row}].{}", e.field),
                reason: e.reason,
            });
        }
        entries.push(entry);
    }
    if entries.is_empty() && errors.is_empty() {
        errors.extend(file_error(
            "登録されたサービスの行がありません。",
            "The file has no rows of registered services.",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    entries.sort_by(|a, b| a.registration_number.cmp(&b.registration_number));
    Ok(Parsed {
        encoding,
        mapping: columns
            .into_iter()
            .map(|(c, (_, h))| (c.key().to_owned(), h))
            .collect(),
        entries,
    })
}

/// One field of an entry that changed between two imports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed<T> {
    pub registration_number: String,
    pub before: T,
    pub after: T,
}

/// What an import changed compared with the previous one; every list is ordered by
/// registration number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    pub added: Vec<Entry>,
    pub removed: Vec<Entry>,
    pub service_name_changed: Vec<Changed<String>>,
    pub provider_changed: Vec<Changed<String>>,
    pub registration_date_changed: Vec<Changed<NaiveDate>>,
    pub expiry_changed: Vec<Changed<NaiveDate>>,
    pub remarks_changed: Vec<Changed<String>>,
}

impl Diff {
    /// How many entries changed in any way (added, removed or with a changed field).
    pub fn changed_entries(&self) -> usize {
        let mut numbers: BTreeSet<&str> = BTreeSet::new();
        numbers.extend(
            self.service_name_changed
                .iter()
                .chain(&self.provider_changed)
                .chain(&self.remarks_changed)
                .map(|c| c.registration_number.as_str()),
        );
        numbers.extend(
            self.registration_date_changed
                .iter()
                .chain(&self.expiry_changed)
                .map(|c| c.registration_number.as_str()),
        );
        self.added.len() + self.removed.len() + numbers.len()
    }
}

/// The difference from `before` (the previous import; empty for the first) to `after`.
pub fn diff(before: &[Entry], after: &[Entry]) -> Diff {
    let old: BTreeMap<&str, &Entry> = before
        .iter()
        .map(|e| (e.registration_number.as_str(), e))
        .collect();
    let new: BTreeMap<&str, &Entry> = after
        .iter()
        .map(|e| (e.registration_number.as_str(), e))
        .collect();
    let mut d = Diff::default();
    for (number, e) in &new {
        let Some(o) = old.get(number) else {
            d.added.push((*e).clone());
            continue;
        };
        let changed = |b: &String, a: &String| Changed {
            registration_number: (*number).to_owned(),
            before: b.clone(),
            after: a.clone(),
        };
        if o.service_name != e.service_name {
            d.service_name_changed
                .push(changed(&o.service_name, &e.service_name));
        }
        if o.provider != e.provider {
            d.provider_changed.push(changed(&o.provider, &e.provider));
        }
        if o.remarks != e.remarks {
            d.remarks_changed.push(changed(&o.remarks, &e.remarks));
        }
        let day = |b: NaiveDate, a: NaiveDate| Changed {
            registration_number: (*number).to_owned(),
            before: b,
            after: a,
        };
        if o.registration_date != e.registration_date {
            d.registration_date_changed
                .push(day(o.registration_date, e.registration_date));
        }
        if o.expiry_date != e.expiry_date {
            d.expiry_changed.push(day(o.expiry_date, e.expiry_date));
        }
    }
    d.removed = old
        .iter()
        .filter(|(n, _)| !new.contains_key(*n))
        .map(|(_, e)| (*e).clone())
        .collect();
    d
}

/// Why an ISMAP evidence record disagrees with the current list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Flag {
    /// `ismap_not_listed`, `ismap_service_name_differs`, `ismap_expiry_differs`.
    pub code: &'static str,
    #[schema(value_type = Object)]
    pub message: Msg,
    /// The registration number on the record.
    pub registration_number: String,
    /// The list's entry for it, when there is one.
    #[schema(value_type = Option<Object>)]
    pub listed: Option<Entry>,
    /// The import that is the current list.
    pub import_id: String,
}

/// Registration numbers are compared trimmed and with ASCII letters upper-cased.
pub fn number_key(number: &str) -> String {
    number.trim().to_ascii_uppercase()
}

fn same_text(a: &str, b: &str) -> bool {
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    words(a) == words(b)
}

/// How an ISMAP record compares with the current list's entry for its registration number
/// (`None`: the number is not listed). Empty when it agrees. The record's verification is not
/// touched: the officer decides.
pub fn flags(record: &IsmapFields, listed: Option<&Entry>, import_id: &str) -> Vec<Flag> {
    let number = record.registration_number.trim().to_owned();
    let flag = |code, ja: String, en: String| Flag {
        code,
        message: Msg::new(ja, en),
        registration_number: number.clone(),
        listed: listed.cloned(),
        import_id: import_id.to_owned(),
    };
    let Some(entry) = listed else {
        return vec![flag(
            "ismap_not_listed",
            format!("登録番号「{number}」は現在のISMAPクラウドサービスリストにありません。"),
            format!("The registration number \"{number}\" is not in the current ISMAP cloud service list."),
        )];
    };
    let mut out = Vec::new();
    if !same_text(&record.service_name, &entry.service_name) {
        out.push(flag(
            "ismap_service_name_differs",
            format!(
                "サービス名称が現在のISMAPクラウドサービスリストと異なります(証跡: 「{}」、リスト: 「{}」)。",
                record.service_name, entry.service_name
            ),
            format!(
                "The service name differs from the current ISMAP cloud service list (evidence: \"{}\", list: \"{}\").",
                record.service_name, entry.service_name
            ),
        ));
    }
    if record.expiry_date != entry.expiry_date {
        out.push(flag(
            "ismap_expiry_differs",
            format!(
                "有効期限が現在のISMAPクラウドサービスリストと異なります(証跡: {}、リスト: {})。",
                record.expiry_date, entry.expiry_date
            ),
            format!(
                "The expiry differs from the current ISMAP cloud service list (evidence: {}, list: {}).",
                record.expiry_date, entry.expiry_date
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    const JA: &str = "登録番号,サービス名称,事業者名,登録日,有効期限,備考\r\n\
        C21-0005-2,\"Example Cloud, IaaS\",クラウド事業者株式会社,2021/3/12,2026/7/31,\r\n\
        C22-0100-1,ガバメント基盤,基盤株式会社,令和4年5月1日,令和9年8月31日,\"更新申請中\n(2026年)\"\r\n";

    #[test]
    fn japanese_headers_quoted_commas_newlines_and_dates_are_read() {
        let p = parse(JA.as_bytes(), None).unwrap();
        assert_eq!(p.encoding, Encoding::Utf8);
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.entries[0].service_name, "Example Cloud, IaaS");
        assert_eq!(p.entries[0].registration_date, d(2021, 3, 12));
        assert_eq!(p.entries[1].expiry_date, d(2027, 8, 31));
        assert_eq!(p.entries[1].remarks, "更新申請中\n(2026年)");
        assert_eq!(p.mapping["expiry_date"], "有効期限");
        assert!(!p.mapping.contains_key("unknown"));
    }

    #[test]
    fn a_bom_and_shift_jis_are_decoded_and_garbage_is_refused() {
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(JA.as_bytes());
        let p = parse(&bom, None).unwrap();
        assert_eq!(p.encoding, Encoding::Utf8Bom);
        assert_eq!(p.entries.len(), 2);
        let (sjis, _, bad) = encoding_rs::SHIFT_JIS.encode(JA);
        assert!(!bad);
        let p = parse(&sjis, None).unwrap();
        assert_eq!(p.encoding, Encoding::ShiftJis);
        assert_eq!(p.entries[1].service_name, "ガバメント基盤");
        let e = parse(b"\xff\xff\xfe\x80\x80", None).unwrap_err();
        assert_eq!(e[0].field, "file");
    }

    #[test]
    fn a_mapping_reads_other_layouts_and_names_unknown_fields() {
        let csv = "No.,Name,Vendor,From,Until\nC1,S,P,2024-01-01,2026-01-01\n";
        let mapping: BTreeMap<String, String> = [
            ("registration_number", "No."),
            ("service_name", "Name"),
            ("provider", "Vendor"),
            ("registration_date", "From"),
            ("expiry_date", "Until"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        let p = parse(csv.as_bytes(), Some(&mapping)).unwrap();
        assert_eq!(p.entries[0].registration_number, "C1");
        assert_eq!(p.entries[0].remarks, "");
        let mut wrong = mapping.clone();
        wrong.insert("colour".into(), "Name".into());
        wrong.insert("expiry_date".into(), "Ende".into());
        let e = parse(csv.as_bytes(), Some(&wrong)).unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["mapping.colour", "mapping.expiry_date"]);
    }

    #[test]
    fn bad_files_name_the_row_and_column() {
        let missing = "登録番号,サービス名称,事業者名,登録日\nC1,S,P,2024-01-01\n";
        let e = parse(missing.as_bytes(), None).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "columns.expiry_date");
        assert!(e[0].reason.ja.contains("有効期限"), "{:?}", e[0].reason);

        let bad = "登録番号,サービス名称,事業者名,登録日,有効期限\n\
            C1,S,P,2024-01-01,2026-01-01\n\
            C2,S,P,2024-01-01,2026-13-01\n\
            C1,T,P,2024-01-01,2026-01-01\n\
            C3,,P,2024-01-01,2026-01-01\n";
        let e = parse(bad.as_bytes(), None).unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rows[3].有効期限",
                "rows[4].登録番号",
                "rows[5].サービス名称"
            ]
        );
        assert!(e[0].reason.ja.starts_with("3行目の列「有効期限」"));
        assert!(e[0].reason.en.starts_with("Row 3:"));
        assert!(e[1].reason.ja.contains("2行目と重複"));
    }

    fn entry(n: &str, name: &str, until: NaiveDate, remarks: &str) -> Entry {
        Entry {
            registration_number: n.into(),
            service_name: name.into(),
            provider: "P".into(),
            registration_date: d(2021, 1, 1),
            expiry_date: until,
            remarks: remarks.into(),
        }
    }

    #[test]
    fn the_diff_lists_added_removed_and_changed_fields_in_order() {
        let before = vec![
            entry("C1", "A", d(2026, 1, 1), ""),
            entry("C2", "B", d(2026, 1, 1), ""),
            entry("C3", "C", d(2026, 1, 1), ""),
        ];
        let after = vec![
            entry("C1", "A2", d(2026, 1, 1), ""),
            entry("C3", "C", d(2027, 1, 1), "更新申請中"),
            entry("C4", "D", d(2026, 1, 1), ""),
        ];
        let x = diff(&before, &after);
        assert_eq!(x.added, vec![after[2].clone()]);
        assert_eq!(x.removed, vec![before[1].clone()]);
        assert_eq!(x.service_name_changed[0].after, "A2");
        assert_eq!(x.expiry_changed[0].registration_number, "C3");
        assert_eq!(x.remarks_changed[0].after, "更新申請中");
        assert!(x.provider_changed.is_empty());
        assert_eq!(x.changed_entries(), 4);
        assert_eq!(diff(&after, &after), Diff::default());
    }

    #[test]
    fn a_record_is_flagged_for_each_disagreement_and_not_when_it_agrees() {
        let listed = entry("C21-0005-2", "Example Cloud", d(2026, 7, 31), "");
        let record = IsmapFields {
            registration_number: "C21-0005-2".into(),
            service_name: "Example  Cloud".into(),
            provider: "P".into(),
            registration_date: d(2021, 3, 12),
            expiry_date: d(2026, 7, 31),
            scope_statement: String::new(),
            remarks: None,
            renewal_pending: false,
        };
        assert!(flags(&record, Some(&listed), "i").is_empty());
        let codes = |r: &IsmapFields, l| {
            flags(r, l, "i")
                .into_iter()
                .map(|f| f.code)
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(&record, None), ["ismap_not_listed"]);
        let mut other = record.clone();
        other.service_name = "Example Cloud for Government".into();
        other.expiry_date = d(2026, 8, 1);
        assert_eq!(
            codes(&other, Some(&listed)),
            ["ismap_service_name_differs", "ismap_expiry_differs"]
        );
    }
}
