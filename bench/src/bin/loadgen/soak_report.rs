//! Turns a [`Soak`] into markdown: the three checks first (failures, gauge back at 0, flat
//! memory), then streams, RSS, one row per minute and every sample.

use std::fmt::Write;
use std::time::Duration;

use crate::report::{percentile, shell};
use crate::soak::{ProcSample, Soak, StreamRecord};

/// RSS is flat when its least-squares slope over the second half of the soak stays within
/// this many MiB per minute (1 MiB over a 10-minute soak).
const FLAT_MIB_PER_MIN: f64 = 0.1;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// Least-squares slope of RSS (MiB) over time (minutes); `None` with fewer than 2 samples.
pub fn slope_mib_per_min(samples: &[&ProcSample]) -> Option<f64> {
    slope_of(samples, |s| s.rss_kib)
}

/// Least-squares slope of `kib` (as MiB) over time (minutes).
fn slope_of(samples: &[&ProcSample], kib: impl Fn(&ProcSample) -> u64) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let n = samples.len() as f64;
    let xs: Vec<f64> = samples.iter().map(|s| s.at.as_secs_f64() / 60.0).collect();
    let ys: Vec<f64> = samples.iter().map(|s| mib(kib(s))).collect();
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// `done 123, cancelled 0` from counters, as the difference `after - before`.
fn outcomes(
    after: &std::collections::BTreeMap<String, f64>,
    before: &std::collections::BTreeMap<String, f64>,
) -> String {
    if after.is_empty() {
        return "none".to_owned();
    }
    after
        .iter()
        .map(|(k, v)| format!("`{k}` {:.0}", v - before.get(k).copied().unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn gauge(v: Option<f64>) -> String {
    v.map_or("no answer".to_owned(), |v| format!("{v:.0}"))
}

pub fn markdown(soak: &Soak) -> String {
    let s = &soak.settings;
    let mut md = String::new();
    let command = std::env::var("BENCH_COMMAND")
        .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
    let minutes = s.duration.as_secs_f64() / 60.0;
    let _ = writeln!(md, "# ragstream soak\n");
    let _ = writeln!(md, "- started: {}", soak.started_at);
    let _ = writeln!(
        md,
        "- machine: `nproc` = {}, CPU model `{}` ({}), {} RAM; machine busy during the soak: {:.0} %",
        shell("nproc"),
        shell("lscpu | sed -n 's/^Model name: *//p' | head -1"),
        shell("uname -r"),
        shell("free -g | awk '/Mem:/{print $2\" GiB\"}'"),
        soak.machine_busy_pct
    );
    let _ = writeln!(md, "- command: `{command}`");
    let _ = writeln!(
        md,
        "- commit: `{}`; ragstream binary: `{}`, config `{}`",
        shell("git rev-parse --short HEAD"),
        s.ragstream_bin.display(),
        s.ragstream_config
            .as_ref()
            .map_or("none".to_owned(), |p| p.display().to_string())
    );
    let chat_share = if s.chat_every > 0 {
        format!(
            "{} of them (1 in {}) on `POST /api/chat` through the tool and the knowledge base, \
             the rest on `POST /api/python` with a direct answer",
            s.concurrency.div_ceil(s.chat_every),
            s.chat_every
        )
    } else {
        "all on `POST /api/python` with a direct answer".to_owned()
    };
    let _ = writeln!(
        md,
        "- load: {} streams in flight at all times, {chat_share}; {} chunks per answer, {} ms \
         apart; {} s warm-up at the same load, then {minutes:.1} min measured; samples every {} s",
        s.concurrency,
        s.chunks,
        s.gap_ms,
        s.warmup.as_secs(),
        s.sample_every.as_secs()
    );
    let _ = writeln!(md, "- run took {:.0} s\n", soak.wall.as_secs_f64());

    let in_soak: Vec<&StreamRecord> = soak.streams.iter().filter(|r| r.end_s >= 0.0).collect();
    let warm: Vec<&StreamRecord> = soak.streams.iter().filter(|r| r.end_s < 0.0).collect();
    let failed = in_soak.iter().filter(|r| !r.ok).count();
    let warm_failed = warm.iter().filter(|r| !r.ok).count();
    let start = soak.samples.first();
    let end = soak.samples.last();
    let second_half: Vec<&ProcSample> = soak
        .samples
        .iter()
        .filter(|p| p.at.as_secs_f64() >= s.duration.as_secs_f64() / 2.0)
        .collect();
    let all: Vec<&ProcSample> = soak.samples.iter().collect();
    let slope = slope_mib_per_min(&second_half);
    let flat = slope.is_some_and(|v| v.abs() <= FLAT_MIB_PER_MIN);
    let mark = |ok: bool| if ok { "✅" } else { "❌" };

    let _ = writeln!(md, "## Checks\n");
    let _ = writeln!(md, "| check | figure | |\n|---|---|---|");
    let _ = writeln!(
        md,
        "| zero failures | {failed} failed of {} streams in the soak ({warm_failed} of {} in the warm-up) | {} |",
        in_soak.len(),
        warm.len(),
        mark(failed == 0 && warm_failed == 0 && !soak.capped)
    );
    let _ = writeln!(
        md,
        "| `ragstream_active_streams` back at 0 | {} right after the last stream was read{} | {} |",
        gauge(soak.after.active),
        match (soak.after.active, soak.settled_after) {
            (Some(0.0), _) => String::new(),
            (_, Some(t)) => format!(", 0 after {} ms more", ms(t)),
            (_, None) => format!(", still {} after 10 s", gauge(soak.settled.active)),
        },
        mark(soak.settled_after.is_some())
    );
    let _ = writeln!(
        md,
        "| flat memory: RSS slope over the second half ≤ {FLAT_MIB_PER_MIN} MiB/min | {} MiB/min, of which anonymous {} ({} over the whole soak) | {} |",
        slope.map_or("—".to_owned(), |v| format!("{v:+.3}")),
        slope_of(&second_half, |p| p.rss_anon_kib).map_or("—".to_owned(), |v| format!("{v:+.3}")),
        slope_mib_per_min(&all).map_or("—".to_owned(), |v| format!("{v:+.3}")),
        mark(flat)
    );
    let _ = writeln!(md);

    let _ = writeln!(md, "## Streams\n");
    let _ = writeln!(
        md,
        "| path | ok | failed | streams/s | TTLB p50 ms | TTLB p99 ms | TTLB max ms |\n|---|--:|--:|--:|--:|--:|--:|"
    );
    for (label, chat) in [
        ("`/api/python`, direct answer", false),
        ("`/api/chat`, tool path", true),
    ] {
        let path: Vec<&&StreamRecord> = in_soak.iter().filter(|r| r.chat == chat).collect();
        if path.is_empty() {
            continue;
        }
        let mut ttlb: Vec<Duration> = path.iter().filter(|r| r.ok).map(|r| r.ttlb).collect();
        let ok = ttlb.len();
        let _ = writeln!(
            md,
            "| {label} | {ok} | {} | {:.1} | {} | {} | {} |",
            path.len() - ok,
            ok as f64 / s.duration.as_secs_f64(),
            ms(percentile(&mut ttlb, 50.0)),
            ms(percentile(&mut ttlb, 99.0)),
            ms(percentile(&mut ttlb, 100.0)),
        );
    }
    let _ = writeln!(
        md,
        "\nThe last streams ended {:.2} s after the soak (no stream starts after it).",
        soak.drain.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "ragstream's own count, `/metrics` after the load minus before it (the one-stream \
         warm-ups), over the warm-up and the soak: `ragstream_streams_total` {}; \
         `ragstream_tool_calls_total` {}. The client counted {} ok and {} failed over the same span.",
        outcomes(&soak.after.streams, &soak.before.streams),
        outcomes(&soak.after.tool_calls, &soak.before.tool_calls),
        soak.streams.iter().filter(|r| r.ok).count(),
        soak.streams.iter().filter(|r| !r.ok).count(),
    );
    if !soak.errors.is_empty() {
        let _ = writeln!(md, "\n| failure | count |\n|---|--:|");
        for (error, count) in &soak.errors {
            let _ = writeln!(md, "| {} | {count} |", error.replace('|', "\\|"));
        }
    }
    let _ = writeln!(md);

    let _ = writeln!(md, "## Memory (VmRSS of ragstream, MiB)\n");
    let min = soak.samples.iter().map(|p| p.rss_kib).min().unwrap_or(0);
    let max = soak.samples.iter().map(|p| p.rss_kib).max().unwrap_or(0);
    let _ = writeln!(
        md,
        "| before the load | start of the soak (after warm-up) | min | max | end of the soak | end − start | after the load | peak (VmHWM) |\n|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    let (start_kib, end_kib) = (start.map_or(0, |p| p.rss_kib), end.map_or(0, |p| p.rss_kib));
    let _ = writeln!(
        md,
        "| {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:+.1} | {:.1} | {:.1} |\n",
        mib(soak.idle_rss_kib),
        mib(start_kib),
        mib(min),
        mib(max),
        mib(end_kib),
        mib(end_kib) - mib(start_kib),
        mib(soak.drained_rss_kib),
        mib(soak.hwm_kib)
    );

    let _ = writeln!(md, "## Per minute\n");
    let _ = writeln!(
        md,
        "RSS, gauge, threads and open files at the end of each minute; streams and TTLB of the \
         streams that ended in it; ragstream's CPU over it (100 % = one core).\n"
    );
    let _ = writeln!(
        md,
        "| minute | RSS MiB | active streams | streams ok | failed | TTLB p50 ms | TTLB p99 ms | ragstream CPU | threads | open files |\n|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    let _ = writeln!(
        md,
        "| 0 (start) | {:.1} | {} | — | — | — | — | — | {} | {} |",
        mib(start_kib),
        gauge(start.and_then(|p| p.active)),
        start.map_or(0, |p| p.threads),
        start.map_or(0, |p| p.open_files)
    );
    let whole_minutes = minutes.ceil() as usize;
    for m in 1..=whole_minutes {
        let (from, to) = ((m - 1) as f64 * 60.0, (m as f64 * 60.0).min(minutes * 60.0));
        let ended: Vec<&&StreamRecord> = in_soak
            .iter()
            .filter(|r| r.end_s >= from && r.end_s < to)
            .collect();
        let mut ttlb: Vec<Duration> = ended.iter().filter(|r| r.ok).map(|r| r.ttlb).collect();
        let window: Vec<&ProcSample> = soak
            .samples
            .iter()
            .filter(|p| p.at.as_secs_f64() > from + 1.0 && p.at.as_secs_f64() <= to + 1.0)
            .collect();
        let cpu: Duration = window.iter().map(|p| p.cpu).sum();
        let Some(last) = window.last() else {
            continue;
        };
        let _ = writeln!(
            md,
            "| {m} | {:.1} | {} | {} | {} | {} | {} | {:.0} % | {} | {} |",
            mib(last.rss_kib),
            gauge(last.active),
            ttlb.len(),
            ended.len() - ttlb.len(),
            ms(percentile(&mut ttlb, 50.0)),
            ms(percentile(&mut ttlb, 99.0)),
            cpu.as_secs_f64() / (to - from) * 100.0,
            last.threads,
            last.open_files
        );
    }

    let _ = writeln!(
        md,
        "\n<details><summary>every sample</summary>\n\n| t s | RSS MiB | of which anonymous | of which files | active streams | ok so far | failed so far | threads | open files |\n|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for p in &soak.samples {
        let _ = writeln!(
            md,
            "| {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
            p.at.as_secs_f64(),
            mib(p.rss_kib),
            mib(p.rss_anon_kib),
            mib(p.rss_file_kib),
            gauge(p.active),
            p.ok,
            p.failed,
            p.threads,
            p.open_files
        );
    }
    let _ = writeln!(md, "\n</details>");
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, rss_kib: u64) -> ProcSample {
        ProcSample {
            at: Duration::from_secs(secs),
            rss_kib,
            rss_anon_kib: 0,
            rss_file_kib: 0,
            threads: 0,
            open_files: 0,
            active: None,
            ok: 0,
            failed: 0,
            cpu: Duration::ZERO,
        }
    }

    #[test]
    fn slope_is_mib_per_minute() {
        let samples = [at(0, 1024), at(60, 2048), at(120, 3072)];
        let refs: Vec<&ProcSample> = samples.iter().collect();
        let slope = slope_mib_per_min(&refs).unwrap();
        assert!((slope - 1.0).abs() < 1e-9, "{slope}");
        assert_eq!(slope_mib_per_min(&refs[..1]), None);
    }
}
