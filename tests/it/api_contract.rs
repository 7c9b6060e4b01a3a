//! Issue: docs/API.md, the OpenAPI document and the router agree.
//!
//! The OpenAPI document is generated from the handlers (`crates/http/src/api/openapi.rs`): the
//! API router registers each handler with `utoipa_axum::routes!`, which adds the route and its
//! document entry together, and a test below fails on a route added to it any other way. The
//! router's routes are not parsed out of Rust: the real server is asked. For every documented
//! path it gets one unauthenticated request per method; a documented method must reach a handler
//! (anything but 404 or 405), an undocumented one must not. API.md and the served OpenAPI
//! document must list exactly the same `METHOD /path` pairs with the same success statuses.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use serde_json::Value;

const BASE: &str = "/api/v1";
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// `(METHOD, absolute path template)`, e.g. `("GET", "/api/v1/users/{username}")`.
type Route = (String, String);

/// What docs/API.md says: served routes with their success statuses, and the planned ones.
#[derive(Default)]
struct ApiMd {
    served: BTreeMap<Route, BTreeSet<u16>>,
    planned: BTreeSet<Route>,
}

/// Splits a Markdown table row into its cells; `\|` inside a cell is not a separator.
fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.trim().trim_start_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cur).trim().to_owned()),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// The `code spans` of a cell, in order.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// Every success status named in an answer cell ("→ 201 … or 202 …"); none named means 200.
/// Only the statuses the API uses count, so "SHA-256" is not read as one.
fn success_statuses(cell: &str) -> BTreeSet<u16> {
    let mut found: BTreeSet<u16> = cell
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|word| word.parse().ok())
        .filter(|status| matches!(status, 200 | 201 | 202 | 204))
        .collect();
    if found.is_empty() {
        found.insert(200);
    }
    found
}

/// Reads the tables of docs/API.md whose first column is "call" (other tables, of error codes
/// say, are not about paths). The first cell of a row names its calls: `METHOD /path`,
/// then `/sibling` for the same method on a path that differs in its last segment, or a bare
/// `METHOD` for the same path with another method. Paths are relative to `/api/v1` except under
/// an "Operations" heading, where they are absolute. A "Planned" section is collected apart.
fn parse_api_md(text: &str) -> ApiMd {
    let mut doc = ApiMd::default();
    let mut planned = false;
    let mut absolute = false;
    let mut calls_table = false;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            planned = h.starts_with("Planned");
            absolute = h.starts_with("Operations");
            continue;
        }
        if let Some(h) = line.strip_prefix("### ") {
            absolute = h.starts_with("Operations");
            continue;
        }
        if !line.starts_with('|') {
            calls_table = false;
            continue;
        }
        let row = cells(line);
        if row[0] == "call" {
            calls_table = true;
            continue;
        }
        if !calls_table || row[0].starts_with("---") {
            continue;
        }
        let mut routes: Vec<Route> = Vec::new();
        for span in code_spans(&row[0]) {
            let (method, path) = match span.split_once(' ') {
                Some((m, p)) if METHODS.contains(&m) => {
                    let p = p.split('?').next().unwrap();
                    let p = if absolute {
                        p.to_owned()
                    } else {
                        format!("{BASE}{p}")
                    };
                    (m.to_owned(), p)
                }
                _ if span.starts_with('/') => {
                    let (m, prev) = routes.last().expect(line);
                    let parent = &prev[..prev.rfind('/').unwrap()];
                    (m.clone(), format!("{parent}{span}"))
                }
                _ if METHODS.contains(&span) => {
                    let (_, prev) = routes.last().expect(line);
                    (span.to_owned(), prev.clone())
                }
                _ => panic!("API.md: cannot read the call {span:?} in: {line}"),
            };
            routes.push((method, path));
        }
        assert!(
            !routes.is_empty(),
            "API.md: a table row names no call: {line}"
        );
        let statuses = success_statuses(row.last().unwrap());
        for route in routes {
            if planned {
                doc.planned.insert(route);
            } else {
                assert!(
                    doc.served.insert(route.clone(), statuses.clone()).is_none(),
                    "API.md documents {route:?} twice"
                );
            }
        }
    }
    doc
}

