//! `wasi:http` outgoing requests (a Rust plugin's HTTP client, a JS
//! plugin's `fetch`), allowed only to the origins of the plugin's `http`
//! grant: anything else fails with `HTTP-request-denied` before a socket
//! is opened, which the plugin sees as an ordinary error.
//!
//! Origins are IP addresses (see [`super::grants::HttpOrigin`]), so the
//! request never goes through the system resolver. A request's wait is a
//! host future: the plugin's fiber is parked meanwhile (no worker thread is
//! held) and the wait counts against its `timeout_ms`, not its `cpu_ms`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::sandbox::PluginInfo;

/// Connect timeout of a request that set none (the plugin's `timeout_ms`
/// bounds the whole call anyway).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `wasi:http` hooks of one instance: the grant check in front of the
/// default sender.
pub(crate) struct HttpGrant {
    plugin: Arc<PluginInfo>,
}

impl HttpGrant {
    /// Hooks for `plugin`'s instances.
    pub(crate) fn new(plugin: Arc<PluginInfo>) -> Self {
        Self { plugin }
    }

    /// Whether `uri` is inside the grant.
    fn allows(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("");
        let Some(host) = uri.host() else {
            return false;
        };
        let port = uri.port_u16().unwrap_or(match scheme {
            "https" => 443,
            _ => 80,
        });
        self.plugin.grants.http_to(scheme, host, port)
    }
}

/// What [`WasiHttpHooks::send_request`] returns.
type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpGrant {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        if !self.allows(request.uri()) {
            tracing::info!(
                plugin = %self.plugin.name,
                uri = %request.uri(),
                "HTTP request outside the http grant refused"
            );
            return Box::new(std::future::ready(Err(Error::HttpRequestDenied)));
        }
        let mut options = options.unwrap_or_default();
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}
