//! Flood mode: one activator on loopback (started here in standalone mode unless --address names one), many
//! connections each sending a request with a large head to a Service that has no pod yet, and idle connections
//! that never finish a request. Every connection is bounded in time, and their number is fixed by the flags.

mod activator;
mod clients;
mod memory;
mod report;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use anyhow::Context;
use futures::future::join_all;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::cli::FloodArgs;
use crate::procfs;
use crate::stop::{self, Interrupted};
use activator::Standalone;
use clients::Idle;

/// Runs a flood; Ok(true) when the activator stayed within its bounds.
pub async fn run(args: &FloodArgs, interrupted: Interrupted) -> anyhow::Result<bool> {
    check_open_files(args)?;
    let mut standalone = match args.address {
        Some(_) => None,
        None => Some(Standalone::start(&args.activator_bin, &args.host, args.route_timeout).await?),
    };
    let (addr, pid, target) = match &standalone {
        Some(s) => (
            s.proxy,
            Some(s.pid),
            format!(
                "standalone activator pid {} at {} (route {} without backend, timeout {} s; log {})",
                s.pid,
                s.proxy,
                args.host,
                args.route_timeout.as_secs(),
                s.log.display()
            ),
        ),
        None => {
            let addr = args.address.context("--address or a standalone activator")?;
            (addr, args.pid, format!("activator at {addr} (host {})", args.host))
        }
    };
    eprintln!("flooding the {target}");

    let origin = Instant::now();
    let open = Arc::new(AtomicUsize::new(0));
    let (done, done_rx) = watch::channel(false);
    let tracer = pid.map(|pid| {
        let limit_kib = args.memory_limit_mib * 1024;
        tokio::spawn(memory::trace(pid, limit_kib, origin, open.clone(), done_rx))
    });
    let idle: Vec<_> = Idle::ALL
        .into_iter()
        .flat_map(|kind| std::iter::repeat_n(kind, args.idle))
        .map(|kind| {
            let host = args.host.clone();
            let wait = args.idle_wait;
            tokio::spawn(async move { (kind, clients::idle(addr, kind, &host, wait).await) })
        })
        .collect();
    let head = clients::large_head(&args.host, args.header_bytes);
    let deadline = origin + args.answer_wait;
    let opening = Arc::new(Semaphore::new(clients::OPENING_AT_ONCE));
    let flood: Vec<_> = (0..args.connections)
        .map(|_| {
            let request = clients::large_request(addr, head.clone(), origin, deadline, open.clone(), opening.clone());
            tokio::spawn(request)
        })
        .collect();

    let finished = async { (join_all(flood).await, join_all(idle).await) };
    let (answers, idle) = tokio::select! {
        finished = finished => finished,
        () = stop::interrupted(interrupted) => anyhow::bail!("interrupted"),
    };
    done.send_replace(true);
    let trace = match tracer {
        Some(task) => Some(task.await.context("the memory tracer panicked")?),
        None => None,
    };
    let exited = standalone.as_mut().and_then(Standalone::exited);
    if let Some(standalone) = standalone {
        standalone.stop().await;
    }
    let report = report::FloodReport {
        target,
        header_bytes: args.header_bytes,
        answers: answers
            .into_iter()
            .collect::<Result<_, _>>()
            .context("a flood client panicked")?,
        idle: idle
            .into_iter()
            .collect::<Result<_, _>>()
            .context("an idle client panicked")?,
        idle_wait: args.idle_wait,
        idle_limit: args.idle_limit,
        memory_limit_mib: args.memory_limit_mib,
        trace,
        exited,
    };
    print!("{}", report.render());
    Ok(report.failures().is_empty())
}

/// Both ends of every connection live on this machine, and the activator inherits this process's limit.
fn check_open_files(args: &FloodArgs) -> anyhow::Result<()> {
    let needed = (args.connections + 3 * args.idle + 256) as u64;
    match procfs::open_files_limit() {
        Some(limit) if limit < needed => anyhow::bail!(
            "{needed} open files are needed and the limit is {limit}: raise it (ulimit -n {needed}; hack/soak/soak.sh does)"
        ),
        _ => Ok(()),
    }
}
