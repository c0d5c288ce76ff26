//! CPU time and peak RSS of a process, read from `/proc`.
//!
//! CPU comes from each thread's `/proc/PID/task/TID/schedstat` (nanoseconds on CPU), not from
//! `/proc/PID/stat`, whose 10 ms ticks are too coarse for a one-stream run. A thread that
//! exits during the run loses its share, so the figure errs low, never high; the servers
//! measured here keep their worker threads for their whole life.

use std::collections::HashMap;
use std::time::Duration;

/// Nanoseconds on CPU, per thread id, at one moment.
pub struct CpuSnapshot(HashMap<u32, u64>);

impl CpuSnapshot {
    /// CPU time spent since `before`, by the threads alive now.
    pub fn since(&self, before: &CpuSnapshot) -> Duration {
        let ns: u64 = self
            .0
            .iter()
            .map(|(tid, now)| now.saturating_sub(before.0.get(tid).copied().unwrap_or(0)))
            .sum();
        Duration::from_nanos(ns)
    }
}

pub fn cpu(pid: u32) -> CpuSnapshot {
    let mut threads = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return CpuSnapshot(threads);
    };
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = stat.split_whitespace().next().and_then(|f| f.parse().ok()) {
            threads.insert(tid, ns);
        }
    }
    CpuSnapshot(threads)
}

/// `VmHWM` of `/proc/PID/status`: the peak resident set size, KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_number(pid, "VmHWM:")
}

/// `VmRSS` of `/proc/PID/status`: the resident set size now, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_number(pid, "VmRSS:")
}

/// `RssAnon` and `RssFile` of `/proc/PID/status`: the heap and stacks, and mapped files
/// (binary, index files), KiB.
pub fn rss_split_kib(pid: u32) -> (u64, u64) {
    (
        status_number(pid, "RssAnon:"),
        status_number(pid, "RssFile:"),
    )
}

/// `Threads` of `/proc/PID/status`.
pub fn threads(pid: u32) -> u64 {
    status_number(pid, "Threads:")
}

/// Entries of `/proc/PID/fd`: open files and sockets.
pub fn open_files(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count() as u64)
}

/// A number field of `/proc/PID/status` (`kB` dropped), 0 if missing.
fn status_number(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Cores of this machine.
pub fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// `syscr` + `syscw` of `/proc/PID/io`: read- and write-like system calls so far.
pub fn syscalls(pid: u32) -> (u64, u64) {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field = |name: &str| {
        io.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("syscr:"), field("syscw:"))
}

/// Busy, total and interrupt (irq + softirq) jiffies of the whole machine (first line of
/// `/proc/stat`). Loopback TCP does much of its receive work in softirq context, which the
/// kernel may not charge to any process.
pub fn machine() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    let interrupts = fields.get(5).copied().unwrap_or(0) + fields.get(6).copied().unwrap_or(0);
    (total - idle, total, interrupts)
}

/// Clock ticks per second of `/proc/stat` (USER_HZ).
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}
