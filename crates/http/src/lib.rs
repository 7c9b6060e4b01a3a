//! mediavault-http: the HTTP surface: `/api/v1` (API.md), the web console (`/console`), health
//! endpoints, middleware, TLS. A handler parses, calls one service method, renders; the rules are
//! the services' (mediavault-core), which this crate names under their usual paths.

pub mod api;
pub mod console;
pub mod context;
pub mod extract;
pub mod forward;
pub mod limits;
pub mod problem;
pub mod sealed;
pub mod serve;

// The layers below, under the paths the handlers use.
pub(crate) use mediavault_core::{
    accounts, actor, audit, checkout, clock, config, content, crypto, identity, incidents, policy,
    publishing, review, store, telemetry, vault,
};

/// The services' one `Error`, and results whose error renders as problem+json
/// ([`problem::Problem`]): a handler's `?` on a service call turns one into the other.
pub mod error {
    pub use mediavault_core::error::*;

    pub type Result<T, E = crate::problem::Problem> = std::result::Result<T, E>;
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::error::Error;
use crate::vault::Vault;
use context::{RequestCtx, with_request_id};

#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    /// How a standby reaches the active node (none for a single node).
    pub forwarder: forward::SharedForwarder,
}

impl AppState {
    /// The state the router serves; fails if `[cluster]` names a peer CA that cannot be read.
    pub fn new(vault: Arc<Vault>) -> anyhow::Result<Self> {
        let forwarder = forward::Forwarder::new(&vault.config)?.map(Arc::new);
        Ok(Self { vault, forwarder })
    }
}

pub fn router(state: AppState) -> Router {
    let cfg = Arc::clone(&state.vault.config);
    // One per-address budget (the general tier) for the general routes and for everything that
    // matches no tier: unknown paths, wrong methods, readiness. Clones share its buckets, so
    // mixing them gains nothing. Wrong methods need their own layer because axum swaps the
    // method-not-allowed fallback in after the routes were layered.
    let general = limits::general(&cfg.rate_limits);
    // The login tier's buckets are shared the same way by the API's and the console's sign-in.
    let login = limits::login(&cfg.rate_limits);
    let api = api::routes(&cfg.rate_limits, general.clone(), login.clone())
        .fallback(not_found.layer(general.clone()))
        .method_not_allowed_fallback(method_not_allowed.layer(general.clone()));
    let routes = Router::new()
        // Liveness stays outside every limit: it reads nothing and is not audited, so it can
        // neither load the store nor grow the log, and a probe that shares an address with an
        // abusive client must still see the process alive.
        .route("/healthz", get(api::ops::healthz))
        .route("/readyz", get(api::ops::readyz).layer(general.clone()))
        .route("/metrics", get(api::ops::metrics).layer(general.clone()))
        .nest("/api/v1", api)
        .nest("/console", console::routes(login, general.clone()))
        // `/console/` is where people type or bookmark the console; the nested router's own
        // root is `/console`.
        .route(
            "/console/",
            get(|| async { axum::response::Redirect::permanent("/console") }),
        )
        .fallback(not_found.layer(general))
        .layer(TagRouteLayer)
        .with_state(state.clone());
    // Everything from here on wraps the router as one service rather than through
    // `Router::layer`, which boxes each layer around each route again: axum clones a route's
    // service on every call, box by box, so every request paid an allocation per layer per level
    // (dozens for a token call; a tenth of the vault's CPU in its profile, see
    // docs/benchmark.md). Outermost first.
    let inner = ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(state.clone(), request_context))
        .layer(
            // Method, path and status only: headers and bodies can carry credentials.
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = req.extensions().get::<RequestCtx>().map(|c| c.request_id.as_str()).unwrap_or(""),
                    )
                })
                .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(CatchPanicLayer::custom(|_| {
            problem::plain(StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred")
        }))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(cfg.limits.request_timeout_seconds),
        ))
        .layer(DefaultBodyLimit::max(cfg.limits.body_bytes))
        .service(routes);
    // Every answer, API, errors and the audit's 503 included: never sniffed as another type,
    // never kept in a cache (tokens, enrolments and secrets travel in bodies). The console
    // sets its own, stricter set.
    let headers = ServiceBuilder::new()
        .layer(hsts(&cfg))
        .layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ));
    // In a cluster, a standby passes requests to the active node before anything here records
    // them (the active node records them), and the active node takes the client address a
    // standby vouches for; behind a gateway (`[gateway] addresses`), the client address the
    // gateway appended; see `forward`. A single node with no gateway has no such layer to cross.
    if state.forwarder.is_some() || !state.vault.config.gateway.addresses.is_empty() {
        Router::new().fallback_service(
            headers
                .layer(middleware::from_fn_with_state(state, forward::layer))
                .service(inner),
        )
    } else {
        Router::new().fallback_service(headers.service(inner))
    }
}

