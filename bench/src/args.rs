//! Command-line options of `fluxus-bench`, parsed by hand (a handful of `--flag value` pairs and
//! one switch). Every value is checked here, so the phases never see a zero count or a negative
//! rate.

use anyhow::{Context, bail};

pub const USAGE: &str = "\
usage: fluxus-bench [--payments N] [--rate R] [--lanes N] [--batch-max N] [--raw-lanes N]
                    [--block-time S]
       fluxus-bench --matrix [--payments N] [--lanes N] [--batch-max N] [--raised-lanes N]
                    [--raw-lanes N] [--block-time S]

single run (one stack, one worker):
  --payments N      payments per phase (default 200)
  --rate R          request rate of the accept-latency phase, per second (default 50)
  --lanes N         FLUXUS_WORKER_LANES of the worker (default: the worker's own default)
  --batch-max N     FLUXUS_BATCH_MAX of the worker (default: the worker's own default)
  --raw-lanes N     nonce lanes of the raw-node baseline (default max(8, --lanes))
  --block-time S    interval mining every S seconds instead of automine

--matrix (automine and interval mining, 1, 2 and 4 workers, one line per round):
  --payments N      payments per round (default 1000)
  --lanes N         FLUXUS_WORKER_LANES of every worker (default 4)
  --batch-max N     FLUXUS_BATCH_MAX of every worker (default 16)
  --raised-lanes N  FLUXUS_WORKER_LANES of the extra interval-mining stack (default 16)
  --raw-lanes N     nonce lanes of the raw-node baseline (default max(8, 4 x --lanes))
  --block-time S    block interval of the interval-mining stacks (default 0.5)";

const DEFAULT_PAYMENTS: usize = 200;
/// Rounds of 400 ended within 0.2–0.4 s, a few of the sampler's 100 ms readings, so the figure
/// was mostly sampling and pickup delay. At 2,000 the dev node choked on the raw baseline (125
/// pooled transactions per lane: 130 s of node CPU, never finished), so 1,000.
const DEFAULT_MATRIX_PAYMENTS: usize = 1_000;
const DEFAULT_RATE_PER_S: f64 = 50.0;
/// Lanes the raw-node baseline uses at least: enough that the node, not the sender, limits it.
const MIN_RAW_LANES: u64 = 8;
/// The worker's own default of `FLUXUS_WORKER_LANES`, passed explicitly in the matrix so that
/// every printed line states the lanes it ran with.
const DEFAULT_MATRIX_LANES: u32 = 4;
const DEFAULT_RAISED_LANES: u32 = 16;
/// The worker's own default of `FLUXUS_BATCH_MAX`, passed explicitly in the matrix.
const DEFAULT_MATRIX_BATCH_MAX: u32 = 16;
/// The worker refuses more payments per transaction than this.
const MAX_BATCH_MAX: u32 = 64;
const DEFAULT_MATRIX_BLOCK_TIME_SECS: f64 = 0.5;
/// Worker processes of the matrix's largest round; the raw baseline gets as many lanes as they
/// hold together.
pub const MATRIX_MAX_WORKERS: usize = 4;

/// What one run measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    pub payments: usize,
    pub rate_per_s: f64,
    /// Passed to the worker as `FLUXUS_WORKER_LANES`; `None` keeps the worker's default (always
    /// `Some` in the matrix).
    pub lanes: Option<u32>,
    /// Passed to the worker as `FLUXUS_BATCH_MAX`; `None` keeps the worker's default (always
    /// `Some` in the matrix).
    pub batch_max: Option<u32>,
    pub raw_lanes: u64,
    /// The single run's mining (`None`: automine); the matrix's block interval.
    pub block_time_secs: Option<f64>,
    /// `Some` in `--matrix` mode.
    pub matrix: Option<MatrixOpts>,
}

/// What only the matrix uses.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixOpts {
    /// Lanes per worker of the extra interval-mining stack that shows lanes lifting the bound.
    pub raised_lanes: u32,
}

/// The flags given, before defaults that depend on the mode.
#[derive(Default)]
struct Given {
    matrix: bool,
    payments: Option<usize>,
    rate_per_s: Option<f64>,
    lanes: Option<u32>,
    batch_max: Option<u32>,
    raised_lanes: Option<u32>,
    raw_lanes: Option<u64>,
    block_time_secs: Option<f64>,
}

