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

/// What precedes the items: whose section it is and how many items follow (委託の有無).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiaHead {
    pub municipality: String,
    pub pia_file: String,
    pub count: usize,
}

impl PiaSection {
    pub fn head(&self) -> PiaHead {
        PiaHead {
            municipality: self.municipality.clone(),
            pia_file: self.pia_file.clone(),
            count: self.items.len(),
        }
    }
}

/// 委託の有無 as the form prints it.
pub fn consignment_summary(count: usize) -> String {
    if count == 0 {
        "[委託しない]".to_owned()
    } else {
        format!("[委託する] ({count}) 件")
    }
}

fn yes_no(subcontracts: bool) -> &'static str {
    if subcontracts {
        "[再委託する]"
    } else {
        "[再委託しない]"
    }
}

const SECTION_TITLE: &str = "4. 特定個人情報ファイルの取扱いの委託";

/// The section's first rows as (heading, value) pairs: its title and 委託の有無.
pub fn head_rows(head: &PiaHead) -> Vec<(String, String)> {
    vec![
        (SECTION_TITLE.to_owned(), String::new()),
        ("委託の有無".to_owned(), consignment_summary(head.count)),
    ]
}

/// One item's rows as (heading, value) pairs, in the form's order.
pub fn item_rows(i: &PiaItem) -> Vec<(String, String)> {
    vec![
        (format!("委託事項{}", i.number), i.title.clone()),
        ("①委託内容".to_owned(), i.content.clone()),
        (
            "②委託先における取扱者数".to_owned(),
            format!("[{}]", i.handlers),
        ),
        ("③委託先名".to_owned(), i.contractor.clone()),
        (
            "④再委託の有無".to_owned(),
            yes_no(i.subcontracts).to_owned(),
        ),
        ("⑤再委託の許諾方法".to_owned(), i.permission_method.clone()),
        ("⑥再委託事項".to_owned(), i.subcontracted_work.clone()),
    ]
}

/// The rows of the section as (heading, value) pairs, in the form's order; CSV, XLSX and HTML all
/// render these, so they cannot disagree.
pub fn rows(section: &PiaSection) -> Vec<(String, String)> {
    let mut out = head_rows(&section.head());
    out.extend(section.items.iter().flat_map(item_rows));
    out
}

/// One CSV cell as Excel reads it: quoted, quotes doubled, every newline a CRLF inside the
/// quotes.
pub(crate) fn csv_cell(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace('\n', "\r\n");
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn csv_rows(out: &mut String, rows: Vec<(String, String)>) {
    for (k, v) in rows {
        out.push_str(&csv_cell(&k));
        out.push(',');
        out.push_str(&csv_cell(&v));
        out.push_str("\r\n");
    }
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

fn html_rows(out: &mut String, rows: impl IntoIterator<Item = (String, String)>) {
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(&k), esc(&v));
    }
}

fn json_string(s: &str) -> Result<String, serde_json::Error> {
    serde_json::to_string(s)
}

/// The output formats of the section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiaFormat {
    Json,
    /// UTF-8 with a BOM, CRLF line ends, every field quoted: as Excel opens it.
    Csv,
    /// A standalone print view (A4, no script, no external resources), everything escaped.
    Html,
    /// One sheet for pasting into the official form: headings in A, text in B (wrapped).
    Xlsx,
}

/// Renders the section piece by piece — the head, then each item as it is read, then the end —
/// so that an export never holds more than one item's text (XLSX keeps its rows in a temporary
/// file, `constant_memory`, until `finish` zips them).
pub struct PiaRenderer {
    kind: Kind,
}

enum Kind {
    Json { first: bool },
    Csv,
    Html,
    Xlsx(Box<XlsxSheet>),
}

struct XlsxSheet {
    workbook: rust_xlsxwriter::Workbook,
    heading: rust_xlsxwriter::Format,
    wrap: rust_xlsxwriter::Format,
    next_row: u32,
}

impl XlsxSheet {
    fn new() -> Self {
        use rust_xlsxwriter::{Format, FormatAlign, Workbook};
        Self {
            workbook: Workbook::new(),
            heading: Format::new().set_bold().set_align(FormatAlign::Top),
            wrap: Format::new().set_text_wrap().set_align(FormatAlign::Top),
            next_row: 0,
        }
    }

    /// Sets the document properties (a fixed date, so the same data gives the same bytes) and
    /// adds the one sheet.
    fn start(&mut self, head: &PiaHead) -> Result<(), PiaRenderError> {
        use rust_xlsxwriter::{DocProperties, ExcelDateTime};
        let fixed = ExcelDateTime::from_ymd(2000, 1, 1)?;
        self.workbook.set_properties(
            &DocProperties::new()
                .set_title(format!("{} {}", head.municipality, head.pia_file))
                .set_creation_datetime(&fixed),
        );
        let sheet = self.workbook.add_worksheet_with_constant_memory();
        sheet.set_name("委託")?;
        sheet.set_column_width(0, 28)?;
        sheet.set_column_width(1, 90)?;
        self.rows(head_rows(head))
    }

    fn rows(&mut self, rows: Vec<(String, String)>) -> Result<(), PiaRenderError> {
        let sheet = self.workbook.worksheet_from_index(0)?;
        for (k, v) in rows {
            sheet.write_string_with_format(self.next_row, 0, k, &self.heading)?;
            sheet.write_string_with_format(self.next_row, 1, v, &self.wrap)?;
            self.next_row = self.next_row.saturating_add(1);
        }
        Ok(())
    }
}

/// Rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum PiaRenderError {
    #[error("XLSX: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl PiaRenderer {
    pub fn new(format: PiaFormat) -> Self {
        let kind = match format {
            PiaFormat::Json => Kind::Json { first: true },
            PiaFormat::Csv => Kind::Csv,
            PiaFormat::Html => Kind::Html,
            PiaFormat::Xlsx => Kind::Xlsx(Box::new(XlsxSheet::new())),
        };
        Self { kind }
    }

    /// What comes before the items.
    pub fn head(&mut self, head: &PiaHead) -> Result<Vec<u8>, PiaRenderError> {
        let mut out = String::new();
        match &mut self.kind {
            Kind::Json { .. } => {
                let _ = write!(
                    out,
                    "{{\"municipality\":{},\"pia_file\":{},\"items\":[",
                    json_string(&head.municipality)?,
                    json_string(&head.pia_file)?
                );
            }
            Kind::Csv => {
                out.push('\u{feff}');
                csv_rows(&mut out, vec![("項目".to_owned(), "記載内容".to_owned())]);
                csv_rows(&mut out, head_rows(head));
            }
            Kind::Html => {
                let _ = write!(
                    out,
                    "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>{} {}</title>\
                     <style>@page{{size:A4;margin:15mm}}body{{font-family:sans-serif;font-size:10.5pt}}\
                     table{{border-collapse:collapse;width:100%}}th,td{{border:1px solid #000;padding:4px;\
                     vertical-align:top;text-align:left}}th{{width:28%;background:#eee}}\
                     tr{{break-inside:avoid}}</style></head><body><h1>{}</h1><p>{}</p><table>",
                    esc(&head.municipality),
                    esc(&head.pia_file),
                    esc(SECTION_TITLE),
                    esc(&format!(
                        "{} 特定個人情報ファイル: {}",
                        head.municipality, head.pia_file
                    )),
                );
                html_rows(&mut out, head_rows(head).into_iter().skip(1));
            }
            Kind::Xlsx(sheet) => sheet.start(head)?,
        }
        Ok(out.into_bytes())
    }

    /// One item.
    pub fn item(&mut self, item: &PiaItem) -> Result<Vec<u8>, PiaRenderError> {
        let mut out = String::new();
        match &mut self.kind {
            Kind::Json { first } => {
                if !std::mem::take(first) {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(item)?);
            }
            Kind::Csv => csv_rows(&mut out, item_rows(item)),
            Kind::Html => html_rows(&mut out, item_rows(item)),
            Kind::Xlsx(sheet) => sheet.rows(item_rows(item))?,
        }
        Ok(out.into_bytes())
    }

    /// What comes after the items (for XLSX, the whole file).
    pub fn finish(self) -> Result<Vec<u8>, PiaRenderError> {
        Ok(match self.kind {
            Kind::Json { .. } => b"]}".to_vec(),
            Kind::Csv => Vec::new(),
            Kind::Html => b"</table></body></html>\n".to_vec(),
            Kind::Xlsx(mut sheet) => sheet.workbook.save_to_buffer()?,
        })
    }
}

/// The whole section in one format, from a section in memory (tests and small sections).
pub fn render(section: &PiaSection, format: PiaFormat) -> Result<Vec<u8>, PiaRenderError> {
    let mut renderer = PiaRenderer::new(format);
    let mut out = renderer.head(&section.head())?;
    for item in &section.items {
        out.extend(renderer.item(item)?);
    }
    out.extend(renderer.finish()?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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
        assert_eq!(consignment_summary(s.items.len()), "[委託する] (2) 件");
    }

    #[test]
    fn the_csv_opens_in_excel_with_bom_crlf_and_quoted_commas_and_newlines() {
        let csv = String::from_utf8(render(&section(), PiaFormat::Csv).unwrap()).unwrap();
        assert!(csv.starts_with('\u{feff}'));
        assert!(
            !csv.replace("\r\n", "").contains('\n'),
            "every newline is CRLF"
        );
        assert!(csv.contains("\"⑥再委託事項\",\"システムの運用, \"\"一部\"\"\r\n保守"));
        assert_eq!(
            render(&section(), PiaFormat::Csv).unwrap(),
            render(&section(), PiaFormat::Csv).unwrap(),
            "reproducible"
        );
    }

    #[test]
    fn the_xlsx_reads_back_cell_by_cell_and_is_reproducible() {
        use calamine::{Data, Reader, Xlsx};
        let bytes = render(&section(), PiaFormat::Xlsx).unwrap();
        assert_eq!(
            bytes,
            render(&section(), PiaFormat::Xlsx).unwrap(),
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
        let html = String::from_utf8(render(&s, PiaFormat::Html).unwrap()).unwrap();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn the_json_rendered_piece_by_piece_is_the_section_serialised() {
        let s = section();
        let pieces: Value = serde_json::from_slice(&render(&s, PiaFormat::Json).unwrap()).unwrap();
        assert_eq!(pieces, serde_json::to_value(&s).unwrap());
        let empty = PiaSection {
            items: Vec::new(),
            ..section()
        };
        let pieces: Value =
            serde_json::from_slice(&render(&empty, PiaFormat::Json).unwrap()).unwrap();
        assert_eq!(pieces, serde_json::to_value(&empty).unwrap());
    }

    #[test]
    fn the_head_counts_the_items_and_a_section_without_any_says_so() {
        let mut s = section();
        let csv = String::from_utf8(render(&s, PiaFormat::Csv).unwrap()).unwrap();
        assert!(csv.contains("\"委託の有無\",\"[委託する] (2) 件\"\r\n"));
        s.items.clear();
        let html = String::from_utf8(render(&s, PiaFormat::Html).unwrap()).unwrap();
        assert!(html.contains("<th>委託の有無</th><td>[委託しない]</td>"));
        assert!(html.ends_with("</table></body></html>\n"));
    }
}
