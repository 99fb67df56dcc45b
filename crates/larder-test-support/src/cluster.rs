//! [`RedisCluster`]: a local Redis Cluster of private `redis-server`s.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::thread;
use std::time::{Duration, Instant};

use crate::RedisServer;

/// Number of hash slots in a Redis Cluster.
const SLOT_COUNT: usize = 16384;
/// How long the nodes may take to agree that the cluster is healthy.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between two health polls (Redis has no push signal for this).
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Read/write timeout of the set-up connections.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A local Redis Cluster of masters only (no replicas), each a private
/// [`RedisServer`] in cluster mode. The 16384 slots are split evenly.
///
/// Built with `CLUSTER ADDSLOTSRANGE` and `CLUSTER MEET` over redis-rs (no
/// `redis-cli` needed); requires Redis 7.0 or newer. Dropping it kills every
/// node.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Spawns a cluster of 3 masters and waits until it is healthy.
    ///
    /// # Panics
    ///
    /// See [`with_masters`](Self::with_masters).
    pub fn spawn() -> Self {
        Self::with_masters(3)
    }

    /// Spawns a cluster of `masters` masters and waits until every node
    /// reports `cluster_state:ok`, knows every node and sees all slots.
    ///
    /// # Panics
    ///
    /// If `masters` is 0 or more than 16384, a node fails to start, a set-up
    /// command fails, or the cluster is not healthy within 15 seconds (the
    /// message shows every node's `CLUSTER INFO` and `CLUSTER NODES`).
    pub fn with_masters(masters: usize) -> Self {
        assert!(
            (1..=SLOT_COUNT).contains(&masters),
            "a Redis Cluster needs between 1 and {SLOT_COUNT} masters, not {masters}"
        );
        let nodes = (0..masters)
            .map(|_| RedisServer::builder().cluster_enabled(true).spawn())
            .collect();
        let cluster = Self { nodes };
        cluster.form();
        cluster
    }

    /// The nodes, in creation order; node `i` owns the `i`-th slot range.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes, mutably (to kill or restart one).
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// Every node's `redis://127.0.0.1:PORT/` URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Seed URLs for a cluster client (all nodes).
    pub fn initial_nodes(&self) -> Vec<String> {
        self.urls()
    }

    /// Assigns slots and epochs, introduces the nodes, waits for health.
    fn form(&self) {
        let count = self.nodes.len();
        let mut connections: Vec<redis::Connection> =
            self.nodes.iter().map(setup_connection).collect();
        for (index, (node, con)) in self.nodes.iter().zip(&mut connections).enumerate() {
            let first = index * SLOT_COUNT / count;
            let last = (index + 1) * SLOT_COUNT / count - 1;
            run(
                node,
                con,
                redis::cmd("CLUSTER")
                    .arg("ADDSLOTSRANGE")
                    .arg(first)
                    .arg(last),
            );
            // Distinct epochs avoid a round of epoch-collision resolution.
            run(
                node,
                con,
                redis::cmd("CLUSTER").arg("SET-CONFIG-EPOCH").arg(index + 1),
            );
        }
        let first = &self.nodes[0];
        let first_bus_port = first
            .cluster_bus_port()
            .expect("cluster nodes have a bus port");
        for (node, con) in self.nodes.iter().zip(&mut connections).skip(1) {
            // The bus port is explicit: it is not the default `port + 10000`.
            let meet = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(first.port())
                .arg(first_bus_port)
                .clone();
            run(node, con, &meet);
        }
        self.wait_until_healthy(&mut connections);
    }

    fn wait_until_healthy(&self, connections: &mut [redis::Connection]) {
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let healthy = self
                .nodes
                .iter()
                .zip(connections.iter_mut())
                .all(|(node, con)| is_healthy(&cluster_info(node, con), self.nodes.len()));
            if healthy {
                return;
            }
            if Instant::now() >= deadline {
                panic!("{}", self.diagnostics(connections));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn diagnostics(&self, connections: &mut [redis::Connection]) -> String {
        let mut out = format!(
            "the Redis Cluster of {} masters was not healthy within {CONVERGE_TIMEOUT:?}\n",
            self.nodes.len()
        );
        for (node, con) in self.nodes.iter().zip(connections.iter_mut()) {
            let nodes: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(con)
                .unwrap_or_else(|err| format!("(CLUSTER NODES failed: {err})"));
            let log = node.log_lines();
            let tail = &log[log.len().saturating_sub(20)..];
            let _ = write!(
                out,
                "\n== node {} ==\nCLUSTER INFO:\n{}\nCLUSTER NODES:\n{nodes}\nlast log lines:\n{}\n",
                node.addr(),
                cluster_info(node, con),
                tail.join("\n")
            );
        }
        out
    }
}

/// A blocking connection with timeouts, so a stuck node cannot hang set-up.
fn setup_connection(node: &RedisServer) -> redis::Connection {
    let con = node.connection();
    for result in [
        con.set_read_timeout(Some(IO_TIMEOUT)),
        con.set_write_timeout(Some(IO_TIMEOUT)),
    ] {
        result.unwrap_or_else(|err| panic!("cannot set timeouts on {}: {err}", node.addr()));
    }
    con
}

/// Runs a set-up command, panicking with the node's address on error.
fn run(node: &RedisServer, con: &mut redis::Connection, cmd: &redis::Cmd) {
    cmd.query::<()>(con)
        .unwrap_or_else(|err| panic!("cluster set-up command failed on {}: {err}", node.addr()));
}

fn cluster_info(node: &RedisServer, con: &mut redis::Connection) -> String {
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query(con)
        .unwrap_or_else(|err| panic!("CLUSTER INFO failed on {}: {err}", node.addr()))
}

/// Whether one node's `CLUSTER INFO` shows a fully formed cluster.
fn is_healthy(info: &str, masters: usize) -> bool {
    let fields: HashMap<&str, &str> = info
        .lines()
        .filter_map(|line| line.trim().split_once(':'))
        .collect();
    let slots = SLOT_COUNT.to_string();
    let masters = masters.to_string();
    fields.get("cluster_state") == Some(&"ok")
        && fields.get("cluster_known_nodes") == Some(&masters.as_str())
        && fields.get("cluster_slots_assigned") == Some(&slots.as_str())
        && fields.get("cluster_slots_ok") == Some(&slots.as_str())
}
