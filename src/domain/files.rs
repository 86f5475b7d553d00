//! Uploaded evidence files: which contents are accepted, and how a client's file name is shown
//! and offered for download. The type is decided by the content (magic bytes), never by the name,
//! and a name is only ever displayed: it is never used as a path.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::error::{FieldError, Msg};

/// The default size limit of one uploaded file, 20 MB.
pub const DEFAULT_MAX_FILE_BYTES: usize = 20 * 1024 * 1024;

/// The most characters a displayed file name keeps (its extension included).
pub const MAX_FILENAME_CHARS: usize = 100;

/// The only kinds of file evidence may be uploaded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaType {
    Pdf,
    Png,
    Jpeg,
}

impl MediaType {
    /// The type its content shows, if it is one of the accepted ones.
    pub fn sniff(content: &[u8]) -> Option<Self> {
        if content.starts_with(b"%PDF-") {
            Some(Self::Pdf)
        } else if content.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if content.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else {
            None
        }
    }

    /// The canonical media type, for `Content-Type`.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }

    /// The canonical file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Png => "png",
            Self::Jpeg => "jpg",
        }
    }

    /// Every extension a name of this type may end with (compared case-insensitively).
    fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Pdf => &["pdf"],
            Self::Png => &["png"],
            Self::Jpeg => &["jpg", "jpeg"],
        }
    }
}

/// Why an upload is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRefusal {
    /// No content at all.
    Empty,
    /// Larger than the configured limit (in bytes).
    TooLarge { limit: usize },
    /// A program (ELF, Windows PE, Mach-O, a script with `#!`), whatever its name says.
    Executable,
    /// Anything else that is not PDF, PNG or JPEG.
    NotAccepted,
}

impl FileRefusal {
    /// A stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Empty => "file_empty",
            Self::TooLarge { .. } => "file_too_large",
            Self::Executable => "file_executable",
            Self::NotAccepted => "file_type_not_accepted",
        }
    }

    /// The reason in both UI languages.
    pub fn message(self) -> Msg {
        match self {
            Self::Empty => Msg::new("ファイルが空です", "The file is empty"),
            Self::TooLarge { limit } => {
                let mb = limit.div_ceil(1024 * 1024);
                Msg::new(
                    format!("ファイルが大きすぎます(上限 {mb} MB)"),
                    format!("The file is too large (at most {mb} MB)"),
                )
            }
            Self::Executable => Msg::new(
                "実行ファイルはアップロードできません。PDF、PNG、JPEGのみ受け付けます",
                "Executable files cannot be uploaded; only PDF, PNG and JPEG are accepted",
            ),
            Self::NotAccepted => Msg::new(
                "PDF、PNG、JPEGのファイルのみアップロードできます",
                "Only PDF, PNG and JPEG files can be uploaded",
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

/// Whether `content` starts like a program.
fn looks_executable(content: &[u8]) -> bool {
    const MAGICS: [&[u8]; 8] = [
        b"\x7fELF",
        b"MZ",
        b"#!",
        &[0xFE, 0xED, 0xFA, 0xCE],
        &[0xFE, 0xED, 0xFA, 0xCF],
        &[0xCE, 0xFA, 0xED, 0xFE],
        &[0xCF, 0xFA, 0xED, 0xFE],
        // Mach-O universal binaries and Java classes.
        &[0xCA, 0xFE, 0xBA, 0xBE],
    ];
    let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    MAGICS.iter().any(|magic| content.starts_with(magic))
}

/// Checks an upload and tells its type: not empty, at most `max_bytes`, and PDF, PNG or JPEG by
/// its content.
pub fn inspect(content: &[u8], max_bytes: usize) -> Result<MediaType, FileRefusal> {
    if content.is_empty() {
        return Err(FileRefusal::Empty);
    }
    if content.len() > max_bytes {
        return Err(FileRefusal::TooLarge { limit: max_bytes });
    }
    if looks_executable(content) {
        return Err(FileRefusal::Executable);
    }
    MediaType::sniff(content).ok_or(FileRefusal::NotAccepted)
}

/// Characters that reorder or hide text (bidirectional overrides, zero-width characters), with
/// which `invoice\u{202E}fdp.exe` would read as `invoiceexe.pdf`.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// The name to show and offer for download for a file a client called `name`, whose content is
/// `media_type`: only the last path component (after `/` or `\`), without control and invisible
/// formatting characters, with `"<>:|?*` replaced by `_`, runs of dots collapsed and leading or
/// trailing dots and spaces removed, ending with an extension of its real type (`report.exe`
/// holding a PDF becomes `report.exe.pdf`), at most [`MAX_FILENAME_CHARS`] characters;
/// `file.<ext>` when nothing usable is left.
pub fn safe_display_filename(name: &str, media_type: MediaType) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut cleaned = String::with_capacity(last.len());
    for c in last.chars() {
        if c.is_control() || is_invisible_format(c) || (c == '.' && cleaned.ends_with('.')) {
            continue;
        }
        cleaned.push(if "\"<>:|?*".contains(c) { '_' } else { c });
    }
    let cleaned = cleaned
        .trim_start()
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace());

    let (stem, extension) = match cleaned.rsplit_once('.') {
        Some((stem, ext))
            if media_type
                .extensions()
                .contains(&ext.to_ascii_lowercase().as_str()) =>
        {
            (stem, ext)
        }
        _ => (cleaned, media_type.extension()),
    };
    // A leading dot would hide the file on Unix-like systems.
    let stem = stem
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end();
    if stem.is_empty() {
        return format!("file.{}", media_type.extension());
    }
    let room = MAX_FILENAME_CHARS.saturating_sub(extension.chars().count() + 1);
    let stem: String = stem.chars().take(room).collect();
    format!("{}.{extension}", stem.trim_end())
}

/// Whether RFC 5987 lets `b` stand unencoded in an extended parameter value (`attr-char`).
fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b)
}

