//! Just enough Markdown for the tests: fenced code blocks, tables (with the heading they sit under), sentences of
//! prose and inline code spans.

/// One Markdown document.
pub struct Doc {
    pub path: String,
    pub text: String,
}

/// A fenced code block.
pub struct CodeBlock {
    /// 1-based line of the opening fence.
    pub line: usize,
    pub lines: Vec<String>,
}

/// A table: its header cells, its rows, and the heading it sits under.
pub struct Table {
    pub heading: String,
    pub line: usize,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The header cells, lower-cased, for recognising a kind of table by its columns.
    pub fn columns(&self) -> Vec<String> {
        self.header.iter().map(|cell| cell.to_lowercase()).collect()
    }

    /// Whether the table's header starts with these column names (case-insensitive).
    pub fn starts_with_columns(&self, names: &[&str]) -> bool {
        let columns = self.columns();
        columns.len() >= names.len() && names.iter().zip(&columns).all(|(name, column)| column == name)
    }
}

/// A sentence of prose (paragraphs joined across their line breaks), or one table row.
pub struct Sentence {
    /// 1-based line where it starts.
    pub line: usize,
    pub text: String,
}

impl Doc {
    pub fn new(path: &str, text: String) -> Doc {
        Doc {
            path: path.to_owned(),
            text,
        }
    }

    /// `path:line`, for failure messages.
    pub fn at(&self, line: usize) -> String {
        format!("{}:{line}", self.path)
    }

    pub fn code_blocks(&self) -> Vec<CodeBlock> {
        let mut blocks = Vec::new();
        let mut open: Option<CodeBlock> = None;
        for (index, line) in self.text.lines().enumerate() {
            let trimmed = line.trim_start();
            match open.as_mut() {
                None if trimmed.starts_with("```") => {
                    open = Some(CodeBlock {
                        line: index + 1,
                        lines: Vec::new(),
                    });
                }
                None => {}
                Some(_) if trimmed.starts_with("```") => blocks.push(open.take().unwrap()),
                Some(block) => block.lines.push(line.to_owned()),
            }
        }
        blocks
    }

    /// The lines outside code blocks, with their 1-based numbers.
    pub fn prose_lines(&self) -> Vec<(usize, &str)> {
        let mut in_code = false;
        let mut out = Vec::new();
        for (index, line) in self.text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
            } else if !in_code {
                out.push((index + 1, line));
            }
        }
        out
    }

    pub fn tables(&self) -> Vec<Table> {
        let mut tables: Vec<Table> = Vec::new();
        let mut heading = String::new();
        let mut current: Option<Table> = None;
        for (line_number, line) in self.prose_lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') {
                heading = trimmed.to_owned();
            }
            if !trimmed.starts_with('|') {
                tables.extend(current.take());
                continue;
            }
            let cells = split_row(trimmed);
            match current.as_mut() {
                None => {
                    current = Some(Table {
                        heading: heading.clone(),
                        line: line_number,
                        header: cells,
                        rows: Vec::new(),
                    })
                }
                // The delimiter row under the header.
                Some(_)
                    if cells
                        .iter()
                        .all(|c| !c.is_empty() && c.chars().all(|ch| "-: ".contains(ch))) => {}
                Some(table) => table.rows.push(cells),
            }
        }
        tables.extend(current);
        tables
    }

    /// Sentences of the prose and the rows of its tables; headings and code blocks are left out.
    pub fn sentences(&self) -> Vec<Sentence> {
        let mut out = Vec::new();
        let mut paragraph = String::new();
        let mut start = 0;
        let flush = |paragraph: &mut String, start: usize, out: &mut Vec<Sentence>| {
            for text in split_sentences(paragraph) {
                out.push(Sentence { line: start, text });
            }
            paragraph.clear();
        };
        for (line_number, line) in self.prose_lines() {
            let trimmed = line.trim();
            let starts_item = trimmed.starts_with("- ") || trimmed.starts_with("* ") || starts_numbered(trimmed);
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('|') || starts_item {
                flush(&mut paragraph, start, &mut out);
            }
            if trimmed.starts_with('|') {
                let row = split_row(trimmed).join(" | ");
                out.push(Sentence {
                    line: line_number,
                    text: row,
                });
            } else if !trimmed.is_empty() && !trimmed.starts_with('#') {
                if paragraph.is_empty() {
                    start = line_number;
                } else {
                    paragraph.push(' ');
                }
                paragraph.push_str(trimmed);
            }
        }
        flush(&mut paragraph, start, &mut out);
        out
    }

    /// The text under the first heading that starts with `heading`, up to the next heading of the same or a higher
    /// level.
    pub fn section(&self, heading: &str) -> String {
        let level = heading.chars().take_while(|c| *c == '#').count();
        let mut out = String::new();
        let mut inside = false;
        let mut in_code = false;
        for line in self.text.lines() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
            }
            if !in_code && line.starts_with('#') {
                let this_level = line.chars().take_while(|c| *c == '#').count();
                if inside && this_level <= level {
                    break;
                }
                if line.starts_with(heading) {
                    inside = true;
                    continue;
                }
            }
            if inside {
                out.push_str(line);
                out.push('\n');
            }
        }
        assert!(inside, "{} has no heading {heading:?}", self.path);
        out
    }
}

fn starts_numbered(line: &str) -> bool {
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && line[digits..].starts_with(". ")
}

/// The cells of a table row; a `|` inside an inline code span does not split.
pub fn split_row(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut in_code = false;
    for ch in inner.chars() {
        match ch {
            '`' => {
                in_code = !in_code;
                cell.push(ch);
            }
            '|' if !in_code => cells.push(std::mem::take(&mut cell).trim().to_owned()),
            _ => cell.push(ch),
        }
    }
    cells.push(cell.trim().to_owned());
    cells
}

/// A paragraph cut after each `. ` that a capital letter, a digit or a code span follows.
fn split_sentences(paragraph: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = paragraph.chars().collect();
    for (i, ch) in chars.iter().enumerate() {
        current.push(*ch);
        let ends = *ch == '.'
            && chars.get(i + 1) == Some(&' ')
            && chars
                .get(i + 2)
                .is_some_and(|next| next.is_uppercase() || next.is_ascii_digit() || *next == '`');
        if ends {
            out.push(std::mem::take(&mut current).trim().to_owned());
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

/// The inline code spans of a text, without their backticks.
pub fn code_spans(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The text with its inline code spans removed, for searching words that are prose.
pub fn without_code_spans(text: &str) -> String {
    text.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}
