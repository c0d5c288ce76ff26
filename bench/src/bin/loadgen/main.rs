//! The load generator and orchestrator. For every case (concurrency × chunk gap) it starts a
//! fresh scripted upstream and, one after the other, measures three targets against it:
//! the upstream directly, the minimal relay and ragstream, each a fresh process so that its
//! peak RSS (VmHWM) belongs to that case alone. It prints a markdown report and writes it to
//! `--out`.
//!
//! ```text
//! loadgen --upstream-bin B --minrelay-bin B [--ragstream-bin B] [--ragstream-config F]
//!         [--quick] [--only SUBSTRING] [--out FILE] [--runs N]
//! loadgen soak [--concurrency 200] [--minutes 10] …   (see `soak.rs`)
//! ```

mod load;
mod proc_stats;
mod report;
mod soak;
mod soak_report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use load::{Kind, Load, Sample};

/// One workload, run against every target.
#[derive(Clone)]
pub struct Case {
    /// Short name, e.g. `c100-gap0`.
    pub name: String,
    /// Streams in flight at once.
    pub concurrency: usize,
    /// Streams to run in all.
    pub streams: usize,
    /// Content chunks per answer.
    pub chunks: usize,
    /// Milliseconds between two chunks.
    pub gap_ms: u64,
    /// `true`: ragstream's tool path over `/api/chat` (ragstream only).
    pub tool: bool,
    /// Rounds the streams are split into, taking turns between targets.
    pub rounds: usize,
    /// Hard stop for one target's run.
    pub time_cap: Duration,
    /// Every client connects at the same moment as part of the run (see `Load::burst`).
    pub burst: bool,
}

/// Who answers the load generator.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Target {
    Direct,
    MinRelay,
    Ragstream,
    /// ragstream's `/api/chat` on a direct answer: typed SSE events instead of plain text.
    RagstreamChat,
    /// ragstream with `server.backlog = 128`, the accept queue it had before issue 10:
    /// the "before" of the burst cases.
    RagstreamBacklog128,
}

impl Target {
    /// Name on the command line (`--targets`).
    pub fn key(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::MinRelay => "minrelay",
            Target::Ragstream => "ragstream",
            Target::RagstreamChat => "ragstream-chat",
            Target::RagstreamBacklog128 => "ragstream-backlog128",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Target::Direct => "upstream (direct)",
            Target::MinRelay => "minimal relay",
            Target::Ragstream => "ragstream",
            Target::RagstreamChat => "ragstream /api/chat",
            Target::RagstreamBacklog128 => "ragstream, backlog 128 (before)",
        }
    }
}

/// What one (case, target) run measured.
pub struct Outcome {
    pub target: Target,
    pub samples: Vec<Sample>,
    /// Streams not started before the time cap.
    pub unstarted: usize,
    /// Wall time of the measured run.
    pub wall: Duration,
    /// CPU time the relay (or, for `Direct`, nothing) spent during the run.
    pub relay_cpu: Option<Duration>,
    /// CPU time the upstream spent during the run.
    pub upstream_cpu: Duration,
    /// Peak RSS of the relay process, KiB.
    pub relay_hwm_kib: Option<u64>,
    /// Read and write system calls of the relay during the run.
    pub relay_syscalls: Option<(u64, u64)>,
    /// CPU time of the whole machine during the run (all processes, from `/proc/stat`).
    pub machine_busy: Duration,
    /// Of `machine_busy`, time in irq and softirq context.
    pub machine_softirq: Duration,
    /// Wall time over which `machine_busy` was taken (the streams, not the connection set-up).
    pub window: Duration,
    /// Resident set size of the relay once started and warmed up, before the load, KiB.
    pub relay_idle_kib: Option<u64>,
    /// CPU time of the load generator itself during the run.
    pub loadgen_cpu: Duration,
    /// The upstream's stamps (`/bench/marks`) of every round, in order.
    pub marks: Option<load::Marks>,
    /// Where each round's first bytes went (see [`load::Phases`]).
    pub phases: Vec<load::Phases>,
}

