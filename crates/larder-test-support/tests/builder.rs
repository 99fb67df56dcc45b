//! `RedisServerBuilder` options, against real `redis-server` processes.

use larder_test_support::RedisServer;

fn config_get(server: &RedisServer, name: &str) -> String {
    let pair: (String, String) = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query(&mut server.connection())
        .unwrap();
    pair.1
}

#[test]
fn defaults_disable_persistence_and_bind_loopback() {
    let server = RedisServer::spawn();
    assert_eq!(config_get(&server, "save"), "");
    assert_eq!(config_get(&server, "appendonly"), "no");
    assert_eq!(config_get(&server, "bind"), "127.0.0.1");
    assert_eq!(config_get(&server, "protected-mode"), "no");
    assert_eq!(
        std::fs::canonicalize(config_get(&server, "dir")).unwrap(),
        std::fs::canonicalize(server.dir()).unwrap()
    );
    assert!(
        server
            .log_lines()
            .iter()
            .any(|line| line.contains("Ready to accept connections"))
    );
}

#[test]
fn extra_args_are_passed() {
    let server = RedisServer::builder()
        .arg("--maxmemory")
        .arg("10mb")
        .args(["--maxmemory-policy", "allkeys-lru"])
        .spawn();
    assert_eq!(config_get(&server, "maxmemory"), "10485760");
    assert_eq!(config_get(&server, "maxmemory-policy"), "allkeys-lru");
}

#[test]
fn restart_keeps_extra_args() {
    let mut server = RedisServer::builder().args(["--maxmemory", "10mb"]).spawn();
    server.restart();
    assert_eq!(config_get(&server, "maxmemory"), "10485760");
}

#[test]
#[should_panic(expected = "was not found")]
fn missing_binary_panics_with_install_hint() {
    let _ = RedisServer::builder()
        .program("/nonexistent/redis-server")
        .spawn();
}

#[test]
#[should_panic(expected = "exited")]
fn bad_argument_panics_with_log() {
    let _ = RedisServer::builder()
        .arg("--no-such-option")
        .arg("1")
        .spawn();
}
