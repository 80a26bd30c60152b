//! The two things the matrix reads from `GET /metrics`: the `fluxus_queue_depth` gauge and the
//! `fluxus_jobs_total{kind="send",outcome=…}` counters (shared by all workers through Redis).
//! Parsing only; a line this module does not know is skipped.

use std::collections::BTreeMap;

const QUEUE_DEPTH: &str = "fluxus_queue_depth";
const JOBS_TOTAL: &str = "fluxus_jobs_total";

/// One reading of the metrics page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    /// `None` when the API could not read it from Redis (it then leaves the gauge out).
    pub queue_depth: Option<u64>,
    /// Finished send jobs by outcome (`confirmed`, `failed`, …), counted since Redis started.
    pub send_outcomes: BTreeMap<String, u64>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut scrape = Self::default();
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<u64>() else {
                continue;
            };
            if series == QUEUE_DEPTH {
                scrape.queue_depth = Some(value);
                continue;
            }
            let send_outcome = series
                .strip_prefix(JOBS_TOTAL)
                .filter(|labels| label(labels, "kind") == Some("send"))
                .and_then(|labels| label(labels, "outcome"));
            if let Some(outcome) = send_outcome {
                scrape.send_outcomes.insert(outcome.to_string(), value);
            }
        }
        scrape
    }

    /// Send jobs that reached any terminal outcome.
    pub fn finished(&self) -> u64 {
        self.send_outcomes.values().sum()
    }
}

/// The value of `name` in a `{a="x",b="y"}` label set (values hold no quotes or commas here).
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let inner = labels.strip_prefix('{')?.strip_suffix('}')?;
    inner.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_depth_and_send_outcomes() {
        let text = "\
# HELP fluxus_jobs_total Finished jobs by kind and outcome
# TYPE fluxus_jobs_total counter
fluxus_jobs_total{kind=\"send\",outcome=\"confirmed\"} 404
fluxus_jobs_total{kind=\"send\",outcome=\"failed\"} 2
fluxus_jobs_total{kind=\"batch\",outcome=\"confirmed\"} 9
fluxus_accept_to_confirmed_seconds_bucket{le=\"0.5\"} 17
fluxus_http_requests_total{route=\"/metrics\",status=\"200\"} 3
# TYPE fluxus_queue_depth gauge
fluxus_queue_depth 37
";
        let scrape = Scrape::parse(text);
        assert_eq!(scrape.queue_depth, Some(37));
        assert_eq!(scrape.send_outcomes["confirmed"], 404);
        assert_eq!(scrape.finished(), 406);
    }

    #[test]
    fn missing_series_read_as_absent() {
        let scrape = Scrape::parse("# worker metrics unavailable: Redis did not answer\n");
        assert_eq!(scrape, Scrape::default());
        assert_eq!(scrape.finished(), 0);
    }
}