/// Command-line settings.
pub struct Args {
    upstream_bin: PathBuf,
    minrelay_bin: PathBuf,
    ragstream_bin: Option<PathBuf>,
    ragstream_config: Option<PathBuf>,
    quick: bool,
    only: Option<String>,
    out: Option<PathBuf>,
    logs: PathBuf,
    /// Only these targets (`direct`, `minrelay`, `ragstream`); all when empty.
    targets: Vec<String>,
    /// Profile the relay of each run with `perf record` into this directory.
    perf_dir: Option<PathBuf>,
    /// Whole runs of every case; the report gives each target as min/median/max over them.
    runs: usize,
    /// Content chunks per answer instead of the plan's (`--chunks 1`: a burst of requests
    /// with next to no stream behind them).
    chunks: Option<usize>,
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("soak") {
        soak::main(std::env::args().skip(2));
        return;
    }
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build tokio runtime");
    let cases = plan(args.quick)
        .into_iter()
        .filter(|c| {
            args.only
                .as_ref()
                .is_none_or(|only| c.name.contains(only.as_str()))
        })
        .map(|c| match args.chunks {
            Some(chunks) => Case {
                name: format!("{}-{chunks}chunk", c.name),
                chunks,
                ..c
            },
            None => c,
        })
        .collect::<Vec<_>>();
    std::fs::create_dir_all(&args.logs).expect("create log directory");
    if let Some(bin) = &args.ragstream_bin {
        runtime.block_on(prepare_kb(&args, bin));
    }
    let started = Instant::now();
    let load_before = report::shell("cut -d' ' -f1-3 /proc/loadavg");
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        eprintln!("run {run} of {}", args.runs);
        runs.push(run_all(&args, &runtime, &cases, started));
    }
    let load_after = report::shell("cut -d' ' -f1-3 /proc/loadavg");
    let markdown = report::markdown(&args, &runs, started.elapsed(), [&load_before, &load_after]);
    println!("{markdown}");
    if let Some(out) = &args.out {
        std::fs::write(out, &markdown).expect("write report");
        eprintln!("report written to {}", out.display());
    }
}

/// Every case once, each against every target.
fn run_all(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    cases: &[Case],
    started: Instant,
) -> Vec<(Case, Vec<Outcome>)> {
    let mut results = Vec::new();
    for case in cases {
        let all = [
            Target::Direct,
            Target::MinRelay,
            Target::Ragstream,
            Target::RagstreamChat,
            Target::RagstreamBacklog128,
        ];
        let targets: Vec<Target> = all
            .into_iter()
            .filter(|&t| {
                t == Target::Direct || t == Target::MinRelay || args.ragstream_bin.is_some()
            })
            .filter(|&t| !case.tool || t == Target::Ragstream)
            // The SSE surface, for reference, where the load is high enough to show its cost.
            .filter(|&t| {
                t != Target::RagstreamChat
                    || (!case.tool && !case.burst && (case.gap_ms == 0 || case.concurrency >= 1000))
            })
            // Before and after the backlog fix, where it shows: a burst of new connections.
            .filter(|&t| t != Target::RagstreamBacklog128 || case.burst)
            .filter(|t| args.targets.is_empty() || args.targets.iter().any(|k| k == t.key()))
            .collect();
        eprintln!(
            "[{:>5.1}s] {} ({} rounds)",
            started.elapsed().as_secs_f64(),
            case.name,
            case.rounds
        );
        let outcomes = runtime.block_on(run_case(args, case, &targets));
        for outcome in &outcomes {
            eprintln!(
                "  {:<18} {}",
                outcome.target.label(),
                report::one_line(case, outcome)
            );
        }
        results.push((case.clone(), outcomes));
    }
    results
}

