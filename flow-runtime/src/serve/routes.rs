//! The endpoints: each reads the store or calls [`crate::ops`], on a blocking thread (the
//! store is synchronous), and answers JSON.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::Api;
use super::error::ApiError;
use super::events::Update;
use super::model::{
    ClearBody, ClearedJson, DagJson, DagList, DagPatch, DagRunJson, DagRunList, EventsQuery,
    MapIndexQuery, Paging, PoolJson, PoolList, TaskInstanceJson, TaskInstanceList, TriggerBody,
    TryLogJson, XComJson, XComList,
};
use crate::ids::RunType;
use crate::ops;
use crate::ops::xcoms::XComView;
use crate::state::RunState;
use crate::store::{Page, RunOrder, RunOrderBy, RunQuery};

type Answer<T> = Result<Json<T>, ApiError>;

/// Airflow's default page size, and its most.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;
/// The furthest a page may start (the OpenAPI document's `maximum`).
const MAX_OFFSET: usize = 1_000_000_000;

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(p)| p)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// A request body: a JSON object with the fields of `T` (an array is not taken for one).
fn body<T: serde::de::DeserializeOwned>(
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<T, ApiError> {
    let Json(value) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let kind = match &value {
        serde_json::Value::Object(_) => None,
        serde_json::Value::Array(_) => Some("an array"),
        serde_json::Value::String(_) => Some("a string"),
        serde_json::Value::Number(_) => Some("a number"),
        serde_json::Value::Bool(_) => Some("a boolean"),
        serde_json::Value::Null => Some("null"),
    };
    if let Some(kind) = kind {
        return Err(ApiError::bad_request(format!(
            "the body must be a JSON object, not {kind}"
        )));
    }
    serde_json::from_value(value).map_err(|e| ApiError::bad_request(format!("the body: {e}")))
}

fn page(paging: Paging) -> Result<Page, ApiError> {
    let limit = paging.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` must be 1 to {MAX_LIMIT}, not {limit}"
        )));
    }
    let offset = paging.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::bad_request(format!(
            "`offset` must be 0 to {MAX_OFFSET}, not {offset}"
        )));
    }
    Ok(Page { limit, offset })
}

/// A map index as Airflow gives it (-1 or absent: not mapped).
fn map_index(q: MapIndexQuery) -> Result<Option<u32>, ApiError> {
    match q.map_index {
        None | Some(-1) => Ok(None),
        Some(i) => u32::try_from(i).map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "`map_index` must be -1 (not mapped) or an instance's index, not {i}"
            ))
        }),
    }
}

/// `GET /api/v2/dags`: the binary's DAGs, by id.
pub(super) async fn list_dags(
    State(api): State<Api>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Answer<DagList> {
    let page = page(query(paging)?)?;
    api.blocking(move |api| {
        let total_entries = api.registry.dags().count();
        let dags = api
            .registry
            .dags()
            .skip(page.offset)
            .take(page.limit)
            .map(|dag| Ok(DagJson::new(dag, api.paused(dag.id())?)))
            .collect::<Result<_, ApiError>>()?;
        Ok(DagList {
            dags,
            total_entries,
        })
    })
    .await
    .map(Json)
}

/// `GET /api/v2/dags/{dag_id}`.
pub(super) async fn get_dag(
    State(api): State<Api>,
    dag_id: Result<Path<String>, PathRejection>,
) -> Answer<DagJson> {
    let dag_id = path(dag_id)?;
    api.blocking(move |api| {
        let dag = api.dag(&dag_id)?;
        Ok(DagJson::new(dag, api.paused(dag.id())?))
    })
    .await
    .map(Json)
}

/// `PATCH /api/v2/dags/{dag_id}` with `{"is_paused": bool}`: pauses or unpauses it.
pub(super) async fn patch_dag(
    State(api): State<Api>,
    dag_id: Result<Path<String>, PathRejection>,
    patch: Result<Json<serde_json::Value>, JsonRejection>,
) -> Answer<DagJson> {
    let dag_id = path(dag_id)?;
    let patch: DagPatch = body(patch)?;
    api.blocking(move |api| {
        let dag = api.dag(&dag_id)?;
        ops::pools::set_paused(api.store.as_ref(), dag, patch.is_paused)?;
        Ok(DagJson::new(dag, patch.is_paused))
    })
    .await
    .map(Json)
}

/// What a list of runs takes, besides `limit` and `offset`.
const RUN_FILTERS: &str = "state, run_type, logical_date_gte, logical_date_lte, order_by";

/// The filters, order and page of a list of runs, from its query string: `state` and
/// `run_type` repeated (as Airflow's) or comma-separated, dates in RFC 3339, `order_by`
/// a field with `-` in front for largest first.
fn run_query(raw: Option<&str>) -> Result<(RunQuery, Page), ApiError> {
    let mut query = RunQuery::default();
    let mut paging = Paging {
        limit: None,
        offset: None,
    };
    let bad = |key: &str, value: &str, expected: &str| {
        ApiError::bad_request(format!("`{key}` must be {expected}, not `{value}`"))
    };
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let (key, value) = (key.as_ref(), value.as_ref());
        match key {
            "limit" | "offset" => {
                let n = value
                    .parse::<usize>()
                    .map_err(|_| bad(key, value, "a whole number"))?;
                *(if key == "limit" {
                    &mut paging.limit
                } else {
                    &mut paging.offset
                }) = Some(n);
            }
            "state" => query
                .states
                .extend(named(key, value, RunState::ALL, RunState::as_str)?),
            "run_type" => query
                .run_types
                .extend(named(key, value, RunType::ALL, RunType::as_str)?),
            "logical_date_gte" | "logical_date_lte" => {
                let date = DateTime::parse_from_rfc3339(value)
                    .map_err(|_| bad(key, value, "a date and time like 2025-01-01T00:00:00Z"))?
                    .with_timezone(&Utc);
                *(if key == "logical_date_gte" {
                    &mut query.logical_date_gte
                } else {
                    &mut query.logical_date_lte
                }) = Some(date);
            }
            "order_by" => {
                let (descending, field) = match value.strip_prefix('-') {
                    Some(field) => (true, field),
                    None => (false, value),
                };
                let by = match field {
                    "logical_date" => RunOrderBy::LogicalDate,
                    "start_date" => RunOrderBy::StartDate,
                    "end_date" => RunOrderBy::EndDate,
                    "dag_run_id" => RunOrderBy::RunId,
                    _ => {
                        return Err(bad(
                            key,
                            value,
                            "logical_date, start_date, end_date or dag_run_id, with `-` in \
                             front for largest first",
                        ));
                    }
                };
                query.order = RunOrder { by, descending };
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{other}`; a list of runs takes limit, offset, \
                     {RUN_FILTERS}"
                )));
            }
        }
    }
    Ok((query, page(paging)?))
}

