//! The PIA report's consignment section, 「4. 特定個人情報ファイルの取扱いの委託」, for one PIA
//! file (特定個人情報ファイル) of a municipality, in the layout of the 目黒区 seed: 委託の有無 with
//! the count, then for each 委託事項 ①委託内容 ②委託先における取扱者数 ③委託先名 ④再委託の有無
//! ⑤再委託の許諾方法 ⑥再委託事項.

use std::fmt::Write as _;

use serde::Serialize;

/// The section for one PIA file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PiaSection {
    pub municipality: String,
    pub pia_file: String,
    pub items: Vec<PiaItem>,
}

/// One 委託事項 as the form lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PiaItem {
    /// 委託事項N (from 1, in the order the items were registered).
    pub number: usize,
    pub title: String,
    /// ①委託内容
    pub content: String,
    /// ②委託先における取扱者数 (the bracket's label)
    pub handlers: String,
    /// ③委託先名, with the tier below named as the seed does
    /// (「東京都国民健康保険団体連合会 (東京都国民健康保険団体連合会は、国保中央会に再委託する)」).
    pub contractor: String,
    /// ④再委託の有無
    pub subcontracts: bool,
    /// ⑤再委託の許諾方法 (empty when there is no subcontract)
    pub permission_method: String,
    /// ⑥再委託事項 (empty when there is no subcontract)
    pub subcontracted_work: String,
}

/// One permitted node below tier 1, as the section needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermittedNode {
    pub tier: i32,
    pub contractor: String,
    pub parent_contractor: String,
    pub scope_of_work: String,
    /// The node's contractor hosts the environment and handles data (a cloud tier).
    pub cloud: bool,
}

/// The conditions the seeds add to ⑤ where a cloud provider is in the chain (目黒区 委託事項6).
pub const CLOUD_CONDITIONS: &str = "クラウドサービスを利用する場合は、ISMAPクラウドサービスリストに登録されたサービスであること、ISO/IEC 27017又はCSマーク・ゴールド及びISO/IEC 27018の認証を取得していること、データを日本国内に保存すること、並びに責任共有モデルに係る書面(OS以上のレイヤーの管理方法)を提出することを条件とする。";

/// Builds one item from its tier-1 contractor and its permitted nodes below (any order; they are
/// sorted by tier and text so the output is stable).
pub fn item(
    number: usize,
    title: &str,
    content: &str,
    handlers: &str,
    tier1: &str,
    policy: &str,
    mut below: Vec<PermittedNode>,
) -> PiaItem {
    below.sort_by(|a, b| {
        (a.tier, &a.contractor, &a.scope_of_work).cmp(&(b.tier, &b.contractor, &b.scope_of_work))
    });
    let subcontracts = !below.is_empty();
    let mut contractor = tier1.to_owned();
    let tier2: Vec<&PermittedNode> = below.iter().filter(|n| n.tier == 2).collect();
    if !tier2.is_empty() {
        let names: Vec<&str> = tier2.iter().map(|n| n.contractor.as_str()).collect();
        let _ = write!(contractor, " ({tier1}は、{}に再委託する)", names.join("、"));
    }
    let mut permission_method = String::new();
    let mut subcontracted_work = String::new();
    if subcontracts {
        permission_method.push_str(policy);
        if below.iter().any(|n| n.cloud) {
            permission_method.push('\n');
            permission_method.push_str(CLOUD_CONDITIONS);
        }
        let mut parts: Vec<String> = Vec::new();
        for n in &below {
            if n.tier == 2 {
                parts.push(n.scope_of_work.clone());
            } else {
                let kind = if n.tier == 3 {
                    "再々委託"
                } else {
                    "再委託"
                };
                parts.push(format!(
                    "({}から{}{}する「{}」を含む)",
                    n.parent_contractor, n.contractor, kind, n.scope_of_work
                ));
            }
        }
        subcontracted_work = parts.join(" ");
    }
    PiaItem {
        number,
        title: title.to_owned(),
        content: content.to_owned(),
        handlers: handlers.to_owned(),
        contractor,
        subcontracts,
        permission_method,
        subcontracted_work,
    }
}