/// The cases of a run. Every stream carries `chunks` content chunks; 20 ms gaps are a
/// realistic model, 0 ms gaps leave nothing but the relay's own cost.
fn plan(quick: bool) -> Vec<Case> {
    let chunks = if quick { 50 } else { 100 };
    let cap = Duration::from_secs(if quick { 30 } else { 90 });
    let case = |concurrency: usize, streams: usize, gap_ms, tool: bool| Case {
        name: if tool {
            format!("tool-c{concurrency}")
        } else {
            format!("c{concurrency}-gap{gap_ms}")
        },
        concurrency,
        streams,
        chunks,
        gap_ms,
        tool,
        rounds: (streams / concurrency).clamp(1, 3),
        time_cap: cap,
        burst: false,
    };
    // 1,000 new clients connecting at the same moment, each asking once: connect time is
    // part of what they wait for. One burst per round.
    let burst = Case {
        name: "burst-c1000".into(),
        streams: 3000,
        rounds: 3,
        burst: true,
        ..case(1000, 3000, 20, false)
    };
    if quick {
        vec![
            case(1, 3, 20, false),
            case(100, 200, 20, false),
            case(1000, 1000, 20, false),
            case(1, 300, 0, false),
            case(100, 2000, 0, false),
            case(1000, 3000, 0, false),
            case(1, 10, 0, true),
            burst,
        ]
    } else {
        vec![
            case(1, 12, 20, false),
            case(100, 300, 20, false),
            case(1000, 2000, 20, false),
            case(1, 3000, 0, false),
            case(100, 12_000, 0, false),
            case(1000, 12_000, 0, false),
            case(1, 60, 0, true),
            burst,
        ]
    }
}

/// `ragstream serve` on `addr`, with `base_url` as its model provider.
fn ragstream_command(
    bin: &std::path::Path,
    config: Option<&std::path::Path>,
    addr: SocketAddr,
    base_url: &str,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--addr", &addr.to_string()]);
    // The deployed shape: tools offered and a system prompt, on every endpoint.
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    // The embedded knowledge base lives in the harness's own target directory.
    cmd.env("RAGSTREAM_KB__DATA_DIR", "bench/target/kb-data")
        .env("OPENAI_BASE_URL", base_url)
        .env("OPENAI_API_KEY", "bench")
        .env("OPENAI_MODEL", "bench-model")
        // The default log level, as deployed: one line per request at info.
        .env_remove("RUST_LOG");
    cmd
}

/// Starts ragstream once and stops it before anything is measured, so that the knowledge
/// base is seeded by then. The start that seeds the sample loads jieba's dictionary
/// (about 35 MiB) to index it; a measured process that did so would start at 52 MiB
/// instead of 16 MiB, which is what made one c1000-gap20 run's peak RSS 2.01× the minimal
/// relay's (issue 16), and relaying direct answers never loads it otherwise.
async fn prepare_kb(args: &Args, bin: &std::path::Path) {
    let addr = free_addr();
    let cmd = ragstream_command(
        bin,
        args.ragstream_config.as_deref(),
        addr,
        "http://127.0.0.1:9/v1",
    );
    let mut child = spawn(cmd, &args.logs.join("prepare-kb-relay.log"));
    wait_ready(addr, Some("/healthz")).await;
    stop(&mut child);
}

/// One target's processes, started for one case.
struct Running {
    target: Target,
    /// File-name stem for logs and profiles.
    tag: String,
    upstream: Child,
    upstream_addr: SocketAddr,
    /// The relay process; `None` when the load goes to the upstream directly.
    relay: Option<Child>,
    /// Where the load goes.
    addr: SocketAddr,
    kind: Kind,
}