/// The values of `all` that `value` names, comma-separated, by `name`.
fn named<T: Copy, const N: usize>(
    key: &str,
    value: &str,
    all: [T; N],
    name: fn(T) -> &'static str,
) -> Result<Vec<T>, ApiError> {
    value
        .split(',')
        .map(|given| {
            all.into_iter().find(|t| name(*t) == given).ok_or_else(|| {
                let names: Vec<&str> = all.into_iter().map(name).collect();
                ApiError::bad_request(format!(
                    "`{key}` must be one of {}, not `{given}`",
                    names.join(", ")
                ))
            })
        })
        .collect()
}

/// `GET /api/v2/dags/{dag_id}/dagRuns`: filtered by state, type and logical date, newest
/// logical date first unless `order_by` says otherwise.
pub(super) async fn list_runs(
    State(api): State<Api>,
    dag_id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Answer<DagRunList> {
    let dag_id = path(dag_id)?;
    let (mut query, page) = run_query(raw.as_deref())?;
    api.blocking(move |api| {
        let dag = api.dag(&dag_id)?;
        query.dag_id = Some(dag.id().clone());
        let runs = api.store.runs_page(&query, page)?;
        Ok(DagRunList {
            dag_runs: runs.items.into_iter().map(DagRunJson::from).collect(),
            total_entries: runs.total,
        })
    })
    .await
    .map(Json)
}

/// `POST /api/v2/dags/{dag_id}/dagRuns` with `{"logical_date"?, "conf"?}`: queues a
/// manual run for the scheduler, its conf checked against the DAG's params.
pub(super) async fn trigger(
    State(api): State<Api>,
    dag_id: Result<Path<String>, PathRejection>,
    trigger: Result<Json<serde_json::Value>, JsonRejection>,
) -> Answer<DagRunJson> {
    let dag_id = path(dag_id)?;
    let trigger: TriggerBody = body(trigger)?;
    api.blocking(move |api| {
        let dag = api.dag(&dag_id)?;
        let date = trigger.logical_date.unwrap_or_else(chrono::Utc::now);
        let request = ops::trigger::request(dag, date, trigger.conf.as_ref())?;
        let run = ops::trigger::trigger(&api.executor(), dag, request)?;
        Ok(DagRunJson::from(run))
    })
    .await
    .map(Json)
}

/// `GET /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}` (`latest` names the newest).
pub(super) async fn get_run(
    State(api): State<Api>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Answer<DagRunJson> {
    let (dag_id, run) = path(ids)?;
    api.blocking(move |api| {
        let dag = api.dag(&dag_id)?;
        let run_id = ops::resolve::resolve_run(api.store.as_ref(), dag, &run)?;
        let record = api
            .store
            .run(dag.id(), &run_id)?
            .ok_or_else(|| ApiError::not_found(format!("run `{run_id}` was just deleted")))?;
        Ok(DagRunJson::from(record))
    })
    .await
    .map(Json)
}

/// `DELETE /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}`: the run's records and objects;
/// 409 while a process runs it.
pub(super) async fn delete_run(
    State(api): State<Api>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (dag_id, run) = path(ids)?;
    let (dag_id, run_id, lock) = api
        .blocking(move |api| {
            let dag = api.dag(&dag_id)?;
            let run_id = ops::resolve::resolve_run(api.store.as_ref(), dag, &run)?;
            let lock = api.settings.home()?.lock_run(dag.id(), &run_id)?;
            Ok((dag.id().clone(), run_id, lock))
        })
        .await?;
    let executor = api.executor_with_objects()?;
    ops::delete::delete_run(&executor, &dag_id, &run_id, &lock).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances`: by task id, then map
/// index.
pub(super) async fn list_instances(
    State(api): State<Api>,
    ids: Result<Path<(String, String)>, PathRejection>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Answer<TaskInstanceList> {
    let (dag_id, run) = path(ids)?;
    let page = page(query(paging)?)?;
    api.blocking(move |api| {
        let dag = api.dag(&dag_id)?;
        let run_id = ops::resolve::resolve_run(api.store.as_ref(), dag, &run)?;
        let instances = api.store.task_instances_page(dag.id(), &run_id, page)?;
        Ok(TaskInstanceList {
            task_instances: instances
                .items
                .into_iter()
                .map(TaskInstanceJson::from)
                .collect(),
            total_entries: instances.total,
        })
    })
    .await
    .map(Json)
}

/// `GET .../taskInstances/{task_id}/logs/{try_number}?map_index=`: one try's log lines,
/// as far as they are written (a running try's too).
pub(super) async fn logs(
    State(api): State<Api>,
    ids: Result<Path<(String, String, String, u32)>, PathRejection>,
    which: Result<Query<MapIndexQuery>, QueryRejection>,
) -> Answer<TryLogJson> {
    let (dag_id, run, task_id, try_number) = path(ids)?;
    let map_index = map_index(query(which)?)?;
    api.blocking(move |api| {
        let dag = api.dag(&dag_id)?;
        let run_id = ops::resolve::resolve_run(api.store.as_ref(), dag, &run)?;
        let logs = ops::logs::read(
            api.store.as_ref(),
            dag,
            &run_id,
            &task_id,
            map_index,
            Some(try_number),
        )?;
        let attempt = logs.tries.into_iter().next().ok_or_else(|| {
            ApiError::not_found(format!("task `{task_id}` has no try {try_number}"))
        })?;
        Ok(TryLogJson {
            try_number: attempt.try_number,
            state: attempt.state.as_str().to_string(),
            content: attempt.lines.into_iter().map(Into::into).collect(),
        })
    })
    .await
    .map(Json)
}

/// `GET .../taskInstances/{task_id}/xcomEntries?map_index=`: the instance's XComs, each
/// rendered through the producing task's own type.
pub(super) async fn xcoms(
    State(api): State<Api>,
    ids: Result<Path<(String, String, String)>, PathRejection>,
    which: Result<Query<MapIndexQuery>, QueryRejection>,
) -> Answer<XComList> {
    let (dag_id, run, task_id) = path(ids)?;
    let map_index = map_index(query(which)?)?;
    api.blocking(move |api| {
        let dag = api.dag(&dag_id)?;
        let run_id = ops::resolve::resolve_run(api.store.as_ref(), dag, &run)?;
        let listed = ops::xcoms::list(api.store.as_ref(), dag, &run_id, &task_id, map_index)?;
        let xcom_entries: Vec<XComJson> = listed
            .xcoms
            .iter()
            .map(|(name, stored)| {
                let (value, value_type, object_key) =
                    match ops::xcoms::view(dag, &task_id, name, stored) {
                        XComView::Json(value) => (value, None, None),
                        XComView::Opaque { type_name, .. } => {
                            (serde_json::Value::Null, Some(type_name), None)
                        }
                        XComView::Object { key, type_name } => {
                            (serde_json::Value::Null, Some(type_name), Some(key))
                        }
                    };
                XComJson {
                    key: name.clone(),
                    dag_id: listed.key.dag_id.to_string(),
                    run_id: listed.key.run_id.to_string(),
                    task_id: listed.key.task_id.to_string(),
                    map_index: listed.key.map_index.as_i64(),
                    value,
                    value_type,
                    object_key,
                }
            })
            .collect();
        Ok(XComList {
            total_entries: xcom_entries.len(),
            xcom_entries,
        })
    })
    .await
    .map(Json)
}

/// `POST /api/v2/dags/{dag_id}/clearTaskInstances`: resets task instances of a run (and
/// those downstream, with `include_downstream`), so that the scheduler runs them again;
/// 409 while a process runs it.
pub(super) async fn clear(
    State(api): State<Api>,
    dag_id: Result<Path<String>, PathRejection>,
    clear: Result<Json<serde_json::Value>, JsonRejection>,
) -> Answer<ClearedJson> {
    let dag_id = path(dag_id)?;
    let clear: ClearBody = body(clear)?;
    api.blocking(move |api| {
        let dag = api.dag(&dag_id)?;
        let run_id = ops::resolve::resolve_run(api.store.as_ref(), dag, &clear.dag_run_id)?;
        let ids = ops::clear::task_set(dag, &clear.task_ids, clear.include_downstream)?;
        if !clear.dry_run {
            let lock = api.settings.home()?.lock_run(dag.id(), &run_id)?;
            ops::clear::clear(api.store.as_ref(), dag, &run_id, &ids, &lock)?;
        }
        Ok(ClearedJson {
            dag_run_id: run_id.to_string(),
            total_entries: ids.len(),
            task_ids: ids.iter().map(ToString::to_string).collect(),
        })
    })
    .await
    .map(Json)
}

/// `GET /api/v2/pools`: the pools, `default_pool` among them.
pub(super) async fn pools(State(api): State<Api>) -> Answer<PoolList> {
    api.blocking(|api| {
        let pools: Vec<PoolJson> = ops::pools::pools(api.store.as_ref())?
            .into_iter()
            .map(PoolJson::from)
            .collect();
        Ok(PoolList {
            total_entries: pools.len(),
            pools,
        })
    })
    .await
    .map(Json)
}

/// `GET /api/v2/monitor/health`: whether the database answers.
pub(super) async fn health(State(api): State<Api>) -> Answer<serde_json::Value> {
    api.blocking(|api| {
        api.store
            .runs_page(&crate::store::RunQuery::default(), Page::first(1))?;
        Ok(serde_json::json!({"metadatabase": {"status": "healthy"}}))
    })
    .await
    .map(Json)
}

/// `GET /api/v2/openapi.json`: the API's OpenAPI document.
pub(super) async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        super::OPENAPI,
    )
}

/// `GET /api/v2/events?dag_id=`: server-sent events of run and task instance changes
/// (`dag_run`, `task_instance`, their JSON as in the lists), whichever process makes them;
/// `lagged` when the client fell behind and missed some (read the lists again).
pub(super) async fn events(
    State(api): State<Api>,
    which: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let only = query(which)?.dag_id;
    if let Some(id) = &only {
        api.dag(id)?;
    }
    let receiver = api.feed.subscribe(&api.store);
    let stopping = api.stopping.subscribe();
    let stream = futures_util::stream::unfold(
        (receiver, stopping, only),
        |(mut receiver, mut stopping, only)| async move {
            loop {
                let update = tokio::select! {
                    update = receiver.recv() => update,
                    _ = stopping.wait_for(|stop| *stop) => return None,
                };
                let event = match update {
                    Ok(update)
                        if only
                            .as_deref()
                            .is_some_and(|d| d != update.dag_id().as_str()) =>
                    {
                        continue;
                    }
                    Ok(Update::DagRun(run, _)) => json_event("dag_run", &*run),
                    Ok(Update::TaskInstance(ti, _)) => json_event("task_instance", &*ti),
                    Err(RecvError::Lagged(missed)) => {
                        Event::default().event("lagged").data(missed.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(event), (receiver, stopping, only)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn json_event(name: &str, value: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(value).unwrap_or_default())
}

/// Any other path.
pub(super) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint at `{}`; the API is under /api/v2 (dags, dags/{{dag_id}}/dagRuns, pools, ...)",
        uri.path()
    ))
}

/// A path that exists, with another method.
pub(super) async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("this endpoint does not take {method}"),
    )
}