/// 委託の有無 as the form prints it.
pub fn consignment_summary(section: &PiaSection) -> String {
    if section.items.is_empty() {
        "[委託しない]".to_owned()
    } else {
        format!("[委託する] ({}) 件", section.items.len())
    }
}

fn yes_no(subcontracts: bool) -> &'static str {
    if subcontracts {
        "[再委託する]"
    } else {
        "[再委託しない]"
    }
}

/// The rows of the section as (heading, value) pairs, in the form's order; CSV, XLSX and HTML all
/// render these, so they cannot disagree.
pub fn rows(section: &PiaSection) -> Vec<(String, String)> {
    let mut out = vec![(
        "4. 特定個人情報ファイルの取扱いの委託".to_owned(),
        String::new(),
    )];
    out.push(("委託の有無".to_owned(), consignment_summary(section)));
    for i in &section.items {
        out.push((format!("委託事項{}", i.number), i.title.clone()));
        out.push(("①委託内容".to_owned(), i.content.clone()));
        out.push((
            "②委託先における取扱者数".to_owned(),
            format!("[{}]", i.handlers),
        ));
        out.push(("③委託先名".to_owned(), i.contractor.clone()));
        out.push((
            "④再委託の有無".to_owned(),
            yes_no(i.subcontracts).to_owned(),
        ));
        out.push(("⑤再委託の許諾方法".to_owned(), i.permission_method.clone()));
        out.push(("⑥再委託事項".to_owned(), i.subcontracted_work.clone()));
    }
    out
}

/// One CSV cell as Excel reads it: quoted, quotes doubled, every newline a CRLF inside the
/// quotes.
pub(crate) fn csv_cell(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace('\n', "\r\n");
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// CSV as Excel opens it: UTF-8 with a BOM, CRLF line ends, every field quoted.
pub fn to_csv(section: &PiaSection) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    out.push_str(&csv_cell("項目"));
    out.push(',');
    out.push_str(&csv_cell("記載内容"));
    out.push_str("\r\n");
    for (k, v) in rows(section) {
        out.push_str(&csv_cell(&k));
        out.push(',');
        out.push_str(&csv_cell(&v));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// XLSX for pasting into the official form: one sheet, headings in A, text in B (wrapped). The
/// document properties carry a fixed date so the same data gives the same bytes.
pub fn to_xlsx(section: &PiaSection) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, FormatAlign, Workbook};
    let mut workbook = Workbook::new();
    let fixed = ExcelDateTime::from_ymd(2000, 1, 1)?;
    workbook.set_properties(
        &DocProperties::new()
            .set_title(format!("{} {}", section.municipality, section.pia_file))
            .set_creation_datetime(&fixed),
    );
    let heading = Format::new().set_bold().set_align(FormatAlign::Top);
    let wrap = Format::new().set_text_wrap().set_align(FormatAlign::Top);
    let sheet = workbook.add_worksheet();
    sheet.set_name("委託")?;
    sheet.set_column_width(0, 28)?;
    sheet.set_column_width(1, 90)?;
    for (r, (k, v)) in rows(section).iter().enumerate() {
        let r = u32::try_from(r).unwrap_or(u32::MAX);
        sheet.write_string_with_format(r, 0, k, &heading)?;
        sheet.write_string_with_format(r, 1, v, &wrap)?;
    }
    workbook.save_to_buffer()
}

