//! CSV and HTML writing helpers shared by the report builders.
//!
//! Both writers escape every cell: CSV per RFC 4180 (quote fields containing a comma,
//! quote, CR or LF, doubling inner quotes; a leading `=`, `+`, `-` or `@` in a text cell
//! is prefixed with `'` so spreadsheet programs do not evaluate it), HTML by replacing
//! `& < > " '` with entities.

use std::fmt::Write as _;

/// RFC 4180 CSV builder.
#[derive(Debug, Default)]
pub(crate) struct Csv {
    out: String,
}

impl Csv {
    pub(crate) fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            push_csv_cell(&mut self.out, c.as_ref());
        }
        self.out.push_str("\r\n");
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

fn push_csv_cell(out: &mut String, cell: &str) {
    let formula = cell.starts_with(['=', '+', '@'])
        || (cell.starts_with('-') && cell.parse::<f64>().is_err());
    let needs_quotes = formula || cell.contains([',', '"', '\r', '\n']);
    if !needs_quotes {
        out.push_str(cell);
        return;
    }
    out.push('"');
    if formula {
        out.push('\'');
    }
    out.push_str(&cell.replace('"', "\"\""));
    out.push('"');
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{font-family:Arial,Helvetica,sans-serif;font-size:10pt;color:#000;margin:1.5em}
h1{font-size:14pt;margin:0 0 .2em}
.meta{margin:0 0 1em;color:#333}
section{margin:0 0 1.2em;page-break-inside:avoid;break-inside:avoid}
h2{font-size:11pt;margin:.6em 0 .3em;border-bottom:1px solid #000}
table{border-collapse:collapse;width:100%;margin:0 0 .5em}
th,td{border:1px solid #666;padding:2px 5px;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#eee}
.note{font-size:8pt;color:#333}
@page{size:letter landscape;margin:12mm}
@media print{body{margin:0}th{background:#eee;-webkit-print-color-adjust:exact;print-color-adjust:exact}}
";

/// Builder of a self-contained, print-ready HTML document.
#[derive(Debug)]
pub(crate) struct Html {
    out: String,
}

impl Html {
    /// Starts a document; `title` and `meta` are escaped.
    pub(crate) fn new(title: &str, meta: &[(&str, String)]) -> Self {
        let mut out = String::with_capacity(16 * 1024);
        let t = esc(title);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>{t}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n\
             <p class=\"meta\">"
        );
        for (i, (k, v)) in meta.iter().enumerate() {
            if i > 0 {
                out.push_str(" &middot; ");
            }
            let _ = write!(out, "<strong>{}</strong>: {}", esc(k), esc(v));
        }
        out.push_str("</p>\n");
        Html { out }
    }

    pub(crate) fn open_section(&mut self, heading: &str) {
        let _ = writeln!(self.out, "<section>\n<h2>{}</h2>", esc(heading));
    }

    pub(crate) fn close_section(&mut self) {
        self.out.push_str("</section>\n");
    }

    /// A table; the columns listed in `numeric` are right-aligned.
    pub(crate) fn table<S: AsRef<str>>(
        &mut self,
        header: &[&str],
        numeric: &[usize],
        rows: &[Vec<S>],
    ) {
        self.out.push_str("<table>\n<thead><tr>");
        for (i, h) in header.iter().enumerate() {
            let class = if numeric.contains(&i) {
                " class=\"num\""
            } else {
                ""
            };
            let _ = write!(self.out, "<th{class}>{}</th>", esc(h));
        }
        self.out.push_str("</tr></thead>\n<tbody>\n");
        for row in rows {
            self.out.push_str("<tr>");
            for (i, cell) in row.iter().enumerate() {
                let class = if numeric.contains(&i) {
                    " class=\"num\""
                } else {
                    ""
                };
                let _ = write!(self.out, "<td{class}>{}</td>", esc(cell.as_ref()));
            }
            self.out.push_str("</tr>\n");
        }
        self.out.push_str("</tbody>\n</table>\n");
    }

    pub(crate) fn note(&mut self, text: &str) {
        let _ = writeln!(self.out, "<p class=\"note\">{}</p>", esc(text));
    }

    pub(crate) fn finish(mut self) -> String {
        self.out.push_str("</body>\n</html>\n");
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        let mut c = Csv::default();
        c.row(&[
            "a",
            "b,c",
            "say \"hi\"",
            "line\nbreak",
            "=SUM(A1)",
            "-12",
            "-x",
        ]);
        assert_eq!(
            c.finish(),
            "a,\"b,c\",\"say \"\"hi\"\"\",\"line\nbreak\",\"'=SUM(A1)\",-12,\"'-x\"\r\n"
        );
    }

    #[test]
    fn html_escaping() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        let mut h = Html::new("T<1>", &[("Op<", "A&B".to_string())]);
        h.table(&["h"], &[], &[vec!["<b>"]]);
        let doc = h.finish();
        assert!(doc.contains("<title>T&lt;1&gt;</title>"));
        assert!(doc.contains("<td>&lt;b&gt;</td>"));
        assert!(!doc.contains("<b>"));
    }
}
