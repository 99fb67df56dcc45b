//! Lifecycle tests for `RedisServer`, against real `redis-server` processes.

use std::path::Path;

use larder_test_support::RedisServer;

fn ping(server: &RedisServer) -> String {
    redis::cmd("PING")
        .query(&mut server.connection())
        .expect("PING failed")
}

#[test]
fn spawn_answers_ping() {
    let server = RedisServer::spawn();
    assert_eq!(ping(&server), "PONG");
    assert_ne!(server.port(), 6379, "must never use the shared Redis port");
    assert_eq!(server.addr(), format!("127.0.0.1:{}", server.port()));
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
}

#[test]
fn two_servers_get_different_ports_and_separate_data() {
    let a = RedisServer::spawn();
    let b = RedisServer::spawn();
    assert_ne!(a.port(), b.port());

    let mut con_a = a.connection();
    let mut con_b = b.connection();
    redis::cmd("SET")
        .arg("k")
        .arg("a")
        .exec(&mut con_a)
        .unwrap();
    let seen: Option<String> = redis::cmd("GET").arg("k").query(&mut con_b).unwrap();
    assert_eq!(seen, None);
}

#[test]
fn kill_makes_connections_fail_and_is_idempotent() {
    let mut server = RedisServer::spawn();
    assert!(server.is_running());
    server.kill();
    assert!(!server.is_running());
    assert_eq!(server.pid(), None);
    assert!(
        server
            .client()
            .get_connection_with_timeout(std::time::Duration::from_secs(1))
            .is_err(),
        "connecting to a killed server must fail"
    );
    server.kill();
}

#[test]
fn restart_uses_same_port_and_loses_data() {
    let mut server = RedisServer::spawn();
    let port = server.port();
    let old_pid = server.pid();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .exec(&mut server.connection())
        .unwrap();

    server.restart();

    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), old_pid);
    assert!(server.is_running());
    assert_eq!(ping(&server), "PONG");
    let value: Option<String> = redis::cmd("GET")
        .arg("k")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(value, None, "data must not survive a restart");
}

#[test]
fn restart_after_kill_works() {
    let mut server = RedisServer::spawn();
    server.kill();
    server.restart();
    assert_eq!(ping(&server), "PONG");
}

#[test]
fn drop_reaps_process_and_removes_dir() {
    let server = RedisServer::spawn();
    let pid = server.pid().expect("a running server has a pid");
    let dir = server.dir().to_path_buf();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(dir.is_dir());

    drop(server);

    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} still exists (running or zombie) after drop"
    );
    assert!(!dir.exists(), "temporary directory was not removed");
}

#[test]
fn detects_a_crashed_server() {
    let mut server = RedisServer::spawn();
    // SHUTDOWN NOSAVE makes the server exit on its own.
    let _ = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .exec(&mut server.connection());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while server.is_running() {
        assert!(std::time::Instant::now() < deadline, "server did not exit");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    server.restart();
    assert_eq!(ping(&server), "PONG");
}
