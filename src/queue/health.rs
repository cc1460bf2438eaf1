//! What this process knows about its RabbitMQ connection, as its relay last saw it. `/readyz`
//! reports it in its body (it never opens a connection per probe) and the
//! `remediator_broker_connected` gauge exposes it; neither makes an intake unready, since
//! accepting work while the broker is away is what the outbox is for.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerState {
    /// Nothing in this process watches the broker (the relay is off), or it has not tried yet.
    Unknown,
    Connected,
    Down {
        error: String,
        since: DateTime<Utc>,
    },
}

#[derive(Debug, Clone)]
pub struct BrokerHealth(Arc<Mutex<BrokerState>>);

impl Default for BrokerHealth {
    fn default() -> Self {
        BrokerHealth(Arc::new(Mutex::new(BrokerState::Unknown)))
    }
}

impl BrokerHealth {
    pub fn state(&self) -> BrokerState {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn connected(&self) {
        metrics::gauge!("remediator_broker_connected").set(1.0);
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = BrokerState::Connected;
    }

    /// Keeps the time it first went down, so the body says for how long.
    pub fn down(&self, error: String) {
        metrics::gauge!("remediator_broker_connected").set(0.0);
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let since = match &*state {
            BrokerState::Down { since, .. } => *since,
            _ => Utc::now(),
        };
        *state = BrokerState::Down { error, since };
    }
}
