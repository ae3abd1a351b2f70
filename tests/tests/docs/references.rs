//! What the docs point at exists: repository paths in inline code, relative links and their anchors, Rust items
//! (`runway_api::revision_failure`, `children::has_applied`), `make` targets and `RUNWAY_*` environment variables.

use std::collections::BTreeSet;

use crate::markdown::{Doc, code_spans};
use crate::repo;

/// Paths that look like the repository's but name something else.
const NOT_OURS: [(&str, &str); 1] = [("deploy/crds", "cert-manager's Go module")];

/// Top-level entries whose paths are the repository's own (generated folders such as target/ left out).
fn top_level() -> BTreeSet<String> {
    repo::files()
        .iter()
        .filter_map(|f| f.split('/').next().map(str::to_owned))
        .collect()
}

/// The words of a doc's inline code and code blocks, with their lines.
fn code_words(doc: &Doc) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for sentence in doc.sentences() {
        for span in code_spans(&sentence.text) {
            for word in span.split_whitespace() {
                out.push((sentence.line, word.to_owned()));
            }
        }
    }
    for block in doc.code_blocks() {
        for (offset, line) in block.lines.iter().enumerate() {
            // A comment explains; its words are prose.
            let command = line.split(" #").next().unwrap();
            for word in command.split_whitespace() {
                out.push((
                    block.line + 1 + offset,
                    word.trim_matches(['"', '\'', '(', '[']).to_owned(),
                ));
            }
        }
    }
    out
}

