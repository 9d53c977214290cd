//! DICOM test material: the project's catalogue of the public test files
//! (`tests/data/dicom-catalog.tsv`, fetched into `.test-data/dicom/` by
//! `scripts/fetch-test-data`) and multipart/related bodies as a PACS sends.

use std::collections::HashMap;

use crate::repo_root;

/// One catalogue row, by column name.
#[derive(Debug, Clone)]
pub struct CatalogueRow(pub HashMap<String, String>);

impl CatalogueRow {
    /// A column's value ("" when empty).
    pub fn get(&self, column: &str) -> &str {
        self.0.get(column).map(String::as_str).unwrap_or("")
    }

    /// The file's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        read(self.get("file"))
    }
}

/// Every row of the catalogue.
pub fn catalogue() -> Vec<CatalogueRow> {
    let path = repo_root().join("tests/data/dicom-catalog.tsv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            CatalogueRow(
                header
                    .iter()
                    .zip(l.split('\t'))
                    .map(|(h, v)| ((*h).to_owned(), v.to_owned()))
                    .collect(),
            )
        })
        .collect()
}

/// A catalogued file's bytes, by its catalogue path.
pub fn read(file: &str) -> Vec<u8> {
    let path = repo_root().join(".test-data/dicom").join(file);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-test-data)", path.display()))
}

/// A `multipart/related` body with `parts` (content type, bytes) and the
/// closing delimiter, as Orthanc sends it (no CRLF after the closing line).
pub fn multipart(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (content_type, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                bytes.len()
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--").as_bytes());
    body
}

/// The content type of a STOW-RS request with this boundary.
pub fn stow_content_type(boundary: &str) -> String {
    format!("multipart/related; type=\"application/dicom\"; boundary={boundary}")
}

/// Splits a `multipart/related` response into its parts' bodies.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<Vec<u8>> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let Some(head_end) = find(rest, b"\r\n\r\n") else {
            break;
        };
        let headers = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let len: usize = headers
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap();
        let data = &rest[head_end + 4..head_end + 4 + len];
        parts.push(data.to_vec());
        rest = &rest[head_end + 4 + len..];
    }
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The values of a DICOM JSON attribute `tag` in `object`.
pub fn values<'a>(object: &'a serde_json::Value, tag: &str) -> Vec<&'a serde_json::Value> {
    object[tag]["Value"]
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default()
}
