//! `GET /debug/pprof/profile?seconds=N[&format=svg]`: a CPU profile of the whole process.
//!
//! pprof-rs samples every thread with SIGPROF at 99 Hz for N seconds (1 to 60, default 10) and
//! answers in pprof's protobuf format (readable by `go tool pprof` and other pprof tools), or
//! as a flame graph with `format=svg`. One profile at a time: a second request gets 409.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

// pprof encodes with its own prost version, re-exported here.
use pprof::protos::Message;

use crate::http::{AdminError, ApiError, HttpError};

const SAMPLING_HZ: i32 = 99;
const DEFAULT_SECONDS: u64 = 10;
const MAX_SECONDS: u64 = 60;

static PROFILING: AtomicBool = AtomicBool::new(false);

pub struct Profile {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Protobuf,
    Svg,
}

/// Frees the one profiling slot however the request ends.
struct Slot;

impl Drop for Slot {
    fn drop(&mut self) {
        PROFILING.store(false, Ordering::Release);
    }
}

pub async fn take(query: Option<&str>) -> Result<Profile, ApiError<'static>> {
    let (seconds, output) = parse_query(query)?;
    if PROFILING.swap(true, Ordering::Acquire) {
        return Err(AdminError::ProfileInProgress.into());
    }
    let _slot = Slot;
    // Starting the profiler reads the process's memory map for the blocklist: close to a second
    // in a debug build, so it runs on a blocking thread like the rendering below.
    let guard = tokio::task::spawn_blocking(|| {
        pprof::ProfilerGuardBuilder::default()
            .frequency(SAMPLING_HZ)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
    })
    .await
    .map_err(|error| AdminError::ProfilerFailed(error.to_string()))?
    .map_err(|error| AdminError::ProfilerFailed(error.to_string()))?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    // Symbolizing and rendering take whole CPU-seconds under load: on a blocking thread, so
    // the admin runtime (which also drives the store's writer and lease) keeps going.
    tokio::task::spawn_blocking(move || render(&guard, seconds, output))
        .await
        .map_err(|error| AdminError::ProfilerFailed(error.to_string()))?
}

fn render(
    guard: &pprof::ProfilerGuard<'_>,
    seconds: u64,
    output: Output,
) -> Result<Profile, ApiError<'static>> {
    let report = guard
        .report()
        .build()
        .map_err(|error| AdminError::ProfilerFailed(error.to_string()))?;
    match output {
        Output::Protobuf => {
            let profile = report
                .pprof()
                .map_err(|error| AdminError::ProfilerFailed(error.to_string()))?;
            Ok(Profile {
                content_type: "application/octet-stream",
                body: profile.encode_to_vec(),
            })
        }
        Output::Svg if report.data.is_empty() => Ok(Profile {
            content_type: "image/svg+xml",
            body: idle_flame_graph(seconds),
        }),
        Output::Svg => {
            let mut body = Vec::new();
            report
                .flamegraph(&mut body)
                .map_err(|error| AdminError::ProfilerFailed(error.to_string()))?;
            if body.is_empty() {
                return Ok(Profile {
                    content_type: "image/svg+xml",
                    body: idle_flame_graph(seconds),
                });
            }
            Ok(Profile {
                content_type: "image/svg+xml",
                body,
            })
        }
    }
}

/// A flame graph with no samples: the process used no CPU while it was sampled. The flame
/// graph renderer writes nothing at all then, which a browser shows as a broken image.
fn idle_flame_graph(seconds: u64) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg version=\"1.1\" width=\"1200\" height=\"60\" xmlns=\"http://www.w3.org/2000/svg\">\n\
         <text x=\"600\" y=\"34\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"17\">\
         No CPU samples in {seconds} s: the process was idle while it was profiled.</text>\n</svg>\n"
    )
    .into_bytes()
}

fn parse_query(query: Option<&str>) -> Result<(u64, Output), ApiError<'static>> {
    let mut seconds = DEFAULT_SECONDS;
    let mut output = Output::Protobuf;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "seconds" => {
                seconds = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=MAX_SECONDS).contains(s))
                    .ok_or(HttpError::InvalidParameter {
                        name: "seconds",
                        reason: "must be a whole number from 1 to 60",
                    })?;
            }
            "format" => {
                output = match value {
                    "svg" => Output::Svg,
                    "proto" | "pprof" | "" => Output::Protobuf,
                    _ => {
                        return Err(HttpError::InvalidParameter {
                            name: "format",
                            reason: "must be svg or proto",
                        }
                        .into());
                    }
                };
            }
            _ => {}
        }
    }
    Ok((seconds, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_bounded() {
        assert_eq!(parse_query(None).unwrap(), (10, Output::Protobuf));
        assert_eq!(
            parse_query(Some("seconds=3&format=svg")).unwrap(),
            (3, Output::Svg)
        );
        for bad in ["seconds=0", "seconds=61", "seconds=x", "format=png"] {
            assert!(
                matches!(
                    parse_query(Some(bad)),
                    Err(ApiError::Http(HttpError::InvalidParameter { .. }))
                ),
                "{bad}"
            );
        }
    }
}