/// Starts every target's processes, then runs the case's streams in rounds that take turns
/// between targets (A B C A B C …), so that a burst of load from another process on this
/// shared machine falls on every target alike. Each target's processes live for this case
/// only, so peak RSS is per case.
async fn run_case(args: &Args, case: &Case, targets: &[Target]) -> Vec<Outcome> {
    let mut running = Vec::new();
    for &target in targets {
        running.push(start(args, case, target).await);
    }
    let mut outcomes: Vec<Option<Outcome>> = targets.iter().map(|_| None).collect();
    for round in 0..case.rounds {
        let streams = case.streams * (round + 1) / case.rounds - case.streams * round / case.rounds;
        for (r, outcome) in running.iter().zip(outcomes.iter_mut()) {
            let measured = measure(args, case, r, streams).await;
            *outcome = Some(match outcome.take() {
                None => measured,
                Some(sum) => sum.add(measured),
            });
        }
    }
    for r in &mut running {
        if let Some(relay) = r.relay.as_mut() {
            stop(relay);
        }
        stop(&mut r.upstream);
    }
    outcomes.into_iter().flatten().collect()
}

/// Starts the upstream and the relay of `target`, and warms them up with one stream.
async fn start(args: &Args, case: &Case, target: Target) -> Running {
    let tag = format!("{}-{}", case.name, target.key());
    let upstream_addr = free_addr();
    let mut upstream_cmd = Command::new(&args.upstream_bin);
    upstream_cmd.args(["--addr", &upstream_addr.to_string()]);
    upstream_cmd.args([
        "--chunks",
        &case.chunks.to_string(),
        "--gap-ms",
        &case.gap_ms.to_string(),
    ]);
    upstream_cmd.args(["--mode", if case.tool { "tool" } else { "direct" }]);
    let upstream = spawn(upstream_cmd, &args.logs.join(format!("{tag}-upstream.log")));
    wait_ready(upstream_addr, None).await;

    let base_url = format!("http://{upstream_addr}/v1");
    let (relay, addr, kind) = match target {
        Target::Direct => (None, upstream_addr, Kind::Direct),
        Target::MinRelay => {
            let addr = free_addr();
            let mut cmd = Command::new(&args.minrelay_bin);
            cmd.args(["--addr", &addr.to_string()])
                .env("OPENAI_BASE_URL", &base_url);
            let child = spawn(cmd, &args.logs.join(format!("{tag}-relay.log")));
            wait_ready(addr, None).await;
            (Some(child), addr, Kind::Python)
        }
        Target::Ragstream | Target::RagstreamChat | Target::RagstreamBacklog128 => {
            let addr = free_addr();
            let bin = args.ragstream_bin.as_ref().expect("ragstream binary");
            let mut cmd = ragstream_command(bin, args.ragstream_config.as_deref(), addr, &base_url);
            if target == Target::RagstreamBacklog128 {
                cmd.env("RAGSTREAM_SERVER__BACKLOG", "128");
            }
            let child = spawn(cmd, &args.logs.join(format!("{tag}-relay.log")));
            wait_ready(addr, Some("/healthz")).await;
            (
                Some(child),
                addr,
                match (case.tool, target) {
                    (true, _) => Kind::Chat,
                    (false, Target::RagstreamChat) => Kind::ChatDirect,
                    _ => Kind::Python,
                },
            )
        }
    };
    let warm_up = Load {
        addr,
        kind,
        chunks: case.chunks,
        concurrency: 1,
        streams: 1,
        time_cap: case.time_cap,
        burst: false,
    };
    let warm = load::run(&warm_up).await;
    if let Some(err) = warm.samples.iter().find_map(|s| s.error.clone()) {
        eprintln!("         {tag}: warm-up stream failed: {err}");
    }
    // Forget the warm-up's stamps.
    load::marks(upstream_addr).await;
    Running {
        target,
        tag,
        upstream,
        upstream_addr,
        relay,
        addr,
        kind,
    }
}

