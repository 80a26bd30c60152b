//! A whole Fluxus stack for one test (or one test file): its own Tempo dev node, its own Redis,
//! one `fluxus-api` and any number of `fluxus-worker` processes, all on free loopback ports, all
//! killed when the [`Stack`] is dropped. It never touches the machine's shared Redis on 6379.
//! On request, Fluxus reaches the node and Redis through [`FaultProxy`]s (the test's own reads
//! stay direct), and Redis keeps an append-only file so that it can be killed and restarted.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::api::Api;
use crate::chain::Chain;
use crate::process::{self, Proc, Signal};
use crate::proxy::FaultProxy;
use crate::store::Store;
use crate::wait::POLL_INTERVAL_MS;
use crate::{CHAIN_ID, SENDER_PRIVATE_KEY, random_hex};

/// Deadline for the dev node to answer `eth_chainId` after start.
pub const ANVIL_READY_SECS: u64 = 30;
/// Deadline for Redis to answer PING after start.
pub const REDIS_READY_SECS: u64 = 20;
/// Deadline for `GET /readyz` to answer 200 after the API starts.
pub const API_READY_SECS: u64 = 60;
/// Tries with a fresh port when a just-picked port was taken by someone else.
const PORT_ATTEMPTS: usize = 3;
/// The line that ends anvil's start banner.
const ANVIL_BANNER_END: &str = "Listening on";
/// Set (to anything) to keep a passing stack's log directory; a failing one is always kept.
pub const KEEP_LOGS_ENV: &str = "FLUXUS_E2E_KEEP_LOGS";
/// Lines of each log printed when a test fails.
const LOG_TAIL_LINES: usize = 80;

/// How to start a stack.
#[derive(Clone, Debug)]
pub struct StackOpts {
    /// Start the dev node with `--no-mining`: transactions wait in the pool until the test mines
    /// (`Chain::mine`). Lets a test catch a payment between broadcast and inclusion.
    pub no_mining: bool,
    /// Interval mining (`--block-time`), in seconds; automine when `None`.
    pub block_time: Option<f64>,
    /// Workers to start with the stack.
    pub workers: usize,
    /// Extra environment for both Fluxus processes, applied last (may override the defaults).
    pub extra_env: Vec<(String, String)>,
    /// Fluxus reaches the node through a [`FaultProxy`] ([`Stack::rpc_proxy`]).
    pub rpc_proxy: bool,
    /// Fluxus reaches Redis through a [`FaultProxy`] ([`Stack::redis_proxy`]).
    pub redis_proxy: bool,
    /// Redis with `--appendonly yes --appendfsync always` in the stack directory: nothing it
    /// acknowledged is lost by [`Stack::restart_redis`], even after SIGKILL.
    pub redis_aof: bool,
}

impl Default for StackOpts {
    fn default() -> Self {
        Self {
            no_mining: false,
            block_time: None,
            workers: 1,
            extra_env: Vec::new(),
            rpc_proxy: false,
            redis_proxy: false,
            redis_aof: false,
        }
    }
}

/// Handle of one worker process start (workers are numbered from 1 per stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkerId(pub usize);

#[derive(Default)]
struct Procs {
    anvil: Option<Proc>,
    redis: Option<Proc>,
    api: Option<Proc>,
    workers: BTreeMap<WorkerId, Proc>,
}

/// A running stack. Dropping it kills every process it started.
pub struct Stack {
    /// Per-stack directory holding the log of every process.
    pub dir: PathBuf,
    pub anvil_port: u16,
    pub redis_port: u16,
    pub api_port: u16,
    /// Bearer key the API was started with.
    pub api_key: String,
    /// Environment given to both Fluxus processes.
    env: Vec<(String, String)>,
    procs: Mutex<Procs>,
    api_starts: AtomicUsize,
    worker_starts: AtomicUsize,
    redis_aof: bool,
    redis_starts: AtomicUsize,
    rpc_proxy: Option<FaultProxy>,
    redis_proxy: Option<FaultProxy>,
}

