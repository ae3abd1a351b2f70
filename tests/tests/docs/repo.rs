//! The repository as the tests read it: its root, its files, and the documents under test.

use std::path::{Path, PathBuf};

use crate::markdown::Doc;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of the repository, by its path from the root.
pub fn read(path: &str) -> String {
    let full = root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

pub fn exists(path: &str) -> bool {
    root().join(path).exists()
}

/// README.md and every docs/*.md: the documents whose facts must agree with the code.
pub fn docs() -> Vec<Doc> {
    let mut paths = vec!["README.md".to_owned()];
    let mut in_docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    in_docs.sort();
    paths.extend(in_docs);
    paths.into_iter().map(|path| Doc::new(&path, read(&path))).collect()
}

pub fn doc(path: &str) -> Doc {
    Doc::new(path, read(path))
}

/// Folders that hold no source of the project: build output, the local cluster, version control.
const NOT_SOURCE: [&str; 4] = ["target", ".git", ".cluster", "node_modules"];

/// Every file of the repository (paths from the root, `/`-separated), build output and VCS data left out.
pub fn files() -> Vec<String> {
    let mut out = Vec::new();
    walk(&root(), "", &mut out);
    out.sort();
    out
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if NOT_SOURCE.contains(&name.as_str()) {
            continue;
        }
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&entry.path(), &path, out);
        } else {
            out.push(path);
        }
    }
}

/// The `.rs` files of the workspace, with their text.
pub fn rust_sources() -> Vec<(String, String)> {
    files()
        .into_iter()
        .filter(|path| path.ends_with(".rs"))
        .map(|path| {
            let text = read(&path);
            (path, text)
        })
        .collect()
}
