//! Looking at the stack's Fluxus processes from outside: their peak resident memory (`VmHWM` in
//! `/proc/<pid>/status`) and the warnings and errors in their logs. The harness does not hand
//! out pids, so children of this process are found by name in `/proc`. Linux only.

use std::collections::BTreeSet;
use std::path::Path;

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

/// Peak resident set size of `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Warnings and errors of one log.
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
        let status = "Name:\tfluxus-api\nVmPeak:\t  900000 kB\nVmHWM:\t   23456 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(23_456));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
    }

    #[test]
    fn finds_own_children_only() {
        assert!(children_named("no-such-process-name").is_empty());
    }

    #[test]
    fn strips_colours() {
        let line = "\u{1b}[2m2026-01-01T00:00:00Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x: y";
        assert_eq!(strip_ansi(line), "2026-01-01T00:00:00Z  WARN x: y");
    }
}
