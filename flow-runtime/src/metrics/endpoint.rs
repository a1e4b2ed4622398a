//! The `--metrics` endpoint: a thread answering Prometheus scrapes of `GET /metrics`.
//! (When `serve` exists, its port answers the same path with the same text.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{CONTENT_TYPE, Metrics};
use crate::store::Store;

/// A listening metrics endpoint; dropping it stops the listener.
pub struct MetricsEndpoint {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MetricsEndpoint {
    /// Listens on `addr` (port 0 picks a free one; see [`MetricsEndpoint::addr`]) and
    /// answers each scrape with `metrics` and the gauges read from `store` then.
    pub fn start(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        store: Arc<dyn Store>,
    ) -> std::io::Result<Self> {
        let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("the metrics endpoint has no IP address"))?;
        let server = Arc::new(server);
        let listener = server.clone();
        let thread = std::thread::Builder::new()
            .name("flow-metrics".into())
            .spawn(move || {
                for request in listener.incoming_requests() {
                    let response = answer(&request, &metrics, store.as_ref());
                    // The scraper went away: nothing to tell it.
                    let _ = request.respond(response);
                }
            })?;
        Ok(Self {
            server,
            addr,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL a Prometheus server scrapes.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type Response = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn answer(request: &tiny_http::Request, metrics: &Metrics, store: &dyn Store) -> Response {
    const PLAIN: &str = "text/plain; charset=utf-8";
    let text = |status: u16, body: String, content_type: &str| {
        let response = tiny_http::Response::from_string(body).with_status_code(status);
        // The header is a constant: it always parses.
        match tiny_http::Header::from_bytes("Content-Type", content_type) {
            Ok(header) => response.with_header(header),
            Err(()) => response,
        }
    };
    let path = request.url().split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return text(
            404,
            format!("no page `{path}` here: metrics are at /metrics\n"),
            PLAIN,
        );
    }
    if !matches!(
        request.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    ) {
        return text(405, "/metrics answers GET only\n".into(), PLAIN);
    }
    match metrics.render(store) {
        Ok(body) => text(200, body, CONTENT_TYPE),
        Err(e) => text(
            503,
            format!("cannot read the store for the metrics: {e}\n"),
            PLAIN,
        ),
    }
}
