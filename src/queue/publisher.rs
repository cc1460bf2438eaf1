//! A publishing channel with confirms. Every message is persistent and `mandatory`; a publish
//! counts only once the broker confirmed it and did not return it as unroutable.

use anyhow::{Context, bail};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};

use super::message::{ATTEMPT_HEADER, JobMessage};
use super::topology::Topology;

const PERSISTENT: u8 = 2;

pub struct Publisher {
    channel: Channel,
    topology: Topology,
}

/// A message on its way; `confirmed` waits for the broker's answer.
pub struct PendingPublish(PublisherConfirm);

impl PendingPublish {
    pub async fn confirmed(self) -> anyhow::Result<()> {
        match self
            .0
            .await
            .context("waiting for the broker's publish confirm")?
        {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => bail!(
                "the broker returned the message as unroutable ({}); is the topology declared?",
                returned.reply_text
            ),
            Confirmation::Nack(None) => bail!("the broker refused the message (nack)"),
            Confirmation::NotRequested => bail!("publisher confirms are not enabled"),
        }
    }
}

impl Publisher {
    /// Opens a confirming channel and declares the topology.
    pub async fn open(connection: &Connection, topology: Topology) -> anyhow::Result<Self> {
        let channel = connection
            .create_channel()
            .await
            .context("opening a RabbitMQ channel")?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("enabling publisher confirms")?;
        topology
            .declare(&channel)
            .await
            .context("declaring the RabbitMQ topology")?;
        Ok(Publisher { channel, topology })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn is_usable(&self) -> bool {
        self.channel.status().connected()
    }

    /// Sends a job to an exchange; the returned handle resolves when the broker confirms it.
    /// Publishing a batch, then awaiting all confirms, is several times faster than one by one.
    pub async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        message: &JobMessage,
        mut headers: FieldTable,
    ) -> anyhow::Result<PendingPublish> {
        let payload = serde_json::to_vec(message)?;
        headers.insert(
            ATTEMPT_HEADER.into(),
            AMQPValue::LongLongInt(i64::from(message.attempt())),
        );
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(message.operation_id().to_string().into())
            .with_correlation_id(message.trace_id().into())
            .with_headers(headers);
        self.publish(exchange, routing_key, &payload, properties)
            .await
    }

    /// Republishes a message as it is (dead-lettering a message we cannot parse), confirmed.
    pub async fn send_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> anyhow::Result<()> {
        self.publish(exchange, routing_key, payload, properties)
            .await?
            .confirmed()
            .await
    }

    /// Every publish is persistent and `mandatory`, whatever the message came with.
    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> anyhow::Result<PendingPublish> {
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                options,
                payload,
                properties.with_delivery_mode(PERSISTENT),
            )
            .await
            .context("publishing to RabbitMQ")?;
        Ok(PendingPublish(confirm))
    }

    /// Sends a job to the work queue.
    pub async fn send_work(&self, message: &JobMessage) -> anyhow::Result<PendingPublish> {
        let exchange = self.topology.work_exchange.clone();
        self.send(
            &exchange,
            super::topology::WORK_ROUTING_KEY,
            message,
            FieldTable::default(),
        )
        .await
    }
}
