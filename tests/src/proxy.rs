//! A small TCP fault proxy between Fluxus and the node or Redis: it forwards both directions and,
//! on the test's command, delays traffic, cuts every connection (RST) for a while, or resets the
//! one connection that carries a given request, before or after the upstream has seen it.
//!
//! It runs on its own thread and runtime, so a test that blocks its own thread (reaping a killed
//! process) or drops its runtime (a shared stack) never stalls or kills the proxied traffic.
//! Requests are matched per chunk read from the client: good enough for JSON-RPC and Redis
//! commands, which are small; a pattern split across two reads is not seen.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Deadline for connecting to the upstream for a new client connection.
const UPSTREAM_CONNECT_SECS: u64 = 5;
/// Bytes read at a time from either side.
const CHUNK_BYTES: usize = 64 * 1024;

/// When a matched request's connection is reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetWhen {
    /// The request is dropped and the client connection reset: the upstream never sees it.
    BeforeForwarding,
    /// The request is forwarded, the upstream's reply swallowed, then the client connection
    /// reset: the upstream acted on it, the client never learns the outcome.
    AfterForwarding,
}

/// Counters of what the proxy did, for a test to check that a fault really happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections forwarded to the upstream.
    pub connections: u64,
    /// Client connections accepted and reset at once because a cut was on.
    pub refused: u64,
    /// Live connections reset (by a cut or a matched request).
    pub resets: u64,
}

/// One armed one-shot rule; a test waits on it through [`Trigger`].
#[derive(Clone, Debug)]
pub struct Trigger {
    what: String,
    fired: watch::Receiver<bool>,
}

impl Trigger {
    /// Whether the rule has fired (its fault is done).
    pub fn has_fired(&self) -> bool {
        *self.fired.borrow()
    }

    /// Waits until the rule fired; panics at `deadline` (no matching traffic came).
    pub async fn fired(&self, deadline: Duration) {
        let mut fired = self.fired.clone();
        match tokio::time::timeout(deadline, fired.wait_for(|fired| *fired)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => panic!(
                "{}: dropped before it fired (proxy stopped or connection closed)",
                self.what
            ),
            Err(_) => panic!("{} did not fire within {deadline:?}", self.what),
        }
    }
}

type Hook = Box<dyn FnOnce() + Send>;

enum Action {
    /// Reset the connection; then, if given, cut the whole proxy for that long.
    Reset(ResetWhen, Option<Duration>),
    /// Forward normally; run the hook when the upstream's reply arrives, before relaying it.
    Hook(Hook),
}

struct Rule {
    pattern: Vec<u8>,
    action: Action,
    fired: watch::Sender<bool>,
}

/// What a connection still has to do when the upstream's next reply arrives.
enum OnReply {
    Swallow(watch::Sender<bool>, Option<Duration>),
    Hook(Hook, watch::Sender<bool>),
}

struct Shared {
    upstream: SocketAddr,
    delay_ms: AtomicU64,
    cut_until: Mutex<Option<Instant>>,
    /// Bumped by every cut; live connections watch it and reset themselves.
    cuts: watch::Sender<u64>,
    rules: Mutex<VecDeque<Rule>>,
    connections: AtomicU64,
    refused: AtomicU64,
    resets: AtomicU64,
}

impl Shared {
    fn is_cut(&self) -> bool {
        lock(&self.cut_until).is_some_and(|until| Instant::now() < until)
    }

    fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))
    }

    /// Takes the first armed rule whose pattern occurs in `chunk`.
    fn take_rule(&self, chunk: &[u8]) -> Option<Rule> {
        let mut rules = lock(&self.rules);
        let at = rules
            .iter()
            .position(|rule| contains(chunk, &rule.pattern))?;
        rules.remove(at)
    }

    fn cut(&self, duration: Duration) {
        *lock(&self.cut_until) = Some(Instant::now() + duration);
        self.cuts.send_modify(|epoch| *epoch += 1);
    }

    fn reset(&self, stream: TcpStream) {
        self.resets.fetch_add(1, Ordering::SeqCst);
        reset(stream);
    }
}