/// One round of `streams` streams against a running target, with its CPU, system calls
/// and the machine's load around it.
async fn measure(args: &Args, case: &Case, r: &Running, streams: usize) -> Outcome {
    let relay_pid = r.relay.as_ref().map(Child::id);
    let upstream_before = proc_stats::cpu(r.upstream.id());
    let relay_before = relay_pid.map(proc_stats::cpu);
    let syscalls_before = relay_pid.map(proc_stats::syscalls);
    let loadgen_before = proc_stats::cpu(std::process::id());
    let relay_idle_kib = relay_pid.map(proc_stats::rss_kib);
    let perf = args.perf_dir.as_ref().zip(relay_pid).map(|(dir, pid)| {
        let mut cmd = Command::new("perf");
        cmd.args([
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "499",
            "--call-graph",
            "dwarf,8192",
            "-p",
        ]);
        let data = dir.join(format!("{}-{}.perf.data", r.tag, clock_tag()));
        cmd.arg(pid.to_string()).arg("-o").arg(data);
        spawn(cmd, &args.logs.join(format!("{}-perf.log", r.tag)))
    });
    if perf.is_some() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let load = Load {
        addr: r.addr,
        kind: r.kind,
        chunks: case.chunks,
        concurrency: case.concurrency,
        streams,
        time_cap: case.time_cap,
        burst: case.burst,
    };
    let run = load::run(&load).await;
    if let Some(mut perf) = perf {
        // SAFETY: kill(2) on the perf process we spawned; SIGINT makes it write its file.
        unsafe { libc::kill(perf.id() as libc::pid_t, libc::SIGINT) };
        let _ = perf.wait();
    }
    let loadgen_cpu = proc_stats::cpu(std::process::id()).since(&loadgen_before);
    let upstream_cpu = proc_stats::cpu(r.upstream.id()).since(&upstream_before);
    let relay_cpu = relay_pid
        .zip(relay_before)
        .map(|(pid, before)| proc_stats::cpu(pid).since(&before));
    let relay_hwm_kib = relay_pid.map(proc_stats::peak_rss_kib);
    let relay_syscalls = relay_pid.zip(syscalls_before).map(|(pid, (r0, w0))| {
        let (r1, w1) = proc_stats::syscalls(pid);
        (r1 - r0, w1 - w0)
    });
    let jiffy = Duration::from_millis(1000 / proc_stats::ticks_per_second());
    let machine_busy = jiffy * run.machine.0 as u32;
    let machine_softirq = jiffy * run.machine.2 as u32;
    let window = jiffy * (run.machine.1 as u32) / proc_stats::cores();
    let marks = load::marks(r.upstream_addr).await;
    let phases: Vec<load::Phases> = load::Phases::of(&run.samples, &marks).into_iter().collect();
    for p in &phases {
        eprintln!("    {:<30} {}", r.target.label(), p.line());
    }
    let marks = Some(marks);
    Outcome {
        target: r.target,
        samples: run.samples,
        unstarted: run.unstarted,
        wall: run.wall,
        relay_cpu,
        upstream_cpu,
        relay_hwm_kib,
        relay_syscalls,
        machine_busy,
        machine_softirq,
        window,
        relay_idle_kib,
        loadgen_cpu,
        marks,
        phases,
    }
}

