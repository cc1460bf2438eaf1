//! Exchange and queue names, and their declaration. Declaring is idempotent, so every intake
//! and worker declares at startup and the first to run creates the topology.
//!
//! ```text
//! P.work (direct) --"work"--> P.work (quorum; delivery limit; DLX P.dead)
//! P.retry (direct) --"<n>s"--> P.retry.<n>s (quorum; TTL n s; DLX P.work/"work")
//! P.dead (fanout) ----------> P.dead (quorum)
//! ```

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use crate::config::AmqpSettings;

pub const WORK_ROUTING_KEY: &str = "work";

/// Every name the topology uses, derived from the configured prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    pub work_exchange: String,
    pub work_queue: String,
    pub retry_exchange: String,
    pub dead_exchange: String,
    pub dead_queue: String,
    pub delivery_limit: u32,
    pub retry_delays_secs: Vec<u64>,
}

impl Topology {
    pub fn new(settings: &AmqpSettings) -> Self {
        let p = &settings.prefix;
        Topology {
            work_exchange: format!("{p}.work"),
            work_queue: format!("{p}.work"),
            retry_exchange: format!("{p}.retry"),
            dead_exchange: format!("{p}.dead"),
            dead_queue: format!("{p}.dead"),
            delivery_limit: settings.delivery_limit,
            retry_delays_secs: settings.retry_delays_secs.clone(),
        }
    }

    /// The routing key of the retry tier of `delay_secs` (which tier a job goes to is
    /// `lifecycle::Limits::retry_delay`).
    pub fn retry_routing_key(delay_secs: u64) -> String {
        format!("{delay_secs}s")
    }

    pub fn retry_queue(&self, delay_secs: u64) -> String {
        format!(
            "{}.{}",
            self.retry_exchange,
            Self::retry_routing_key(delay_secs)
        )
    }

    /// Every queue, for tests and `dlq` tools that clean up.
    pub fn queues(&self) -> Vec<String> {
        let mut queues = vec![self.work_queue.clone(), self.dead_queue.clone()];
        queues.extend(self.retry_delays_secs.iter().map(|d| self.retry_queue(*d)));
        queues
    }

    pub fn exchanges(&self) -> Vec<String> {
        vec![
            self.work_exchange.clone(),
            self.retry_exchange.clone(),
            self.dead_exchange.clone(),
        ]
    }

    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for (name, kind) in [
            (&self.work_exchange, ExchangeKind::Direct),
            (&self.retry_exchange, ExchangeKind::Direct),
            (&self.dead_exchange, ExchangeKind::Fanout),
        ] {
            channel
                .exchange_declare(name.as_str().into(), kind, durable, FieldTable::default())
                .await?;
        }

        let mut work = quorum_arguments();
        // At-least-once dead-lettering needs reject-publish overflow; together they make sure
        // a message leaving the work queue for the dead-letter queue is never dropped.
        work.insert(
            "x-dead-letter-exchange".into(),
            long_string(&self.dead_exchange),
        );
        work.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(self.delivery_limit as i32),
        );
        self.declare_bound_queue(
            channel,
            &self.work_queue,
            &self.work_exchange,
            WORK_ROUTING_KEY,
            work,
        )
        .await?;

        for delay in &self.retry_delays_secs {
            let mut retry = quorum_arguments();
            retry.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt((*delay as i64).saturating_mul(1000)),
            );
            retry.insert(
                "x-dead-letter-exchange".into(),
                long_string(&self.work_exchange),
            );
            retry.insert(
                "x-dead-letter-routing-key".into(),
                long_string(WORK_ROUTING_KEY),
            );
            let key = Self::retry_routing_key(*delay);
            self.declare_bound_queue(
                channel,
                &self.retry_queue(*delay),
                &self.retry_exchange,
                &key,
                retry,
            )
            .await?;
        }

        self.declare_bound_queue(
            channel,
            &self.dead_queue,
            &self.dead_exchange,
            "",
            quorum_arguments(),
        )
        .await
    }

    /// Deletes every queue and exchange of the topology, messages and all (demo and test
    /// cleanup; never called by a server). Deleting what does not exist is not an error.
    pub async fn delete(&self, channel: &Channel) -> lapin::Result<()> {
        for queue in self.queues() {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        for exchange in self.exchanges() {
            channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }

    async fn declare_bound_queue(
        &self,
        channel: &Channel,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> lapin::Result<()> {
        let options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(queue.into(), options, arguments)
            .await?;
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    }
}

fn quorum_arguments() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args.insert(
        "x-dead-letter-strategy".into(),
        long_string("at-least-once"),
    );
    args.insert("x-overflow".into(), long_string("reject-publish"));
    args
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_tiers_saturate_at_the_last_delay() {
        let settings = crate::config::Settings::defaults().unwrap().amqp;
        let t = Topology::new(&settings);
        let limits = crate::lifecycle::Limits {
            max_attempts: settings.max_attempts,
            delivery_limit: settings.delivery_limit,
            retry_delays_secs: settings.retry_delays_secs.clone(),
        };
        let key = |attempt| limits.retry_delay(attempt).map(Topology::retry_routing_key);
        assert_eq!(key(1).as_deref(), Some("10s"));
        assert_eq!(key(2).as_deref(), Some("60s"));
        assert_eq!(key(9).as_deref(), Some("300s"));
        assert_eq!(t.retry_queue(60), "remediator.retry.60s");
    }
}
