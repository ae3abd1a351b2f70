//! The crates' module graphs have no import circle, between files or between top-level modules, and the activator's
//! folders import only the folders above them: `model`, `revision`, `route`, `sources`, `control`, `access`,
//! `observe`, `serve` (see docs/architecture.md). Read from the sources as text: every `use crate::...` (also `super::`, `self::` and a
//! child module's name at the start of a file's own imports, and inline `crate::x::` paths), resolved to the file
//! that defines what it names, through the `pub use` re-exports of `mod.rs` and `lib.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The activator's folders, each allowed to import only those before it; `app`, `config`, `lib` and `main` sit on
/// top of them all.
const ACTIVATOR_LAYERS: [&str; 8] = [
    "model", "revision", "route", "sources", "control", "access", "observe", "serve",
];
const ACTIVATOR_TOP: [&str; 4] = ["app", "config", "lib", "main"];

#[test]
fn the_activator_has_no_import_circle() {
    assert_no_circle(&Crate::read("activator/src"));
}

#[test]
fn the_operator_has_no_import_circle() {
    assert_no_circle(&Crate::read("operator/src"));
}

#[test]
fn runway_api_has_no_import_circle() {
    assert_no_circle(&Crate::read("crds/src"));
}

#[test]
fn each_activator_folder_imports_only_the_folders_above_it() {
    let activator = Crate::read("activator/src");
    let tops: BTreeSet<&str> = activator.modules.keys().map(top).collect();
    let expected: BTreeSet<&str> = ACTIVATOR_LAYERS.iter().chain(&ACTIVATOR_TOP).copied().collect();
    assert_eq!(
        tops, expected,
        "activator/src holds exactly these folders and top files"
    );
    let mut wrong = Vec::new();
    for (from, to) in activator.top_level_edges() {
        let Some(from_layer) = ACTIVATOR_LAYERS.iter().position(|l| *l == from) else {
            continue; // the top files may import any folder
        };
        let above = ACTIVATOR_LAYERS
            .iter()
            .position(|l| *l == to)
            .is_some_and(|to| to < from_layer);
        if !above {
            wrong.push(format!("{from} imports {to}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "the activator's folders may import only those above them ({}): {}",
        ACTIVATOR_LAYERS.join(" < "),
        wrong.join("; ")
    );
}

#[test]
fn a_circle_is_found_and_named() {
    let graph: BTreeMap<String, BTreeSet<String>> = [("a", &["b"][..]), ("b", &["c"]), ("c", &["a", "d"]), ("d", &[])]
        .into_iter()
        .map(|(from, to)| (from.to_owned(), to.iter().map(|t| (*t).to_owned()).collect()))
        .collect();
    assert_eq!(
        circle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let mut acyclic = graph;
    acyclic.get_mut("c").unwrap().remove("a");
    assert_eq!(circle(&acyclic), None);
}

fn assert_no_circle(krate: &Crate) {
    let files = krate.file_edges();
    if let Some(circle) = circle(&files) {
        panic!("import circle between files of {}: {}", krate.name, circle.join(" -> "));
    }
    let mut tops: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in krate.top_level_edges() {
        tops.entry(from).or_default().insert(to);
    }
    if let Some(circle) = circle(&tops) {
        panic!(
            "import circle between top-level modules of {}: {}",
            krate.name,
            circle.join(" -> ")
        );
    }
}

/// A module, as the path of its segments below the crate root (`[]` for lib.rs).
type Module = Vec<String>;

/// One crate's source files and the modules each one imports.
struct Crate {
    name: String,
    /// Every module that has a file, with the file (relative to the crate's `src`).
    modules: BTreeMap<Module, String>,
    /// What each module imports: the paths as written, made absolute.
    imports: BTreeMap<Module, Vec<Vec<String>>>,
    /// Names a module re-exports (`pub use`), and the absolute path each stands for.
    reexports: BTreeMap<(Module, String), Vec<String>>,
}

impl Crate {
    fn read(src: &str) -> Crate {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(src);
        let mut files = Vec::new();
        collect_files(&root, &mut files);
        let mut krate = Crate {
            name: src.to_owned(),
            modules: BTreeMap::new(),
            imports: BTreeMap::new(),
            reexports: BTreeMap::new(),
        };
        let mut texts = Vec::new();
        for file in files {
            let relative = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
            // A binary of its own, not a module of the crate.
            if relative.starts_with("bin/") {
                continue;
            }
            let module = module_of(&relative);
            krate.modules.insert(module.clone(), relative);
            texts.push((module, std::fs::read_to_string(&file).unwrap()));
        }
        for (module, text) in texts {
            krate.read_imports(module, &text);
        }
        krate
    }

    fn read_imports(&mut self, module: Module, text: &str) {
        let code: String = text.lines().map(strip_comment).collect::<Vec<_>>().join("\n");
        let children: BTreeSet<String> = code
            .lines()
            .filter_map(|line| {
                let line = line.trim_start();
                let rest = line
                    .strip_prefix("pub(crate) ")
                    .or(line.strip_prefix("pub "))
                    .unwrap_or(line);
                let name = rest.strip_prefix("mod ")?.strip_suffix(';')?;
                Some(name.trim().to_owned())
            })
            .collect();
        let mut imports = Vec::new();
        let mut rest = code.as_str();
        let mut inline = String::new();
        while let Some(at) = find_use(rest) {
            inline.push_str(&rest[..at.start]);
            let statement = &rest[at.start..];
            let end = statement.find(';').unwrap_or(statement.len());
            let tree = statement[at.tree..end].trim();
            rest = &statement[(end + 1).min(statement.len())..];
            // A relative path counts only in the file's own imports (at the start of a line), not in an inline
            // test module's `use super::*`; a path that starts with anything else names another crate.
            let ours = if tree.starts_with("crate::") {
                true
            } else if !at.at_line_start {
                false
            } else if tree.starts_with("super::") || tree.starts_with("self::") {
                true
            } else {
                children.contains(tree.split("::").next().unwrap_or_default())
            };
            if !ours {
                continue;
            }
            let absolute_tree = absolute(&module, tree);
            let mut paths = Vec::new();
            expand(&[], &absolute_tree, &mut paths);
            if at.public {
                for path in &paths {
                    if let Some(name) = path.last() {
                        let alias = alias_of(&absolute_tree, name).unwrap_or_else(|| name.clone());
                        self.reexports.insert((module.clone(), alias), path.clone());
                    }
                }
            }
            imports.extend(paths);
        }
        inline.push_str(rest);
        imports.extend(inline_paths(&inline));
        self.imports.insert(module, imports);
    }

    /// The module file that defines what `path` names, following re-exports.
    fn resolve(&self, path: &[String], depth: usize) -> Module {
        let mut current = Vec::new();
        for segment in path {
            let mut next = current.clone();
            next.push(segment.clone());
            if self.modules.contains_key(&next) {
                current = next;
                continue;
            }
            if depth < 8
                && let Some(target) = self.reexports.get(&(current.clone(), segment.clone()))
            {
                return self.resolve(target, depth + 1);
            }
            break;
        }
        current
    }

    /// Which file imports which, by the files' paths.
    fn file_edges(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, paths) in &self.imports {
            let from = &self.modules[module];
            let entry = edges.entry(from.clone()).or_default();
            for path in paths {
                let to = self.resolve(path, 0);
                if &to != module
                    && let Some(file) = self.modules.get(&to)
                {
                    entry.insert(file.clone());
                }
            }
        }
        edges
    }

    /// Which top-level module (folder or top file) imports which.
    fn top_level_edges(&self) -> BTreeSet<(String, String)> {
        let mut edges = BTreeSet::new();
        for (module, paths) in &self.imports {
            for path in paths {
                let (from, to) = (top(module), top(&self.resolve(path, 0)).to_owned());
                if from != to {
                    edges.insert((from.to_owned(), to));
                }
            }
        }
        edges
    }
}

/// The top-level module a module is in: its folder, or its own file; `lib` for the crate root.
fn top(module: &Module) -> &str {
    module.first().map_or("lib", String::as_str)
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
}

fn module_of(relative: &str) -> Module {
    let stem = relative.strip_suffix(".rs").unwrap();
    let mut segments: Vec<String> = stem.split('/').map(str::to_owned).collect();
    match segments.last().map(String::as_str) {
        Some("mod") => {
            segments.pop();
        }
        Some("lib") if segments.len() == 1 => segments.clear(),
        _ => {}
    }
    segments
}

/// The line without its `//` comment (doc comments included).
fn strip_comment(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

/// Where a `use` statement starts in `text`, and where its path does.
struct UseAt {
    start: usize,
    tree: usize,
    public: bool,
    at_line_start: bool,
}

fn find_use(text: &str) -> Option<UseAt> {
    let mut from = 0;
    while let Some(found) = text[from..].find("use ") {
        let start = from + found;
        from = start + 4;
        let before = &text[..start];
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let prefix = &before[line_start..];
        let visibility = prefix.trim_start();
        if matches!(visibility, "" | "pub " | "pub(crate) ") {
            return Some(UseAt {
                start: line_start,
                tree: start + 4 - line_start,
                public: !visibility.is_empty(),
                at_line_start: visibility.len() == prefix.len(),
            });
        }
    }
    None
}

/// `tree`, as written in `module`, made relative to the crate root.
fn absolute(module: &Module, tree: &str) -> String {
    if let Some(rest) = tree.strip_prefix("crate::") {
        return rest.to_owned();
    }
    let mut base = module.clone();
    let mut rest = tree;
    loop {
        if let Some(after) = rest.strip_prefix("super::") {
            base.pop();
            rest = after;
        } else if let Some(after) = rest.strip_prefix("self::") {
            rest = after;
        } else {
            break;
        }
    }
    if base.is_empty() {
        rest.to_owned()
    } else {
        format!("{}::{rest}", base.join("::"))
    }
}

/// The paths a use tree names: `a::{b, c::{d, e as f}, self}` is `a::b`, `a::c::d`, `a::c::e` and `a`.
fn expand(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(group) = tree.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        for part in split_top_level(group) {
            if !part.trim().is_empty() {
                expand(prefix, part, out);
            }
        }
        return;
    }
    if let Some(at) = find_top_level(tree, "::") {
        let mut next = prefix.to_vec();
        next.push(tree[..at].trim().to_owned());
        expand(&next, &tree[at + 2..], out);
        return;
    }
    let name = tree.split(" as ").next().unwrap_or_default().trim();
    let mut path = prefix.to_vec();
    if !matches!(name, "self" | "*") {
        path.push(name.to_owned());
    }
    out.push(path);
}

/// The alias a use tree gives `name` (`name as alias`), if any.
fn alias_of(tree: &str, name: &str) -> Option<String> {
    let at = tree.find(&format!("{name} as "))?;
    let alias = tree[at + name.len() + 4..]
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()?;
    Some(alias.to_owned())
}

fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn find_top_level(text: &str, needle: &str) -> Option<usize> {
    let mut depth = 0;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ if depth == 0 && text[at..].starts_with(needle) => return Some(at),
            _ => {}
        }
    }
    None
}

/// The `crate::a::b` paths written in code outside `use` statements.
fn inline_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("crate::") {
        let start = from + found;
        from = start + "crate::".len();
        let before = code[..start].chars().next_back();
        // `$crate::` is a macro's; `pub(in crate::a)` says who may see an item, and imports nothing.
        if before.is_some_and(|c| c == '$' || c.is_alphanumeric() || c == '_') || code[..start].ends_with("(in ") {
            continue;
        }
        let rest = &code[from..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let path: Vec<String> = rest[..end]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if !path.is_empty() {
            paths.push(path);
        }
    }
    paths
}

/// A circle in `graph`, as the nodes along it with the first repeated at the end; `None` when there is none.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::Open);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next.as_str()) {
                Some(Mark::Open) => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    let mut circle = stack[from..].to_vec();
                    circle.push(next.clone());
                    return Some(circle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(circle) = visit(next, graph, marks, stack) {
                        return Some(circle);
                    }
                }
            }
        }
        stack.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if !marks.contains_key(node.as_str())
            && let Some(circle) = visit(node, graph, &mut marks, &mut Vec::new())
        {
            return Some(circle);
        }
    }
    None
}
