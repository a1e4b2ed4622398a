//! Errors as the API answers them: a status code and a JSON body saying what is wrong
//! (RFC 9457's problem details: `status`, `title`, `detail`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::RunError;
use crate::home::HomeError;
use crate::ops::logs::LogsError;
use crate::ops::resolve::ResolveError;
use crate::ops::trigger::TriggerError;
use crate::ops::{InstanceError, UnknownTask};
use crate::store::StoreError;

/// An answer other than success: its status and what the caller should know.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
}

#[derive(Serialize)]
struct Problem<'a> {
    status: u16,
    title: &'a str,
    detail: &'a str,
}

impl ApiError {
    /// An error with this status and detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    /// 400: the request cannot be understood or does not fit.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 404: what the path names does not exist.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the request conflicts with the state of what it names.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 500: the server could not do it.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, detail)
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            status: self.status.as_u16(),
            title: self.status.canonical_reason().unwrap_or("Error"),
            detail: &self.detail,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let detail = e.to_string();
        match e {
            StoreError::NoSuchRun { .. } => Self::not_found(detail),
            StoreError::RunExists { .. }
            | StoreError::IllegalTransition { .. }
            | StoreError::Conflict { .. }
            | StoreError::RunLeaseHeld { .. }
            | StoreError::ClaimLost { .. } => Self::conflict(detail),
            StoreError::Locked(_) => Self::new(StatusCode::SERVICE_UNAVAILABLE, detail),
            _ => Self::internal(detail),
        }
    }
}

impl From<HomeError> for ApiError {
    fn from(e: HomeError) -> Self {
        match e {
            HomeError::Store(e) => e.into(),
            HomeError::RunBusy { .. } => Self::conflict(e.to_string()),
            e => Self::internal(e.to_string()),
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        let detail = e.to_string();
        match e {
            RunError::Store(e) => e.into(),
            RunError::Params(_) => Self::bad_request(detail),
            RunError::NoSuchRun { .. } => Self::not_found(detail),
            RunError::RunExists { .. }
            | RunError::RunFinished { .. }
            | RunError::ShapeChanged { .. }
            | RunError::RunOwned { .. }
            | RunError::LeaseLost { .. } => Self::conflict(detail),
            _ => Self::internal(detail),
        }
    }
}

impl From<TriggerError> for ApiError {
    fn from(e: TriggerError) -> Self {
        match e {
            TriggerError::ConfNotJson { .. } => Self::bad_request(e.to_string()),
            TriggerError::Run(e) => e.into(),
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Store(e) => e.into(),
            e => Self::not_found(e.to_string()),
        }
    }
}

impl From<UnknownTask> for ApiError {
    fn from(e: UnknownTask) -> Self {
        Self::not_found(e.to_string())
    }
}

impl From<InstanceError> for ApiError {
    fn from(e: InstanceError) -> Self {
        match e {
            InstanceError::UnknownTask(e) => e.into(),
            InstanceError::Store(e) => e.into(),
            // The instance named does not exist (as Airflow answers it).
            e @ (InstanceError::NeedsMapIndex { .. } | InstanceError::NotMapped { .. }) => {
                Self::not_found(format!("{e}; give `map_index` accordingly"))
            }
        }
    }
}

impl From<LogsError> for ApiError {
    fn from(e: LogsError) -> Self {
        match e {
            LogsError::Instance(e) => e.into(),
            LogsError::Store(e) => e.into(),
            e @ LogsError::NoSuchTry { .. } => Self::not_found(e.to_string()),
        }
    }
}
