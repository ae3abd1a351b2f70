//! Every flag a doc names exists, with the default and environment variable the doc gives it.
//!
//! - The flag tables (docs/activator.md's, docs/configuration.md's) list real flags of their component, with its
//!   clap default and env (tests/tests/configuration_doc.rs checks the other way: every flag is listed).
//! - A flag in inline code is the activator's in docs/activator.md or after the word "activator", the operator's
//!   after "operator", and otherwise must be one of the activator's, the operator's, the soak harness's, or another
//!   tool's from `OTHER_TOOLS`.
//! - A command line that runs `runway-activator`, `runway-operator` or `hack/soak/soak.sh` uses that program's flags.
//! - A value in parentheses right after a flag, `--handshake-timeout` (10 s), is that flag's default.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::CommandFactory;

use crate::markdown::{Doc, Table, code_spans};
use crate::repo;

/// A flag as the program defines it.
#[derive(Debug)]
struct Flag {
    default: Option<String>,
    env: Option<String>,
}

type Flags = BTreeMap<String, Flag>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Program {
    Activator,
    Operator,
    Node,
    Soak,
}

fn flags_of(program: Program) -> Flags {
    match program {
        Program::Activator => clap_flags(runway_activator::config::Args::command()),
        Program::Operator => clap_flags(runway_operator::cli::Args::command()),
        Program::Node => clap_flags(runway_node::cli::Args::command()),
        Program::Soak => soak_flags(),
    }
}

fn clap_flags(mut command: clap::Command) -> Flags {
    command.build(); // so that flags like `--standalone` show their implicit default (false)
    command
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let flag = Flag {
                default: (!defaults.is_empty()).then(|| defaults.join(",")),
                env: arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            };
            Some((format!("--{long}"), flag))
        })
        .collect()
}

/// The soak harness (hack/soak, a binary that depends on this crate, so not a dependency of it): its clap fields
/// read from the source, with their `default_value`.
fn soak_flags() -> Flags {
    let source = repo::read("hack/soak/src/cli.rs");
    let flat = source.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Flags::new();
    for attribute in flat.split("#[arg(long").skip(1) {
        let field = attribute
            .split("pub ")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .expect("a field after #[arg(long)]");
        let default = attribute
            .split_once("default_value = \"")
            .map(|(_, rest)| rest.split('"').next().unwrap().to_owned())
            .or_else(|| {
                let (_, rest) = attribute.split_once("default_value_t = ")?;
                let expression = rest.split([',', ')']).next().unwrap();
                // `60 * 1024`: a product of numbers
                let product: u64 = expression
                    .split('*')
                    .map(|n| n.trim().parse::<u64>().ok())
                    .product::<Option<u64>>()?;
                Some(product.to_string())
            });
        out.insert(format!("--{}", field.replace('_', "-")), Flag { default, env: None });
    }
    assert!(
        out.contains_key("--connections") && out.contains_key("--flood"),
        "{out:?}"
    );
    out
}

/// Flags of other tools that docs name in inline code, with the tool.
const OTHER_TOOLS: [(&str, &str); 23] = [
    ("--resolve", "curl"),
    ("--set", "helm"),
    ("--plain-http", "helm"),
    ("--wait", "helm, kind"),
    ("--server-side", "kubectl"),
    ("--kubeconfig", "kind"),
    ("--enable-gateway-api", "cert-manager"),
    ("--kube-api-qps", "kube-controller-manager"),
    ("--kube-api-burst", "kube-controller-manager"),
    ("--authorization-mode", "kube-apiserver"),
    ("--cgroupns", "podman"),
    ("--release", "cargo"),
    ("--test", "cargo"),
    ("--test-threads", "libtest"),
    ("--idle-seconds", "hack/bench/many-services.py"),
    ("--label", "hack/cluster/oci-image.sh"),
    ("--reuse-values", "helm"),
    ("--reset-then-reuse-values", "helm"),
    ("--v", "kube-network-policies"),
    ("--fail-open", "kube-network-policies"),
    ("--queue-bypass", "iptables"),
    ("--api-versions", "helm"),
    ("--build-arg", "docker"),
];

/// The flag tables, by document and heading, with their program.
const FLAG_TABLES: [(&str, &str, Program); 5] = [
    ("docs/activator.md", "## Ports", Program::Activator),
    ("docs/activator.md", "## Flags", Program::Activator),
    (
        "docs/configuration.md",
        "## Operator flags (runway-operator)",
        Program::Operator,
    ),
    (
        "docs/configuration.md",
        "## Activator flags (runway-activator)",
        Program::Activator,
    ),
    (
        "docs/configuration.md",
        "## Node agent flags (runway-node)",
        Program::Node,
    ),
];

fn is_flag_table(table: &Table) -> bool {
    table.columns().iter().any(|c| c == "flag")
}

