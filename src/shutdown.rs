//! Graceful shutdown as a small shared signal: one `Shutdown` is triggered (by SIGTERM/SIGINT
//! or by a test), and every loop holding a clone sees it at its next await point.

use tokio::sync::watch;

#[derive(Clone)]
pub struct Shutdown {
    sender: watch::Sender<bool>,
    receiver: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (sender, receiver) = watch::channel(false);
        Shutdown { sender, receiver }
    }

    pub fn trigger(&self) {
        // Every holder keeps a receiver alive, so sending cannot fail while anyone listens.
        let _ = self.sender.send(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once the signal is given (at once if it already was).
    pub async fn triggered(&self) {
        let mut receiver = self.receiver.clone();
        // An error means every sender is gone, which can only happen while shutting down.
        let _ = receiver.wait_for(|stop| *stop).await;
    }

    /// Triggers on SIGINT or SIGTERM; spawned once by each server command.
    pub fn trigger_on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received");
            this.trigger();
        });
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