/// Escapes text for the print views (a newline becomes `<br>`).
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// A standalone print view (A4, no script, no external resources), everything escaped.
pub fn to_html(section: &PiaSection) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>{} {}</title>\
         <style>@page{{size:A4;margin:15mm}}body{{font-family:sans-serif;font-size:10.5pt}}\
         table{{border-collapse:collapse;width:100%}}th,td{{border:1px solid #000;padding:4px;\
         vertical-align:top;text-align:left}}th{{width:28%;background:#eee}}\
         tr{{break-inside:avoid}}</style></head><body><h1>{}</h1><p>{}</p><table>",
        esc(&section.municipality),
        esc(&section.pia_file),
        esc("4. 特定個人情報ファイルの取扱いの委託"),
        esc(&format!(
            "{} 特定個人情報ファイル: {}",
            section.municipality, section.pia_file
        )),
    );
    for (k, v) in rows(section).into_iter().skip(1) {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(&k), esc(&v));
    }
    out.push_str("</table></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> PiaSection {
        let below = vec![
            PermittedNode {
                tier: 3,
                contractor: "クラウド事業者".into(),
                parent_contractor: "国保中央会".into(),
                scope_of_work: "基盤の提供".into(),
                cloud: true,
            },
            PermittedNode {
                tier: 2,
                contractor: "国保中央会".into(),
                parent_contractor: "東京都国保連".into(),
                scope_of_work: "システムの運用, \"一部\"\n保守".into(),
                cloud: false,
            },
        ];
        PiaSection {
            municipality: "目黒区".into(),
            pia_file: "国民健康保険関係情報ファイル".into(),
            items: vec![
                item(
                    1,
                    "資格管理",
                    "資格情報の集約",
                    "10人以上50人未満",
                    "東京都国保連",
                    "書面で許諾する。",
                    below,
                ),
                item(
                    2,
                    "外部保管",
                    "バックアップの保管",
                    "10人未満",
                    "保管会社",
                    "書面で許諾する。",
                    vec![],
                ),
            ],
        }
    }

    #[test]
    fn an_item_names_its_subcontractors_and_their_work_in_tier_order() {
        let s = section();
        let i = &s.items[0];
        assert_eq!(
            i.contractor,
            "東京都国保連 (東京都国保連は、国保中央会に再委託する)"
        );
        assert!(i.subcontracts);
        assert!(i.permission_method.starts_with("書面で許諾する。\n"));
        assert!(
            i.permission_method.ends_with(CLOUD_CONDITIONS),
            "a cloud tier adds the conditions"
        );
        assert_eq!(
            i.subcontracted_work,
            "システムの運用, \"一部\"\n保守 (国保中央会からクラウド事業者再々委託する「基盤の提供」を含む)"
        );
        let none = &s.items[1];
        assert_eq!(
            (none.subcontracts, none.permission_method.as_str()),
            (false, "")
        );
        assert_eq!(consignment_summary(&s), "[委託する] (2) 件");
    }

    #[test]
    fn the_csv_opens_in_excel_with_bom_crlf_and_quoted_commas_and_newlines() {
        let csv = String::from_utf8(to_csv(&section())).unwrap();
        assert!(csv.starts_with('\u{feff}'));
        assert!(
            !csv.replace("\r\n", "").contains('\n'),
            "every newline is CRLF"
        );
        assert!(csv.contains("\"⑥再委託事項\",\"システムの運用, \"\"一部\"\"\r\n保守"));
        assert_eq!(to_csv(&section()), to_csv(&section()), "reproducible");
    }

    #[test]
    fn the_xlsx_reads_back_cell_by_cell_and_is_reproducible() {
        use calamine::{Data, Reader, Xlsx};
        let bytes = to_xlsx(&section()).unwrap();
        assert_eq!(
            bytes,
            to_xlsx(&section()).unwrap(),
            "the same bytes each time"
        );
        let mut book: Xlsx<_> =
            calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
        let range = book.worksheet_range("委託").unwrap();
        let cell = |r: u32, c: u32| match range.get_value((r, c)) {
            Some(Data::String(s)) => s.clone(),
            other => format!("{other:?}"),
        };
        let expected = rows(&section());
        assert_eq!(range.height(), expected.len());
        for (r, (k, v)) in expected.iter().enumerate() {
            let r = u32::try_from(r).unwrap();
            assert_eq!(&cell(r, 0), k);
            if !v.is_empty() {
                assert_eq!(&cell(r, 1), v);
            }
        }
    }

    #[test]
    fn the_print_view_escapes_everything() {
        let mut s = section();
        s.items[1].contractor = "<script>alert(1)</script>".into();
        let html = to_html(&s);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