#[test]
fn every_flag_table_is_one_the_tests_know() {
    for doc in repo::docs() {
        for table in doc.tables().iter().filter(|t| is_flag_table(t)) {
            assert!(
                FLAG_TABLES
                    .iter()
                    .any(|(path, heading, _)| doc.path == *path && table.heading == *heading),
                "{}: a flag table under {:?} that no test checks: add it to FLAG_TABLES",
                doc.at(table.line),
                table.heading
            );
        }
    }
}

#[test]
fn flag_tables_list_real_flags_with_their_defaults_and_env() {
    let mut wrong = Vec::new();
    for (path, heading, program) in FLAG_TABLES {
        let flags = flags_of(program);
        let doc = repo::doc(path);
        let table = doc
            .tables()
            .into_iter()
            .find(|t| t.heading == heading && is_flag_table(t))
            .unwrap_or_else(|| panic!("{path} has no flag table under {heading:?}"));
        let column = |name: &str| table.columns().iter().position(|c| c == name);
        let flag_column = column("flag").unwrap();
        for row in &table.rows {
            let at = format!("{} ({heading})", doc.at(table.line));
            let cell = &row[flag_column];
            let name = first_flag(cell).unwrap_or_else(|| panic!("{at}: no flag in {cell:?}"));
            let Some(flag) = flags.get(&name) else {
                wrong.push(format!("{at}: {name} is not a flag of {program:?}"));
                continue;
            };
            // The env: its own column, or `[ENV]` after the flag.
            let env = column("env")
                .map(|c| code_spans(&row[c]).first().cloned().unwrap_or_default())
                .or_else(|| {
                    cell.split_once('[')
                        .map(|(_, rest)| rest.split(']').next().unwrap().to_owned())
                });
            if let Some(env) = env.filter(|e| !e.is_empty())
                && flag.env.as_deref() != Some(env.as_str())
            {
                wrong.push(format!("{at}: {name}: env {env}, the code reads {:?}", flag.env));
            }
            if let Some(c) = column("default") {
                let documented = row[c].replace('`', "");
                if !same_default(&documented, flag) {
                    wrong.push(format!(
                        "{at}: {name}: default {documented:?}, the code's is {:?}",
                        flag.default
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "flag tables drifted from the code:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_flag_named_in_the_docs_exists() {
    let all: Vec<(Program, Flags)> = [Program::Activator, Program::Operator, Program::Node, Program::Soak]
        .map(|p| (p, flags_of(p)))
        .into_iter()
        .collect();
    let flags = |program: Program| &all.iter().find(|(p, _)| *p == program).unwrap().1;
    let mut wrong = Vec::new();
    for doc in repo::docs() {
        for (line, program, text) in command_lines(&doc) {
            for name in text.split_whitespace().filter_map(flag_word) {
                if !flags(program).contains_key(&name) && name != "--help" {
                    wrong.push(format!(
                        "{}: {name} is not a flag of {program:?}: {text:?}",
                        doc.at(line)
                    ));
                }
            }
        }
        for sentence in doc.sentences() {
            for (before, span) in spans_with_word_before(&sentence.text) {
                let Some(name) = span.split_whitespace().next().and_then(flag_word) else {
                    continue;
                };
                let named = match before.as_str() {
                    "activator" => Some(Program::Activator),
                    "operator" => Some(Program::Operator),
                    "agent" => Some(Program::Node),
                    _ if doc.path == "docs/activator.md" => Some(Program::Activator),
                    _ => None,
                };
                let owners: Vec<Program> = all
                    .iter()
                    .filter(|(_, f)| f.contains_key(&name))
                    .map(|(p, _)| *p)
                    .collect();
                let exists = match named {
                    Some(program) => owners.contains(&program),
                    None => !owners.is_empty() || OTHER_TOOLS.iter().any(|(flag, _)| *flag == name),
                };
                if !exists {
                    let whose = named.map_or("any program the docs know".to_owned(), |p| format!("{p:?}"));
                    wrong.push(format!("{}: {name} is not a flag of {whose}", doc.at(sentence.line)));
                    continue;
                }
                // Whose default a value after it states: the program named, or the only one with that flag.
                let program = named.or((owners.len() == 1).then(|| owners[0]));
                if let (Some(program), Some(stated)) = (program, value_after(&sentence.text, &span)) {
                    let flag = &flags(program)[&name];
                    if !same_default(&stated, flag) {
                        wrong.push(format!(
                            "{}: {name} ({stated}): its default is {:?}",
                            doc.at(sentence.line),
                            flag.default
                        ));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "flags named in the docs that drifted from the code:\n{}",
        wrong.join("\n")
    );
}

/// A made-up activator flag is caught, in each place a flag can be named.
#[test]
fn a_made_up_activator_flag_is_caught() {
    let activator = flags_of(Program::Activator);
    assert!(!activator.contains_key("--probe-slow-interval"));
    let doc = Doc::new(
        "docs/activator.md",
        "Set `--probe-slow-interval` (1 s).\n\n```\nrunway-activator --standalone --probe-slow-interval 1s\n```\n"
            .to_owned(),
    );
    let commands = command_lines(&doc);
    assert_eq!(commands.len(), 1);
    assert!(
        commands[0]
            .2
            .split_whitespace()
            .filter_map(flag_word)
            .any(|f| !activator.contains_key(&f))
    );
    let spans = spans_with_word_before(&doc.sentences()[0].text);
    assert_eq!(spans, vec![("set".to_owned(), "--probe-slow-interval".to_owned())]);
}

/// `--name` of a word such as `--name`, `--name=value`, `[--name]`; None for other words and for patterns
/// (`--default-*`).
fn flag_word(word: &str) -> Option<String> {
    let word = word.trim_start_matches('[');
    if word.contains('*') {
        return None;
    }
    let name: String = word
        .strip_prefix("--")?
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    (!name.is_empty() && name.chars().next().unwrap().is_ascii_alphabetic()).then(|| format!("--{name}"))
}

fn first_flag(cell: &str) -> Option<String> {
    code_spans(cell)
        .iter()
        .find_map(|span| span.split_whitespace().next().and_then(flag_word))
}

/// Lines that run one of the programs whose flags are known: in code blocks and in inline code.
fn command_lines(doc: &Doc) -> Vec<(usize, Program, String)> {
    let mut lines: Vec<(usize, String)> = Vec::new();
    for block in doc.code_blocks() {
        lines.extend(
            block
                .lines
                .iter()
                .enumerate()
                .map(|(i, l)| (block.line + 1 + i, l.clone())),
        );
    }
    for sentence in doc.sentences() {
        lines.extend(code_spans(&sentence.text).into_iter().map(|span| (sentence.line, span)));
    }
    lines
        .into_iter()
        .filter_map(|(line, text)| {
            let command = text.split('#').next().unwrap().trim().trim_start_matches("$ ");
            // Skip `NAME=value` assignments before the program.
            let program = command.split_whitespace().find(|w| !w.contains('='))?;
            let program = match program.rsplit('/').next().unwrap() {
                "runway-activator" => Program::Activator,
                "runway-operator" => Program::Operator,
                "runway-node" => Program::Node,
                "soak.sh" => Program::Soak,
                _ => return None,
            };
            Some((line, program, command.to_owned()))
        })
        .collect()
}

/// The inline code spans of a sentence, each with the word right before it (lower-cased, without punctuation).
fn spans_with_word_before(text: &str) -> Vec<(String, String)> {
    let pieces: Vec<&str> = text.split('`').collect();
    (1..pieces.len())
        .step_by(2)
        .map(|i| {
            let before = pieces[i - 1]
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_lowercase();
            (before, pieces[i].to_owned())
        })
        .collect()
}

/// The value in parentheses right after the span, when it starts with a number: `--idle-timeout` (65 s).
fn value_after(text: &str, span: &str) -> Option<String> {
    let after = text.split_once(&format!("`{span}` ("))?.1;
    let value = after.split(')').next()?.split(", ").next()?.split("; ").next()?.trim();
    value
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| value.to_owned())
}

/// Whether a documented default is the flag's: equal as text, or as a number, a duration or a size.
fn same_default(documented: &str, flag: &Flag) -> bool {
    let documented = documented.trim();
    let Some(default) = &flag.default else {
        // No default in the code: the doc may describe what happens (none, required, derived).
        return !looks_like_a_value(documented);
    };
    let documented = match documented {
        "off" => "false",
        "on" => "true",
        other => other,
    };
    if documented == default {
        return true;
    }
    if let (Some(a), Some(b)) = (number(documented), number(default)) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (duration(documented), duration(default)) {
        return a == b;
    }
    false
}

fn looks_like_a_value(text: &str) -> bool {
    number(text).is_some() || duration(text).is_some()
}

/// `10,000`, `65536`, `64 KiB`, `256 MiB`, `1000.0`.
fn number(text: &str) -> Option<f64> {
    let (value, unit) = match text.split_once(' ') {
        Some((value, unit)) => (value, unit),
        None => (text, ""),
    };
    let value: f64 = value.replace(',', "").parse().ok()?;
    let scale = match unit {
        "" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        _ => return None,
    };
    Some(value * scale)
}

/// `250ms`, `10 ms`, `5 s`, `5 min`, `5m`.
fn duration(text: &str) -> Option<Duration> {
    let compact = text.replace(' ', "").replace("min", "m");
    if compact.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',') {
        return None; // a bare number is a number here, not seconds
    }
    runway_activator::config::parse_duration(&compact).ok()
}
