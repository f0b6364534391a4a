//! A webhook receiver on 127.0.0.1 that keeps every JSON document POSTed to it.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;

/// The receiver and what it got.
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<serde_json::Value>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    pub fn start() -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        let app = Router::new().route(
            "/hook",
            post(move |body: String| {
                let store = store.clone();
                async move {
                    let value =
                        serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
                    store.lock().expect("lock").push(value);
                    "ok"
                }
            }),
        );
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            received,
            _runtime: runtime,
        }
    }

    /// Every document received so far.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.received.lock().expect("lock").clone()
    }

    /// How many documents have this `event`.
    pub fn count(&self, event: &str) -> usize {
        self.received()
            .iter()
            .filter(|v| v["event"] == event)
            .count()
    }
}