/// The operations of an OpenAPI document with their 2xx statuses, paths made absolute with its
/// server URL.
fn parse_openapi(doc: &Value) -> BTreeMap<Route, BTreeSet<u16>> {
    let base = doc["servers"][0]["url"].as_str().unwrap();
    assert_eq!(base, BASE, "the OpenAPI server URL");
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let statuses = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .filter_map(|k| k.parse::<u16>().ok())
                .filter(|s| (200..300).contains(s))
                .collect();
            out.insert((method, format!("{base}{path}")), statuses);
        }
    }
    out
}

/// A path template with every `{parameter}` filled in with a plausible value.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| if seg.starts_with('{') { "probe" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the router has a handler for `method` on `path`. Unauthenticated, a handler answers
/// 401, 400, 415 or 200; the router itself answers 405, or 404 with the body of its fallback
/// (`fallback`), which a handler's own 404 for an unknown thing does not have.
async fn served(app: &TestApp, fallback: &Value, method: &str, path: &str) -> (bool, u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let r = app.client.request(m, app.url(path)).send().await.unwrap();
    let (status, body) = into_pair(r).await;
    let routed_away = status == 405 || (status == 404 && body["detail"] == fallback["detail"]);
    (!routed_away, status, body)
}

fn diff(a: &BTreeSet<Route>, b: &BTreeSet<Route>) -> Vec<String> {
    a.difference(b).map(|(m, p)| format!("{m} {p}")).collect()
}