/// Starts a stack: dev node, Redis, API (ready) and `opts.workers` workers.
pub async fn spawn_stack(opts: StackOpts) -> Stack {
    let dir = stack_dir();
    let (anvil, anvil_port) = start_anvil(&dir, &opts).await;
    let (redis, redis_port) = start_redis(&dir, opts.redis_aof).await;
    let api_port = process::free_port();
    let api_key = random_hex(32);

    // Fluxus goes through the proxies; the test's own clients keep the direct ports.
    let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let rpc_proxy = opts
        .rpc_proxy
        .then(|| FaultProxy::start(loopback(anvil_port)));
    let redis_proxy = opts
        .redis_proxy
        .then(|| FaultProxy::start(loopback(redis_port)));
    let via = |proxy: &Option<FaultProxy>, port| proxy.as_ref().map_or(port, |p| p.addr().port());
    let mut env = vec![
        (
            "REDIS_URL".to_string(),
            format!("redis://127.0.0.1:{}", via(&redis_proxy, redis_port)),
        ),
        (
            "NEXT_PUBLIC_TEMPO_RPC_URL".to_string(),
            format!("http://127.0.0.1:{}", via(&rpc_proxy, anvil_port)),
        ),
        ("FLUXUS_API_KEY".to_string(), api_key.clone()),
        ("FLUXUS_LISTEN".to_string(), format!("127.0.0.1:{api_port}")),
        (
            "FLUXUS_SENDER_PRIVATE_KEY".to_string(),
            SENDER_PRIVATE_KEY.to_string(),
        ),
        ("RUST_LOG".to_string(), "info".to_string()),
        // Plain log files: no ANSI colour codes in what a failing test prints.
        ("NO_COLOR".to_string(), "1".to_string()),
    ];
    env.extend(opts.extra_env.iter().cloned());

    let stack = Stack {
        dir,
        anvil_port,
        redis_port,
        api_port,
        api_key,
        env,
        procs: Mutex::new(Procs {
            anvil: Some(anvil),
            redis: Some(redis),
            ..Procs::default()
        }),
        api_starts: AtomicUsize::new(0),
        worker_starts: AtomicUsize::new(0),
        redis_aof: opts.redis_aof,
        redis_starts: AtomicUsize::new(1),
        rpc_proxy,
        redis_proxy,
    };
    stack.start_api().await;
    for _ in 0..opts.workers {
        stack.start_worker();
    }
    stack
}

/// One stack shared by all tests of a test binary, started on first use.
///
/// The processes are started from a dedicated thread that lives as long as the test process,
/// so their parent-death signal fires only when the whole process exits (statics are never
/// dropped). Tests build their own clients from it ([`Stack::api`], [`Stack::chain`]) because a
/// client must not outlive the runtime of the test that made it.
pub fn shared_stack(cell: &'static OnceLock<Arc<Stack>>, opts: fn() -> StackOpts) -> Arc<Stack> {
    cell.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("shared-stack".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime for the shared stack");
                let stack = Arc::new(runtime.block_on(spawn_stack(opts())));
                drop(runtime);
                let _ = tx.send(Arc::clone(&stack));
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the shared-stack thread");
        rx.recv()
            .expect("the shared stack failed to start (see its panic above)")
    })
    .clone()
}

