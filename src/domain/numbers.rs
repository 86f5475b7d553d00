//! Corporate numbers (法人番号), which organisations carry, and individual numbers (個人番号),
//! which this system must never store (BRIEF §6; 目黒区 III-4: 個人番号の転記を禁止).
//!
//! Both check digits follow the ministerial ordinances: 法人番号 — 平成26年財務省令第70号 art. 2,
//! 個人番号 — 平成26年総務省令第85号 art. 5.

use std::fmt;
use std::ops::Range;

use serde_json::Value;

use crate::error::{FieldError, Msg};

/// The check digit of a corporate number from its 12 base digits, most significant first:
/// 9 − (Σ Pn×Qn mod 9), with Pn the n-th base digit counted from the least significant and Qn 1
/// for odd n, 2 for even n. It is always 1–9, so a corporate number never starts with 0.
pub fn corporate_check_digit(base: &[u8; 12]) -> u8 {
    let sum: u32 = base
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &p)| u32::from(p) * if i % 2 == 0 { 1 } else { 2 })
        .sum();
    // `sum % 9` is below 9, so the result is 1..=9.
    9 - (sum % 9) as u8
}

/// The check digit of an individual number from its first 11 digits, most significant first:
/// 11 − (Σ Pn×Qn mod 11), 0 when the remainder is 0 or 1, with Pn the n-th digit counted from
/// the least significant and Qn = n+1 for n ≤ 6, n−5 for n ≥ 7.
pub fn individual_check_digit(base: &[u8; 11]) -> u8 {
    let sum: u32 = base
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &p)| {
            let n = i as u32 + 1;
            u32::from(p) * if n <= 6 { n + 1 } else { n - 5 }
        })
        .sum();
    match sum % 11 {
        0 | 1 => 0,
        // The remainder is 2..=10 here, so the digit is 1..=9.
        r => 11 - r as u8,
    }
}

/// Why a text is not a corporate number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorporateNumberError {
    /// Not exactly 13 digits (half- or full-width, nothing else).
    NotThirteenDigits,
    /// 13 digits whose first digit is not the check digit of the other 12.
    WrongCheckDigit,
}

impl CorporateNumberError {
    /// The reason in both UI languages.
    pub fn message(self) -> Msg {
        match self {
            Self::NotThirteenDigits => Msg::new(
                "法人番号は13桁の数字で入力してください",
                "A corporate number has exactly 13 digits",
            ),
            Self::WrongCheckDigit => Msg::new(
                "法人番号のチェックデジットが正しくありません。番号を確認してください",
                "The corporate number's check digit is wrong; check the number",
            ),
        }
    }

    /// This reason as the field error of `field`.
    pub fn field_error(self, field: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: self.message(),
        }
    }
}

impl fmt::Display for CorporateNumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message().en)
    }
}

impl std::error::Error for CorporateNumberError {}

/// A corporate number (法人番号) whose check digit is right, held as 13 half-width digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CorporateNumber(String);

impl CorporateNumber {
    /// Parses 13 digits (half- or full-width, surrounding whitespace ignored) and checks the
    /// check digit.
    pub fn parse(text: &str) -> Result<Self, CorporateNumberError> {
        let digits: Vec<u8> = text
            .trim()
            .chars()
            .map(digit_value)
            .collect::<Option<_>>()
            .ok_or(CorporateNumberError::NotThirteenDigits)?;
        let (check, base) = digits
            .split_first()
            .ok_or(CorporateNumberError::NotThirteenDigits)?;
        let base: &[u8; 12] = base
            .try_into()
            .map_err(|_| CorporateNumberError::NotThirteenDigits)?;
        if corporate_check_digit(base) != *check {
            return Err(CorporateNumberError::WrongCheckDigit);
        }
        Ok(Self(digits.iter().map(|d| char::from(b'0' + d)).collect()))
    }

    /// The 13 half-width digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorporateNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `text` is a corporate number with a correct check digit (see [`CorporateNumber::parse`]).
pub fn validate_corporate_number(text: &str) -> Result<(), CorporateNumberError> {
    CorporateNumber::parse(text).map(|_| ())
}

/// The value of a half-width (`0`–`9`) or full-width (`０`–`９`) digit.
fn digit_value(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '０'..='９' => u8::try_from(u32::from(c) - u32::from('０')).ok(),
        _ => None,
    }
}

/// Characters that may separate the 4-4-4 groups of a written individual number.
fn is_group_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{3000}' | '-' | '‐' | '‑' | '‒' | '–' | '—' | '−' | '－' | 'ー'
    )
}

