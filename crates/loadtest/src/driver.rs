//! Running one load phase: C connections on the current thread, paced closed-loop (send when
//! the last answer arrives) or open-loop (send on a fixed schedule, measuring latency from the
//! *intended* send time, as wrk2 does, so a stalled server cannot hide its worst latencies).
//!
//! Open-loop pacing follows wrk2: connection k of C sends its j-th request at
//! `start + (k + j·C) / rate`. A connection that falls behind sends at once when it can, and
//! its late requests carry the wait in their latency. With at most one request in flight per
//! connection, a rate needing more concurrency than C cannot be offered; the report says so.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::connection::{self, Failure};
use super::scenario::{RequestWriter, Scenario};
use super::stats::Recorder;
use deadline::{Wait, with_deadline};

/// How requests are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pacing {
    /// Each connection sends as soon as it has its answer.
    Closed,
    /// Requests are scheduled at `rate` per second overall.
    Open { rate: f64 },
}

/// Everything one phase needs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub address: SocketAddr,
    pub host: String,
    pub target: String,
    pub scenario: Scenario,
    pub players: u32,
    pub connections: usize,
    pub pacing: Pacing,
    pub warmup: Duration,
    pub duration: Duration,
    pub max_requests: Option<u64>,
    pub timeout: Duration,
    pub slo: Duration,
    /// Label shown on the progress bar.
    pub label: String,
}

/// Pause after a failed connection attempt, so a refused target is not hammered in a loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(50);

struct Shared {
    plan: Plan,
    start: Instant,
    stop_at: Instant,
    issued: Cell<u64>,
    recorder: RefCell<Recorder>,
}

impl Shared {
    /// Takes the right to send one more request, if the request budget allows.
    fn claim(&self) -> bool {
        let issued = self.issued.get();
        if self.plan.max_requests.is_some_and(|max| issued >= max) {
            return false;
        }
        self.issued.set(issued + 1);
        true
    }
}

/// Runs the phase to its end (duration or request budget) and returns what it measured.
/// Connections still waiting when the phase ends are cut after at most `timeout`.
pub async fn execute(plan: &Plan) -> Recorder {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let shared = Rc::new(Shared {
        plan: plan.clone(),
        start,
        stop_at: measure_from + plan.duration,
        issued: Cell::new(0),
        recorder: RefCell::new(Recorder::new(measure_from, plan.slo)),
    });
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut tasks: Vec<_> = (0..plan.connections)
                .map(|index| tokio::task::spawn_local(drive(index, Rc::clone(&shared))))
                .collect();
            let bar = progress_bar(&shared);
            let progress = tokio::task::spawn_local(show_progress(Rc::clone(&shared), bar.clone()));
            let hard_stop = shared.stop_at + plan.timeout + Duration::from_secs(1);
            for task in &mut tasks {
                if tokio::time::timeout_at(hard_stop, task).await.is_err() {
                    break;
                }
            }
            for task in tasks {
                task.abort();
            }
            progress.abort();
            bar.finish_and_clear();
        })
        .await;
    let end = Instant::now().min(shared.stop_at);
    let mut recorder = shared
        .recorder
        .replace(Recorder::new(measure_from, plan.slo));
    recorder.finish(end);
    recorder
}

