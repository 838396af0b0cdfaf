//! A single-file HTML page from our own report Markdown, figures inlined.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;

/// A single-file HTML version of our own Markdown (headings, tables, lists, paragraphs) with the PNGs inlined.
pub fn html(md: &str, image_dir: &Path) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    // `**bold**` is the only inline markup our reports use: odd-numbered pieces between markers are bold.
    let inline = |s: &str| -> String {
        escape(s)
            .split("**")
            .enumerate()
            .map(|(k, piece)| {
                if k % 2 == 1 {
                    format!("<b>{piece}</b>")
                } else {
                    piece.to_string()
                }
            })
            .collect()
    };
    let mut body = String::new();
    let mut in_table = false;
    for line in md.lines() {
        if line.starts_with('|') {
            if line.starts_with("|---") {
                continue;
            }
            if !in_table {
                body.push_str("<table>");
                in_table = true;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
            body.push_str("<tr>");
            for c in cells {
                let _ = write!(body, "<td>{}</td>", inline(c.trim()));
            }
            body.push_str("</tr>\n");
            continue;
        }
        if in_table {
            body.push_str("</table>\n");
            in_table = false;
        }
        if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(body, "<h2>{}</h2>", inline(h));
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(body, "<h1>{}</h1>", inline(h));
        } else if let Some(item) = line.strip_prefix("- ") {
            let _ = writeln!(body, "<li>{}</li>", inline(item));
        } else if let (Some(start), true) = (line.find("]("), line.starts_with("![")) {
            let file = line[start + 2..].trim_end_matches(')');
            let data = std::fs::read(image_dir.join(file)).unwrap_or_default();
            let _ = writeln!(
                body,
                "<img alt=\"{file}\" style=\"max-width:100%\" src=\"data:image/png;base64,{}\">",
                base64::engine::general_purpose::STANDARD.encode(data)
            );
        } else if !line.trim().is_empty() {
            let _ = writeln!(body, "<p>{}</p>", inline(line));
        }
    }
    if in_table {
        body.push_str("</table>\n");
    }
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>WeatherLens study</title><style>\
         body{{font-family:sans-serif;max-width:60em;margin:auto}}td{{border:1px solid #ccc;padding:2px 6px}}\
         table{{border-collapse:collapse}}</style></head><body>{body}</body></html>"
    )
}
