//! [`RedisServerBuilder`]: configuration for a private `redis-server`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::RedisServer;

/// Milliseconds before a silent cluster node is considered failing.
const CLUSTER_NODE_TIMEOUT_MS: &str = "5000";

/// Configures and spawns a [`RedisServer`]. Create one with
/// [`RedisServer::builder`].
///
/// Every server gets `--port <free port> --bind 127.0.0.1 --save ""
/// --appendonly no --dir <tempdir> --logfile "" --protected-mode no`; extra
/// arguments come last, so they can override those defaults.
#[must_use = "a builder does nothing until `.spawn()` is called"]
#[derive(Debug, Clone, Default)]
pub struct RedisServerBuilder {
    program: Option<PathBuf>,
    args: Vec<OsString>,
    cluster_enabled: bool,
}

impl RedisServerBuilder {
    /// A builder with no extra arguments and cluster mode off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one extra command-line argument, e.g.
    /// `.arg("--maxmemory").arg("10mb")`.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several extra command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Turns cluster mode on or off. When on, the server also gets
    /// `--cluster-enabled yes --cluster-config-file <tempdir>/nodes.conf
    /// --cluster-node-timeout 5000 --cluster-port <free port>`
    /// (`cluster-port` needs Redis 7.0 or newer).
    pub fn cluster_enabled(mut self, enabled: bool) -> Self {
        self.cluster_enabled = enabled;
        self
    }

    /// Runs this binary instead of the default: the path in
    /// `$LARDER_REDIS_SERVER`, or `redis-server` from `PATH`.
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// Spawns the server and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// If the binary is missing or the server does not become ready; the
    /// message includes the server's output.
    pub fn spawn(self) -> RedisServer {
        RedisServer::start(self)
    }

    /// The explicitly chosen binary, if any.
    pub(crate) fn chosen_program(&self) -> Option<&Path> {
        self.program.as_deref()
    }

    /// Whether cluster mode is on.
    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster_enabled
    }

    /// The full command line (without the program) for one launch.
    pub(crate) fn command_args(
        &self,
        dir: &Path,
        port: u16,
        cluster_port: Option<u16>,
    ) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |name: &str, value: &OsStr| {
            args.push(name.into());
            args.push(value.to_owned());
        };
        push("--port", port.to_string().as_ref());
        push("--bind", "127.0.0.1".as_ref());
        push("--save", "".as_ref());
        push("--appendonly", "no".as_ref());
        push("--dir", dir.as_os_str());
        push("--logfile", "".as_ref());
        push("--protected-mode", "no".as_ref());
        if self.cluster_enabled {
            push("--cluster-enabled", "yes".as_ref());
            push("--cluster-config-file", dir.join("nodes.conf").as_os_str());
            push("--cluster-node-timeout", CLUSTER_NODE_TIMEOUT_MS.as_ref());
            if let Some(cluster_port) = cluster_port {
                push("--cluster-port", cluster_port.to_string().as_ref());
            }
        }
        args.extend(self.args.iter().cloned());
        args
    }
}