impl Stack {
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.anvil_port)
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port)
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// The proxy between Fluxus and the node; panics unless the stack has one.
    pub fn rpc_proxy(&self) -> &FaultProxy {
        self.rpc_proxy
            .as_ref()
            .expect("the stack was started without `rpc_proxy`")
    }

    /// The proxy between Fluxus and Redis; panics unless the stack has one.
    pub fn redis_proxy(&self) -> &FaultProxy {
        self.redis_proxy
            .as_ref()
            .expect("the stack was started without `redis_proxy`")
    }

    /// A new API client with the bearer key (one per test: clients are bound to a runtime).
    pub fn api(&self) -> Api {
        Api::new(&self.api_url(), &self.api_key)
    }

    /// A new JSON-RPC client for the dev node.
    pub fn chain(&self) -> Chain {
        Chain::new(&self.rpc_url())
    }

    /// Redis inspection helpers for this stack's Redis.
    pub fn store(&self) -> Store {
        Store::new(&self.redis_url())
    }

    /// Starts `fluxus-api` and waits until `/readyz` answers 200.
    pub async fn start_api(&self) {
        let n = self.api_starts.fetch_add(1, Ordering::SeqCst) + 1;
        let proc = self.spawn_fluxus("fluxus-api", &format!("api-{n}"));
        {
            let mut procs = self.procs();
            assert!(procs.api.is_none(), "an API is already running");
            procs.api = Some(proc);
        }

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("http client");
        let url = format!("{}/readyz", self.api_url());
        let deadline = Instant::now() + Duration::from_secs(API_READY_SECS);
        loop {
            if let Some(api) = self.procs().api.as_mut() {
                api.assert_running();
            }
            let last = match http.get(&url).send().await {
                Ok(resp) if resp.status() == 200 => return,
                Ok(resp) => format!("status {}", resp.status()),
                Err(err) => err.to_string(),
            };
            if Instant::now() >= deadline {
                self.dump_logs();
                panic!("fluxus-api not ready within {API_READY_SECS} s: GET /readyz: {last}");
            }
            tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
        }
    }

    /// Stops the API with `signal` and reaps it.
    pub fn stop_api(&self, signal: Signal) -> ExitStatus {
        let api = self.procs().api.take().expect("no API running");
        api.stop(signal)
    }

    /// Starts one more `fluxus-worker` process (its own identity, its own log).
    pub fn start_worker(&self) -> WorkerId {
        let id = WorkerId(self.worker_starts.fetch_add(1, Ordering::SeqCst) + 1);
        let proc = self.spawn_fluxus("fluxus-worker", &format!("worker-{}", id.0));
        self.procs().workers.insert(id, proc);
        id
    }

    /// Sends `signal` to a worker and reaps it (SIGKILL = crash, SIGTERM = graceful stop).
    pub fn kill_worker(&self, id: WorkerId, signal: Signal) -> ExitStatus {
        let proc = self
            .procs()
            .workers
            .remove(&id)
            .unwrap_or_else(|| panic!("no {id:?}"));
        proc.stop(signal)
    }

    /// Freezes a worker (SIGSTOP), as a long pause, a suspended VM or a stalled host would, or
    /// (`frozen == false`) lets it go on (SIGCONT).
    pub fn freeze_worker(&self, id: WorkerId, frozen: bool) {
        let pid = self
            .procs()
            .workers
            .get(&id)
            .unwrap_or_else(|| panic!("no {id:?}"))
            .pid();
        let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: kill(2) on a child process this stack started and has not reaped.
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// Stops Redis with `signal` (SIGKILL: a crash; SIGTERM: a clean shutdown) and starts it
    /// again on the same port and directory; returns once it answers PING. Without
    /// [`StackOpts::redis_aof`] the restarted Redis is empty.
    pub async fn restart_redis(&self, signal: Signal) -> ExitStatus {
        let old = self.procs().redis.take().expect("no redis running");
        let status = old.stop(signal);
        let n = self.redis_starts.fetch_add(1, Ordering::SeqCst) + 1;
        let log = self.dir.join(format!("redis-start-{n}.log"));
        let proc = launch_redis(&self.dir, self.redis_port, self.redis_aof, &log)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "redis port {} was taken by another process",
                    self.redis_port
                )
            });
        self.procs().redis = Some(proc);
        status
    }

    /// The log file of a worker process start.
    pub fn worker_log(&self, id: WorkerId) -> PathBuf {
        self.dir.join(format!("worker-{}.log", id.0))
    }

    /// The files in the stack's log folder, sorted by name.
    fn log_files(&self) -> Vec<PathBuf> {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|dir| {
                dir.filter_map(|entry| entry.ok().map(|e| e.path()))
                    .collect()
            })
            .unwrap_or_default();
        logs.sort();
        logs
    }

    /// Every line of every Fluxus log (API and workers, running or stopped) that contains
    /// `needle`, as `(log file name, line)`, for evidence in a failure message.
    pub fn log_lines(&self, needle: &str) -> Vec<(String, String)> {
        let logs = self.log_files();
        let mut found = Vec::new();
        for log in logs {
            let name = log
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let fluxus = name.starts_with("api-") || name.starts_with("worker-");
            if !fluxus || !name.ends_with(".log") {
                continue;
            }
            let text = std::fs::read(&log).unwrap_or_default();
            for line in String::from_utf8_lossy(&text).lines() {
                if line.contains(needle) {
                    found.push((name.clone(), line.to_string()));
                }
            }
        }
        found
    }

    /// Workers currently started and not stopped by the test.
    pub fn workers(&self) -> Vec<WorkerId> {
        self.procs().workers.keys().copied().collect()
    }

    /// Panics (with the log tail) if a process of the stack has exited on its own.
    pub fn assert_alive(&self) {
        let mut procs = self.procs();
        let Procs {
            anvil,
            redis,
            api,
            workers,
        } = &mut *procs;
        let all = [anvil.as_mut(), redis.as_mut(), api.as_mut()]
            .into_iter()
            .flatten();
        for proc in all.chain(workers.values_mut()) {
            proc.assert_running();
        }
    }

    /// Prints the tail of every log of the stack to stderr (shown by the test runner on failure).
    pub fn dump_logs(&self) {
        let logs = self.log_files();
        for log in logs
            .iter()
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        {
            // The node's start banner (accounts and their keys) is noise in a failure report.
            let tail = process::tail(log, LOG_TAIL_LINES);
            let tail = tail
                .find(ANVIL_BANNER_END)
                .map_or(tail.as_str(), |at| &tail[at..]);
            eprintln!(
                "===== {} (last {LOG_TAIL_LINES} lines) =====\n{tail}",
                log.display()
            );
        }
    }

    /// A guard that dumps the logs if the current test panics; for shared stacks, which are
    /// never dropped.
    pub fn logs_on_panic(&self) -> LogsOnPanic<'_> {
        LogsOnPanic(self)
    }

    fn procs(&self) -> MutexGuard<'_, Procs> {
        self.procs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn spawn_fluxus(&self, binary: &str, name: &str) -> Proc {
        let mut cmd = Command::new(process::fluxus_binary(binary));
        cmd.current_dir(&self.dir);
        for (key, _) in std::env::vars() {
            let inherited_config = key.starts_with("FLUXUS_")
                || key.starts_with("MPP_")
                || matches!(key.as_str(), "TEMPO_RPC_URL" | "REDIS_URL" | "RUST_LOG");
            if inherited_config {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        Proc::spawn(name, cmd, &self.dir.join(format!("{name}.log")))
            .unwrap_or_else(|err| panic!("spawn {binary}: {err}"))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking {
            self.dump_logs();
        }

        // Fluxus first, so nothing logs connection errors about a vanished Redis or node.
        let mut procs = std::mem::take(&mut *self.procs());
        std::mem::take(&mut procs.workers);
        procs.api.take();
        procs.redis.take();
        procs.anvil.take();
        if panicking || std::env::var_os(KEEP_LOGS_ENV).is_some() {
            eprintln!("stack logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// See [`Stack::logs_on_panic`].
pub struct LogsOnPanic<'a>(&'a Stack);

impl Drop for LogsOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.dump_logs();
        }
    }
}

fn stack_dir() -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let name = format!("{}-{n}-{nanos}", std::process::id());
    let dir = stacks_root().join(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("create {}: {err}", dir.display()));
    dir
}