/// A running proxy; dropping it stops it and closes every connection. Its controls are those of
/// [`ProxyControl`] (through `Deref`); [`FaultProxy::control`] hands them to a hook or a task.
pub struct FaultProxy {
    addr: SocketAddr,
    control: ProxyControl,
    runtime: Option<tokio::runtime::Runtime>,
}

/// The controls of a [`FaultProxy`], cheap to clone into a hook of another proxy or a task. Once
/// the proxy is dropped they do nothing.
#[derive(Clone)]
pub struct ProxyControl {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.control.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ProxyControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyControl")
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind a loopback port for a proxy");
        let addr = listener.local_addr().expect("proxy address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking proxy listener");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("fault-proxy-{}", addr.port()))
            .enable_all()
            .build()
            .expect("runtime for a proxy");
        let shared = Arc::new(Shared {
            upstream,
            delay_ms: AtomicU64::new(0),
            cut_until: Mutex::new(None),
            cuts: watch::channel(0).0,
            rules: Mutex::new(VecDeque::new()),
            connections: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            resets: AtomicU64::new(0),
        });
        runtime.spawn(accept_loop(listener, Arc::clone(&shared)));
        Self {
            addr,
            control: ProxyControl { shared },
            runtime: Some(runtime),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A clonable handle on this proxy's controls.
    pub fn control(&self) -> ProxyControl {
        self.control.clone()
    }
}

impl std::ops::Deref for FaultProxy {
    type Target = ProxyControl;

    fn deref(&self) -> &ProxyControl {
        &self.control
    }
}

impl ProxyControl {
    /// Where the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Delays every forwarded chunk, in both directions, by `delay` (zero to stop).
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Resets every current connection now and, for `duration`, accepts and resets every new
    /// one (the client sees "connection reset", as when a peer crashes). Returns at once; nothing
    /// is forwarded from the moment this returns until the cut ends.
    pub fn cut(&self, duration: Duration) {
        self.shared.cut(duration);
    }

    /// Ends a cut early.
    pub fn heal(&self) {
        *lock(&self.shared.cut_until) = None;
    }

    /// Whether a cut is on.
    pub fn is_cut(&self) -> bool {
        self.shared.is_cut()
    }

    /// Arms a one-shot fault: the next client chunk containing `pattern` resets its connection,
    /// `when` says whether the upstream sees the request first. The trigger fires once the
    /// connection was reset.
    pub fn reset_on_next(&self, pattern: &str, when: ResetWhen) -> Trigger {
        let what = format!("reset {when:?} on {pattern:?}");
        self.arm(pattern, Action::Reset(when, None), what)
    }

    /// Like [`ProxyControl::reset_on_next`], and at that moment the whole proxy is cut for
    /// `duration`: the upstream "dies" with that request in flight, before or after it acted on
    /// it, and stays away.
    pub fn cut_on_next(&self, pattern: &str, when: ResetWhen, duration: Duration) -> Trigger {
        let what = format!("cut {when:?} on {pattern:?}");
        self.arm(pattern, Action::Reset(when, Some(duration)), what)
    }

    /// Arms a one-shot hook: the next client chunk containing `pattern` is forwarded normally,
    /// and when the upstream's reply arrives `hook` runs before the reply is relayed, so the
    /// upstream has acted and the client has not learnt it yet (e.g. cut Redis right after a
    /// broadcast succeeded). The trigger fires after the hook ran.
    pub fn on_next(&self, pattern: &str, hook: impl FnOnce() + Send + 'static) -> Trigger {
        let what = format!("hook on {pattern:?}");
        self.arm(pattern, Action::Hook(Box::new(hook)), what)
    }

    /// Drops every rule that has not fired yet.
    pub fn disarm_all(&self) {
        lock(&self.shared.rules).clear();
    }

    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            connections: self.shared.connections.load(Ordering::SeqCst),
            refused: self.shared.refused.load(Ordering::SeqCst),
            resets: self.shared.resets.load(Ordering::SeqCst),
        }
    }

    fn arm(&self, pattern: &str, action: Action, what: String) -> Trigger {
        assert!(!pattern.is_empty(), "an empty pattern would match anything");
        let (fired, rx) = watch::channel(false);
        lock(&self.shared.rules).push_back(Rule {
            pattern: pattern.as_bytes().to_vec(),
            action,
            fired,
        });
        Trigger { what, fired: rx }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(listener: StdListener, shared: Arc<Shared>) {
    let listener = TcpListener::from_std(listener).expect("register the proxy listener");
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(serve(client, Arc::clone(&shared)));
    }
}

