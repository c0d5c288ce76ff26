//! Turns the outcomes into the markdown report: first each target as min/median/max over
//! the runs (met only when the whole spread is inside it) and time to first byte with and
//! without connect, then per run one table per case, the targets as ratios of ragstream to
//! the minimal relay of the same run, and the tool path.

use std::fmt::Write;
use std::time::Duration;

use crate::{Args, Case, Outcome, Target};

/// Nearest-rank percentile of `values` (sorted here), `p` in 0..=100.
pub fn percentile(values: &mut [Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Latency and load figures of one outcome.
pub struct Figures {
    pub ok: usize,
    pub failed: usize,
    pub per_sec: f64,
    pub ttfb_p50: Duration,
    pub ttfb_p99: Duration,
    pub ttlb_p50: Duration,
    pub ttlb_p99: Duration,
    /// Relay CPU per relayed chunk, µs.
    pub relay_cpu_us: Option<f64>,
    /// Upstream CPU per chunk it sent, µs.
    pub upstream_cpu_us: f64,
    /// The load generator's own CPU per chunk.
    pub loadgen_cpu_us: f64,
    pub relay_rss_mib: Option<f64>,
    /// Resident set of the relay before the load (started and warmed up), MiB.
    pub relay_idle_mib: Option<f64>,
    /// Relay read and write system calls per relayed chunk.
    pub relay_syscalls: Option<(f64, f64)>,
    /// Share of the machine's cores busy during the run, %.
    pub machine_busy_pct: f64,
    /// Share of the machine's cores spent in irq/softirq context (loopback TCP), %.
    pub softirq_pct: f64,
    /// Share of the machine's cores used by processes outside this benchmark, %.
    pub others_pct: f64,
    /// Slowest 1 % of keep-alive connection set-ups (not part of TTFB).
    pub connect_p99: Duration,
    /// TTFB plus, for a stream that opened its connection, the connect time: what a new
    /// client waits for its first byte.
    pub ttfb_conn_p50: Duration,
    pub ttfb_conn_p99: Duration,
}

pub fn figures(case: &Case, o: &Outcome) -> Figures {
    let ok: Vec<_> = o.samples.iter().filter(|s| s.ok).collect();
    let mut ttfb: Vec<Duration> = ok.iter().map(|s| s.ttfb).collect();
    let mut ttlb: Vec<Duration> = ok.iter().map(|s| s.ttlb).collect();
    let mut ttfb_conn: Vec<Duration> = ok
        .iter()
        .map(|s| s.ttfb + s.connect.unwrap_or_default())
        .collect();
    let chunks = (ok.len() * case.chunks).max(1) as f64;
    Figures {
        ok: ok.len(),
        failed: o.samples.len() - ok.len() + o.unstarted,
        per_sec: ok.len() as f64 / o.wall.as_secs_f64(),
        ttfb_p50: percentile(&mut ttfb, 50.0),
        ttfb_p99: percentile(&mut ttfb, 99.0),
        ttlb_p50: percentile(&mut ttlb, 50.0),
        ttlb_p99: percentile(&mut ttlb, 99.0),
        relay_cpu_us: o.relay_cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / chunks),
        upstream_cpu_us: o.upstream_cpu.as_secs_f64() * 1e6 / chunks,
        loadgen_cpu_us: o.loadgen_cpu.as_secs_f64() * 1e6 / chunks,
        relay_rss_mib: o.relay_hwm_kib.map(|kib| kib as f64 / 1024.0),
        relay_idle_mib: o.relay_idle_kib.map(|kib| kib as f64 / 1024.0),
        relay_syscalls: o
            .relay_syscalls
            .map(|(r, w)| (r as f64 / chunks, w as f64 / chunks)),
        machine_busy_pct: o.machine_busy.as_secs_f64() / cores() / o.window.as_secs_f64() * 100.0,
        softirq_pct: o.machine_softirq.as_secs_f64() / cores() / o.window.as_secs_f64() * 100.0,
        others_pct: (o.machine_busy.as_secs_f64()
            - o.machine_softirq.as_secs_f64()
            - o.relay_cpu.unwrap_or_default().as_secs_f64()
            - o.upstream_cpu.as_secs_f64()
            - o.loadgen_cpu.as_secs_f64())
        .max(0.0)
            / cores()
            / o.window.as_secs_f64()
            * 100.0,
        connect_p99: percentile(
            &mut o
                .samples
                .iter()
                .filter_map(|s| s.connect)
                .collect::<Vec<_>>(),
            99.0,
        ),
        ttfb_conn_p50: percentile(&mut ttfb_conn, 50.0),
        ttfb_conn_p99: percentile(&mut ttfb_conn, 99.0),
    }
}

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// Signed difference in ms.
fn diff_ms(a: Duration, b: Duration) -> String {
    format!("{:+.3}", (a.as_secs_f64() - b.as_secs_f64()) * 1e3)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".to_owned(), |v| format!("{v:.digits$}"))
}

/// A progress line for stderr.
pub fn one_line(case: &Case, o: &Outcome) -> String {
    let f = figures(case, o);
    let first_error = o.samples.iter().find_map(|s| s.error.clone());
    format!(
        "ok {} failed {} | {:.1}/s | connect p99 {} ms | TTFB p50 {} p99 {} ms | TTLB p50 {} p99 {} ms | CPU/chunk relay {} µs upstream {:.2} µs load generator {:.2} µs | writes/chunk {} | machine busy {:.0} % (softirq {:.0} %, others {:.0} %) | RSS {} MiB{}",
        f.ok,
        f.failed,
        f.per_sec,
        ms(f.connect_p99),
        ms(f.ttfb_p50),
        ms(f.ttfb_p99),
        ms(f.ttlb_p50),
        ms(f.ttlb_p99),
        opt(f.relay_cpu_us, 2),
        f.upstream_cpu_us,
        f.loadgen_cpu_us,
        syscalls(f.relay_syscalls),
        f.machine_busy_pct,
        f.softirq_pct,
        f.others_pct,
        opt(f.relay_rss_mib, 1),
        first_error
            .map(|e| format!(" | first error: {e}"))
            .unwrap_or_default(),
    )
}

fn syscalls(v: Option<(f64, f64)>) -> String {
    // `syscr` misses recv(2) on sockets, so only writes (writev of response bodies) are shown.
    v.map_or("—".to_owned(), |(_, w)| format!("{w:.2}"))
}

/// The trimmed standard output of `sh -c cmd`, or nothing.
pub fn shell(cmd: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub fn markdown(
    args: &Args,
    runs: &[Vec<(Case, Vec<Outcome>)>],
    took: Duration,
    load: [&str; 2],
) -> String {
    let mut md = String::new();
    let cpu = shell("lscpu | sed -n 's/^Model name: *//p' | head -1");
    let command = std::env::var("BENCH_COMMAND")
        .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
    let _ = writeln!(md, "# ragstream benchmark results\n");
    let _ = writeln!(md, "- date: {}", shell("date -u '+%Y-%m-%d %H:%M UTC'"));
    let _ = writeln!(
        md,
        "- machine: `nproc` = {}, CPU model `{cpu}` ({}), {} RAM; load average (1, 5, 15 min) {} at the start, {} at the end",
        shell("nproc"),
        shell("uname -r"),
        shell("free -g | awk '/Mem:/{print $2\" GiB\"}'"),
        load[0],
        load[1],
    );
    let _ = writeln!(
        md,
        "- command: `{command}`{}",
        if args.quick { " (quick mode)" } else { "" }
    );
    let _ = writeln!(
        md,
        "- commit: `{}`{}; ragstream binary: `{}`, default log level (no `RUST_LOG`)",
        shell("git rev-parse --short HEAD"),
        if shell("git status --porcelain --untracked-files=no").is_empty() {
            ""
        } else {
            " with uncommitted changes"
        },
        args.ragstream_bin
            .as_ref()
            .map_or("not run".to_owned(), |p| p.display().to_string())
    );
    let _ = writeln!(
        md,
        "- {} run(s) of every case, took {:.0} s. Times in ms; \"added\" = target minus the upstream's own figure in the same case.\n",
        runs.len(),
        took.as_secs_f64()
    );
    let checks: Vec<Vec<Check>> = runs.iter().map(|r| checks(r)).collect();
    spread_table(&mut md, &checks);
    with_connect(&mut md, runs);
    phases(&mut md, runs);
    for (n, results) in runs.iter().enumerate() {
        let _ = writeln!(md, "## Run {} of {}\n", n + 1, runs.len());
        one_run(&mut md, results, &checks[n]);
    }
    md
}

/// The per-case tables, the time-to-first-byte split, the targets and the tool path of one run.
fn one_run(md: &mut String, results: &[(Case, Vec<Outcome>)], checks: &[Check]) {
    for (case, outcomes) in results.iter().filter(|(c, _)| !c.tool) {
        let _ = writeln!(
            md,
            "### {} — concurrency {}, {} streams × {} chunks, {} ms apart, in {} rounds per target\n",
            case.name, case.concurrency, case.streams, case.chunks, case.gap_ms, case.rounds
        );
        let _ = writeln!(
            md,
            "| target | ok | failed | streams/s | TTFB p50 | TTFB p99 | TTFB p50 incl. connect | TTFB p99 incl. connect | added TTFB p50 | added TTFB p99 | TTLB p50 | TTLB p99 | added TTLB p50 | added TTLB p99 | relay CPU µs/chunk | relay peak RSS MiB | relay RSS before load MiB |"
        );
        let _ = writeln!(
            md,
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
        );
        let direct = outcomes
            .iter()
            .find(|o| o.target == Target::Direct)
            .map(|o| figures(case, o));
        for o in outcomes {
            let f = figures(case, o);
            let added = |a: Duration, pick: fn(&Figures) -> Duration| {
                direct
                    .as_ref()
                    .filter(|_| o.target != Target::Direct)
                    .map_or("—".to_owned(), |d| diff_ms(a, pick(d)))
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                o.target.label(),
                f.ok,
                f.failed,
                f.per_sec,
                ms(f.ttfb_p50),
                ms(f.ttfb_p99),
                ms(f.ttfb_conn_p50),
                ms(f.ttfb_conn_p99),
                added(f.ttfb_p50, |d| d.ttfb_p50),
                added(f.ttfb_p99, |d| d.ttfb_p99),
                ms(f.ttlb_p50),
                ms(f.ttlb_p99),
                added(f.ttlb_p50, |d| d.ttlb_p50),
                added(f.ttlb_p99, |d| d.ttlb_p99),
                opt(f.relay_cpu_us, 2),
                opt(f.relay_rss_mib, 1),
                opt(f.relay_idle_mib, 1),
            );
        }
        let _ = writeln!(
            md,
            "\n<details><summary>machine figures for {}</summary>\n",
            case.name
        );
        let _ = writeln!(
            md,
            "| target | upstream CPU µs/chunk | load generator CPU µs/chunk | relay write calls /chunk | machine busy | of which irq+softirq | of which outside the benchmark | connect p99 ms (not in TTFB) |"
        );
        let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|--:|");
        for o in outcomes {
            let f = figures(case, o);
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {} | {:.0} % | {:.0} % | {:.0} % | {} |",
                o.target.label(),
                f.upstream_cpu_us,
                f.loadgen_cpu_us,
                syscalls(f.relay_syscalls),
                f.machine_busy_pct,
                f.softirq_pct,
                f.others_pct,
                ms(f.connect_p99),
            );
        }
        let _ = writeln!(md, "\n</details>");
        let errors: Vec<String> = outcomes
            .iter()
            .filter_map(|o| {
                o.samples
                    .iter()
                    .find_map(|s| s.error.clone())
                    .map(|e| format!("{}: {e}", o.target.label()))
            })
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(md, "\nFirst error per target: {}", errors.join("; "));
        }
        let _ = writeln!(md);
    }

    ttfb_split(md, results);
    checks_table(md, checks);
    tool_path(md, results);
}

