//! docs/benchmarks.md's cold-start headline (the first table of its section) is the newest run's: no table below it
//! is dated later, and every figure of the headline is in the newest run's own table. A new run added below an old
//! headline is the drift this catches.

use crate::markdown::{Doc, Table};
use crate::repo;

const COLD_START: &str = "## Cold start on the local cluster";

#[test]
fn the_cold_start_headline_is_the_newest_run() {
    let doc = repo::doc("docs/benchmarks.md");
    let section = Doc::new("docs/benchmarks.md", doc.section(COLD_START));
    let dated: Vec<(String, Table)> = dated_tables(&section);
    assert!(
        dated.len() >= 2,
        "the cold-start section has dated runs: {}",
        dated.len()
    );
    let (headline_date, headline) = &dated[0];
    let newest_date = dated.iter().map(|(date, _)| date).max().unwrap();
    let newest = dated
        .iter()
        .rev()
        .find(|(date, _)| date == newest_date)
        .map(|(_, t)| t)
        .unwrap();
    assert_eq!(
        headline_date, newest_date,
        "the cold-start headline is the run of {headline_date}, but the section has a run of {newest_date}: make the \
         headline that run's figures"
    );
    let newest_text = newest.rows.iter().flatten().cloned().collect::<Vec<_>>().join(" | ");
    let missing: Vec<String> = headline
        .rows
        .iter()
        .flat_map(|row| row.iter().skip(1))
        .flat_map(|cell| figures(cell))
        .filter(|figure| !figures(&newest_text).contains(figure))
        .collect();
    assert!(
        missing.is_empty(),
        "figures of the cold-start headline that the newest run's table ({newest_date}) does not have: {missing:?}"
    );
}

/// The section's tables, each with the last date (YYYY-MM-DD) written between the previous table and it.
fn dated_tables(section: &Doc) -> Vec<(String, Table)> {
    let lines: Vec<&str> = section.text.lines().collect();
    let mut out = Vec::new();
    let mut from = 0;
    for table in section.tables() {
        let before = lines[from..table.line - 1].join("\n");
        from = table.line - 1 + 2 + table.rows.len(); // past its header, delimiter and rows
        if let Some(date) = dates(&before).last() {
            out.push((date.clone(), table));
        }
    }
    out
}

fn dates(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(10)
        .filter(|w| {
            w.iter().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    *c == '-'
                } else {
                    c.is_ascii_digit()
                }
            })
        })
        .map(|w| w.iter().collect())
        .collect()
}

/// The numbers of a text, as written (`1,019`, `0.87`).
fn figures(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
        .map(|t| t.trim_matches(|c| c == ',' || c == '.'))
        .filter(|t| t.chars().any(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}
