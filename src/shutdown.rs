//! Process signals: SIGINT and SIGTERM stop the server gracefully; SIGHUP reloads the
//! campaigns folder.

use crate::app::App;
use std::sync::Arc;

/// Resolves on the first SIGINT or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = int.recv() => tracing::info!("SIGINT: shutting down"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reloads the campaigns folder on every SIGHUP; a folder with mistakes keeps the
/// running set and logs each problem.
pub fn reload_on_hangup(app: Arc<App>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            match app.reload_campaigns().await {
                Ok(n) => tracing::info!(campaigns = n, "SIGHUP: campaigns reloaded"),
                Err(errors) => {
                    for e in &errors {
                        tracing::error!(problem = %e, "SIGHUP: campaign folder refused");
                    }
                    tracing::error!(
                        problems = errors.len(),
                        "SIGHUP: kept the running campaigns"
                    );
                }
            }
        }
    });
}

/// Writes a ledger checkpoint every `checkpoint_interval_secs`, so a restart replays
/// little of the log.
pub fn checkpoint_periodically(app: Arc<App>) {
    tokio::spawn(async move {
        let every = std::time::Duration::from_secs(app.config.checkpoint_interval_secs);
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            match app.checkpoint().await {
                Ok(offset) => tracing::debug!(offset, "checkpoint written"),
                Err(e) => tracing::error!(error = %e, "checkpoint failed"),
            }
        }
    });
}
