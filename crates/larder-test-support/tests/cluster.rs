//! `RedisCluster` tests, against real `redis-server` processes.

use std::collections::HashMap;

use larder_test_support::{RedisCluster, RedisServer};
use redis::Value;

fn cluster_info(node: &RedisServer) -> HashMap<String, String> {
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut node.connection())
        .unwrap();
    info.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `(first slot, last slot, port of the master)` from `CLUSTER SLOTS`.
fn slot_ranges(node: &RedisServer) -> Vec<(i64, i64, i64)> {
    let slots: Vec<Vec<Value>> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut node.connection())
        .unwrap();
    slots
        .iter()
        .map(|entry| {
            let int = |value: &Value| match value {
                Value::Int(n) => *n,
                other => panic!("unexpected CLUSTER SLOTS value: {other:?}"),
            };
            let Value::Array(master) = &entry[2] else {
                panic!("unexpected CLUSTER SLOTS entry: {entry:?}");
            };
            (int(&entry[0]), int(&entry[1]), int(&master[1]))
        })
        .collect()
}

#[test]
fn three_master_cluster_is_healthy() {
    let cluster = RedisCluster::spawn();
    assert_eq!(cluster.nodes().len(), 3);
    for node in cluster.nodes() {
        let info = cluster_info(node);
        assert_eq!(info["cluster_state"], "ok", "{}", node.addr());
        assert_eq!(info["cluster_known_nodes"], "3");
        assert_eq!(info["cluster_slots_assigned"], "16384");
        assert_eq!(info["cluster_size"], "3");
    }
    let urls = cluster.initial_nodes();
    assert_eq!(urls, cluster.urls());
    assert_eq!(urls.len(), 3);
}

#[test]
fn set_get_through_slot_owner() {
    let cluster = RedisCluster::spawn();
    let any = &cluster.nodes()[0];
    for key in ["alpha", "beta", "gamma", "{user:1}:profile"] {
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut any.connection())
            .unwrap();
        let owner_port = slot_ranges(any)
            .into_iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, port)| port)
            .expect("every slot has an owner");
        let owner = cluster
            .nodes()
            .iter()
            .find(|node| i64::from(node.port()) == owner_port)
            .expect("the owner is one of our nodes");

        let mut con = owner.connection();
        redis::cmd("SET").arg(key).arg("v").exec(&mut con).unwrap();
        let value: String = redis::cmd("GET").arg(key).query(&mut con).unwrap();
        assert_eq!(value, "v");

        // A node that does not own the slot redirects.
        let other = cluster
            .nodes()
            .iter()
            .find(|node| node.port() != owner.port())
            .unwrap();
        let err = redis::cmd("GET")
            .arg(key)
            .query::<Option<String>>(&mut other.connection())
            .unwrap_err();
        // redis-rs reports a redirect as (target address, slot).
        let (target, moved_slot) = err.redirect_node().expect("MOVED redirect");
        assert_eq!(target, owner.addr(), "{err}");
        assert_eq!(i64::from(moved_slot), slot, "{err}");
    }
}

#[test]
fn single_master_cluster() {
    let cluster = RedisCluster::with_masters(1);
    let info = cluster_info(&cluster.nodes()[0]);
    assert_eq!(info["cluster_state"], "ok");
    assert_eq!(info["cluster_known_nodes"], "1");
}

#[test]
fn restarted_node_rejoins_with_its_slots() {
    let mut cluster = RedisCluster::spawn();
    let node = &mut cluster.nodes_mut()[1];
    let port = node.port();
    node.restart();
    assert_eq!(node.port(), port);
    // nodes.conf survives in the node's directory, so it keeps its slots.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if cluster
            .nodes()
            .iter()
            .all(|node| cluster_info(node)["cluster_state"] == "ok")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cluster did not recover"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn drop_kills_every_node() {
    let cluster = RedisCluster::spawn();
    let pids: Vec<u32> = cluster
        .nodes()
        .iter()
        .filter_map(RedisServer::pid)
        .collect();
    assert_eq!(pids.len(), 3);
    drop(cluster);
    for pid in pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}
