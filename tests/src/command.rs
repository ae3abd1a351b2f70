//! Running a program other than kubectl (helm, openssl, curl, the repository's scripts) and keeping its output.

use std::path::Path;

use anyhow::ensure;

/// Runs `program` with `args` in `dir` and returns its stdout, or fails with its stdout and stderr.
pub async fn run(program: &str, args: &[&str], dir: &Path) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "{program} {}: {stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}
