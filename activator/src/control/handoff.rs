//! The slot handoff between activators: a view of the activator set is settled once every other activator confirms
//! that it works with the same list and holds no more on any pod than that list gives it (see `revision/peers.rs`).
//!
//! Each activator asks the others on their admin ports; each answers when true, holding the question up to
//! `HOLD`. An activator that cannot be reached has gone, and with it its requests.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::control::http_get::get_status;
use crate::route::Registry;

/// Where an activator's admin port answers handoff questions: `?activators=ip,ip,...`.
pub const HANDOFF_PATH: &str = "/v1/handoff";
/// How long a question is held before "not yet".
pub const HOLD: Duration = Duration::from_secs(2);
/// A peer whose admin port does not accept within this is gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between a "not yet" (or an unanswered question) and the next question.
const RETRY: Duration = Duration::from_millis(50);

/// Answers a question from another activator: true once this activator works with `list` and holds within it,
/// false if that is still not so after `hold`.
pub async fn await_release(registry: &Registry, list: &[IpAddr], hold: Duration) -> bool {
    registry
        .releases()
        .wait_until(|| registry.holds_within(list), Instant::now() + hold)
        .await
}

/// The `activators` query parameter: a comma-separated list of IPs.
pub fn parse_query(query: Option<&str>) -> Result<Vec<IpAddr>, String> {
    let list = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("activators="))
        .ok_or("the activators parameter is missing")?;
    let mut ips = list
        .split(',')
        .map(|ip| ip.parse::<IpAddr>().map_err(|_| format!("{ip:?} is not an IP address")))
        .collect::<Result<Vec<_>, _>>()?;
    ips.sort_unstable();
    Ok(ips)
}

fn query(list: &[IpAddr]) -> String {
    let ips: Vec<String> = list.iter().map(IpAddr::to_string).collect();
    format!("{HANDOFF_PATH}?activators={}", ips.join(","))
}

/// Runs for the activator's lifetime: settles each unsettled view once every other activator confirmed it.
pub async fn settle_views(registry: Arc<Registry>) {
    let mut views = registry.watch_peers();
    loop {
        let peers = views.borrow_and_update().clone();
        if !peers.is_settled() {
            let started = Instant::now();
            let list = peers.ips();
            let parties = peers.handoff_parties();
            tracing::debug!(?list, ?parties, "slot handoff: asking the other activators");
            tokio::select! {
                () = confirm_all(&parties, &list) => {
                    if registry.settle(peers.epoch()) {
                        tracing::info!(activators = ?list, waited_ms = started.elapsed().as_millis(), "slot handoff settled");
                    }
                }
                changed = views.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            }
        }
        if views.changed().await.is_err() {
            return;
        }
    }
}

async fn confirm_all(parties: &[SocketAddr], list: &[IpAddr]) {
    let path = query(list);
    futures::future::join_all(parties.iter().map(|admin| confirm(*admin, &path))).await;
}

/// Asks one activator until it confirms or turns out to be gone.
async fn confirm(admin: SocketAddr, path: &str) {
    loop {
        match ask(admin, path).await {
            Answer::Confirmed => return,
            Answer::Gone => {
                tracing::debug!(%admin, "slot handoff: activator unreachable, counted as gone");
                return;
            }
            Answer::NotYet => tokio::time::sleep(RETRY).await,
        }
    }
}

enum Answer {
    Confirmed,
    NotYet,
    Gone,
}

async fn ask(admin: SocketAddr, path: &str) -> Answer {
    let Ok(Ok(stream)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(admin)).await else {
        return Answer::Gone;
    };
    let answer = get_status(stream, admin, path, "runway-activator-handoff");
    match tokio::time::timeout(HOLD + CONNECT_TIMEOUT, answer).await {
        Ok(Some(StatusCode::OK)) => Answer::Confirmed,
        // An activator from before the handoff existed: it cannot say, and never held back either.
        Ok(Some(StatusCode::NOT_FOUND)) => Answer::Confirmed,
        _ => Answer::NotYet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_round_trips_through_the_query() {
        let list: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let path = query(&list);
        let (_, query) = path.split_once('?').unwrap();
        assert_eq!(parse_query(Some(query)).unwrap(), list);
        assert!(parse_query(None).unwrap_err().contains("missing"));
        assert!(parse_query(Some("activators=x")).unwrap_err().contains("\"x\""));
    }
}
