//! Child processes of a stack: locating the binaries, picking free ports, spawning with output
//! to a log file, signalling and reaping. Every child gets `PR_SET_PDEATHSIG = SIGKILL`, so even a
//! test process killed outright leaves no anvil, redis or Fluxus process behind.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a process gets to exit after SIGTERM before it is killed (and the test fails).
pub const TERM_GRACE_SECS: u64 = 30;

/// Signals a test sends to a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `kill -9`: a crash, no cleanup.
    Kill,
    /// A graceful shutdown request.
    Term,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Self::Kill => libc::SIGKILL,
            Self::Term => libc::SIGTERM,
        }
    }
}

/// A running child whose stdout and stderr go to `log`.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Proc {
    /// Starts `cmd` with output appended to `log`; dies with the thread that started it.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> io::Result<Self> {
        let out = File::options().create(true).append(true).open(log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);

        // SAFETY: only async-signal-safe prctl between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        Ok(Self {
            name: name.to_string(),
            log: log.to_path_buf(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Panics with the log tail if the process is no longer running.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!(
                "{} exited early ({status}); log tail:\n{}",
                self.name,
                tail(&self.log, 40)
            );
        }
    }

    /// Sends `signal` and reaps the process. After SIGTERM it waits up to [`TERM_GRACE_SECS`],
    /// then kills it and panics: a worker that ignores SIGTERM is a bug worth seeing.
    pub fn stop(mut self, signal: Signal) -> ExitStatus {
        if let Some(status) = self.exited() {
            return status;
        }
        send_signal(self.pid(), signal);
        let deadline = Instant::now() + Duration::from_secs(TERM_GRACE_SECS);
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {TERM_GRACE_SECS} s of {signal:?}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn send_signal(pid: u32, signal: Signal) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: plain syscall on a pid this process spawned and has not reaped yet.
    let rc = unsafe { libc::kill(pid, signal.raw()) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal:?}): {}",
        io::Error::last_os_error()
    );
}

/// A loopback port that was free a moment ago and that this process has not handed out before.
/// Another process can still take it before the child binds; callers retry on "address in use".
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("bind an ephemeral loopback port")
            .port();
        if given.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// The workspace root (parent of the `tests/` crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Path of the pinned Tempo dev node, installed once per test process by
/// `scripts/install-anvil.sh`.
pub fn anvil_binary() -> &'static Path {
    static ANVIL: OnceLock<PathBuf> = OnceLock::new();
    ANVIL.get_or_init(|| {
        let script = workspace_root().join("scripts/install-anvil.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|err| panic!("run {}: {err}", script.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} failed ({}):\n{stdout}\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        assert!(
            path.is_file(),
            "install-anvil.sh printed {path:?}, which is not a file"
        );
        path
    })
}

/// Path of `redis-server`: `REDIS_SERVER` if set, else from `PATH`.
pub fn redis_binary() -> PathBuf {
    std::env::var_os("REDIS_SERVER").map_or_else(|| PathBuf::from("redis-server"), PathBuf::from)
}

/// Path of a Fluxus binary (`fluxus-api`, `fluxus-worker`): in `FLUXUS_BIN_DIR` if set, else
/// beside the test executable (`target/<profile>/deps/..`).
pub fn fluxus_binary(name: &str) -> PathBuf {
    let dir = match std::env::var_os("FLUXUS_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("current test executable");
            let deps = exe.parent().expect("executable has a directory");
            deps.parent()
                .expect("target/<profile>/deps has a parent")
                .to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not found: run `cargo build --workspace --bins` first (or set FLUXUS_BIN_DIR)",
        path.display()
    );
    path
}

/// The last `lines` lines of a log file (or why it could not be read).
pub fn tail(path: &Path, lines: usize) -> String {
    const MAX_TAIL_BYTES: u64 = 64 * 1024;
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX_TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("<cannot read {}: {err}>", path.display()),
    }
}