/// Where stack directories go: `target/fluxus-e2e/` beside the test executable (so `cargo clean`
/// removes them), else the system temp directory.
fn stacks_root() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let target = exe
        .as_deref()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .and_then(Path::parent);
    match target {
        Some(target) if target.join("CACHEDIR.TAG").is_file() => target.join("fluxus-e2e"),
        _ => std::env::temp_dir().join("fluxus-e2e"),
    }
}

/// Whether a child that died during startup lost a race for its port (then retry elsewhere).
fn lost_port_race(log: &Path) -> bool {
    let tail = process::tail(log, 20).to_lowercase();
    tail.contains("address already in use") || tail.contains("address in use")
}

async fn start_anvil(dir: &Path, opts: &StackOpts) -> (Proc, u16) {
    let chain = |port| Chain::new(&format!("http://127.0.0.1:{port}"));
    for attempt in 1..=PORT_ATTEMPTS {
        let port = process::free_port();
        let mut cmd = Command::new(process::anvil_binary());
        cmd.current_dir(dir)
            .args(["--network", "tempo", "--chain-id", &CHAIN_ID.to_string()]);
        cmd.args(["--port", &port.to_string()]);
        if opts.no_mining {
            cmd.arg("--no-mining");
        }
        if let Some(secs) = opts.block_time {
            cmd.args(["--block-time", &secs.to_string()]);
        }
        let log = dir.join(format!("anvil-{attempt}.log"));
        let mut proc = Proc::spawn("anvil", cmd, &log).expect("spawn anvil");

        let deadline = Instant::now() + Duration::from_secs(ANVIL_READY_SECS);
        let rpc = chain(port);
        loop {
            if proc.exited().is_some() {
                if lost_port_race(&log) && attempt < PORT_ATTEMPTS {
                    break;
                }
                proc.assert_running();
            }
            match rpc.chain_id().await {
                Ok(id) if id == CHAIN_ID => return (proc, port),
                Ok(id) => panic!("anvil on port {port} answered chain id {id}, not {CHAIN_ID}"),
                Err(_) if Instant::now() < deadline => {}
                Err(err) => panic!(
                    "anvil not ready within {ANVIL_READY_SECS} s: {err:#}\n{}",
                    process::tail(&log, 40)
                ),
            }
            tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
        }
    }
    unreachable!("the last attempt panics instead of retrying")
}