/// `Ok(None)` when help was asked for.
pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Opts>> {
    let mut given = Given::default();
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--matrix" => {
                given.matrix = true;
                continue;
            }
            _ => {}
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--payments" => given.payments = Some(positive(&flag, &value)?),
            "--rate" => given.rate_per_s = Some(positive_f64(&flag, &value)?),
            "--lanes" => given.lanes = Some(positive(&flag, &value)?),
            "--batch-max" => {
                let n: u32 = positive(&flag, &value)?;
                if n > MAX_BATCH_MAX {
                    bail!("{flag} must be at most {MAX_BATCH_MAX}, not {n}");
                }
                given.batch_max = Some(n);
            }
            "--raised-lanes" => given.raised_lanes = Some(positive(&flag, &value)?),
            "--raw-lanes" => given.raw_lanes = Some(positive(&flag, &value)?),
            "--block-time" => given.block_time_secs = Some(positive_f64(&flag, &value)?),
            _ => bail!("unknown option {flag}\n{USAGE}"),
        }
    }
    if given.matrix {
        matrix_opts(given).map(Some)
    } else {
        single_opts(given).map(Some)
    }
}

fn single_opts(given: Given) -> anyhow::Result<Opts> {
    if given.raised_lanes.is_some() {
        bail!("--raised-lanes applies to --matrix only\n{USAGE}");
    }
    let fluxus_lanes = given.lanes.map_or(0, u64::from);
    Ok(Opts {
        payments: given.payments.unwrap_or(DEFAULT_PAYMENTS),
        rate_per_s: given.rate_per_s.unwrap_or(DEFAULT_RATE_PER_S),
        lanes: given.lanes,
        batch_max: given.batch_max,
        raw_lanes: given.raw_lanes.unwrap_or(MIN_RAW_LANES.max(fluxus_lanes)),
        block_time_secs: given.block_time_secs,
        matrix: None,
    })
}

fn matrix_opts(given: Given) -> anyhow::Result<Opts> {
    if given.rate_per_s.is_some() {
        bail!("--rate applies to the single run only: the matrix sends as fast as it can\n{USAGE}");
    }
    let lanes = given.lanes.unwrap_or(DEFAULT_MATRIX_LANES);
    let all_lanes = u64::from(lanes) * MATRIX_MAX_WORKERS as u64;
    Ok(Opts {
        payments: given.payments.unwrap_or(DEFAULT_MATRIX_PAYMENTS),
        rate_per_s: DEFAULT_RATE_PER_S,
        lanes: Some(lanes),
        batch_max: Some(given.batch_max.unwrap_or(DEFAULT_MATRIX_BATCH_MAX)),
        raw_lanes: given.raw_lanes.unwrap_or(MIN_RAW_LANES.max(all_lanes)),
        block_time_secs: Some(
            given
                .block_time_secs
                .unwrap_or(DEFAULT_MATRIX_BLOCK_TIME_SECS),
        ),
        matrix: Some(MatrixOpts {
            raised_lanes: given.raised_lanes.unwrap_or(DEFAULT_RAISED_LANES),
        }),
    })
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
        assert_eq!(opts.matrix, None);
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
    fn matrix_defaults_and_overrides() {
        let opts = parse_str("--matrix").unwrap().unwrap();
        assert_eq!(opts.payments, 1_000);
        assert_eq!(
            (opts.lanes, opts.raw_lanes, opts.block_time_secs),
            (Some(4), 16, Some(0.5))
        );
        assert_eq!(opts.matrix, Some(MatrixOpts { raised_lanes: 16 }));
        assert_eq!(opts.batch_max, Some(16));

        let opts = parse_str("--payments 50 --matrix --lanes 2 --raised-lanes 8 --block-time 1")
            .unwrap()
            .unwrap();
        assert_eq!(opts.payments, 50);
        assert_eq!((opts.lanes, opts.raw_lanes), (Some(2), 8));
        assert_eq!(opts.block_time_secs, Some(1.0));
        assert_eq!(opts.matrix, Some(MatrixOpts { raised_lanes: 8 }));
    }

    #[test]
    fn refuses_nonsense() {
        assert!(parse_str("--payments 0").is_err());
        assert!(parse_str("--rate -1").is_err());
        assert!(parse_str("--rate NaN").is_err());
        assert!(parse_str("--lanes").is_err());
        assert!(parse_str("--frobnicate 1").is_err());
        assert!(parse_str("--matrix --rate 10").is_err());
        assert!(parse_str("--raised-lanes 8").is_err());
        assert!(parse_str("--matrix --raised-lanes 0").is_err());
        assert!(parse_str("--batch-max 0").is_err());
        assert!(parse_str("--batch-max 65").is_err());
        assert!(parse_str("--help").unwrap().is_none());
    }
}
