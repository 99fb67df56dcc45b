//! Starting one `redis-server` child process and waiting until it is ready.
//!
//! The child logs to stdout (`--logfile ""`). Reader threads drain stdout and
//! stderr for the whole life of the process, so the pipes never fill up; they
//! keep the most recent lines for diagnostics and forward every line to the
//! starter, which waits for Redis's "Ready to accept connections" line.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Environment variable that overrides the `redis-server` binary (a path).
pub const REDIS_SERVER_ENV: &str = "LARDER_REDIS_SERVER";

/// The log line that tells us the server accepts connections.
const READY_LINE: &str = "Ready to accept connections";

/// How many log lines are kept for diagnostics.
const LOG_CAPACITY: usize = 500;

/// The binary to run: `$LARDER_REDIS_SERVER` if set and non-empty, else
/// `redis-server` from `PATH`.
pub(crate) fn default_program() -> PathBuf {
    std::env::var_os(REDIS_SERVER_ENV)
        .filter(|value| !value.is_empty())
        .map_or_else(|| PathBuf::from("redis-server"), PathBuf::from)
}

/// The most recent log lines (stdout and stderr) of one child process.
#[derive(Debug, Clone, Default)]
pub(crate) struct Log(Arc<Mutex<VecDeque<String>>>);

impl Log {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == LOG_CAPACITY {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// A copy of the kept lines, oldest first.
    pub(crate) fn lines(&self) -> Vec<String> {
        let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().cloned().collect()
    }

    /// The kept lines, indented, for a panic message.
    pub(crate) fn render(&self) -> String {
        let lines = self.lines();
        if lines.is_empty() {
            return "    (no output)\n".to_owned();
        }
        lines.iter().fold(String::new(), |mut out, line| {
            let _ = writeln!(out, "    {line}");
            out
        })
    }
}

/// A running, ready `redis-server` child.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) child: Child,
    pub(crate) log: Log,
}

/// Why a start attempt failed.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The binary does not exist.
    NotFound,
    /// The binary could not be executed for another reason.
    Spawn(io::Error),
    /// The process exited before it was ready (for example: port in use).
    Exited {
        status: Option<ExitStatus>,
        log: Log,
    },
    /// The process did not become ready in time; it has been killed.
    Timeout { log: Log },
}

/// Spawns `program args...` and blocks until its log says it is ready.
///
/// On any failure the child is killed and reaped before returning.
pub(crate) fn start(
    program: &Path,
    args: &[OsString],
    timeout: Duration,
) -> Result<Process, StartError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => StartError::NotFound,
            _ => StartError::Spawn(err),
        })?;

    let log = Log::default();
    let (tx, rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        drain(stdout, log.clone(), tx.clone());
    }
    if let Some(stderr) = child.stderr.take() {
        drain(stderr, log.clone(), tx.clone());
    }
    // Only the reader threads hold senders now: the channel disconnects once
    // both pipes are closed, i.e. when the process has exited.
    drop(tx);

    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(remaining) {
            Ok(line) if line.contains(READY_LINE) => return Ok(Process { child, log }),
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartError::Timeout { log });
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.wait().ok();
                return Err(StartError::Exited { status, log });
            }
        }
    }
}

/// Reads `pipe` line by line on a background thread until EOF, recording
/// each line in `log` and forwarding it to `tx` while anyone listens.
fn drain(pipe: impl Read + Send + 'static, log: Log, tx: Sender<String>) {
    thread::Builder::new()
        .name("redis-server-log".to_owned())
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                        log.push(line.clone());
                        // The starter stops listening once the server is ready.
                        let _ = tx.send(line);
                    }
                }
            }
        })
        .unwrap_or_else(|err| panic!("cannot start a thread to read redis-server output: {err}"));
}
