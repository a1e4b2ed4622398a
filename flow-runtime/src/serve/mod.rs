//! `serve`: a REST API over the runs a flow home records, shaped after Airflow 3's stable
//! REST API v2 (under `/api/v2`), served by the pipeline binary itself (axum).
//!
//! It reads through the store and acts through [`crate::ops`], as the CLI does: listing
//! DAGs, runs, task instances, a try's log and an instance's XComs (rendered as JSON
//! through the producing task's own type), pausing, triggering (conf checked against the
//! params), clearing and deleting. Triggered and cleared runs are queued: a `scheduler`
//! sharing the flow home runs them.
//!
//! Security: without a token the server listens on loopback only, and refuses any other
//! address; with one ([`ApiToken`], `FLOW_API_TOKEN`) every request must carry it as
//! `Authorization: Bearer <token>`, whatever the address. The token is never logged or
//! answered.
//!
//! Errors are JSON problem details (`status`, `title`, `detail`) with their status code.
//! The OpenAPI document ([`OPENAPI`]) is served at `/api/v2/openapi.json`.

mod error;
mod events;
mod model;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use error::ApiError;

use crate::graph::Dag;
use crate::ids::DagId;
use crate::registry::{Registry, closest};
use crate::runtime::Executor;
use crate::settings::{ApiToken, Settings};
use crate::store::Store;

/// The API's OpenAPI 3 document (JSON), served at `/api/v2/openapi.json`. Tests hold it
/// true: every operation it lists answers, and schemathesis checks the answers against it.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What the endpoints share: the DAGs, the store, and the settings (for the flow home's
/// run locks and the object store).
#[derive(Clone)]
pub struct Api {
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    /// The live updates' poller, while someone listens.
    feed: events::Feed,
    /// Turns `true` when the server stops: the event streams end, so that the server's
    /// graceful stop does not wait for their clients.
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Api {
    /// The API over `registry`'s DAGs and the runs `store` records.
    pub fn new(registry: Arc<Registry>, store: Arc<dyn Store>, settings: Settings) -> Self {
        Self {
            registry,
            store,
            settings: Arc::new(settings),
            feed: events::Feed::default(),
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    fn dag(&self, id: &str) -> Result<&Dag, ApiError> {
        self.registry.get(id).ok_or_else(|| {
            ApiError::not_found(format!(
                "no DAG `{id}` in this binary; known DAGs: {}",
                closest(id, self.registry.ids()).join(", ")
            ))
        })
    }

    fn paused(&self, dag_id: &DagId) -> Result<bool, ApiError> {
        Ok(self.store.dag(dag_id)?.is_some_and(|d| d.paused))
    }

    /// An executor over the store (creating runs needs no object store).
    fn executor(&self) -> Executor {
        self.settings.executor(self.store.clone())
    }

    /// An executor that also reaches the object store (deleting a run's objects).
    fn executor_with_objects(&self) -> Result<Executor, ApiError> {
        let objects = self
            .settings
            .connect_objects()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(self.executor().object_store(objects))
    }

    /// Runs `f` on a blocking thread: the store is synchronous.
    async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Api) -> Result<T, ApiError> + Send + 'static,
    {
        let api = self.clone();
        tokio::task::spawn_blocking(move || f(&api))
            .await
            .map_err(|e| ApiError::internal(format!("the request's work stopped: {e}")))?
    }
}

/// The API's routes, behind the token check when there is a token.
pub fn router(api: Api, token: Option<ApiToken>) -> Router {
    use routes::*;
    let runs = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}";
    Router::new()
        .route("/api/v2/dags", get(list_dags))
        .route("/api/v2/dags/{dag_id}", get(get_dag).patch(patch_dag))
        .route(
            "/api/v2/dags/{dag_id}/dagRuns",
            get(list_runs).post(trigger),
        )
        .route(runs, get(get_run).delete(delete_run))
        .route(&format!("{runs}/taskInstances"), get(list_instances))
        .route(
            &format!("{runs}/taskInstances/{{task_id}}/logs/{{try_number}}"),
            get(logs),
        )
        .route(
            &format!("{runs}/taskInstances/{{task_id}}/xcomEntries"),
            get(xcoms),
        )
        .route("/api/v2/dags/{dag_id}/clearTaskInstances", post(clear))
        .route("/api/v2/pools", get(pools))
        .route("/api/v2/monitor/health", get(health))
        .route("/api/v2/openapi.json", get(openapi))
        .route("/api/v2/events", get(events))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            token.map(Arc::new),
            authorize,
        ))
        .with_state(api)
}

/// Lets a request through when no token is configured, or when it carries the token.
async fn authorize(
    State(token): State<Option<Arc<ApiToken>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|given| token.matches(given)) {
        return next.run(request).await;
    }
    let mut refused = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "this server needs its token: send `Authorization: Bearer <FLOW_API_TOKEN>`",
    )
    .into_response();
    refused
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    refused
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An address others can reach, and no token.
    #[error(
        "refusing to serve on {addr} without a token: others can reach that address; \
         set FLOW_API_TOKEN, or serve on loopback (127.0.0.1)"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// A listener on `addr`, refused when `addr` is not loopback and there is no token.
pub async fn listen(
    addr: SocketAddr,
    token: Option<&ApiToken>,
) -> Result<tokio::net::TcpListener, ServeError> {
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::TokenRequired { addr });
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Bind {
            addr,
            reason: e.to_string(),
        })
}

/// Serves `api` on `listener` until `stop` completes: requests under way are finished,
/// event streams are ended.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Api,
    token: Option<ApiToken>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stopping = api.stopping.clone();
    axum::serve(listener, router(api, token))
        .with_graceful_shutdown(async move {
            stop.await;
            stopping.send_replace(true);
        })
        .await
}
