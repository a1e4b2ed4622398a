//! `serve`: the REST API over the flow home's runs, until stopped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::scheduling::wait_for_stop_signal;
use super::{Failure, runtime};
use crate::registry::Registry;
use crate::serve::{self, Api};
use crate::settings::Settings;

pub(super) fn serve(
    settings: &Settings,
    registry: &Registry,
    bind: IpAddr,
    port: u16,
) -> Result<(), Failure> {
    let store = settings.open_store()?;
    let registry = Arc::new(Registry::from_dags(registry.dags().cloned()));
    let api = Api::new(registry, store, settings.clone());
    let token = settings.api_token().cloned();
    runtime()?.block_on(async move {
        let addr = SocketAddr::new(bind, port);
        let listener = serve::listen(addr, token.as_ref())
            .await
            .map_err(|e| Failure::usage(e.to_string()))?;
        let local = listener
            .local_addr()
            .map_err(|e| Failure::failed(format!("cannot read the address served: {e}")))?;
        eprintln!("serving the API at http://{local}/api/v2");
        serve::serve(listener, api, token, wait_for_stop_signal())
            .await
            .map_err(|e| Failure::failed(format!("the server stopped: {e}")))
    })?;
    eprintln!("server stopped");
    Ok(())
}
