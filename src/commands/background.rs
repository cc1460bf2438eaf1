//! Maintenance loops every server process runs beside its main job: the rescuer and the
//! metrics sampler.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::db::DbPool;
use crate::queue::topology::Topology;
use crate::shutdown::Shutdown;
use crate::worker::rescuer::Rescuer;

pub fn spawn_maintenance(
    settings: &Settings,
    pool: &DbPool,
    shutdown: &Shutdown,
) -> Vec<JoinHandle<()>> {
    crate::metrics::handle();
    let mut tasks = vec![tokio::spawn(crate::metrics::sample_forever(
        pool.clone(),
        settings.amqp.url.clone(),
        Topology::new(&settings.amqp),
        Duration::from_secs(settings.metrics.sample_secs.max(1)),
        shutdown.clone(),
    ))];
    if settings.rescuer.enabled {
        let rescuer = Rescuer {
            pool: pool.clone(),
            interval: Duration::from_secs(settings.rescuer.interval_secs.max(1)),
            stale_after: Duration::from_secs(settings.rescuer.stale_after_secs.max(1)),
        };
        tasks.push(tokio::spawn(rescuer.run(shutdown.clone())));
    }
    tasks
}

/// Waits for maintenance loops to notice the shutdown, without holding the exit up for long.
pub async fn join(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
}