async fn start_redis(dir: &Path, aof: bool) -> (Proc, u16) {
    for attempt in 1..=PORT_ATTEMPTS {
        let port = process::free_port();
        let log = dir.join(format!("redis-{attempt}.log"));
        if let Some(proc) = launch_redis(dir, port, aof, &log).await {
            return (proc, port);
        }
    }
    panic!("redis lost the race for a free port {PORT_ATTEMPTS} times")
}

/// Starts `redis-server` on `port` and waits until it answers PING; `None` if another process
/// took the port first.
async fn launch_redis(dir: &Path, port: u16, aof: bool, log: &Path) -> Option<Proc> {
    let mut cmd = Command::new(process::redis_binary());
    cmd.current_dir(dir).args(["--port", &port.to_string()]);
    cmd.args(["--save", "", "--bind", "127.0.0.1"]);
    if aof {
        cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        cmd.arg("--dir").arg(dir);
    } else {
        cmd.args(["--appendonly", "no"]);
    }
    let mut proc = Proc::spawn("redis", cmd, log).expect("spawn redis-server");

    let deadline = Instant::now() + Duration::from_secs(REDIS_READY_SECS);
    let store = Store::new(&format!("redis://127.0.0.1:{port}"));
    loop {
        if proc.exited().is_some() {
            if lost_port_race(log) {
                return None;
            }
            proc.assert_running();
        }
        match store.ping() {
            Ok(()) => return Some(proc),
            Err(_) if Instant::now() < deadline => {}
            Err(err) => panic!(
                "redis not ready within {REDIS_READY_SECS} s: {err:#}\n{}",
                process::tail(log, 40)
            ),
        }
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
}

#[cfg(test)]
mod tests {
    //! Self-test of the harness's node and Redis plumbing, without any Fluxus binary: a
    //! `transferWithMemo` sent from an unlocked dev account must read back through [`Chain`].

    use alloy::primitives::{Address, B256, Bytes, U256, address};
    use alloy::sol_types::SolCall;
    use serde_json::json;

    use super::*;
    use crate::chain::{ITIP20, parse_b256};
    use crate::{PATH_USD, fresh_address};

    /// Dev account 1: unlocked on the node, never used by a Fluxus stack.
    const DEV_1: Address = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");

    #[tokio::test]
    async fn chain_and_redis_plumbing() {
        let dir = stack_dir();
        let opts = StackOpts {
            no_mining: true,
            ..StackOpts::default()
        };
        let (_anvil, anvil_port) = start_anvil(&dir, &opts).await;
        let (_redis, redis_port) = start_redis(&dir, false).await;
        let chain = Chain::new(&format!("http://127.0.0.1:{anvil_port}"));
        let store = Store::new(&format!("redis://127.0.0.1:{redis_port}"));
        assert!(store.leftovers().is_empty());

        let to = fresh_address();
        let memo = B256::right_padding_from(b"102329716");
        let call = ITIP20::transferWithMemoCall {
            to,
            amount: U256::from(1_234_567u64),
            memo,
        };
        let tx = json!({"from": DEV_1, "to": PATH_USD, "data": Bytes::from(call.abi_encode())});
        let hash = chain
            .rpc("eth_sendTransaction", json!([tx]))
            .await
            .expect("send");
        let hash = parse_b256(hash.as_str().expect("tx hash"));

        // Not mined until the test mines.
        assert!(chain.receipt(hash).await.is_none());
        assert!(chain.transaction(hash).await.is_some());
        chain.mine().await;
        let receipt = chain.receipt(hash).await.expect("mined");
        assert_eq!(receipt["status"], "0x1", "{receipt}");

        assert_eq!(chain.balance_u128(PATH_USD, to).await, 1_234_567);
        let transfers = chain.transfers_to(PATH_USD, to).await;
        assert_eq!(transfers.len(), 1, "{transfers:?}");
        assert_eq!((transfers[0].from, transfers[0].to), (DEV_1, to));
        assert_eq!(transfers[0].amount, U256::from(1_234_567u64));
        assert_eq!(transfers[0].tx_hash, hash);
        let memos = chain.memo_transfers_to(PATH_USD, to).await;
        assert_eq!(memos.len(), 1, "{memos:?}");
        assert_eq!(memos[0].memo, memo);

        assert_eq!(chain.lane_nonce(DEV_1, U256::ZERO).await, 1);
        assert_eq!(chain.lane_nonce(DEV_1, U256::from(7)).await, 0);
        assert_eq!(chain.lane_nonce(crate::SENDER, U256::ZERO).await, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