/// At concurrency 1 the n-th upstream stamp belongs to the n-th stream, so time to first byte
/// splits into the request path (client → upstream), the upstream's own time, and the
/// response path (upstream's first frame → client's first byte).
fn ttfb_split(md: &mut String, results: &[(Case, Vec<Outcome>)]) {
    let mut rows = Vec::new();
    for (case, outcomes) in results
        .iter()
        .filter(|(c, _)| !c.tool && c.concurrency == 1)
    {
        for o in outcomes {
            let Some(marks) = &o.marks else { continue };
            if marks.arrival.len() != o.samples.len() || marks.first_frame.len() != o.samples.len()
            {
                continue;
            }
            let mut spans: [Vec<Duration>; 3] = Default::default();
            for ((s, &arrival), &first) in
                o.samples.iter().zip(&marks.arrival).zip(&marks.first_frame)
            {
                if !s.ok {
                    continue;
                }
                spans[0].push(Duration::from_nanos(arrival.saturating_sub(s.sent_ns)));
                spans[1].push(Duration::from_nanos(first.saturating_sub(arrival)));
                spans[2].push(Duration::from_nanos(s.first_byte_ns.saturating_sub(first)));
            }
            let [mut a, mut b, mut c] = spans;
            rows.push(format!(
                "| {} | {} | {} / {} | {} / {} | {} / {} |",
                case.name,
                o.target.label(),
                ms(percentile(&mut a, 50.0)),
                ms(percentile(&mut a, 99.0)),
                ms(percentile(&mut b, 50.0)),
                ms(percentile(&mut b, 99.0)),
                ms(percentile(&mut c, 50.0)),
                ms(percentile(&mut c, 99.0)),
            ));
        }
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "### Where time to first byte goes (concurrency 1; p50 / p99 ms)\n"
    );
    let _ = writeln!(
        md,
        "| case | target | request path: client → upstream | upstream: request → first frame | response path: first frame → client |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|");
    for row in rows {
        let _ = writeln!(md, "{row}");
    }
    let _ = writeln!(md);
}

