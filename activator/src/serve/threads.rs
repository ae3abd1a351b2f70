//! Threads with a single-threaded scheduler of their own: the admin port, and serving workers past the first.

use std::future::Future;

use tokio::sync::oneshot;

/// Runs the future `task` makes on a new thread named `name`, with its own single-threaded scheduler (whose
/// reactor the task's sockets register with). The receiver completes when the task has ended.
pub fn run_on_own_thread<F, Fut>(name: &str, task: F) -> anyhow::Result<oneshot::Receiver<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (ended, receiver) = oneshot::channel();
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        runtime.block_on(task());
        let _ = ended.send(());
    })?;
    Ok(receiver)
}
