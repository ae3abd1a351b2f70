//! Running kubectl (for what the kube client does not do simply: exec, logs, describe).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::cluster::repo_root;

/// How long one kubectl command may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// kubectl bound to one kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(kubeconfig: PathBuf) -> Kubectl {
        Kubectl {
            binary: binary(),
            kubeconfig,
        }
    }

    /// Runs `kubectl ARGS`; returns stdout, or an error with the command, exit status, stdout and stderr.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run_with_timeout(args, DEFAULT_TIMEOUT).await
    }

    pub async fn run_with_timeout(&self, args: &[&str], timeout: Duration) -> anyhow::Result<String> {
        let command = format!("kubectl {}", args.join(" "));
        let output = Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(timeout, output)
            .await
            .with_context(|| format!("{command}: no result within {timeout:?}"))?
            .with_context(|| format!("{command}: cannot run {}", self.binary.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!("{command}: {}\nstdout: {stdout}\nstderr: {stderr}", output.status);
        }
        Ok(stdout)
    }
}

/// `$KUBECONFIG`'s kubectl: `$KUBECTL`, else the one `make up` links into `<repo>/.cluster/bin`, else `kubectl`.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBECTL") {
        return PathBuf::from(path);
    }
    let local = repo_root().join(".cluster/bin/kubectl");
    if local.exists() {
        local
    } else {
        PathBuf::from("kubectl")
    }
}

/// One table of `kubectl get` output: its column headers and, per row, the value under each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The row whose first column (NAME) is `name`, or ends in `/{name}` (`kubectl get a,b` prefixes the kind).
    pub fn row(&self, name: &str) -> Option<&[String]> {
        self.rows
            .iter()
            .find(|row| {
                row.first()
                    .is_some_and(|first| first == name || first.ends_with(&format!("/{name}")))
            })
            .map(Vec::as_slice)
    }

    /// The value in column `header` of the row named `name`.
    pub fn cell(&self, name: &str, header: &str) -> Option<&str> {
        let column = self.headers.iter().position(|h| h == header)?;
        self.row(name)?.get(column).map(String::as_str)
    }
}

/// The tables of `kubectl get` output (several when several kinds were asked for, separated by blank lines).
///
/// kubectl pads columns with spaces and starts each value at its header's offset; a header holds single spaces at
/// most ("LATEST READY"), columns are separated by at least two, and a value may hold spaces too, so each value is
/// cut at the next header's offset.
pub fn parse_tables(output: &str) -> Vec<Table> {
    let mut tables = vec![];
    for block in output.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut lines = block.lines().filter(|l| !l.trim().is_empty());
        let Some(header_line) = lines.next() else { continue };
        let offsets = header_offsets(header_line);
        let headers: Vec<String> = cut(header_line, &offsets);
        let rows = lines.map(|line| cut(line, &offsets)).collect();
        tables.push(Table { headers, rows });
    }
    tables
}

/// Where each header starts: at the start of the line and after each run of two or more spaces.
fn header_offsets(line: &str) -> Vec<usize> {
    let bytes = line.as_bytes();
    let mut offsets = vec![];
    for (i, &b) in bytes.iter().enumerate() {
        let starts = b != b' ' && (i == 0 || (i >= 2 && bytes[i - 1] == b' ' && bytes[i - 2] == b' '));
        if starts {
            offsets.push(i);
        }
    }
    offsets
}

/// The values of `line` between the offsets, trimmed.
fn cut(line: &str, offsets: &[usize]) -> Vec<String> {
    offsets
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let end = offsets.get(i + 1).copied().unwrap_or(line.len()).min(line.len());
            line.get(start.min(end)..end).unwrap_or("").trim().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_cut_at_the_header_offsets_also_when_a_value_holds_spaces() {
        let output = "\
NAME                           URL                      LATEST READY   TRAFFIC                   READY   REPLICAS   REASON   AGE
service.serving.runway.dev/a   http://a.ns.example.com  a-00002        a-00002=30% a-00001=70%   True    2/2        Ready    1m

NAME                                  SERVICE   GENERATION   READY   REPLICAS   TRAFFIC%   REASON   AGE
revision.serving.runway.dev/a-00001   a         1            True    1/1        70         Ready    2m
revision.serving.runway.dev/a-00002   a         2            True    1/1        30                  1m
";
        let tables = parse_tables(output);
        assert_eq!(tables.len(), 2);
        assert_eq!(
            tables[0].headers,
            [
                "NAME",
                "URL",
                "LATEST READY",
                "TRAFFIC",
                "READY",
                "REPLICAS",
                "REASON",
                "AGE"
            ]
        );
        assert_eq!(tables[0].cell("a", "TRAFFIC"), Some("a-00002=30% a-00001=70%"));
        assert_eq!(tables[0].cell("a", "LATEST READY"), Some("a-00002"));
        assert_eq!(tables[0].cell("a", "REPLICAS"), Some("2/2"));
        assert_eq!(tables[1].headers[5], "TRAFFIC%");
        assert_eq!(tables[1].cell("a-00001", "SERVICE"), Some("a"));
        assert_eq!(tables[1].cell("a-00002", "REASON"), Some(""));
        assert_eq!(tables[1].cell("a-00003", "SERVICE"), None);
    }

    #[test]
    fn an_empty_value_at_the_end_is_empty() {
        let tables = parse_tables("NAME   REASON\nx\n");
        assert_eq!(tables[0].rows, [vec!["x".to_owned(), String::new()]]);
    }
}