/// Where in `text` (a byte range) the first valid individual number stands, if any.
///
/// A candidate is 12 digits (half- or full-width) written together or as three groups of four
/// separated by one space or hyphen (ASCII or full-width), and not part of a longer number:
/// no digit right before or after it, nor a separator and a digit (so the first 12 digits of a
/// 4-4-4-4 card number are not taken for one). A candidate counts only when its last digit is
/// the check digit, so other 12-digit numbers (order numbers, phone numbers) pass through.
/// A canonical UUID (8-4-4-4-12 hexadecimal digits: this product's identifiers) is an
/// identifier, not a number, and is skipped whole.
pub fn find_individual_number(text: &str) -> Option<Range<usize>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let is_alnum = |i: usize| {
        chars
            .get(i)
            .is_some_and(|&(_, c)| c.is_ascii_alphanumeric())
    };
    let is_hex = |i: usize| chars.get(i).is_some_and(|&(_, c)| c.is_ascii_hexdigit());
    let uuid_at = |start: usize| {
        if start > 0 && is_alnum(start - 1) {
            return false;
        }
        let mut at = start;
        for (group, len) in [8, 4, 4, 4, 12].into_iter().enumerate() {
            if group > 0 {
                if chars.get(at).map(|&(_, c)| c) != Some('-') {
                    return false;
                }
                at += 1;
            }
            if !(at..at + len).all(is_hex) {
                return false;
            }
            at += len;
        }
        !is_alnum(at)
    };
    let is_digit = |i: usize| chars.get(i).is_some_and(|&(_, c)| digit_value(c).is_some());
    let is_sep = |i: usize| chars.get(i).is_some_and(|&(_, c)| is_group_separator(c));
    let run_len = |start: usize| (start..).take_while(|&i| is_digit(i)).count();
    let end_byte = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);

    let mut i = 0;
    while i < chars.len() {
        if uuid_at(i) {
            i += 36;
            continue;
        }
        if !is_digit(i) {
            i += 1;
            continue;
        }
        let run = run_len(i);
        let grouped_before = i >= 2 && is_sep(i - 1) && is_digit(i - 2);
        // The candidate's span in `chars`, separators included.
        let candidate = if run == 12 {
            Some(i..i + 12)
        } else if run == 4
            && !grouped_before
            && is_sep(i + 4)
            && run_len(i + 5) == 4
            && is_sep(i + 9)
            && run_len(i + 10) == 4
            && !(is_sep(i + 14) && is_digit(i + 15))
        {
            Some(i..i + 14)
        } else {
            None
        };
        if let Some(span) = candidate {
            let digits: Vec<u8> = chars[span.clone()]
                .iter()
                .filter_map(|&(_, c)| digit_value(c))
                .collect();
            if is_valid_individual_digits(&digits) {
                return Some(chars[span.start].0..end_byte(span.end));
            }
        }
        i += run;
    }
    None
}

/// Whether twelve digit values form an individual number with a correct check digit.
fn is_valid_individual_digits(digits: &[u8]) -> bool {
    match digits.split_last() {
        Some((check, base)) => {
            <&[u8; 11]>::try_from(base).is_ok_and(|base| individual_check_digit(base) == *check)
        }
        None => false,
    }
}

/// Whether `text` contains a valid individual number (see [`find_individual_number`]).
pub fn contains_individual_number(text: &str) -> bool {
    find_individual_number(text).is_some()
}

/// The field error for a field that holds an individual number; it never repeats the number.
pub fn individual_number_error(field: impl Into<String>) -> FieldError {
    FieldError::new(
        field,
        "個人番号と思われる12桁の番号は入力できません",
        "An individual number (My Number) must not be entered",
    )
}

/// One field error for every string (or integer) in `value` that contains a valid individual
/// number, named by its path below `path` (`reason`, `structure_chart.tiers[1].manager`). A key
/// that contains one is reported at the path of its object, so the number never reaches a
/// message.
pub fn scan_json_for_individual_numbers(value: &Value, path: &str) -> Vec<FieldError> {
    let mut found = Vec::new();
    scan(value, path, &mut found);
    found
}