/// Under TLS a browser that has seen the vault once never tries it over plain HTTP again (a
/// year; no subdomains: the vault does not own the office's domain). Plain HTTP, only allowed on
/// loopback, must not send it. The sealed server's answers carry it too.
pub(crate) fn hsts(cfg: &config::Config) -> SetResponseHeaderLayer<Option<HeaderValue>> {
    SetResponseHeaderLayer::if_not_present(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        (!cfg.tls.plain_http).then(|| HeaderValue::from_static("max-age=31536000")),
    )
}

/// The route template a request matched, carried out on its response for the metrics (the
/// outermost middleware runs before routing and cannot see it).
#[derive(Clone)]
struct RouteTag(MatchedPath);

/// Tags each routed response with its [`RouteTag`]. A layer of its own rather than
/// `middleware::from_fn`: it wraps every route, and `from_fn` cloned the route's service and
/// boxed it and its future again on every request (a tenth of a token call's allocations).
#[derive(Clone, Copy)]
struct TagRouteLayer;

impl<S> tower::Layer<S> for TagRouteLayer {
    type Service = TagRoute<S>;

    fn layer(&self, inner: S) -> TagRoute<S> {
        TagRoute(inner)
    }
}

#[derive(Clone)]
struct TagRoute<S>(S);

impl<S> tower::Service<Request> for TagRoute<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tagged<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let tag = req.extensions().get::<MatchedPath>().cloned().map(RouteTag);
        Tagged {
            inner: self.0.call(req),
            tag,
        }
    }
}

pin_project_lite::pin_project! {
    /// A route's response future, tagging the response when it is ready.
    struct Tagged<F> {
        #[pin]
        inner: F,
        tag: Option<RouteTag>,
    }
}

impl<F, E> std::future::Future for Tagged<F>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let mut resp = std::task::ready!(this.inner.poll(cx))?;
        if let Some(tag) = this.tag.take() {
            resp.extensions_mut().insert(tag);
        }
        std::task::Poll::Ready(Ok(resp))
    }
}

async fn not_found() -> Response {
    problem::plain(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> Response {
    problem::plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Outermost middleware: gives the request its id and context, runs it, records it in the audit
/// log, and stamps the id on the response. The response leaves only after its audit entry is
/// durably committed; if that fails, a 503 replaces it and nothing the handler produced is
/// released (fail closed). A change committed with its own entry (see `Vault::change`) needs no
/// second one when it succeeds; anything else (reads, refusals, errors) gets this entry.
///
/// The request runs on its own task: a client that hangs up drops only the wait for the answer,
/// never the work between an effect and its record.
async fn request_context(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ctx = RequestCtx::new(context::new_request_id(), peer)
        .with_http(req.method().as_str(), req.uri().path())
        .with_client_cert(serve::client_cert(req.extensions()));
    req.extensions_mut().insert(ctx.clone());
    // The context is shared (a handle, not a copy); the task-local id is the one copy of its text.
    let mine = ctx.clone();
    let started = std::time::Instant::now();
    let work = tokio::spawn(with_request_id(ctx.request_id.clone(), async move {
        // Probes poll constantly and touch nothing; auditing them would drown the log.
        let exempt = ctx.path == "/healthz" || ctx.path == "/readyz";
        let mut resp = next.run(req).await;
        // A console action answers with a redirect (303) once its change is committed.
        let done = resp.status().is_success() || resp.status().is_redirection();
        let recorded = ctx.recorded() && done;
        if !exempt && !recorded {
            let code = resp.extensions().get::<problem::ErrorCode>().map(|c| c.0);
            let entry = crate::audit::request_entry(&ctx, resp.status().as_u16(), code);
            if let Err(e) = state.vault.record_request(entry).await {
                tracing::error!(request_id = %ctx.request_id, error = %e, "audit entry not written; request refused");
                resp = problem::Problem(Error::AuditUnavailable).into_response();
            }
        }
        let route = resp
            .extensions()
            .get::<RouteTag>()
            .map_or("unmatched", |t| t.0.as_str());
        state.vault.metrics().request(
            route,
            &ctx.method,
            resp.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
        resp
    }));
    let mut resp = match work.await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(request_id = %mine.request_id, error = %e, "request task failed");
            with_request_id(mine.request_id.clone(), async {
                problem::plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred",
                )
            })
            .await
        }
    };
    if let Ok(v) = HeaderValue::from_str(&mine.request_id) {
        resp.headers_mut().insert(context::REQUEST_ID_HEADER, v);
    }
    resp.into_response()
}
