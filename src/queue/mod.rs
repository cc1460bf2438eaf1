//! RabbitMQ: the job message, the topology (work, retry-delay and dead-letter queues), a
//! confirming publisher, the outbox relay that feeds the work queue from Postgres, and the
//! dead-letter queue as operators work it (list, replay, purge).

pub mod dead_letters;
pub mod health;
pub mod message;
pub mod outbox_wake;
pub mod publisher;
pub mod relay;
pub mod topology;

use anyhow::Context;
use lapin::{Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};

/// Opens a connection. The error never repeats the URL, which may hold the broker password.
pub async fn connect(url: &SecretString, name: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url.expose_secret(), properties)
        .await
        .context("connecting to RabbitMQ")
}