impl Outcome {
    /// Two rounds of the same target as one outcome.
    fn add(mut self, other: Outcome) -> Outcome {
        self.samples.extend(other.samples);
        self.unstarted += other.unstarted;
        self.wall += other.wall;
        self.relay_cpu = self.relay_cpu.zip(other.relay_cpu).map(|(a, b)| a + b);
        self.upstream_cpu += other.upstream_cpu;
        self.relay_hwm_kib = self.relay_hwm_kib.max(other.relay_hwm_kib);
        self.relay_idle_kib = self.relay_idle_kib.min(other.relay_idle_kib);
        self.relay_syscalls = self
            .relay_syscalls
            .zip(other.relay_syscalls)
            .map(|((r0, w0), (r1, w1))| (r0 + r1, w0 + w1));
        self.machine_busy += other.machine_busy;
        self.window += other.window;
        self.machine_softirq += other.machine_softirq;
        self.loadgen_cpu += other.loadgen_cpu;
        self.phases.extend(other.phases);
        self.marks = match (self.marks, other.marks) {
            (Some(mut a), Some(b)) => {
                a.arrival.extend(b.arrival);
                a.first_frame.extend(b.first_frame);
                a.tool_end.extend(b.tool_end);
                a.second_req.extend(b.second_req);
                a.second_first.extend(b.second_first);
                Some(a)
            }
            (a, b) => a.or(b),
        };
        self
    }
}

/// Seconds since the epoch, to keep profiles of successive rounds apart.
fn clock_tag() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A loopback address with a port the kernel just handed out (and we let go of).
fn free_addr() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe port");
    probe.local_addr().expect("probe address")
}

fn spawn(mut cmd: Command, log: &std::path::Path) -> Child {
    let log = std::fs::File::create(log).expect("create process log");
    let err = log.try_clone().expect("clone log handle");
    cmd.stdin(Stdio::null()).stdout(log).stderr(err);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("start {:?}: {e}", cmd.get_program()))
}

/// Wait until `addr` accepts connections (and, with `health`, answers 200 there).
async fn wait_ready(addr: SocketAddr, health: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let up = match health {
            None => tokio::net::TcpStream::connect(addr).await.is_ok(),
            Some(path) => load::get(addr, path)
                .await
                .is_ok_and(|(status, _)| status == 200),
        };
        if up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing answered on {addr} within 20 s: see bench/results/logs");
}

/// SIGTERM, then SIGKILL if the process has not left within 3 s.
fn stop(child: &mut Child) {
    // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn parse_args() -> Args {
    let mut args = Args {
        upstream_bin: "bench/target/release/upstream".into(),
        minrelay_bin: "bench/target/release/minrelay".into(),
        ragstream_bin: None,
        ragstream_config: None,
        quick: false,
        only: None,
        out: None,
        logs: "bench/results/logs".into(),
        targets: Vec::new(),
        perf_dir: None,
        runs: 1,
        chunks: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(key) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("`{key}` needs a value")))
        };
        match key.as_str() {
            "--upstream-bin" => args.upstream_bin = value().into(),
            "--minrelay-bin" => args.minrelay_bin = value().into(),
            "--ragstream-bin" => args.ragstream_bin = Some(value().into()),
            "--ragstream-config" => args.ragstream_config = Some(value().into()),
            "--only" => args.only = Some(value()),
            "--out" => args.out = Some(value().into()),
            "--logs" => args.logs = value().into(),
            "--quick" => args.quick = true,
            "--targets" => args.targets = value().split(',').map(str::to_owned).collect(),
            "--perf-dir" => args.perf_dir = Some(value().into()),
            "--chunks" => {
                args.chunks = Some(
                    value()
                        .parse()
                        .ok()
                        .filter(|&n| n >= 1)
                        .unwrap_or_else(|| usage("`--chunks` needs a whole number ≥ 1")),
                )
            }
            "--runs" => {
                args.runs = value()
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .unwrap_or_else(|| usage("`--runs` needs a whole number ≥ 1"))
            }
            _ => usage(&format!("unknown option {key}")),
        }
    }
    args
}

fn usage(problem: &str) -> ! {
    eprintln!("loadgen: {problem}");
    eprintln!(
        "usage: loadgen [--upstream-bin B] [--minrelay-bin B] [--ragstream-bin B] \
         [--ragstream-config F] [--quick] [--only NAME] [--out FILE] [--logs DIR]\n\
         \x20              [--targets direct,minrelay,ragstream] [--perf-dir DIR] [--runs N] [--chunks N]"
    );
    std::process::exit(2)
}