/// A `Content-Disposition` value that makes browsers save the file rather than show it:
/// `attachment; filename="ascii-fallback"; filename*=UTF-8''percent-encoded`. The ASCII fallback
/// replaces everything outside printable ASCII, and the quote, backslash and percent sign, with
/// `_`; the extended form keeps the name exactly.
pub fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| match c {
            '"' | '\\' | '%' => '_',
            ' '..='~' => c,
            _ => '_',
        })
        .collect();
    let fallback = if fallback.is_empty() {
        "file".to_owned()
    } else {
        fallback
    };
    let mut encoded = String::with_capacity(filename.len() * 3);
    for &b in filename.as_bytes() {
        if is_attr_char(b) {
            encoded.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(encoded, "%{b:02X}");
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDF: &[u8] = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F'];

    #[test]
    fn pdf_png_and_jpeg_are_recognised_by_their_content() {
        assert_eq!(inspect(PDF, DEFAULT_MAX_FILE_BYTES), Ok(MediaType::Pdf));
        assert_eq!(inspect(PNG, DEFAULT_MAX_FILE_BYTES), Ok(MediaType::Png));
        assert_eq!(inspect(JPEG, DEFAULT_MAX_FILE_BYTES), Ok(MediaType::Jpeg));
        assert_eq!(MediaType::Pdf.mime(), "application/pdf");
        assert_eq!(MediaType::Png.mime(), "image/png");
        assert_eq!(
            (MediaType::Jpeg.mime(), MediaType::Jpeg.extension()),
            ("image/jpeg", "jpg")
        );
    }

    #[test]
    fn a_renamed_executable_is_refused_as_an_executable() {
        let elf = b"\x7fELF\x02\x01\x01\0\0\0";
        let pe = b"MZ\x90\0\x03\0\0\0\x04\0";
        let script = b"#!/bin/sh\nrm -rf /\n";
        let script_with_bom = b"\xEF\xBB\xBF#!/usr/bin/env python3\n";
        let mach_o = &[0xCF, 0xFA, 0xED, 0xFE, 7, 0, 0, 1];
        for content in [&elf[..], pe, script, script_with_bom, mach_o] {
            assert_eq!(
                inspect(content, DEFAULT_MAX_FILE_BYTES),
                Err(FileRefusal::Executable)
            );
        }
    }

    #[test]
    fn other_contents_are_not_accepted_whatever_their_name() {
        for content in [
            &b"PK\x03\x04"[..],
            b"GIF89a",
            b"<html>",
            b"hello",
            b" %PDF-1.7",
            b"\x89PNG",
        ] {
            assert_eq!(
                inspect(content, DEFAULT_MAX_FILE_BYTES),
                Err(FileRefusal::NotAccepted)
            );
        }
    }

    #[test]
    fn empty_and_oversized_files_are_refused() {
        assert_eq!(inspect(b"", 10), Err(FileRefusal::Empty));
        assert_eq!(inspect(PDF, 10), Err(FileRefusal::TooLarge { limit: 10 }));
        assert_eq!(inspect(&PDF[..10], 10), Ok(MediaType::Pdf));
        let refusal = FileRefusal::TooLarge {
            limit: DEFAULT_MAX_FILE_BYTES,
        };
        assert_eq!(refusal.code(), "file_too_large");
        assert!(refusal.message().ja.contains("20 MB"));
        assert_eq!(refusal.field_error("file").field, "file");
    }

    #[test]
    fn path_components_are_stripped_from_names() {
        let pdf = MediaType::Pdf;
        assert_eq!(safe_display_filename("../../etc/passwd", pdf), "passwd.pdf");
        assert_eq!(
            safe_display_filename("..\\..\\Windows\\system32\\証明書.pdf", pdf),
            "証明書.pdf"
        );
        assert_eq!(
            safe_display_filename("/abs/path/ISMAP登録.PDF", pdf),
            "ISMAP登録.PDF"
        );
        assert_eq!(safe_display_filename("..", pdf), "file.pdf");
        assert_eq!(safe_display_filename("dir/", pdf), "file.pdf");
        assert_eq!(safe_display_filename("a..b...pdf", pdf), "a.b.pdf");
    }

    #[test]
    fn control_and_invisible_characters_are_removed() {
        let pdf = MediaType::Pdf;
        assert_eq!(
            safe_display_filename("evil\r\nSet-Cookie: x.pdf", pdf),
            "evilSet-Cookie_ x.pdf"
        );
        assert_eq!(
            safe_display_filename("invoice\u{202E}fdp.exe", pdf),
            "invoicefdp.exe.pdf"
        );
        assert_eq!(safe_display_filename("\u{0}\u{7f}", pdf), "file.pdf");
        assert_eq!(
            safe_display_filename("a\"b<c>|?*.pdf", pdf),
            "a_b_c____.pdf"
        );
    }

    #[test]
    fn the_name_ends_with_an_extension_of_the_real_type() {
        assert_eq!(
            safe_display_filename("report.exe", MediaType::Pdf),
            "report.exe.pdf"
        );
        assert_eq!(safe_display_filename("scan", MediaType::Png), "scan.png");
        assert_eq!(
            safe_display_filename("photo.JPEG", MediaType::Jpeg),
            "photo.JPEG"
        );
        assert_eq!(
            safe_display_filename("photo.png", MediaType::Jpeg),
            "photo.png.jpg"
        );
        assert_eq!(safe_display_filename(".pdf", MediaType::Pdf), "file.pdf");
        assert_eq!(safe_display_filename("   ", MediaType::Jpeg), "file.jpg");
    }

    #[test]
    fn long_names_are_shortened_keeping_the_extension() {
        let long = format!("{}.pdf", "証".repeat(300));
        let shown = safe_display_filename(&long, MediaType::Pdf);
        assert_eq!(shown.chars().count(), MAX_FILENAME_CHARS);
        assert!(shown.ends_with("証.pdf"));
    }

    #[test]
    fn content_disposition_offers_an_ascii_fallback_and_the_exact_utf8_name() {
        assert_eq!(
            content_disposition("ISMAP登録 2026.pdf"),
            "attachment; filename=\"ISMAP__ 2026.pdf\"; \
             filename*=UTF-8''ISMAP%E7%99%BB%E9%8C%B2%202026.pdf"
        );
        assert_eq!(
            content_disposition("a\"b\\c%d;e.pdf"),
            "attachment; filename=\"a_b_c_d;e.pdf\"; filename*=UTF-8''a%22b%5Cc%25d%3Be.pdf"
        );
        assert_eq!(
            content_disposition(""),
            "attachment; filename=\"file\"; filename*=UTF-8''"
        );
    }
}