/// Forwards one client connection until either side closes, a cut, or a matched rule.
async fn serve(client: TcpStream, shared: Arc<Shared>) {
    if shared.is_cut() {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        reset(client);
        return;
    }
    let connect = TcpStream::connect(shared.upstream);
    let upstream = match tokio::time::timeout(secs(UPSTREAM_CONNECT_SECS), connect).await {
        Ok(Ok(upstream)) => upstream,
        // The upstream is down (a Redis restart): the client sees what it would see directly.
        _ => return reset(client),
    };
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let mut cuts = shared.cuts.subscribe();
    cuts.borrow_and_update();
    Conn {
        client,
        upstream,
        shared,
        on_reply: None,
    }
    .pump(&mut cuts)
    .await;
}

struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    shared: Arc<Shared>,
    on_reply: Option<OnReply>,
}

/// Whether a connection goes on after a chunk.
enum Flow {
    Continue,
    /// Close both sides normally.
    Close,
    /// Reset both sides.
    Reset,
}

impl Conn {
    async fn pump(mut self, cuts: &mut watch::Receiver<u64>) {
        let mut from_client = vec![0u8; CHUNK_BYTES];
        let mut from_upstream = vec![0u8; CHUNK_BYTES];
        loop {
            let flow = tokio::select! {
                _ = cuts.changed() => Flow::Reset,
                read = self.client.read(&mut from_client) => match read {
                    Ok(0) | Err(_) => Flow::Close,
                    Ok(n) => self.client_chunk(&from_client[..n]).await,
                },
                read = self.upstream.read(&mut from_upstream) => match read {
                    Ok(0) => Flow::Close,
                    // The upstream died (killed Redis): pass the reset on.
                    Err(_) => Flow::Reset,
                    Ok(n) => self.upstream_chunk(&from_upstream[..n]).await,
                },
            };
            match flow {
                Flow::Continue => {}
                Flow::Close => return,
                Flow::Reset => {
                    self.shared.reset(self.client);
                    reset(self.upstream);
                    return;
                }
            }
        }
    }

    async fn client_chunk(&mut self, chunk: &[u8]) -> Flow {
        if self.shared.is_cut() {
            return Flow::Reset;
        }
        let Some(rule) = self.shared.take_rule(chunk) else {
            return forward(&self.shared, &mut self.upstream, chunk).await;
        };
        match rule.action {
            Action::Reset(ResetWhen::BeforeForwarding, cut) => {
                if let Some(duration) = cut {
                    self.shared.cut(duration);
                }
                // Fired before the reset is done, which follows without another await.
                let _ = rule.fired.send(true);
                Flow::Reset
            }
            Action::Reset(ResetWhen::AfterForwarding, cut) => {
                self.on_reply = Some(OnReply::Swallow(rule.fired, cut));
                forward(&self.shared, &mut self.upstream, chunk).await
            }
            Action::Hook(hook) => {
                self.on_reply = Some(OnReply::Hook(hook, rule.fired));
                forward(&self.shared, &mut self.upstream, chunk).await
            }
        }
    }

    async fn upstream_chunk(&mut self, chunk: &[u8]) -> Flow {
        if self.shared.is_cut() {
            return Flow::Reset;
        }
        match self.on_reply.take() {
            None => {}
            Some(OnReply::Swallow(fired, cut)) => {
                if let Some(duration) = cut {
                    self.shared.cut(duration);
                }
                let _ = fired.send(true);
                return Flow::Reset;
            }
            Some(OnReply::Hook(hook, fired)) => {
                hook();
                let _ = fired.send(true);
                // The hook may have cut this very proxy: then the reply is not relayed.
                if self.shared.is_cut() {
                    return Flow::Reset;
                }
            }
        }
        forward(&self.shared, &mut self.client, chunk).await
    }
}

