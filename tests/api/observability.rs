//! Metrics, traces, request ids, profiles and the access log, observed from outside.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use prost::Message;

use crate::helpers::{TIMEOUT, TestApp, spawn_app, spawn_app_with};

const EXAMPLE_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn admin_get(app: &TestApp, path: &str, accept: Option<&str>) -> guess_game::client::Answer {
    let headers: Vec<(&str, &str)> = accept
        .map(|accept| ("accept", accept))
        .into_iter()
        .collect();
    app.admin_request(Method::GET, path, &headers, Bytes::new())
        .await
}

/// Scrapes `/metrics` and parses it with a Prometheus text-format parser: metric name and
/// labels to value (histograms contribute their `_count` and `_sum`).
/// The `/metrics` page as text.
pub async fn scrape_text(app: &TestApp) -> String {
    let answer = admin_get(app, "/metrics", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    String::from_utf8(answer.body.to_vec()).unwrap()
}

async fn scrape(app: &TestApp) -> (Vec<String>, HashMap<String, f64>) {
    let answer = admin_get(app, "/metrics", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("a valid Prometheus exposition");
    let families: Vec<String> = scrape.docs.keys().cloned().collect();
    let mut values = HashMap::new();
    for sample in scrape.samples {
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        let key = format!("{}{{{}}}", sample.metric, labels.join(","));
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => {
                values.insert(format!("{key}:buckets"), buckets.len() as f64);
                buckets.last().map_or(0.0, |bucket| bucket.count)
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        values.insert(key, value);
    }
    (families, values)
}

fn value(values: &HashMap<String, f64>, key: &str) -> f64 {
    values.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_families_exist_and_move_with_requests() {
    let app = spawn_app().await;
    let (_, before) = scrape(&app).await;
    for _ in 0..3 {
        assert_eq!(
            app.play_json(r#"{"choice":"rock"}"#).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        app.play_json(r#"{"choice":"lizard"}"#).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.get("/nope").await.status, StatusCode::NOT_FOUND);
    let (families, after) = scrape(&app).await;

    for family in [
        "guess_game_build_info",
        "guess_game_http_requests_total",
        "guess_game_http_request_duration_seconds",
        "guess_game_http_requests_in_flight",
        "guess_game_http_request_body_bytes",
        "guess_game_http_response_body_bytes",
        "guess_game_rounds_total",
        "guess_game_connections_accepted_total",
        "guess_game_connections_open",
        "guess_game_runtime_workers",
        "guess_game_runtime_alive_tasks",
        "guess_game_runtime_global_queue_depth",
        "guess_game_runtime_busy_seconds_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_threads",
        "process_start_time_seconds",
        "guess_game_allocator_allocated_bytes",
        "guess_game_allocator_resident_bytes",
        "guess_game_tcp_listen_overflows_total",
        "guess_game_tcp_listen_drops_total",
        "guess_game_listen_queue_length",
        "guess_game_traceparent_invalid_total",
        "guess_game_access_log_dropped_total",
        "guess_game_spans_dropped_total",
        "guess_game_rate_limited_total",
        "guess_game_shed_total",
        "guess_game_timeouts_total",
        "guess_game_concurrency_limit",
        "guess_game_concurrency_in_flight",
        "guess_game_faults_injected_total",
        "guess_game_connections_rejected_total",
    ] {
        assert!(
            families.iter().any(|f| f == family),
            "{family} missing from {families:?}"
        );
    }
    let played = "guess_game_http_requests_total{method=POST,route=/play,status=200}";
    assert_eq!(value(&after, played) - value(&before, played), 3.0);
    let refused = "guess_game_http_requests_total{method=POST,route=/play,status=400}";
    assert_eq!(value(&after, refused) - value(&before, refused), 1.0);
    let unmatched = "guess_game_http_requests_total{method=GET,route=unmatched,status=404}";
    assert_eq!(value(&after, unmatched) - value(&before, unmatched), 1.0);
    let latency = "guess_game_http_request_duration_seconds{route=/play}";
    assert_eq!(value(&after, latency) - value(&before, latency), 4.0);
    assert_eq!(
        value(&after, &format!("{latency}:buckets")),
        18.0,
        "17 bounds and +Inf"
    );
    let rounds = |values: &HashMap<String, f64>| -> f64 {
        values
            .iter()
            .filter(|(key, _)| {
                key.starts_with("guess_game_rounds_total{") && key.contains("player_choice=rock")
            })
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(rounds(&after) - rounds(&before), 3.0);
    assert!(
        value(&after, "guess_game_connections_accepted_total{}")
            > value(&before, "guess_game_connections_accepted_total{}")
    );
    assert!(value(&after, "guess_game_runtime_workers{}") >= 2.0);
    assert!(value(&after, "process_resident_memory_bytes{}") > 0.0);
    assert!(value(&after, "process_open_fds{}") > 0.0);
    assert!(
        after
            .keys()
            .any(|key| key.starts_with("guess_game_build_info{") && key.contains("version=0.1.0"))
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_speak_openmetrics_when_asked() {
    let app = spawn_app().await;
    let answer = admin_get(
        &app,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    )
    .await;
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE guess_game_http_requests counter\n"));
    assert!(text.contains("# TYPE guess_game_build info\n"));
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_public_port_serves_no_admin_endpoint() {
    let app = spawn_app().await;
    for path in ["/metrics", "/debug/pprof/profile"] {
        assert_eq!(app.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_valid_traceparent_is_continued_and_an_invalid_one_replaced_and_counted() {
    let app = spawn_app().await;
    let continued = app
        .request(
            Method::GET,
            "/healthz",
            &[("traceparent", EXAMPLE_TRACEPARENT)],
            "",
        )
        .await;
    let answer = continued.header("traceparent").unwrap();
    assert!(
        answer.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{answer}"
    );
    assert!(
        !answer.contains("00f067aa0ba902b7"),
        "our span, not the caller's: {answer}"
    );

    let (_, before) = scrape(&app).await;
    let replaced = app
        .request(
            Method::GET,
            "/healthz",
            &[("traceparent", "00-garbage")],
            "",
        )
        .await;
    assert_eq!(
        replaced.status,
        StatusCode::OK,
        "never an error for the client"
    );
    let answer = replaced.header("traceparent").unwrap();
    assert_eq!(answer.len(), 55);
    assert!(!answer.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
    let (_, after) = scrape(&app).await;
    let invalid = "guess_game_traceparent_invalid_total{}";
    assert_eq!(value(&after, invalid) - value(&before, invalid), 1.0);

    let fresh = app.get("/healthz").await;
    assert_eq!(fresh.header("traceparent").unwrap().len(), 55);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let app = spawn_app().await;
    let kept = app
        .request(
            Method::GET,
            "/healthz",
            &[("x-request-id", "client-42")],
            "",
        )
        .await;
    assert_eq!(kept.header("x-request-id"), Some("client-42"));
    let replaced = app
        .request(Method::GET, "/nope", &[("x-request-id", "bad id!")], "")
        .await;
    let generated = replaced.header("x-request-id").unwrap();
    assert_eq!(generated.len(), 16);
    assert_ne!(
        app.get("/healthz").await.header("x-request-id"),
        app.get("/healthz").await.header("x-request-id")
    );
    app.shutdown().await.unwrap();
}

/// Plays rounds for `duration`, so a profile taken meanwhile has samples.
fn keep_busy(app: &TestApp, duration: Duration) -> tokio::task::JoinHandle<()> {
    let url = app.url.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + duration;
        let headers = [("content-type", "application/json")];
        while tokio::time::Instant::now() < deadline {
            let _ = url
                .send(
                    Method::POST,
                    "/play",
                    &headers,
                    r#"{"choice":"rock"}"#.into(),
                    TIMEOUT,
                )
                .await;
        }
    })
}

#[tokio::test]
async fn a_cpu_profile_is_pprof_protobuf_or_a_flame_graph_one_at_a_time() {
    let app = spawn_app().await;
    let load = keep_busy(&app, Duration::from_millis(1500));
    let (first, second) = tokio::join!(
        admin_get(&app, "/debug/pprof/profile?seconds=1", None),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            admin_get(&app, "/debug/pprof/profile?seconds=1", None).await
        }
    );
    assert_eq!(
        first.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let profile = <pprof::protos::Profile as pprof::protos::Message>::decode(first.body.as_ref())
        .expect("pprof protobuf");
    assert!(!profile.sample_type.is_empty());
    assert_eq!(second.status, StatusCode::CONFLICT);
    load.await.unwrap();

    let load = keep_busy(&app, Duration::from_millis(1500));
    let svg = admin_get(&app, "/debug/pprof/profile?seconds=1&format=svg", None).await;
    load.await.unwrap();
    assert_eq!(svg.status, StatusCode::OK);
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert!(String::from_utf8_lossy(&svg.body).contains("<svg"));
    for bad in ["seconds=0", "seconds=61", "format=png"] {
        let answer = admin_get(&app, &format!("/debug/pprof/profile?{bad}"), None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_flame_graph_of_an_idle_process_is_a_whole_svg() {
    let app = spawn_app().await;
    let svg = admin_get(&app, "/debug/pprof/profile?seconds=1&format=svg", None).await;
    assert_eq!(svg.status, StatusCode::OK);
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    let text = String::from_utf8_lossy(&svg.body);
    assert!(
        text.contains("<svg") && text.trim_end().ends_with("</svg>"),
        "{text}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn spans_are_exported_over_otlp_with_their_parent_links() {
    let (collector, received) = otlp_receiver().await;
    let app = spawn_app_with(|settings| {
        settings.telemetry.otlp_endpoint = Some(format!("http://{collector}"))
    })
    .await;
    let answer = app
        .request(
            Method::POST,
            "/play",
            &[
                ("content-type", "application/json"),
                ("traceparent", EXAMPLE_TRACEPARENT),
            ],
            r#"{"choice":"paper"}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let our_span = u64::from_str_radix(&answer.header("traceparent").unwrap()[36..52], 16).unwrap();
    app.shutdown().await.unwrap();

    let received = received.lock().unwrap();
    assert!(!received.is_empty(), "nothing reached the collector");
    for export in received.iter() {
        assert_eq!(
            export.encoding.as_deref(),
            Some("gzip"),
            "the exporter compresses"
        );
    }
    let spans: Vec<_> = received
        .iter()
        .flat_map(|export| export.request.resource_spans.iter())
        .flat_map(|resource| resource.scope_spans.iter())
        .flat_map(|scope| scope.spans.iter().cloned())
        .collect();
    let trace_id = 0x4bf92f3577b34da6a3ce929d0e0e4736u128
        .to_be_bytes()
        .to_vec();
    let server = spans
        .iter()
        .find(|span| span.name == "/play")
        .expect("the request's span");
    assert_eq!(server.trace_id, trace_id);
    assert_eq!(server.span_id, our_span.to_be_bytes().to_vec());
    assert_eq!(
        server.parent_span_id,
        0x00f067aa0ba902b7u64.to_be_bytes().to_vec(),
        "child of the caller's span"
    );
    assert!(server.end_time_unix_nano >= server.start_time_unix_nano);
    for step in ["decode", "judge", "encode"] {
        let inner = spans
            .iter()
            .find(|span| span.name == step)
            .unwrap_or_else(|| panic!("no {step} span in {spans:?}"));
        assert_eq!(inner.trace_id, trace_id);
        assert_eq!(
            inner.parent_span_id, server.span_id,
            "{step} is a child of the request span"
        );
    }
}

/// One POST the collector received: its `content-encoding` and the decoded request.
struct Export {
    encoding: Option<String>,
    request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
}

type Received = std::sync::Arc<std::sync::Mutex<Vec<Export>>>;

/// A minimal OTLP/HTTP receiver: decodes every POST /v1/traces body, plain or gzip.
async fn otlp_receiver() -> (std::net::SocketAddr, Received) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let received: Received = Default::default();
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        assert_eq!(request.uri().path(), "/v1/traces");
                        assert_eq!(request.headers()["content-type"], "application/x-protobuf");
                        let encoding = request
                            .headers()
                            .get("content-encoding")
                            .and_then(|value| value.to_str().ok())
                            .map(str::to_owned);
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let body = match encoding.as_deref() {
                            Some("gzip") => {
                                let mut decoded = Vec::new();
                                std::io::Read::read_to_end(
                                    &mut flate2::read::GzDecoder::new(&body[..]),
                                    &mut decoded,
                                )
                                .unwrap();
                                Bytes::from(decoded)
                            }
                            None => body,
                            Some(other) => panic!("unexpected content-encoding {other}"),
                        };
                        let request = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body).unwrap();
                        store.lock().unwrap().push(Export { encoding, request });
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::new()),
                        ))
                    }
                },
            );
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    (address, received)
}

#[tokio::test]
async fn the_dashboard_and_alert_rules_use_only_exposed_metrics() {
    let app = spawn_app().await;
    assert_eq!(
        app.play_json(r#"{"choice":"rock"}"#).await.status,
        StatusCode::OK
    );
    let (families, _) = scrape(&app).await;
    let dashboard = include_str!("../../deploy/grafana/guess-game.json");
    let rules = include_str!("../../deploy/prometheus/rules.yml");
    serde_json::from_str::<serde_json::Value>(dashboard).expect("the dashboard is JSON");
    let mut checked = 0;
    for source in [dashboard, rules] {
        for (start, _) in source
            .match_indices("guess_game_")
            .chain(source.match_indices("process_"))
        {
            // Recording-rule names (guess_game:...) are not exposed metrics.
            if start > 0 && source.as_bytes()[start - 1] == b':' {
                continue;
            }
            let name: String = source[start..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                families
                    .iter()
                    .any(|family| family == &name || family == base),
                "{name} is not exposed"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn runtime_flags_switch_optional_features_off_and_play_keeps_working() {
    let (collector, _received) = otlp_receiver().await;
    let app = spawn_app_with(|settings| {
        settings.telemetry.otlp_endpoint = Some(format!("http://{collector}"))
    })
    .await;
    let put = |body: &'static str| {
        app.admin_request(
            Method::PUT,
            "/admin/flags",
            &[("content-type", "application/json")],
            body,
        )
    };
    let shown = crate::helpers::json(&admin_get(&app, "/admin/flags", None).await);
    assert_eq!(shown["level"], "full");
    assert_eq!(
        shown["flags"],
        serde_json::json!({"access_log": true, "trace_export": true})
    );

    let queued = |values: &HashMap<String, f64>| value(values, "guess_game_spans_queued_total{}");
    let (_, before) = scrape(&app).await;
    assert_eq!(
        app.play_json(r#"{"choice":"rock"}"#).await.status,
        StatusCode::OK
    );
    let (_, exporting) = scrape(&app).await;
    assert!(
        queued(&exporting) > queued(&before),
        "spans are exported while the flag is on"
    );

    let changed = put(r#"{"level":"minimal"}"#).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(
        crate::helpers::json(&changed)["flags"],
        serde_json::json!({"access_log": false, "trace_export": false})
    );
    assert_eq!(
        app.play_json(r#"{"choice":"rock"}"#).await.status,
        StatusCode::OK,
        "/play needs no optional feature"
    );
    let (_, degraded) = scrape(&app).await;
    assert_eq!(
        queued(&degraded),
        queued(&exporting),
        "no span queued with trace_export off"
    );

    let single = crate::helpers::json(&put(r#"{"trace_export":true}"#).await);
    assert_eq!(
        single["flags"],
        serde_json::json!({"access_log": false, "trace_export": true})
    );
    assert_eq!(
        single["level"],
        serde_json::Value::Null,
        "no named level matches"
    );
    assert_eq!(
        put(r#"{"acces_log":false}"#).await.status,
        StatusCode::BAD_REQUEST
    );
    let wrong = app
        .admin_request(Method::DELETE, "/admin/flags", &[], Bytes::new())
        .await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.header("allow"), Some("GET, PUT"));
    app.shutdown().await.unwrap();
}
