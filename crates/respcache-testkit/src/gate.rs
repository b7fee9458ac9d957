//! [`Gate`]: lets a test decide when an origin goes on.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use crate::body::{Body, channel};

/// A gate a test opens to let an origin (its handler, or a body it sends)
/// go on; once open it stays open. Clones share one gate.
#[derive(Debug, Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }

    /// Opens the gate: every waiter goes on, and later ones do not wait.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    /// Waits until the gate is open.
    pub async fn opened(&self) {
        let _ = self.0.subscribe().wait_for(|open| *open).await;
    }

    /// A chunked body that sends `first` at once, then waits for the gate,
    /// then sends `rest`.
    pub fn body(&self, first: Bytes, rest: Bytes) -> Body {
        let (sender, body) = channel();
        let gate = self.clone();
        tokio::spawn(async move {
            if sender.send(first).await.is_ok() {
                gate.opened().await;
                let _ = sender.send(rest).await;
            }
        });
        body
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn a_gated_body_holds_its_rest_until_the_gate_opens() {
        let gate = Gate::new();
        let mut body = gate.body(Bytes::from_static(b"first"), Bytes::from_static(b"rest"));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "first");
        let held = tokio::time::timeout(Duration::from_millis(50), body.frame()).await;
        assert!(held.is_err(), "the rest came before the gate opened");
        gate.open();
        let rest = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(rest, "rest");
        assert!(body.frame().await.is_none());
    }
}
