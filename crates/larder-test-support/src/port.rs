//! Picking free TCP ports on the loopback interface.

use std::net::{Ipv4Addr, TcpListener};

/// Returns `count` distinct ports that were free on `127.0.0.1` a moment ago.
///
/// Each port is found by binding a listener to port 0 and asking the OS which
/// port it chose. All listeners are held until every port has been chosen, so
/// the ports are distinct, then dropped so the server can bind them. Another
/// process may still grab a port in between; callers retry on a fresh port
/// when the server fails to start.
pub(crate) fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap_or_else(|err| panic!("cannot bind 127.0.0.1:0 to find a free port: {err}"))
        })
        .collect();
    listeners
        .iter()
        .map(|listener| {
            listener
                .local_addr()
                .unwrap_or_else(|err| panic!("cannot read the port of a bound listener: {err}"))
                .port()
        })
        .collect()
}
