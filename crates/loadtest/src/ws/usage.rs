//! What a process uses: resident memory and CPU time, read from /proc for a process id (the
//! server's, or the tester's own), or from a server's admin `/metrics`.
//!
//! /proc is preferred: reading it costs the server nothing, while a scrape makes the server
//! render its metrics (a buffer that is counted in its memory the first time, which is why
//! [`Probe::sample`] scrapes twice before a baseline).

use std::time::Duration;

use client::ServerUrl;

/// Where the server's figures come from.
#[derive(Debug)]
pub enum Probe {
    Pid(u32),
    Metrics(ServerUrl),
    /// Neither was given: the report has no server figures.
    Off,
}

/// A process's figures at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub rss_bytes: u64,
    /// User plus system time, all threads.
    pub cpu_seconds: f64,
}

impl Probe {
    pub fn new(pid: Option<u32>, metrics_url: Option<&str>) -> Result<Probe, String> {
        match (pid, metrics_url) {
            (Some(pid), _) => {
                sample_pid(pid)
                    .ok_or_else(|| format!("no readable /proc/{pid}: is it running?"))?;
                Ok(Probe::Pid(pid))
            }
            (None, Some(url)) => match ServerUrl::parse(url) {
                Ok(server) if server.is_https() => {
                    Err(format!("--metrics-url: {}", crate::PLAIN_ONLY))
                }
                Ok(server) => Ok(Probe::Metrics(server)),
                Err(error) => Err(format!("--metrics-url: {error}")),
            },
            (None, None) => Ok(Probe::Off),
        }
    }

    /// Where the figures come from, for the report.
    pub fn source(&self) -> String {
        match self {
            Probe::Pid(pid) => format!("/proc/{pid} (VmRSS, utime+stime)"),
            Probe::Metrics(url) => format!(
                "http://{}{} (process_resident_memory_bytes, process_cpu_seconds_total)",
                url.authority(),
                url.target("")
            ),
            Probe::Off => "none".to_owned(),
        }
    }

    /// The server's figures now (None when there is no probe).
    pub async fn sample(&self) -> Result<Option<Sample>, String> {
        match self {
            Probe::Off => Ok(None),
            Probe::Pid(pid) => sample_pid(*pid)
                .map(Some)
                .ok_or_else(|| format!("/proc/{pid} is gone: the server stopped")),
            Probe::Metrics(url) => {
                let answer = url
                    .send(
                        http::Method::GET,
                        "",
                        &[],
                        Default::default(),
                        Duration::from_secs(5),
                    )
                    .await
                    .map_err(|error| format!("cannot scrape the server's metrics: {error}"))?;
                let text = String::from_utf8_lossy(&answer.body);
                parse_metrics(&text).map(Some).ok_or_else(|| {
                    "the metrics hold no process_resident_memory_bytes and \
                     process_cpu_seconds_total"
                        .to_owned()
                })
            }
        }
    }

    /// A baseline: with a metrics URL, the first scrape's buffers are the server's to keep, so
    /// the second one is the figure.
    pub async fn baseline(&self) -> Result<Option<Sample>, String> {
        if let Probe::Metrics(_) = self {
            self.sample().await?;
        }
        self.sample().await
    }
}

/// The tester's own figures.
pub fn own() -> Option<Sample> {
    sample_at("/proc/self")
}

fn sample_pid(pid: u32) -> Option<Sample> {
    sample_at(&format!("/proc/{pid}"))
}

fn sample_at(directory: &str) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("{directory}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("{directory}/stat")).ok()?;
    Some(Sample {
        rss_bytes: parse_status_rss(&status)?,
        cpu_seconds: parse_stat_cpu_ticks(&stat)? as f64 / clock_ticks_per_second(),
    })
}

/// VmRSS from /proc/PID/status, in bytes.
fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// utime + stime from /proc/PID/stat, in clock ticks. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn parse_metrics(text: &str) -> Option<Sample> {
    let value = |name: &str| {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (metric, value) = line.split_once(' ')?;
                (metric == name).then(|| value.trim().parse::<f64>().ok())?
            })
    };
    Some(Sample {
        rss_bytes: value("process_resident_memory_bytes")? as u64,
        cpu_seconds: value("process_cpu_seconds_total")?,
    })
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a system constant and touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_even_with_a_strange_command_name() {
        let stat = "4242 (guess game) (x)) S 1 4242 4242 0 -1 4194560 3000 0 0 0 \
                    150 75 0 0 20 0 9 0 12345 1000000 2500 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(225));
        let status = "Name:\tguess-game\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t9\n";
        assert_eq!(parse_status_rss(status), Some(5120 * 1024));
        assert_eq!(parse_status_rss("Name: x\n"), None);
    }

    #[test]
    fn the_process_families_are_found_in_an_exposition() {
        let text = "# HELP process_resident_memory_bytes Resident memory size.\n\
                    # TYPE process_resident_memory_bytes gauge\n\
                    process_resident_memory_bytes 10485760\n\
                    process_cpu_seconds_total 1.25\n\
                    process_resident_memory_bytes_extra 1\n";
        assert_eq!(
            parse_metrics(text),
            Some(Sample {
                rss_bytes: 10_485_760,
                cpu_seconds: 1.25
            })
        );
        assert_eq!(parse_metrics("process_cpu_seconds_total 1\n"), None);
    }

    #[test]
    fn the_tester_can_read_its_own_figures() {
        let own = own().expect("/proc/self");
        assert!(own.rss_bytes > 0);
        assert!(own.cpu_seconds >= 0.0);
    }
}