/// How a check's figure reads.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Unit {
    /// ragstream ÷ minimal relay.
    Ratio,
    /// ragstream − minimal relay, ms.
    AddedMs,
    /// A count (failures).
    Count,
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Unit::Ratio => format!("{v:.3}×"),
            Unit::AddedMs => format!("{v:+.3} ms"),
            Unit::Count => format!("{v:.0}"),
        }
    }
}

/// One of the issue's targets in one run: ragstream against the minimal relay of the same
/// case. Lower is better; `limit` is the most the target allows (none: for reference).
#[derive(Clone, Debug)]
pub struct Check {
    pub label: &'static str,
    pub case: String,
    pub relay: String,
    pub ragstream: String,
    pub value: f64,
    pub unit: Unit,
    pub limit: Option<f64>,
}

impl Check {
    fn verdict(&self) -> &'static str {
        match self.limit {
            None => "",
            Some(limit) if self.value <= limit => "✅",
            Some(_) => "❌",
        }
    }
}

/// The issue's targets, ragstream against the minimal relay of the same case.
pub fn checks(results: &[(Case, Vec<Outcome>)]) -> Vec<Check> {
    let pair = |case: &Case, outcomes: &[Outcome]| {
        let get = |t| {
            outcomes
                .iter()
                .find(|o| o.target == t)
                .map(|o| figures(case, o))
        };
        get(Target::MinRelay).zip(get(Target::Ragstream))
    };
    let mut rows = Vec::new();
    for (case, outcomes) in results.iter().filter(|(c, _)| !c.tool && !c.burst) {
        let Some((m, r)) = pair(case, outcomes) else {
            continue;
        };
        // A run where either relay delivered nothing has no ratio: it counts as a miss, not 0×.
        let broken = m.ok == 0 || r.ok == 0;
        let mut check = |label, relay: String, ragstream: String, value: f64, unit, limit| {
            let value = if broken && unit != Unit::Count {
                f64::INFINITY
            } else {
                value
            };
            rows.push(Check {
                label,
                case: case.name.clone(),
                relay,
                ragstream,
                value,
                unit,
                limit,
            });
        };
        if case.concurrency == 1 {
            let d = (r.ttfb_p50.as_secs_f64() - m.ttfb_p50.as_secs_f64()) * 1e3;
            check(
                "TTFB p50 within 0.1 ms of the relay (c=1)",
                format!("{} ms", ms(m.ttfb_p50)),
                format!("{} ms", ms(r.ttfb_p50)),
                d,
                Unit::AddedMs,
                Some(0.1),
            );
        }
        if case.concurrency >= 1000 {
            check(
                "zero failures (c=1000)",
                m.failed.to_string(),
                r.failed.to_string(),
                r.failed as f64,
                Unit::Count,
                Some(0.0),
            );
            for (label, mp, rp) in [
                ("TTLB p50 within 10 % (c=1000)", m.ttlb_p50, r.ttlb_p50),
                ("TTLB p99 within 10 % (c=1000)", m.ttlb_p99, r.ttlb_p99),
            ] {
                check(
                    label,
                    format!("{} ms", ms(mp)),
                    format!("{} ms", ms(rp)),
                    rp.as_secs_f64() / mp.as_secs_f64(),
                    Unit::Ratio,
                    Some(1.10),
                );
            }
            if let (Some(mr), Some(rr)) = (m.relay_rss_mib, r.relay_rss_mib) {
                check(
                    "peak RSS ≤ 2× (c=1000)",
                    format!("{mr:.1} MiB"),
                    format!("{rr:.1} MiB"),
                    rr / mr,
                    Unit::Ratio,
                    Some(2.0),
                );
                if let (Some(mi), Some(ri)) = (m.relay_idle_mib, r.relay_idle_mib) {
                    let (mg, rg) = (mr - mi, rr - ri);
                    check(
                        "(peak RSS growth under load, for reference)",
                        format!("{mg:.1} MiB"),
                        format!("{rg:.1} MiB"),
                        rg / mg,
                        Unit::Ratio,
                        None,
                    );
                }
            }
        }
        if let (Some(mc), Some(rc)) = (m.relay_cpu_us, r.relay_cpu_us) {
            let label = if case.gap_ms == 0 {
                "CPU per chunk ≤ 1.2× (CPU-bound)"
            } else {
                "CPU per chunk ≤ 1.2× (20 ms gaps)"
            };
            check(
                label,
                format!("{mc:.2} µs"),
                format!("{rc:.2} µs"),
                rc / mc,
                Unit::Ratio,
                Some(1.2),
            );
        }
    }
    rows
}