async fn forward(shared: &Shared, to: &mut TcpStream, chunk: &[u8]) -> Flow {
    let delay = shared.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match to.write_all(chunk).await {
        Ok(()) => Flow::Continue,
        Err(_) => Flow::Reset,
    }
}

/// Closes with RST instead of FIN: `SO_LINGER` 0, then drop.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    //! The proxy against a local line-echo server: plain forwarding, both reset variants (the
    //! server saw the request or not), a cut refusing new connections, and the reply hook.

    use std::sync::atomic::AtomicUsize;

    use tokio::io::{AsyncBufReadExt, BufReader};

    use super::*;

    /// An echo server that counts the lines it received.
    async fn echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("echo address");
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        counter.fetch_add(1, Ordering::SeqCst);
                        if write
                            .write_all(format!("{line}\n").as_bytes())
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    /// Sends one line and reads one back; `Err` on a reset or a close.
    async fn ask(stream: &mut TcpStream, line: &str) -> std::io::Result<String> {
        stream.write_all(format!("{line}\n").as_bytes()).await?;
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(secs(5), stream.read(&mut buf)).await??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(String::from_utf8_lossy(&buf[..n]).trim_end().to_string())
    }

    #[tokio::test]
    async fn forwards_resets_cuts_and_hooks() {
        let (upstream, seen) = echo_server().await;
        let proxy = FaultProxy::start(upstream);
        let connect = || TcpStream::connect(proxy.addr());

        // Plain forwarding, with a delay.
        let mut conn = connect().await.expect("connect");
        proxy.set_delay(Duration::from_millis(20));
        assert_eq!(ask(&mut conn, "one").await.expect("echo"), "one");
        proxy.set_delay(Duration::ZERO);

        // Reset before forwarding: the server never sees the line.
        let trigger = proxy.reset_on_next("boom", ResetWhen::BeforeForwarding);
        assert!(ask(&mut conn, "boom-1").await.is_err());
        trigger.fired(secs(5)).await;
        assert_eq!(seen.load(Ordering::SeqCst), 1);

        // Reset after forwarding: the server saw it, the client got no answer.
        let mut conn = connect().await.expect("connect");
        let trigger = proxy.reset_on_next("boom", ResetWhen::AfterForwarding);
        assert!(ask(&mut conn, "boom-2").await.is_err());
        trigger.fired(secs(5)).await;
        assert_eq!(seen.load(Ordering::SeqCst), 2);

        // The hook runs once the reply is there; here it cuts the proxy itself.
        let mut conn = connect().await.expect("connect");
        let control = proxy.control();
        let trigger = proxy.on_next("hook", move || control.cut(secs(1)));
        assert!(ask(&mut conn, "hook-1").await.is_err());
        trigger.fired(secs(5)).await;
        assert_eq!(seen.load(Ordering::SeqCst), 3);

        // During the cut new connections are reset; afterwards they work again.
        assert!(proxy.is_cut());
        if let Ok(mut conn) = connect().await {
            assert!(ask(&mut conn, "during").await.is_err());
        }
        assert!(proxy.stats().refused >= 1, "{:?}", proxy.stats());
        proxy.heal();
        let mut conn = connect().await.expect("connect");
        assert_eq!(ask(&mut conn, "after").await.expect("echo"), "after");

        // A cut resets live connections too.
        proxy.cut(secs(30));
        assert!(ask(&mut conn, "cut").await.is_err());
        proxy.heal();

        // A cut starting with a matched request: the server never saw it, and the proxy is cut.
        let mut conn = connect().await.expect("connect");
        let trigger = proxy.cut_on_next("die", ResetWhen::BeforeForwarding, secs(30));
        assert!(ask(&mut conn, "die-1").await.is_err());
        trigger.fired(secs(5)).await;
        assert!(proxy.is_cut());
        assert_eq!(seen.load(Ordering::SeqCst), 4);
        proxy.heal();
        assert!(proxy.stats().resets >= 4, "{:?}", proxy.stats());
    }
}