fn scan(value: &Value, path: &str, found: &mut Vec<FieldError>) {
    match value {
        Value::String(s) => {
            if contains_individual_number(s) {
                found.push(individual_number_error(path));
            }
        }
        Value::Number(n) => {
            if n.is_u64() && contains_individual_number(&n.to_string()) {
                found.push(individual_number_error(path));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                scan(item, &format!("{path}[{i}]"), found);
            }
        }
        Value::Object(map) => {
            if map.keys().any(|k| contains_individual_number(k)) {
                found.push(individual_number_error(path));
            }
            for (key, item) in map {
                if contains_individual_number(key) {
                    continue;
                }
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                scan(item, &child, found);
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_identifier_whose_digits_would_make_one_is_not_an_individual_number() {
        let number = individual("12345678901");
        // A UUIDv7 whose last group, or whose middle groups, happen to be all digits.
        let last = format!("0196f7a0-1b2c-7d3e-8f40-{number}");
        let middle = format!(
            "0196f7a0-{}-{}-{}-abcdef012345",
            &number[..4],
            &number[4..8],
            &number[8..]
        );
        for id in [&last, &middle] {
            assert_eq!(find_individual_number(id), None, "{id}");
            assert!(
                scan_json_for_individual_numbers(&json!({ "parent_node_ids": [id] }), "")
                    .is_empty()
            );
        }
        // Not a UUID: the number is found, whatever surrounds it.
        assert!(contains_individual_number(&format!("id-{number}")));
        assert!(contains_individual_number(&format!(
            "x0196f7a0-1b2c-7d3e-8f40-{number}"
        )));
        assert!(contains_individual_number(&format!("{last} {number}")));
    }

    /// Builds a valid individual number from 11 digits with the formula above.
    fn individual(base: &str) -> String {
        let digits: Vec<u8> = base.bytes().map(|b| b - b'0').collect();
        let base: [u8; 11] = digits.try_into().unwrap();
        format!(
            "{}{}",
            base.iter().map(|d| d.to_string()).collect::<String>(),
            individual_check_digit(&base)
        )
    }

    /// The same number with its check digit changed.
    fn wrong_check(number: &str) -> String {
        let (base, check) = number.split_at(11);
        let check = (check.parse::<u8>().unwrap() + 1) % 10;
        format!("{base}{check}")
    }

    fn full_width(ascii: &str) -> String {
        ascii
            .chars()
            .map(|c| match c {
                '0'..='9' => {
                    char::from_u32(u32::from(c) - u32::from('0') + u32::from('０')).unwrap()
                }
                other => other,
            })
            .collect()
    }

    #[test]
    fn corporate_numbers_published_with_their_check_digit_are_accepted() {
        // The ordinance's worked example and numbers of real bodies found in public sources.
        for number in [
            "7123456789012",
            "4011001098993",
            "2120901007402",
            "7010705000725",
        ] {
            assert_eq!(validate_corporate_number(number), Ok(()), "{number}");
        }
    }

    #[test]
    fn the_corporate_check_digit_follows_the_ordinance() {
        // 2×1 + 1×2 + 0×1 + 9×2 + 8×1 + 7×2 + 6×1 + 5×2 + 4×1 + 3×2 + 2×1 + 1×2 = 74; 9 − 74 mod 9 = 7.
        assert_eq!(
            corporate_check_digit(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]),
            7
        );
        // A sum divisible by 9 gives 9, never 0.
        assert_eq!(corporate_check_digit(&[0; 12]), 9);
    }

    #[test]
    fn a_corporate_number_with_a_wrong_check_digit_is_refused() {
        assert_eq!(
            validate_corporate_number("8123456789012"),
            Err(CorporateNumberError::WrongCheckDigit)
        );
        assert_eq!(
            validate_corporate_number("0123456789012"),
            Err(CorporateNumberError::WrongCheckDigit)
        );
    }

    #[test]
    fn a_corporate_number_must_be_thirteen_digits_and_nothing_else() {
        for text in [
            "",
            "712345678901",
            "71234567890123",
            "7123-4567-8901-2",
            "712345678901a",
        ] {
            assert_eq!(
                validate_corporate_number(text),
                Err(CorporateNumberError::NotThirteenDigits),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_full_width_corporate_number_is_kept_in_half_width_digits() {
        let parsed = CorporateNumber::parse(" ７１２３４５６７８９０１２ ").unwrap();
        assert_eq!(parsed.as_str(), "7123456789012");
        assert_eq!(parsed.to_string(), "7123456789012");
    }

    #[test]
    fn the_reason_names_the_field_in_both_languages() {
        let error = CorporateNumberError::WrongCheckDigit.field_error("corporate_number");
        assert_eq!(error.field, "corporate_number");
        assert!(error.reason.ja.contains("チェックデジット"));
        assert!(error.reason.en.contains("check digit"));
    }

    #[test]
    fn the_individual_check_digit_follows_the_ordinance() {
        // Weights from the right: 2 3 4 5 6 7 2 3 4 5 6, so
        // 1×2 + 0×3 + 9×4 + 8×5 + 7×6 + 6×7 + 5×2 + 4×3 + 3×4 + 2×5 + 1×6 = 212; 212 mod 11 = 3.
        assert_eq!(
            individual_check_digit(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]),
            8
        );
        // A remainder of 0 or 1 gives 0: 0 → 0; 6×2 = 12, 12 mod 11 = 1 → 0.
        assert_eq!(individual_check_digit(&[0; 11]), 0);
        // Remainder 2 gives 9: 5×2 + 1×3 = 13, 13 mod 11 = 2.
        assert_eq!(
            individual_check_digit(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6]),
            0
        );
        assert_eq!(
            individual_check_digit(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 5]),
            9
        );
    }

    #[test]
    fn a_valid_individual_number_is_found_in_free_text() {
        let number = individual("12345678901");
        assert_eq!(number, "123456789018");
        let text = format!("担当者の番号は{number}です");
        let found = find_individual_number(&text).unwrap();
        assert_eq!(&text[found], number);
    }

    #[test]
    fn twelve_digits_with_a_wrong_check_digit_pass_through() {
        let number = wrong_check(&individual("12345678901"));
        assert_eq!(find_individual_number(&number), None);
        assert_eq!(find_individual_number(&format!("注文番号 {number}")), None);
    }

    #[test]
    fn a_valid_individual_number_inside_a_longer_digit_run_is_not_one() {
        let number = individual("98765432109");
        assert_eq!(find_individual_number(&format!("1{number}")), None);
        assert_eq!(find_individual_number(&format!("{number}0")), None);
        assert_eq!(find_individual_number(&number[..11]), None);
    }

    #[test]
    fn full_width_digits_are_recognised() {
        let number = full_width(&individual("31415926535"));
        let text = format!("番号：{number}。");
        let found = find_individual_number(&text).unwrap();
        assert_eq!(&text[found], number);
    }

    #[test]
    fn the_four_four_four_grouping_with_spaces_or_hyphens_is_recognised() {
        let n = individual("27182818284");
        let (a, b, c) = (&n[..4], &n[4..8], &n[8..]);
        for text in [
            format!("{a} {b} {c}"),
            format!("{a}-{b}-{c}"),
            format!("番号 {a}－{b}－{c} を記載"),
            full_width(&format!("{a}\u{3000}{b}\u{3000}{c}")),
        ] {
            let found = find_individual_number(&text).unwrap_or_else(|| panic!("{text}"));
            let digits: String = text[found]
                .chars()
                .filter(|c| !is_group_separator(*c))
                .collect();
            assert!(digits == n || digits == full_width(&n), "{text}");
        }
    }

    #[test]
    fn other_groupings_and_longer_grouped_numbers_are_not_taken_for_one() {
        let n = individual("27182818284");
        let (a, b, c) = (&n[..4], &n[4..8], &n[8..]);
        assert_eq!(find_individual_number(&format!("{a}-{b}-{c}-1234")), None);
        assert_eq!(find_individual_number(&format!("1234-{a}-{b}-{c}")), None);
        assert_eq!(
            find_individual_number(&format!("{}-{}", &n[..6], &n[6..])),
            None
        );
        assert_eq!(find_individual_number(&format!("{a}--{b}-{c}")), None);
        assert_eq!(
            find_individual_number(&format!("{a}-{b}-{}", wrong_check(&n)[8..].to_owned())),
            None
        );
    }

    #[test]
    fn a_later_valid_number_is_found_after_an_invalid_one() {
        let valid = individual("11122233344");
        let invalid = wrong_check(&valid);
        let text = format!("{invalid} と {valid}");
        let found = find_individual_number(&text).unwrap();
        assert_eq!(&text[found], valid);
    }

    #[test]
    fn the_json_scan_names_every_field_path_without_the_number() {
        let n = individual("12345678901");
        let body = json!({
            "reason": format!("担当 {n}"),
            "scope": "給付事務",
            "structure_chart": {"tiers": [
                {"manager": "山田"},
                {"manager": format!("佐藤({}-{}-{})", &n[..4], &n[4..8], &n[8..])}
            ]},
            "amount": n.parse::<u64>().unwrap(),
            "note": wrong_check(&n),
        });
        let errors = scan_json_for_individual_numbers(&body, "");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["amount", "reason", "structure_chart.tiers[1].manager"]
        );
        for e in &errors {
            assert_eq!(e.reason.ja, "個人番号と思われる12桁の番号は入力できません");
            assert_eq!(
                e.reason.en,
                "An individual number (My Number) must not be entered"
            );
            assert!(
                !e.reason.ja.contains(&n) && !e.reason.en.contains(&n) && !e.field.contains(&n)
            );
        }
    }

    #[test]
    fn the_json_scan_prefixes_the_given_path_and_hides_a_number_used_as_a_key() {
        let n = individual("55555555555");
        let body = json!({"fields": {n.clone(): "x"}, "list": [format!("{n}")]});
        let errors = scan_json_for_individual_numbers(&body, "application");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["application.fields", "application.list[0]"]);
    }

    #[test]
    fn a_clean_document_has_no_findings() {
        let body =
            json!({"a": "令和8年度-再委-0042", "b": [1, 2.5, true, null], "c": "03-1234-5678"});
        assert!(scan_json_for_individual_numbers(&body, "").is_empty());
    }
}
