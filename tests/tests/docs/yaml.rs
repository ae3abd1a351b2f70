//! A tolerant reader of the YAML subset the chart's templates use: block mappings and sequences, flow lists and flow
//! maps of scalars, comments. Helm lines (`{{ ... }}`) are skipped, so a template reads as the chart rendered
//! without its templated values. Every scalar stays a string. Not a YAML parser: only what the tests need.

use serde_json::{Map, Value};

/// The documents of a multi-document YAML text.
pub fn documents(text: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut lines = Vec::new();
    for raw in text.lines() {
        if raw.trim() == "---" {
            docs.push(parse(std::mem::take(&mut lines)));
            continue;
        }
        if raw.contains("{{") {
            continue; // a Helm action: its value is left out
        }
        let text = strip_comment(raw);
        if text.trim().is_empty() {
            continue;
        }
        lines.push(Line {
            indent: text.len() - text.trim_start().len(),
            text: text.trim().to_owned(),
        });
    }
    docs.push(parse(lines));
    docs.retain(|doc| !doc.is_null());
    docs
}

struct Line {
    indent: usize,
    text: String,
}

fn parse(mut lines: Vec<Line>) -> Value {
    if lines.is_empty() {
        return Value::Null;
    }
    let mut pos = 0;
    let indent = lines[0].indent;
    block(&mut lines, &mut pos, indent)
}

fn block(lines: &mut [Line], pos: &mut usize, indent: usize) -> Value {
    if is_item(&lines[*pos].text) {
        sequence(lines, pos, indent)
    } else {
        mapping(lines, pos, indent)
    }
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

fn mapping(lines: &mut [Line], pos: &mut usize, indent: usize) -> Value {
    let mut map = Map::new();
    while *pos < lines.len() && lines[*pos].indent >= indent {
        if lines[*pos].indent > indent || is_item(&lines[*pos].text) {
            *pos += 1; // out of place (a skipped Helm line's child): tolerated, ignored
            continue;
        }
        let Some((key, rest)) = split_key(&lines[*pos].text) else {
            *pos += 1;
            continue;
        };
        *pos += 1;
        let value = if !rest.is_empty() {
            scalar_or_flow(&rest)
        } else if *pos < lines.len()
            && (lines[*pos].indent > indent || (lines[*pos].indent == indent && is_item(&lines[*pos].text)))
        {
            let child = lines[*pos].indent;
            block(lines, pos, child)
        } else {
            Value::Null
        };
        map.insert(key, value);
    }
    Value::Object(map)
}

fn sequence(lines: &mut [Line], pos: &mut usize, indent: usize) -> Value {
    let mut items = Vec::new();
    while *pos < lines.len() && lines[*pos].indent == indent && is_item(&lines[*pos].text) {
        let rest = lines[*pos].text[1..].trim().to_owned();
        if rest.is_empty() {
            *pos += 1;
            if *pos < lines.len() && lines[*pos].indent > indent {
                let child = lines[*pos].indent;
                items.push(block(lines, pos, child));
            } else {
                items.push(Value::Null);
            }
        } else if split_key(&rest).is_some() {
            // `- key: value` opens a mapping whose keys sit two columns further in.
            lines[*pos] = Line {
                indent: indent + 2,
                text: rest,
            };
            items.push(mapping(lines, pos, indent + 2));
        } else {
            items.push(scalar_or_flow(&rest));
            *pos += 1;
        }
    }
    Value::Array(items)
}

/// `key: rest` (rest possibly empty), unless the text is a scalar or a flow collection.
fn split_key(text: &str) -> Option<(String, String)> {
    if text.starts_with(['[', '{', '"', '\'']) {
        return None;
    }
    let colon = text
        .find(": ")
        .or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
    Some((unquote(&text[..colon]), text[colon + 1..].trim().to_owned()))
}

fn scalar_or_flow(text: &str) -> Value {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return Value::Array(split_flow(inner).iter().map(|item| scalar_or_flow(item)).collect());
    }
    if let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        let mut map = Map::new();
        for entry in split_flow(inner) {
            if let Some((key, value)) = entry.split_once(':') {
                map.insert(unquote(key.trim()), scalar_or_flow(value.trim()));
            }
        }
        return Value::Object(map);
    }
    Value::String(unquote(text))
}

/// Items of a flow collection, split at top-level commas.
fn split_flow(inner: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut quote: Option<char> = None;
    let mut item = String::new();
    for ch in inner.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(ch),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                items.push(std::mem::take(&mut item).trim().to_owned());
                continue;
            }
            _ => {}
        }
        item.push(ch);
    }
    if !item.trim().is_empty() {
        items.push(item.trim().to_owned());
    }
    items
}

fn unquote(text: &str) -> String {
    let text = text.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
            return inner.to_owned();
        }
    }
    text.to_owned()
}

/// The line without a `#` comment (one at the start of the line, or after a space, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, ch) in line.char_indices() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(ch),
            (None, '#') if previous == ' ' => return &line[..i],
            _ => {}
        }
        previous = ch;
    }
    line
}

#[test]
fn the_subset_reads_the_shapes_the_chart_uses() {
    let docs = documents(
        "# a comment\nkind: Role\nmetadata:\n  name: r  # trailing\n  labels: {{- include \"x\" . | nindent 4 }}\n\
         rules:\n  - apiGroups: [\"\"]\n    resources: [pods, pods/status]\n    verbs:\n      - list\n---\n\
         kind: RoleBinding\nsubjects:\n- kind: ServiceAccount\n  name: sa\nroleRef: {kind: Role, name: r}\n",
    );
    assert_eq!(
        docs,
        vec![
            serde_json::json!({"kind": "Role", "metadata": {"name": "r"},
                "rules": [{"apiGroups": [""], "resources": ["pods", "pods/status"], "verbs": ["list"]}]}),
            serde_json::json!({"kind": "RoleBinding", "subjects": [{"kind": "ServiceAccount", "name": "sa"}],
                "roleRef": {"kind": "Role", "name": "r"}}),
        ]
    );
}
