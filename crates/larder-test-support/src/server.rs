//! [`RedisServer`]: one private `redis-server` child process.

use std::fmt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::RedisServerBuilder;
use crate::port::free_ports;
use crate::process::{self, Log, Process, REDIS_SERVER_ENV, StartError};

/// How long one launch may take to log "Ready to accept connections".
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Fresh ports tried by [`RedisServer::spawn`] when a port was taken.
const SPAWN_ATTEMPTS: usize = 5;
/// How long [`RedisServer::restart`] retries while its port is still busy.
const RESTART_PATIENCE: Duration = Duration::from_secs(5);
/// Pause between restart attempts.
const RESTART_BACKOFF: Duration = Duration::from_millis(100);
/// Timeout for [`RedisServer::connection`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A private `redis-server` process on `127.0.0.1` and a free port, with its
/// own temporary directory and no persistence.
///
/// Dropping it kills and reaps the process and removes the directory.
pub struct RedisServer {
    config: RedisServerBuilder,
    program: PathBuf,
    port: u16,
    cluster_port: Option<u16>,
    process: Option<Process>,
    log: Log,
    // Declared last: removed only after the process is gone.
    dir: TempDir,
}

impl RedisServer {
    /// Spawns a server with the default configuration.
    ///
    /// # Panics
    ///
    /// See [`RedisServerBuilder::spawn`].
    pub fn spawn() -> Self {
        Self::builder().spawn()
    }

    /// A builder for a server with extra arguments or cluster mode.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::new()
    }

    /// Spawns on fresh free ports, retrying when the server exits early
    /// (another process may have taken the port in the meantime).
    pub(crate) fn start(config: RedisServerBuilder) -> Self {
        let program = config
            .chosen_program()
            .map_or_else(process::default_program, Path::to_path_buf);
        let dir = tempfile::Builder::new()
            .prefix("larder-redis-")
            .tempdir()
            .unwrap_or_else(|err| {
                panic!("cannot create a temporary directory for redis-server: {err}")
            });
        let mut server = Self {
            config,
            program,
            port: 0,
            cluster_port: None,
            process: None,
            log: Log::default(),
            dir,
        };
        let mut last_failure = String::new();
        for _ in 0..SPAWN_ATTEMPTS {
            let ports = free_ports(if server.config.is_cluster() { 2 } else { 1 });
            server.port = ports[0];
            server.cluster_port = ports.get(1).copied();
            match server.launch() {
                Ok(()) => return server,
                Err(StartError::Exited { status, log }) => {
                    last_failure = server.exited_message(status, &log);
                }
                Err(err) => panic!("{}", server.fatal_message(err)),
            }
        }
        panic!(
            "redis-server failed to start after {SPAWN_ATTEMPTS} attempts on fresh ports; last attempt: {last_failure}"
        )
    }

    /// The TCP port the server listens on (stable across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster bus port (`--cluster-port`), if cluster mode is on.
    pub fn cluster_bus_port(&self) -> Option<u16> {
        self.cluster_port
    }

    /// `"127.0.0.1:PORT"`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `"redis://127.0.0.1:PORT/"`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's working directory (a temporary directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id, or `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|process| process.child.id())
    }

    /// The most recent lines the current (or last) process logged.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lines()
    }

    /// A [`redis::Client`] for this server (does not connect yet).
    ///
    /// # Panics
    ///
    /// Never in practice: the URL is always valid.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url())
            .unwrap_or_else(|err| panic!("invalid redis URL {}: {err}", self.url()))
    }

    /// A new blocking connection to this server.
    ///
    /// # Panics
    ///
    /// If no connection can be made within 5 seconds.
    pub fn connection(&self) -> redis::Connection {
        self.client()
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .unwrap_or_else(|err| {
                panic!(
                    "cannot connect to redis-server at {}: {err}\nserver output:\n{}",
                    self.addr(),
                    self.log.render()
                )
            })
    }

    /// Whether the process is still alive (it may have crashed or been killed).
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|process| matches!(process.child.try_wait(), Ok(None)))
    }

    /// Kills the process (`SIGKILL`) and reaps it. Does nothing if it is
    /// already gone.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            // Fails only if the process already exited; reaping still works.
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }

    /// Kills the process if it runs, then starts a new one on the same port
    /// with the same arguments and directory, and waits until it is ready.
    /// Data is gone afterwards (persistence is off).
    ///
    /// # Panics
    ///
    /// If the port stays unavailable for 5 seconds or the server fails to
    /// start.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + RESTART_PATIENCE;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(StartError::Exited { status, log }) => {
                    if Instant::now() >= deadline {
                        panic!(
                            "redis-server failed to restart on port {}: {}",
                            self.port,
                            self.exited_message(status, &log)
                        );
                    }
                    thread::sleep(RESTART_BACKOFF);
                }
                Err(err) => panic!("{}", self.fatal_message(err)),
            }
        }
    }

    /// One launch attempt on the current ports.
    fn launch(&mut self) -> Result<(), StartError> {
        let args = self
            .config
            .command_args(self.dir.path(), self.port, self.cluster_port);
        let process = process::start(&self.program, &args, READY_TIMEOUT)?;
        self.log = process.log.clone();
        self.process = Some(process);
        Ok(())
    }

    fn command_line(&self) -> String {
        let args = self
            .config
            .command_args(self.dir.path(), self.port, self.cluster_port);
        args.iter()
            .fold(self.program.display().to_string(), |line, arg| {
                format!("{line} {:?}", arg)
            })
    }

    fn exited_message(&self, status: Option<std::process::ExitStatus>, log: &Log) -> String {
        let status = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
        format!(
            "redis-server exited ({status}) before it was ready.\ncommand: {}\noutput:\n{}",
            self.command_line(),
            log.render()
        )
    }

    fn fatal_message(&self, err: StartError) -> String {
        match err {
            StartError::NotFound if self.program == Path::new("redis-server") => {
                "redis-server was not found on PATH. Install it (Debian/Ubuntu: \
                 `apt-get install -y redis-server`) or run `scripts/test.sh`, which installs it."
                    .to_owned()
            }
            StartError::NotFound => format!(
                "redis-server binary `{}` was not found (set by {REDIS_SERVER_ENV} or \
                 RedisServerBuilder::program). Fix the path, or unset it to use redis-server \
                 from PATH (Debian/Ubuntu: `apt-get install -y redis-server`).",
                self.program.display()
            ),
            StartError::Spawn(err) => format!(
                "cannot execute redis-server binary `{}`: {err}",
                self.program.display()
            ),
            StartError::Timeout { log } => format!(
                "redis-server did not log \"Ready to accept connections\" within {READY_TIMEOUT:?}; \
                 it has been killed.\ncommand: {}\noutput:\n{}",
                self.command_line(),
                log.render()
            ),
            StartError::Exited { status, log } => self.exited_message(status, &log),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("addr", &self.addr())
            .field("pid", &self.pid())
            .field("cluster_port", &self.cluster_port)
            .field("dir", &self.dir.path())
            .field("config", &self.config)
            .finish()
    }
}