async fn drive(index: usize, shared: Rc<Shared>) {
    let plan = &shared.plan;
    let seed = (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut writer =
        RequestWriter::new(plan.scenario, &plan.host, &plan.target, plan.players, seed);
    let mut request = Vec::with_capacity(256);
    let mut input = Vec::with_capacity(4096);
    let mut stream: Option<TcpStream> = None;
    let timer = tokio::time::sleep(plan.timeout);
    tokio::pin!(timer);
    let pace = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(pace);
    let interval = match plan.pacing {
        Pacing::Closed => None,
        Pacing::Open { rate } => Some(Duration::from_secs_f64(plan.connections as f64 / rate)),
    };
    let mut next_send = shared.start
        + interval.map_or(Duration::ZERO, |interval| {
            interval.mul_f64(index as f64 / plan.connections as f64)
        });
    loop {
        // Waiting here means the connection is ahead of schedule: the server is not what
        // delays this request. The tokio timer wakes up to a millisecond late, and that
        // lateness is the tester's, so such a request is timed from when it actually leaves.
        // A connection behind schedule (its last answer came late) sends at once, timed from
        // its intended send time: that is the coordinated-omission correction.
        let mut on_schedule = interval.is_none();
        if interval.is_some() && next_send > Instant::now() {
            pace.as_mut().reset(next_send);
            pace.as_mut().await;
            on_schedule = true;
        }
        let now = Instant::now();
        if now >= shared.stop_at || !shared.claim() {
            break;
        }
        let intended = if on_schedule { now } else { next_send };
        if let Some(interval) = interval {
            next_send += interval;
        }
        shared.recorder.borrow_mut().record_sent(now);
        let connection = match &mut stream {
            Some(connection) => connection,
            None => match connect(plan, timer.as_mut(), now).await {
                Ok(connection) => stream.insert(connection),
                Err(failure) => {
                    shared
                        .recorder
                        .borrow_mut()
                        .record_error(Instant::now(), failure.name());
                    let resume = (Instant::now() + RECONNECT_BACKOFF).min(shared.stop_at);
                    pace.as_mut().reset(resume);
                    pace.as_mut().await;
                    continue;
                }
            },
        };
        if plan.scenario.needs_account() && !writer.has_token() {
            // Not measured: the account is the connection's setup, like its handshake.
            let base = plan.target.strip_suffix("/play").unwrap_or_default();
            let guest = super::scenario::guest_request(&plan.host, base);
            let created = with_deadline(
                timer.as_mut(),
                now + plan.timeout,
                connection::exchange(connection, &guest, &mut input),
            )
            .await;
            let token = match created {
                Wait::Done(Ok(answer)) if answer.status == 201 => {
                    super::scenario::access_token(&input)
                }
                _ => None,
            };
            let Some(token) = token else {
                shared
                    .recorder
                    .borrow_mut()
                    .record_error(Instant::now(), Failure::AccountSetup.name());
                stream = None;
                let resume = (Instant::now() + RECONNECT_BACKOFF).min(shared.stop_at);
                pace.as_mut().reset(resume);
                pace.as_mut().await;
                continue;
            };
            writer.set_token(&token);
        }
        writer.write(&mut request);
        let deadline = now + plan.timeout;
        let outcome = with_deadline(
            timer.as_mut(),
            deadline,
            connection::exchange(connection, &request, &mut input),
        )
        .await;
        let done = Instant::now();
        let mut recorder = shared.recorder.borrow_mut();
        match outcome {
            Wait::Done(Ok(answer)) => {
                recorder.record_response(done, answer.status, done - intended);
                if answer.status == 401 {
                    // An expired token: the connection makes a new account.
                    writer.clear_token();
                }
                if answer.close {
                    stream = None;
                }
            }
            Wait::Done(Err(failure)) => {
                recorder.record_error(done, failure.name());
                stream = None;
            }
            Wait::TimedOut => {
                recorder.record_error(done, Failure::Timeout.name());
                stream = None;
            }
        }
    }
}

async fn connect(
    plan: &Plan,
    timer: std::pin::Pin<&mut tokio::time::Sleep>,
    now: Instant,
) -> Result<TcpStream, Failure> {
    match with_deadline(timer, now + plan.timeout, TcpStream::connect(plan.address)).await {
        Wait::Done(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Wait::Done(Err(error)) => Err(Failure::of_connect(&error)),
        Wait::TimedOut => Err(Failure::Timeout),
    }
}

/// A progress bar on a terminal; indicatif hides it when stderr is not one.
fn progress_bar(shared: &Shared) -> ProgressBar {
    let total = shared.stop_at - shared.start;
    let bar =
        ProgressBar::with_draw_target(Some(total.as_millis() as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed}/{duration} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(shared.plan.label.clone());
    bar
}

/// Updates the bar four times a second: time elapsed, current rate, errors so far.
async fn show_progress(shared: Rc<Shared>, bar: ProgressBar) {
    let total = shared.stop_at - shared.start;
    let tick = Duration::from_millis(250);
    let mut last_seen = 0;
    loop {
        tokio::time::sleep(tick).await;
        let (seen, errors) = {
            let recorder = shared.recorder.borrow();
            (recorder.seen, recorder.seen_errors)
        };
        let rate = (seen - last_seen) as f64 / tick.as_secs_f64();
        last_seen = seen;
        bar.set_position(shared.start.elapsed().min(total).as_millis() as u64);
        bar.set_message(format!("{rate:>9.0} req/s  {errors} errors"));
    }
}
