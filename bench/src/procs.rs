//! Looking at the stack's Fluxus processes from outside: their peak resident memory (`VmHWM` in
//! `/proc/<pid>/status`, which writing `5` to `/proc/<pid>/clear_refs` resets) and the warnings
//! and errors in their logs, and the CPU time of every process of the stack. The harness does not
//! hand out pids, so children of this process are found by name in `/proc`. Linux only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux target).
pub const TICKS_PER_S: f64 = 100.0;
/// Distinct warning or error messages kept per log, to show what went wrong.
const SAMPLE_MESSAGES: usize = 5;
/// Longest sample message shown, in characters.
const SAMPLE_MAX_CHARS: usize = 240;

/// Pids of this process's children whose command name is `name`.
pub fn children_named(name: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_and_name(pid).is_some_and(|(ppid, comm)| ppid == me && comm == name))
        .collect()
}

/// (parent pid, command name) from `/proc/<pid>/stat`.
fn parent_and_name(pid: u32) -> Option<(u32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// `pid (comm) state ppid …`; the name may itself hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(u32, String)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let ppid = stat
        .get(close + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ppid, comm))
}

/// CPU time (user + system, in clock ticks) used so far by this process and by each of its
/// children, added up by command name (`anvil`, `redis-server`, `fluxus-api`, …).
pub fn cpu_ticks_by_name() -> BTreeMap<String, u64> {
    let me = std::process::id();
    let mut ticks = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    let pids = entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok());
    for pid in pids {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some((ppid, comm)), Some(used)) = (parse_stat(&stat), parse_cpu_ticks(&stat)) else {
            continue;
        };
        if pid == me || ppid == me {
            *ticks.entry(comm).or_default() += used;
        }
    }
    ticks
}

/// `utime + stime`: fields 14 and 15 of the stat line, the 12th and 13th after the name.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let close = stat.rfind(')')?;
    let mut fields = stat.get(close + 1..)?.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Peak resident set size of `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm(&status)
}

/// Resets the peak resident set size of `pid` to its current size; `false` when the kernel
/// refused (the figure then stays the peak since the process started).
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The largest peak of `pids`, in KiB; `None` when none could be read.
pub fn max_peak_rss_kib(pids: &[u32]) -> Option<u64> {
    pids.iter().filter_map(|&pid| peak_rss_kib(pid)).max()
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Warnings and errors of one log, or of several added together.
#[derive(Debug, Default)]
pub struct LogFindings {
    pub warnings: usize,
    pub errors: usize,
    /// A few distinct messages, timestamps removed.
    pub samples: BTreeSet<String>,
}

/// Counts `WARN` and `ERROR` lines of a tracing log; an unreadable log counts as empty.
pub fn scan_log(path: &Path) -> LogFindings {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut findings = LogFindings::default();
    for line in text.lines().map(strip_ansi) {
        let mut words = line.split_whitespace();
        let level = words.nth(1).unwrap_or_default();
        match level {
            "WARN" => findings.warnings += 1,
            "ERROR" => findings.errors += 1,
            _ => continue,
        }
        if findings.samples.len() < SAMPLE_MESSAGES {
            let message: String = words.collect::<Vec<_>>().join(" ");
            let short: String = message.chars().take(SAMPLE_MAX_CHARS).collect();
            findings.samples.insert(format!("{level} {short}"));
        }
    }
    findings
}

impl LogFindings {
    /// Adds `other`'s counts; its samples are kept, prefixed with `label`, while room remains.
    pub fn add(&mut self, label: &str, other: LogFindings) {
        self.warnings += other.warnings;
        self.errors += other.errors;
        for sample in other.samples {
            if self.samples.len() < SAMPLE_MESSAGES {
                self.samples.insert(format!("{label}: {sample}"));
            }
        }
    }
}

/// The line without ANSI colour sequences (`ESC [ … letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_and_status() {
        let stat = "4242 (fluxus-worker) S 4100 4242 4100 0 -1 4194560 1234";
        assert_eq!(parse_stat(stat), Some((4100, "fluxus-worker".to_string())));
        assert_eq!(parse_stat("7 (a) b) R 3 7"), Some((3, "a) b".to_string())));
        let stat = "4242 (fluxus-worker) S 4100 4242 4100 0 -1 4194560 1234 0 0 0 150 25 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
        assert_eq!(parse_cpu_ticks("7 (a) R 3 7"), None);
        let status = "Name:\tfluxus-api\nVmPeak:\t  900000 kB\nVmHWM:\t   23456 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(23_456));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
    }

    #[test]
    fn finds_own_children_only() {
        assert!(children_named("no-such-process-name").is_empty());
        assert_eq!(max_peak_rss_kib(&[]), None);
    }

    #[test]
    fn counts_own_cpu() {
        let ticks = cpu_ticks_by_name();
        assert_eq!(ticks.len(), 1, "only this process, no children: {ticks:?}");
    }

    #[test]
    fn resets_own_peak() {
        let me = std::process::id();
        if reset_peak_rss(me) {
            assert!(peak_rss_kib(me).is_some_and(|kib| kib > 0));
        }
    }

    #[test]
    fn adds_findings() {
        let mut total = LogFindings::default();
        let mut one = LogFindings {
            warnings: 2,
            errors: 1,
            ..LogFindings::default()
        };
        one.samples.insert("WARN x".to_string());
        total.add("worker-1.log", one);
        assert_eq!((total.warnings, total.errors), (2, 1));
        assert!(total.samples.contains("worker-1.log: WARN x"));
    }

    #[test]
    fn strips_colours() {
        let line = "\u{1b}[2m2026-01-01T00:00:00Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x: y";
        assert_eq!(strip_ansi(line), "2026-01-01T00:00:00Z  WARN x: y");
    }
}
