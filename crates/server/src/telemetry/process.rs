//! Saturation figures read when `/metrics` is scraped: the process (from /proc), the
//! allocator (glibc's mallinfo2), the kernel's listen queues, and the tokio runtimes.

use std::os::fd::AsRawFd;
use std::sync::{Mutex, PoisonError};

use super::metrics::{Exposition, Kind};

static RUNTIMES: Mutex<Vec<tokio::runtime::Handle>> = Mutex::new(Vec::new());

/// Registers a worker's runtime so its scheduler figures appear in `/metrics`.
pub fn register_runtime(handle: tokio::runtime::Handle) {
    RUNTIMES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(handle);
}

pub fn write_runtime_metrics(exposition: &mut Exposition) {
    let runtimes = RUNTIMES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let metrics: Vec<_> = runtimes
        .iter()
        .map(tokio::runtime::Handle::metrics)
        .collect();
    let total = |read: &dyn Fn(&tokio::runtime::RuntimeMetrics) -> f64| {
        metrics.iter().map(read).sum::<f64>()
    };
    exposition.family(
        "guess_game_runtime_workers",
        "Threads running tokio tasks in the serving runtimes.",
        Kind::Gauge,
    );
    exposition.sample(
        "guess_game_runtime_workers",
        "",
        total(&|m| m.num_workers() as f64),
    );
    exposition.family(
        "guess_game_runtime_alive_tasks",
        "Tasks alive in the serving runtimes (about one per connection).",
        Kind::Gauge,
    );
    exposition.sample(
        "guess_game_runtime_alive_tasks",
        "",
        total(&|m| m.num_alive_tasks() as f64),
    );
    exposition.family(
        "guess_game_runtime_global_queue_depth",
        "Tasks waiting in the runtimes' shared run queues.",
        Kind::Gauge,
    );
    exposition.sample(
        "guess_game_runtime_global_queue_depth",
        "",
        total(&|m| m.global_queue_depth() as f64),
    );
    exposition.family(
        "guess_game_runtime_busy_seconds",
        "Time the runtime workers spent running tasks.",
        Kind::Counter,
    );
    exposition.sample(
        "guess_game_runtime_busy_seconds_total",
        "",
        total(&|m| {
            (0..m.num_workers())
                .map(|w| m.worker_total_busy_duration(w).as_secs_f64())
                .sum()
        }),
    );
}

/// The standard `process_*` families, read from /proc/self.
pub fn write_process_metrics(exposition: &mut Exposition) {
    let ticks = clock_ticks_per_second();
    if let Some(stat) = ProcStat::read() {
        exposition.family(
            "process_cpu_seconds",
            "User and system CPU time spent.",
            Kind::Counter,
        );
        exposition.sample(
            "process_cpu_seconds_total",
            "",
            (stat.utime + stat.stime) as f64 / ticks,
        );
        exposition.family("process_threads", "OS threads in the process.", Kind::Gauge);
        exposition.sample("process_threads", "", stat.threads as f64);
        exposition.family(
            "process_resident_memory_bytes",
            "Resident memory size.",
            Kind::Gauge,
        );
        exposition.sample(
            "process_resident_memory_bytes",
            "",
            (stat.rss_pages * page_size()) as f64,
        );
        exposition.family(
            "process_virtual_memory_bytes",
            "Virtual memory size.",
            Kind::Gauge,
        );
        exposition.sample("process_virtual_memory_bytes", "", stat.vsize as f64);
        if let Some(boot) = boot_time_seconds() {
            exposition.family(
                "process_start_time_seconds",
                "Start time since the Unix epoch.",
                Kind::Gauge,
            );
            exposition.sample(
                "process_start_time_seconds",
                "",
                boot + stat.start_ticks as f64 / ticks,
            );
        }
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        exposition.family("process_open_fds", "Open file descriptors.", Kind::Gauge);
        exposition.sample("process_open_fds", "", entries.count() as f64);
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        exposition.family(
            "process_max_fds",
            "Limit on open file descriptors (soft).",
            Kind::Gauge,
        );
        exposition.sample("process_max_fds", "", limit.rlim_cur as f64);
    }
}

/// Heap figures from glibc: bytes in use by the program and bytes the allocator holds from
/// the OS (the request path itself allocates nothing, so these move with connections).
pub fn write_allocator_metrics(exposition: &mut Exposition) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value.
        let info = unsafe { libc::mallinfo2() };
        exposition.family(
            "guess_game_allocator_allocated_bytes",
            "Heap bytes allocated and not freed (glibc mallinfo2).",
            Kind::Gauge,
        );
        exposition.sample(
            "guess_game_allocator_allocated_bytes",
            "",
            (info.uordblks + info.hblkhd) as f64,
        );
        exposition.family(
            "guess_game_allocator_resident_bytes",
            "Heap bytes the allocator holds from the OS (glibc mallinfo2).",
            Kind::Gauge,
        );
        exposition.sample(
            "guess_game_allocator_resident_bytes",
            "",
            (info.arena + info.hblkhd) as f64,
        );
    }
}