fn checks_table(md: &mut String, checks: &[Check]) {
    if checks.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "### Targets in this run: ragstream against the minimal relay\n"
    );
    let _ = writeln!(
        md,
        "| target | case | minimal relay | ragstream | ragstream vs relay | |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|---|");
    for c in checks {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            c.label,
            c.case,
            c.relay,
            c.ragstream,
            c.unit.show(c.value),
            c.verdict()
        );
    }
    let _ = writeln!(md);
}

/// One target over every run: the spread of its figure, and whether all of it is inside.
#[derive(Debug, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    /// `Some(true)` only when every run meets the target (lower is better, so the max).
    pub met: Option<bool>,
}

/// min/median/max of `values` (at least one); the median of an even count is the mean of
/// the middle two.
pub fn spread(values: &[f64], limit: Option<f64>) -> Spread {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Spread {
        min: v[0],
        median,
        max: v[n - 1],
        met: limit.map(|limit| v[n - 1] <= limit),
    }
}

/// Every target as min/median/max over the runs; met only when the whole spread is inside.
fn spread_table(md: &mut String, runs: &[Vec<Check>]) {
    let Some(first) = runs.first() else { return };
    let _ = writeln!(
        md,
        "## Targets over {} run(s): ragstream against the minimal relay of the same run\n",
        runs.len()
    );
    let _ = writeln!(
        md,
        "A target is met (✅) only when the whole spread, the worst run included, is inside it.\n"
    );
    let _ = writeln!(
        md,
        "| target | case | min | median | max | runs meeting it | |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|---|");
    for c in first {
        let values: Vec<f64> = runs
            .iter()
            .filter_map(|run| {
                run.iter()
                    .find(|o| o.label == c.label && o.case == c.case)
                    .map(|o| o.value)
            })
            .collect();
        let s = spread(&values, c.limit);
        let meeting = c.limit.map_or("—".to_owned(), |limit| {
            format!(
                "{} of {}",
                values.iter().filter(|&&v| v <= limit).count(),
                values.len()
            )
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {meeting} | {} |",
            c.label,
            c.case,
            c.unit.show(s.min),
            c.unit.show(s.median),
            c.unit.show(s.max),
            match s.met {
                None => "",
                Some(true) => "✅",
                Some(false) => "❌",
            }
        );
    }
    let _ = writeln!(md);
}

/// Time to first byte without and with connect, and connect p99, per case and target:
/// median over the runs, with the spread.
fn with_connect(md: &mut String, runs: &[Vec<(Case, Vec<Outcome>)>]) {
    let Some(first) = runs.first() else { return };
    let _ = writeln!(
        md,
        "## Time to first byte without and with connect (median of {} run(s) [min – max], ms)\n",
        runs.len()
    );
    let _ = writeln!(
        md,
        "\"incl. connect\" adds, for the stream that opened a connection, the time to open it: what a new \
         client waits. In `burst-*` cases every client connects at the same moment; elsewhere the harness \
         opens the connections beforehand, at most 64 at a time.\n"
    );
    let _ = writeln!(
        md,
        "| case | target | TTFB p50 | TTFB p50 incl. connect | TTFB p99 | TTFB p99 incl. connect | connect p99 |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|--:|");
    for (case, outcomes) in first.iter().filter(|(c, _)| !c.tool) {
        for o in outcomes {
            let per_run: Vec<Figures> = runs
                .iter()
                .filter_map(|run| {
                    let (c, outs) = run.iter().find(|(c, _)| c.name == case.name)?;
                    outs.iter()
                        .find(|x| x.target == o.target)
                        .map(|x| figures(c, x))
                })
                .collect();
            let cell = |pick: fn(&Figures) -> Duration| {
                let values: Vec<f64> = per_run
                    .iter()
                    .map(|f| pick(f).as_secs_f64() * 1e3)
                    .collect();
                let s = spread(&values, None);
                if values.len() == 1 {
                    format!("{:.3}", s.median)
                } else {
                    format!("{:.3} [{:.3} – {:.3}]", s.median, s.min, s.max)
                }
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                case.name,
                o.target.label(),
                cell(|f| f.ttfb_p50),
                cell(|f| f.ttfb_conn_p50),
                cell(|f| f.ttfb_p99),
                cell(|f| f.ttfb_conn_p99),
                cell(|f| f.connect_p99),
            );
        }
    }
    let _ = writeln!(md);
}

/// Tool path: from the end of the model's tool call to the first answer byte, split at the
/// moment the second model call reaches the upstream.
fn tool_path(md: &mut String, results: &[(Case, Vec<Outcome>)]) {
    for (case, outcomes) in results.iter().filter(|(c, _)| c.tool) {
        for o in outcomes {
            let f = figures(case, o);
            let _ = writeln!(
                md,
                "### Tool path ({}: concurrency {}, {} streams, answer {} chunks {} ms apart)\n",
                case.name, case.concurrency, case.streams, case.chunks, case.gap_ms
            );
            let _ = writeln!(
                md,
                "{} ok, {} failed; whole stream TTLB p50 {} ms, p99 {} ms.\n",
                f.ok,
                f.failed,
                ms(f.ttlb_p50),
                ms(f.ttlb_p99)
            );
            let tool: Vec<_> = o
                .samples
                .iter()
                .filter(|s| s.ok)
                .filter_map(|s| s.tool.clone())
                .collect();
            let mut rows: Vec<(String, Vec<Duration>)> = Vec::new();
            let span = |a: Option<u64>, b: Option<u64>| {
                a.zip(b)
                    .map(|(a, b)| Duration::from_nanos(b.saturating_sub(a)))
            };
            if let Some(marks) = &o.marks
                && marks.tool_end.len() == tool.len()
                && marks.second_req.len() == tool.len()
            {
                // One stream at a time: the n-th stamp of each list belongs to the n-th stream.
                let total = tool
                    .iter()
                    .zip(&marks.tool_end)
                    .filter_map(|(t, &end)| span(Some(end), t.first_delta))
                    .collect();
                let search = marks
                    .tool_end
                    .iter()
                    .zip(&marks.second_req)
                    .map(|(&a, &b)| Duration::from_nanos(b.saturating_sub(a)))
                    .collect();
                let second = tool
                    .iter()
                    .zip(&marks.second_req)
                    .filter_map(|(t, &req)| span(Some(req), t.first_delta))
                    .collect();
                rows.push((
                    "end of tool call (upstream) → first answer byte (client)".into(),
                    total,
                ));
                rows.push((
                    "  search: end of tool call → second call reaches upstream".into(),
                    search,
                ));
                rows.push((
                    "  second call: reaches upstream → first answer byte (client)".into(),
                    second,
                ));
            } else {
                let _ = writeln!(
                    md,
                    "(upstream stamps unavailable or unpaired: client-side split only)\n"
                );
            }
            rows.push((
                "client: `tool_call` event → `sources` event".into(),
                tool.iter()
                    .filter_map(|t| span(t.tool_call, t.sources))
                    .collect(),
            ));
            rows.push((
                "client: `sources` event → first `delta`".into(),
                tool.iter()
                    .filter_map(|t| span(t.sources, t.first_delta))
                    .collect(),
            ));
            rows.push((
                "client: `tool_call` event → first `delta`".into(),
                tool.iter()
                    .filter_map(|t| span(t.tool_call, t.first_delta))
                    .collect(),
            ));
            let _ = writeln!(md, "| span | n | p50 ms | p99 ms |");
            let _ = writeln!(md, "|---|--:|--:|--:|");
            for (label, mut values) in rows {
                let n = values.len();
                let _ = writeln!(
                    md,
                    "| {label} | {n} | {} | {} |",
                    ms(percentile(&mut values, 50.0)),
                    ms(percentile(&mut values, 99.0))
                );
            }
            let errors: Vec<String> = o
                .samples
                .iter()
                .filter_map(|s| s.error.clone())
                .take(3)
                .collect();
            if !errors.is_empty() {
                let _ = writeln!(md, "\nFirst errors: {}", errors.join("; "));
            }
            let _ = writeln!(md);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_met_only_when_every_run_is_inside_it() {
        let s = spread(&[1.15, 1.25, 1.10], Some(1.2));
        assert_eq!((s.min, s.median, s.max), (1.10, 1.15, 1.25));
        assert_eq!(
            s.met,
            Some(false),
            "the median is inside, the worst run is not"
        );
        assert_eq!(spread(&[1.2, 1.0, 1.19], Some(1.2)).met, Some(true));
        assert_eq!(spread(&[0.5], None).met, None);
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0], None).median, 2.5);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut values: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut values, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&mut values, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&mut values[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&mut [], 50.0), Duration::ZERO);
    }
}

