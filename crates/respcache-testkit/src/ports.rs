//! Free loopback ports, for servers a test starts as other processes.

use std::net::{SocketAddr, TcpListener};

/// A loopback address with a port nothing listens on right now. Another
/// process may take it before the server that is given it binds it; that
/// server then fails to start and should say so.
pub fn free_port() -> SocketAddr {
    free_ports::<1>()[0]
}

/// `N` different loopback addresses free a moment ago: all `N` listeners
/// are held at once, so that no two ports are the same.
pub fn free_ports<const N: usize>() -> [SocketAddr; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free port on 127.0.0.1"))
        .collect();
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .expect("the address of a bound listener")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_taken_together_differ() {
        let [a, b, c] = free_ports();
        assert!(a != b && b != c && a != c);
        assert!(free_port().ip().is_loopback());
    }
}