/// Listen-queue overflows from /proc/net/netstat (network namespace wide) and each public
/// listener's current accept queue from TCP_INFO.
pub fn write_kernel_metrics(exposition: &mut Exposition, listeners: &[std::net::TcpListener]) {
    if let Ok(text) = std::fs::read_to_string("/proc/net/netstat") {
        for (field, name, help) in [
            (
                "ListenOverflows",
                "guess_game_tcp_listen_overflows",
                "Times an accept queue was full (TcpExt ListenOverflows, whole network namespace).",
            ),
            (
                "ListenDrops",
                "guess_game_tcp_listen_drops",
                "Connection attempts dropped at listen (TcpExt ListenDrops, whole network namespace).",
            ),
        ] {
            if let Some(value) = netstat_field(&text, "TcpExt:", field) {
                exposition.family(name, help, Kind::Counter);
                exposition.sample(&format!("{name}_total"), "", value as f64);
            }
        }
    }
    let queues: Vec<(usize, u32, u32)> = listeners
        .iter()
        .enumerate()
        .filter_map(|(index, listener)| {
            accept_queue(listener).map(|(length, capacity)| (index, length, capacity))
        })
        .collect();
    if !queues.is_empty() {
        exposition.family(
            "guess_game_listen_queue_length",
            "Connections waiting in a public listener's accept queue.",
            Kind::Gauge,
        );
        for (index, length, _) in &queues {
            exposition.sample(
                "guess_game_listen_queue_length",
                &format!("listener=\"{index}\""),
                f64::from(*length),
            );
        }
        exposition.family(
            "guess_game_listen_queue_capacity",
            "Capacity of a public listener's accept queue (the effective backlog).",
            Kind::Gauge,
        );
        for (index, _, capacity) in &queues {
            exposition.sample(
                "guess_game_listen_queue_capacity",
                &format!("listener=\"{index}\""),
                f64::from(*capacity),
            );
        }
    }
}

/// For a listening socket Linux reports the accept queue's length in `tcpi_unacked` and its
/// capacity in `tcpi_sacked`.
fn accept_queue(listener: &std::net::TcpListener) -> Option<(u32, u32)> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: tcp_info is plain data; zeroed is a valid value for it.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut length = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: the fd is a live socket owned by `listener`; the kernel writes at most
        // `length` bytes into `info`.
        let result = unsafe {
            libc::getsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut length,
            )
        };
        (result == 0).then_some((info.tcpi_unacked, info.tcpi_sacked))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = listener;
        None
    }
}

/// A field of /proc/net/netstat, which pairs a header line of names with a line of values.
fn netstat_field(text: &str, section: &str, field: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|line| line.starts_with(section));
    let names = lines.next()?;
    let values = lines.next()?;
    let position = names.split_whitespace().position(|name| name == field)?;
    values.split_whitespace().nth(position)?.parse().ok()
}

struct ProcStat {
    utime: u64,
    stime: u64,
    threads: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

impl ProcStat {
    fn read() -> Option<ProcStat> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may contain spaces; the fields after its ')' are fixed.
        let after_name = &text[text.rfind(')')? + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Field numbers from proc(5), minus 3 for pid, comm and the offset into `fields`.
        let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
        Some(ProcStat {
            utime: field(14)?,
            stime: field(15)?,
            threads: field(20)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

fn boot_time_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstat_fields_are_found_by_name() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 7 9\nIpExt: InNoRoutes\nIpExt: 1\n";
        assert_eq!(netstat_field(text, "TcpExt:", "ListenOverflows"), Some(7));
        assert_eq!(netstat_field(text, "TcpExt:", "ListenDrops"), Some(9));
        assert_eq!(netstat_field(text, "TcpExt:", "Missing"), None);
    }

    #[test]
    fn this_process_can_read_its_own_stat() {
        let stat = ProcStat::read().expect("/proc/self/stat");
        assert!(stat.threads >= 1 && stat.rss_pages > 0);
    }

    #[test]
    fn a_listener_reports_its_accept_queue() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (length, capacity) = accept_queue(&listener).unwrap();
        assert_eq!(length, 0);
        assert!(capacity > 0);
        let _waiting = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert_eq!(accept_queue(&listener).unwrap().0, 1);
    }
}
