//! TCP connections to the server, spread over several loopback source addresses.
//!
//! One source address has about 28 000 ephemeral ports (Linux's default
//! `ip_local_port_range`), so tens of thousands of clients need several: the `i`-th
//! connection leaves from `127.0.0.(1 + i % sources)`, every one of which reaches a
//! server listening on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context;
use tokio::net::{TcpSocket, TcpStream};

/// Where clients connect from.
#[derive(Debug, Clone, Copy)]
pub struct Sources {
    /// How many loopback addresses (127.0.0.1, .2, …) the clients take turns with.
    pub count: u8,
}

impl Sources {
    /// The source address of connection `i`, or `None` to let the kernel pick (one
    /// source address).
    pub fn of(self, i: usize) -> Option<IpAddr> {
        (self.count > 1).then(|| {
            let last = 1 + (i % usize::from(self.count)) as u8;
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
        })
    }
}

/// Connects to `server` (`host:port`) from `source`, with Nagle off as the servers have
/// it, so small client messages (pongs, subscribes) leave at once.
pub async fn connect(server: &str, source: Option<IpAddr>) -> anyhow::Result<TcpStream> {
    let addr: SocketAddr = tokio::net::lookup_host(server)
        .await
        .with_context(|| format!("resolving {server}"))?
        .next()
        .with_context(|| format!("no address for {server}"))?;
    let stream = match source {
        None => TcpStream::connect(addr).await,
        Some(ip) => {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(addr).await
        }
    }
    .with_context(|| format!("connecting to {server}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// `host:port` of an `http://host:port…` or `ws://…` URL.
pub fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_take_turns_only_when_there_are_several() {
        assert_eq!(Sources { count: 1 }.of(5), None);
        let four = Sources { count: 4 };
        assert_eq!(four.of(0), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(four.of(5), Some("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn authority_of_urls() {
        assert_eq!(authority("http://127.0.0.1:3000"), "127.0.0.1:3000");
        assert_eq!(authority("ws://h:1/socket.io/?EIO=4"), "h:1");
    }
}