#[test]
fn every_repository_path_in_the_docs_exists() {
    let tops = top_level();
    let files = repo::files();
    let mut missing = Vec::new();
    for doc in repo::docs() {
        for (line, word) in code_words(&doc) {
            let path = word.split("::").next().unwrap().trim_end_matches([',', ':', ';', ')']);
            if path.contains(['*', '<', '{', '$', '…'])
                || path.contains("...")
                || NOT_OURS.iter().any(|(p, _)| *p == path)
            {
                continue; // a pattern or a placeholder
            }
            let top = path.split('/').next().unwrap();
            let is_repo_path = path.contains('/') && tops.contains(top);
            // A source file named by its path inside a crate (`revision/handle.rs`, `failure.rs`).
            let is_module_file = path.ends_with(".rs") && !path.contains("://");
            let found = if is_repo_path {
                repo::exists(path)
            } else if is_module_file {
                files.iter().any(|f| f == path || f.ends_with(&format!("/{path}")))
            } else {
                true
            };
            if !found {
                missing.push(format!("{}: {path}", doc.at(line)));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "paths named in the docs that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    for doc in repo::docs() {
        for (line, target) in links(&doc) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let dir = doc.path.rsplit_once('/').map_or("", |(dir, _)| dir);
            let resolved = if path.is_empty() {
                doc.path.clone()
            } else {
                normalize(dir, path)
            };
            if !repo::exists(&resolved) {
                broken.push(format!("{}: {target} ({resolved} does not exist)", doc.at(line)));
            } else if !anchor.is_empty()
                && resolved.ends_with(".md")
                && !anchors(&repo::read(&resolved)).contains(anchor)
            {
                broken.push(format!(
                    "{}: {target} (no heading #{anchor} in {resolved})",
                    doc.at(line)
                ));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// `[text](target)` links of the prose.
fn links(doc: &Doc) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (line, text) in doc.prose_lines() {
        for piece in text.split("](").skip(1) {
            if let Some(target) = piece.split(')').next() {
                out.push((line, target.to_owned()));
            }
        }
    }
    out
}

fn normalize(dir: &str, path: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

/// GitHub's anchors of a document's headings: lower-cased, punctuation dropped, spaces as dashes.
fn anchors(text: &str) -> BTreeSet<String> {
    let doc = Doc::new("", text.to_owned());
    doc.prose_lines()
        .into_iter()
        .filter(|(_, line)| line.starts_with('#'))
        .map(|(_, line)| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// `a::b::c` paths of inline code (with `{x, y}` groups expanded), and `file.rs::item`.
fn rust_paths(doc: &Doc) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for sentence in doc.sentences() {
        for span in code_spans(&sentence.text) {
            let (prefix, group) = match span.split_once("::{") {
                Some((prefix, rest)) => (prefix.to_owned(), rest.trim_end_matches('}').to_owned()),
                None => (span.clone(), String::new()),
            };
            let paths: Vec<String> = if group.is_empty() {
                vec![prefix]
            } else {
                group
                    .split(',')
                    .map(|item| format!("{prefix}::{}", item.trim()))
                    .collect()
            };
            for path in paths {
                let is_path = path.contains("::")
                    && path.starts_with(|c: char| c.is_ascii_lowercase())
                    && path.chars().all(|c| c.is_ascii_alphanumeric() || "_:./".contains(c));
                if is_path {
                    out.push((sentence.line, path));
                }
            }
        }
    }
    out
}

/// Where a Rust path's first segment is: a crate's src folder, or the files of a module of that name.
fn module_files(first: &str, sources: &[(String, String)]) -> Vec<String> {
    let crate_root = match first {
        "runway_api" => Some("crds/src/lib.rs"),
        "runway_activator" => Some("activator/src/lib.rs"),
        "runway_operator" => Some("operator/src/lib.rs"),
        _ => None,
    };
    if let Some(root) = crate_root {
        return vec![root.to_owned()];
    }
    if first.ends_with(".rs") {
        return sources
            .iter()
            .filter(|(p, _)| p == first)
            .map(|(p, _)| p.clone())
            .collect();
    }
    sources
        .iter()
        .map(|(p, _)| p)
        .filter(|p| p.ends_with(&format!("/{first}.rs")) || p.ends_with(&format!("/{first}/mod.rs")))
        .cloned()
        .collect()
}

/// The file of a child module of the module in `file`.
fn child_module(file: &str, name: &str) -> Vec<String> {
    let dir = if file.ends_with("/mod.rs") || file.ends_with("/lib.rs") || file.ends_with("/main.rs") {
        file.rsplit_once('/').unwrap().0.to_owned()
    } else {
        file.trim_end_matches(".rs").to_owned()
    };
    [format!("{dir}/{name}.rs"), format!("{dir}/{name}/mod.rs")]
        .into_iter()
        .filter(|p| repo::exists(p))
        .collect()
}

/// Whether a source defines or re-exports an item of that name.
fn defines(source: &str, name: &str) -> bool {
    let keywords = ["fn", "struct", "enum", "trait", "type", "const", "static", "mod"];
    let whole_word_after = |pattern: &str| {
        source.match_indices(pattern).any(|(i, _)| {
            source[i + pattern.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'))
        })
    };
    keywords.iter().any(|k| whole_word_after(&format!("{k} {name}")))
        || source
            .lines()
            .filter(|l| l.trim_start().starts_with("pub use") || l.trim_start().starts_with("pub(crate) use"))
            .any(|l| {
                l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .any(|w| w == name)
            })
}

/// The crates of Cargo.lock (as Rust names them): a path starting with one that is not ours is another crate's.
fn dependency_crates() -> BTreeSet<String> {
    repo::read("Cargo.lock")
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .map(|name| name.trim_end_matches('"').replace('-', "_"))
        .filter(|name| !name.starts_with("runway"))
        .collect()
}

#[test]
fn every_rust_item_named_in_the_docs_exists() {
    let sources = repo::rust_sources();
    let dependencies = dependency_crates();
    let text_of = |path: &str| {
        sources
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.as_str())
            .unwrap_or("")
    };
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in repo::docs() {
        for (line, path) in rust_paths(&doc) {
            let segments: Vec<&str> = path.split("::").collect();
            let mut files = module_files(segments[0], &sources);
            if files.is_empty() && dependencies.contains(segments[0]) {
                continue; // hyper::client::conn::http1 and the like
            }
            let mut rest = &segments[1..];
            // Down through child modules while there are any of the next name.
            while let Some(next) = rest.first() {
                let children: Vec<String> = files.iter().flat_map(|f| child_module(f, next)).collect();
                if children.is_empty() {
                    break;
                }
                files = children;
                rest = &rest[1..];
            }
            checked += 1;
            let found = !files.is_empty() && files.iter().any(|f| rest.iter().all(|item| defines(text_of(f), item)));
            if !found {
                missing.push(format!("{}: {path}", doc.at(line)));
            }
        }
    }
    assert!(checked >= 10, "Rust paths were found in the docs ({checked})");
    assert!(
        missing.is_empty(),
        "Rust items named in the docs that the code does not have:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_make_target_in_the_docs_exists() {
    let makefile = repo::read("Makefile");
    let targets: BTreeSet<&str> = makefile
        .lines()
        .filter(|l| !l.starts_with(['\t', '#', '.']) && !l.contains(":=") && !l.contains("?="))
        .filter_map(|l| l.split_once(':').map(|(target, _)| target.trim()))
        .filter(|t| !t.is_empty() && !t.contains(' '))
        .collect();
    assert!(targets.contains("up") && targets.contains("test"), "{targets:?}");
    let mut missing = Vec::new();
    for doc in repo::docs() {
        let mut commands: Vec<(usize, String)> = Vec::new();
        for sentence in doc.sentences() {
            commands.extend(code_spans(&sentence.text).into_iter().map(|s| (sentence.line, s)));
        }
        for block in doc.code_blocks() {
            commands.extend(
                block
                    .lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (block.line + 1 + i, l.clone())),
            );
        }
        for (line, command) in commands {
            let words: Vec<&str> = command.split_whitespace().skip_while(|w| w.contains('=')).collect();
            if words.first() != Some(&"make") {
                continue;
            }
            if let Some(target) = words[1..].iter().find(|w| !w.starts_with('-') && !w.contains('='))
                && !target.starts_with('#')
                && !targets.contains(target)
            {
                missing.push(format!("{}: make {target}", doc.at(line)));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "make targets the Makefile does not have:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_runway_environment_variable_in_the_docs_is_read_somewhere() {
    let mut code = String::new();
    for file in repo::files() {
        let is_doc = file.starts_with("docs/") || file == "README.md";
        if !is_doc && let Ok(text) = std::fs::read_to_string(repo::root().join(&file)) {
            code.push_str(&text);
        }
    }
    let mut unknown = BTreeSet::new();
    for doc in repo::docs() {
        for word in doc.text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("RUNWAY_") && word.len() > "RUNWAY_".len() && !code.contains(word) {
                unknown.insert(format!("{}: {word}", doc.path));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "RUNWAY_* variables no code, script or chart reads: {unknown:?}"
    );
}
