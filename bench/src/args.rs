//! Command-line options of `fluxus-bench`, parsed by hand (a handful of `--flag value` pairs).
//! Every value is checked here, so the phases never see a zero count or a negative rate.

use anyhow::{Context, bail};

pub const USAGE: &str = "\
usage: fluxus-bench [--payments N] [--rate R] [--lanes N] [--raw-lanes N] [--block-time S]

  --payments N    payments per phase (default 200)
  --rate R        request rate of the accept-latency phase, per second (default 50)
  --lanes N       FLUXUS_WORKER_LANES of the worker (default: the worker's own default)
  --raw-lanes N   nonce lanes of the raw-node baseline (default max(8, --lanes))
  --block-time S  interval mining every S seconds instead of automine";

const DEFAULT_PAYMENTS: usize = 200;
const DEFAULT_RATE_PER_S: f64 = 50.0;
/// Lanes the raw-node baseline uses at least: enough that the node, not the sender, limits it.
const MIN_RAW_LANES: u64 = 8;

/// What one run measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    pub payments: usize,
    pub rate_per_s: f64,
    /// Passed to the worker as `FLUXUS_WORKER_LANES`; `None` keeps the worker's default.
    pub lanes: Option<u32>,
    pub raw_lanes: u64,
    pub block_time_secs: Option<f64>,
}

/// `Ok(None)` when help was asked for.
pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Opts>> {
    let mut opts = Opts {
        payments: DEFAULT_PAYMENTS,
        rate_per_s: DEFAULT_RATE_PER_S,
        lanes: None,
        raw_lanes: 0,
        block_time_secs: None,
    };
    let mut raw_lanes = None;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--payments" => opts.payments = positive(&flag, &value)?,
            "--rate" => opts.rate_per_s = positive_f64(&flag, &value)?,
            "--lanes" => opts.lanes = Some(positive(&flag, &value)?),
            "--raw-lanes" => raw_lanes = Some(positive(&flag, &value)?),
            "--block-time" => opts.block_time_secs = Some(positive_f64(&flag, &value)?),
            _ => bail!("unknown option {flag}\n{USAGE}"),
        }
    }
    let fluxus_lanes = opts.lanes.map_or(0, u64::from);
    opts.raw_lanes = raw_lanes.unwrap_or(MIN_RAW_LANES.max(fluxus_lanes));
    Ok(Some(opts))
}

fn positive<T>(flag: &str, value: &str) -> anyhow::Result<T>
where
    T: std::str::FromStr + PartialOrd + Default,
{
    match value.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => bail!("{flag} must be a positive whole number, not {value:?}"),
    }
}

fn positive_f64(flag: &str, value: &str) -> anyhow::Result<f64> {
    match value.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => bail!("{flag} must be a positive number, not {value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> anyhow::Result<Option<Opts>> {
        parse(line.split_whitespace().map(String::from))
    }

    #[test]
    fn defaults() {
        let opts = parse_str("").unwrap().unwrap();
        assert_eq!(opts.payments, 200);
        assert_eq!(opts.rate_per_s, 50.0);
        assert_eq!(
            (opts.lanes, opts.raw_lanes, opts.block_time_secs),
            (None, 8, None)
        );
    }

    #[test]
    fn raw_lanes_follow_fluxus_lanes() {
        let opts = parse_str("--lanes 16 --payments 10 --block-time 0.5")
            .unwrap()
            .unwrap();
        assert_eq!((opts.lanes, opts.raw_lanes), (Some(16), 16));
        assert_eq!(opts.block_time_secs, Some(0.5));
        let opts = parse_str("--lanes 16 --raw-lanes 3").unwrap().unwrap();
        assert_eq!(opts.raw_lanes, 3);
    }

    #[test]
    fn refuses_nonsense() {
        assert!(parse_str("--payments 0").is_err());
        assert!(parse_str("--rate -1").is_err());
        assert!(parse_str("--rate NaN").is_err());
        assert!(parse_str("--lanes").is_err());
        assert!(parse_str("--frobnicate 1").is_err());
        assert!(parse_str("--help").unwrap().is_none());
    }
}
