//! Leader election on a coordination.k8s.io Lease, so two operator replicas never reconcile or scale at once.
//!
//! Expiry is judged on this process's monotonic clock: a lease whose record has not changed for its duration, as
//! observed here, is free. No clock agreement between replicas is needed.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tokio::sync::watch;
use tracing::{info, warn};

/// How leadership is held.
#[derive(Clone, Debug)]
pub(crate) struct ElectionConfig {
    pub(crate) lease_name: String,
    pub(crate) identity: String,
    pub(crate) lease_duration: Duration,
    /// A leader that could not renew for this long steps down, before anyone else may take over.
    pub(crate) renew_deadline: Duration,
    pub(crate) retry_period: Duration,
}

/// What this replica should do with the lease now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nobody holds it, or the holder stopped renewing: take it.
    Acquire,
    /// We hold it: renew.
    Renew,
    /// Someone else holds it.
    Follow,
}

/// The part of the lease record whose change shows the holder is alive.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Record {
    pub(crate) holder: Option<String>,
    pub(crate) renew_time: Option<MicroTime>,
    pub(crate) duration: Option<i32>,
}

impl Record {
    fn of(lease: &Lease) -> Record {
        let spec = lease.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew_time: spec.renew_time,
            duration: spec.lease_duration_seconds,
        }
    }
}

/// The record as last seen, and when it was first seen in that state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Observed {
    record: Option<(Record, Instant)>,
}

/// Decides the step from the current record; a pure function of its arguments and the observation memory.
pub(crate) fn next_step(
    record: Option<&Record>,
    observed: &mut Observed,
    identity: &str,
    now: Instant,
    default: Duration,
) -> Step {
    let Some(record) = record else { return Step::Acquire };
    if record.holder.as_deref() == Some(identity) {
        return Step::Renew;
    }
    let Some(_) = &record.holder else { return Step::Acquire };
    let since = match &observed.record {
        Some((seen, at)) if seen == record => *at,
        _ => {
            observed.record = Some((record.clone(), now));
            now
        }
    };
    let duration = record
        .duration
        .and_then(|d| u64::try_from(d).ok())
        .map_or(default, Duration::from_secs);
    if now.duration_since(since) >= duration {
        Step::Acquire
    } else {
        Step::Follow
    }
}

/// Runs the election forever, publishing whether this replica leads.
pub(crate) async fn run(api: Api<Lease>, config: ElectionConfig, leading: watch::Sender<bool>) {
    let mut observed = Observed::default();
    let mut last_renewed: Option<Instant> = None;
    loop {
        let now = Instant::now();
        match try_lead(&api, &config, &mut observed, now).await {
            Ok(true) => last_renewed = Some(now),
            Ok(false) => last_renewed = None,
            Err(e) => warn!(%e, "lease"),
        }
        let leads = last_renewed.is_some_and(|t| now.duration_since(t) < config.renew_deadline);
        if *leading.borrow() != leads {
            info!(identity = %config.identity, leads, "leadership changed");
            leading.send_replace(leads);
        }
        tokio::time::sleep(config.retry_period).await;
    }
}

/// One round: returns whether we hold the lease afterwards.
async fn try_lead(
    api: &Api<Lease>,
    config: &ElectionConfig,
    observed: &mut Observed,
    now: Instant,
) -> kube::Result<bool> {
    let lease = api.get_opt(&config.lease_name).await?;
    let record = lease.as_ref().map(Record::of);
    let step = next_step(record.as_ref(), observed, &config.identity, now, config.lease_duration);
    if step == Step::Follow {
        return Ok(false);
    }
    let stamp = MicroTime(Timestamp::now());
    let previous = lease.as_ref().and_then(|l| l.spec.clone()).unwrap_or_default();
    let spec = LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.lease_duration.as_secs() as i32),
        renew_time: Some(stamp.clone()),
        acquire_time: if step == Step::Acquire {
            Some(stamp)
        } else {
            previous.acquire_time.clone()
        },
        lease_transitions: Some(previous.lease_transitions.unwrap_or(0) + i32::from(step == Step::Acquire)),
        ..LeaseSpec::default()
    };
    let result = match lease {
        // Replacing with the read resourceVersion makes two contenders race safely: one gets a conflict.
        Some(mut lease) => {
            lease.spec = Some(spec);
            api.replace(&config.lease_name, &PostParams::default(), &lease).await
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.lease_name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease up on shutdown so the other replica takes over at once instead of after the lease duration.
pub(crate) async fn release(api: &Api<Lease>, config: &ElectionConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&config.lease_name).await else {
        return;
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    match api.replace(&config.lease_name, &PostParams::default(), &lease).await {
        Ok(_) => info!("released the leader lease"),
        Err(e) => warn!(%e, "releasing the leader lease"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: Option<&str>, renewed_second: i64) -> Record {
        Record {
            holder: holder.map(str::to_owned),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed_second).unwrap())),
            duration: Some(15),
        }
    }

    #[test]
    fn a_missing_or_released_lease_is_acquired_and_our_own_is_renewed() {
        let now = Instant::now();
        let default = Duration::from_secs(15);
        assert_eq!(
            next_step(None, &mut Observed::default(), "me", now, default),
            Step::Acquire
        );
        assert_eq!(
            next_step(Some(&record(None, 1)), &mut Observed::default(), "me", now, default),
            Step::Acquire
        );
        assert_eq!(
            next_step(
                Some(&record(Some("me"), 1)),
                &mut Observed::default(),
                "me",
                now,
                default
            ),
            Step::Renew
        );
    }

    #[test]
    fn another_holder_is_followed_until_its_record_stops_changing_for_the_duration() {
        let t0 = Instant::now();
        let default = Duration::from_secs(15);
        let mut observed = Observed::default();
        let step = |r: &Record, observed: &mut Observed, after: u64| {
            next_step(Some(r), observed, "me", t0 + Duration::from_secs(after), default)
        };
        assert_eq!(step(&record(Some("other"), 1), &mut observed, 0), Step::Follow);
        assert_eq!(step(&record(Some("other"), 1), &mut observed, 14), Step::Follow);
        // The holder renewed: the clock starts again from when we saw the change.
        assert_eq!(step(&record(Some("other"), 3), &mut observed, 15), Step::Follow);
        assert_eq!(step(&record(Some("other"), 3), &mut observed, 29), Step::Follow);
        assert_eq!(step(&record(Some("other"), 3), &mut observed, 30), Step::Acquire);
    }
}