#[tokio::test]
async fn api_md_openapi_and_router_agree() {
    let app = spawn_with(Options {
        // Some 180 probes from one address; the limits are not what this test is about.
        tweak: Some(Box::new(|c| {
            let l = &mut c.rate_limits;
            l.login_per_minute = 100_000;
            l.login_burst = 100_000;
            l.checkout_per_minute = 100_000;
            l.checkout_burst = 100_000;
            l.token_per_second = 100_000;
            l.token_burst = 100_000;
            l.general_per_second = 100_000;
            l.general_burst = 100_000;
        })),
        ..Default::default()
    })
    .await;
    let md = parse_api_md(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/API.md")).unwrap(),
    );
    let (st, doc) = app.get("", "/api/v1/openapi.json").await;
    assert_eq!(st, 200);
    let openapi = parse_openapi(&doc);
    conventions_hold(&doc);

    // The OpenAPI document covers /api/v1 only; the probes outside it are in API.md alone.
    let md_api: BTreeMap<_, _> = md
        .served
        .iter()
        .filter(|((_, p), _)| p.starts_with(&format!("{BASE}/")))
        .map(|(r, s)| (r.clone(), s.clone()))
        .collect();
    let md_routes: BTreeSet<Route> = md_api.keys().cloned().collect();
    let oa_routes: BTreeSet<Route> = openapi.keys().cloned().collect();
    assert!(
        md_routes == oa_routes,
        "in API.md but not in the OpenAPI document: {:?}\nin the OpenAPI document but not in API.md: {:?}",
        diff(&md_routes, &oa_routes),
        diff(&oa_routes, &md_routes)
    );
    let statuses: Vec<String> = md_api
        .iter()
        .filter(|(r, s)| openapi[*r] != **s)
        .map(|((m, p), s)| {
            format!(
                "{m} {p}: API.md {s:?}, OpenAPI {:?}",
                openapi[&(m.clone(), p.clone())]
            )
        })
        .collect();
    assert!(
        statuses.is_empty(),
        "success statuses differ: {statuses:#?}"
    );

    // Every documented method reaches a handler; no other method on that path does.
    let (st, fallback) = app.get("", "/api/v1/no/such/endpoint").await;
    assert_eq!((st, &fallback["code"]), (404, &Value::from("not_found")));
    let mut by_path: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (m, p) in md.served.keys().chain(openapi.keys()) {
        by_path.entry(p).or_default().insert(m);
    }
    let mut wrong = Vec::new();
    for (template, documented) in &by_path {
        let path = concrete(template);
        for method in METHODS {
            let (ok, status, body) = served(&app, &fallback, method, &path).await;
            let expected = documented.contains(method);
            if ok != expected {
                let what = if expected {
                    "documented but not served"
                } else {
                    "served but not documented"
                };
                wrong.push(format!("{method} {template}: {what} ({status} {body})"));
            }
        }
    }
    // A planned call that answers has shipped: it belongs in its table and in OpenAPI now.
    for (method, template) in &md.planned {
        let (ok, status, _) = served(&app, &fallback, method, &concrete(template)).await;
        if ok {
            wrong.push(format!(
                "{method} {template}: planned in API.md, yet answers {status}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "API.md / OpenAPI vs the router: {wrong:#?}"
    );
}

/// What API.md's conventions say of every operation, in the document: each error is
/// problem+json, and each operation but signing in, unsealing and the document itself names how the caller
/// authenticates, with schemes that exist. And what makes the document usable by a tool: every
/// `{parameter}` of a path is described, and operation ids are unique.
fn conventions_hold(doc: &Value) {
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let problem = &doc["components"]["responses"]["Problem"]["content"]["application/problem+json"];
    assert_eq!(problem["schema"]["$ref"], "#/components/schemas/Problem");
    let mut wrong = Vec::new();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let route = format!("{} {path}", method.to_ascii_uppercase());
            if !ids.insert(op["operationId"].as_str().unwrap_or_default().to_owned()) {
                wrong.push(format!(
                    "{route}: operationId {} is not unique",
                    op["operationId"]
                ));
            }
            let described: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let named: BTreeSet<&str> = path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            if described != named {
                wrong.push(format!("{route}: path parameters {described:?}"));
            }
            for range in ["4XX", "5XX"] {
                if op["responses"][range]["$ref"] != "#/components/responses/Problem" {
                    wrong.push(format!("{route}: {range} is not the problem+json answer"));
                }
            }
            let security = op["security"].as_array().cloned().unwrap_or_default();
            // The unseal calls answer while no session can exist: the share is the credential.
            let open = [
                "POST /auth/login",
                "GET /openapi.json",
                "GET /unseal",
                "POST /unseal",
                "DELETE /unseal",
            ]
            .contains(&route.as_str());
            if security.is_empty() != open {
                wrong.push(format!("{route}: security {security:?}"));
            }
            for requirement in &security {
                for name in requirement.as_object().unwrap().keys() {
                    if !schemes.contains_key(name) {
                        wrong.push(format!("{route}: no security scheme {name:?}"));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "the OpenAPI document: {wrong:#?}");
}

/// `routes!` registers a handler's route and its OpenAPI entry together; a plain `.route(` (or
/// `.nest(`, `.fallback(`) in the API router would serve a path the document does not know.
#[test]
fn every_api_route_is_registered_with_its_document_entry() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/http/src/api/mod.rs");
    let source = std::fs::read_to_string(file).unwrap();
    let registered = source.matches(".routes(routes!(").count();
    assert!(registered > 40, "{file}: only {registered} routes! calls");
    for bypass in [
        ".route(",
        ".route_service(",
        ".nest(",
        ".nest_service(",
        ".fallback(",
    ] {
        assert!(
            !source.contains(bypass),
            "{file} calls {bypass}: register the handler with `.routes(routes!(..))` and \
             `#[utoipa::path]` so it is in the OpenAPI document"
        );
    }
}

#[test]
fn api_md_reader_understands_the_shorthands() {
    let md = parse_api_md(
        "## Accounts\n| call | who |\n| --- | --- |\n\
         | `POST /a/{id}/freeze`, `/unfreeze` | admin |\n\
         | `GET /x?y=\\|z`, `GET /x/{id}` | → list |\n\
         | `POST /p/{path}` (also `GET`) | → 201 `{a}` or 202 |\n\
         \n| code | status |\n| --- | --- |\n| `rate_limited` | 429 |\n\
         ## Operations\n| call | answer |\n| --- | --- |\n| `GET /healthz` | 200 ok; 503 otherwise |\n\
         ## Planned (not yet served)\n### Operations\n| call | answer |\n| --- | --- |\n| `GET /metrics` | text |\n",
    );
    let served: Vec<String> = md
        .served
        .iter()
        .map(|((m, p), s)| format!("{m} {p} {s:?}"))
        .collect();
    assert_eq!(
        served,
        [
            "GET /api/v1/p/{path} {201, 202}",
            "GET /api/v1/x {200}",
            "GET /api/v1/x/{id} {200}",
            "GET /healthz {200}",
            "POST /api/v1/a/{id}/freeze {200}",
            "POST /api/v1/a/{id}/unfreeze {200}",
            "POST /api/v1/p/{path} {201, 202}",
        ]
    );
    assert_eq!(
        md.planned.into_iter().collect::<Vec<_>>(),
        [("GET".to_owned(), "/metrics".to_owned())]
    );
}