/// Where the first bytes of a round went (see `load::Phases`): per case and target, the
/// median over every round of every run, with the spread, of each step's p50 and p99.
fn phases(md: &mut String, runs: &[Vec<(Case, Vec<Outcome>)>]) {
    let Some(first) = runs.first() else { return };
    let _ = writeln!(
        md,
        "## Where the first byte goes (median over every round [min – max], ms after the round's start)\n"
    );
    let _ = writeln!(
        md,
        "The round starts at its first connect (burst) or first request. Each column is a percentile \
         of one CLOCK_MONOTONIC stamp on its own: the request handed to the connection by the load \
         generator, its arrival at the upstream (headers read), the upstream's first frame written, \
         and the first body byte at the client.\n"
    );
    let _ = writeln!(
        md,
        "| case | target | sent p50 / p99 | upstream arrival p50 / p99 | upstream first frame p50 / p99 | client first byte p50 / p99 |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|");
    for (case, outcomes) in first.iter().filter(|(c, _)| !c.tool) {
        for o in outcomes {
            let all: Vec<crate::load::Phases> = runs
                .iter()
                .filter_map(|run| run.iter().find(|(c, _)| c.name == case.name))
                .flat_map(|(_, outs)| outs.iter().filter(|x| x.target == o.target))
                .flat_map(|x| x.phases.iter().copied())
                .collect();
            if all.is_empty() {
                continue;
            }
            let cell = |pick: fn(&crate::load::Phases) -> [f64; 2]| {
                let at = |i: usize| {
                    let values: Vec<f64> = all.iter().map(|p| pick(p)[i]).collect();
                    let s = spread(&values, None);
                    format!("{:.1} [{:.1} – {:.1}]", s.median, s.min, s.max)
                };
                format!("{} / {}", at(0), at(1))
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                case.name,
                o.target.label(),
                cell(|p| p.sent),
                cell(|p| p.arrival),
                cell(|p| p.first_frame),
                cell(|p| p.first_byte),
            );
        }
    }
    let _ = writeln!(md);
}
