//! The stream side of the file: which next hops the SBC reaches over connections it opens itself
//! (targets and trunks with `transport = "tcp"` or `"tls"`), on which side, under which TLS name, and
//! the checks of the keys that govern those connections (`[tls]` client settings, per-source bound,
//! handshake deadline).

use std::net::SocketAddr;

use rustls::pki_types::ServerName;
use sbc_core::signalling::topology::Side;

use super::{Config, TransportName};

/// A next hop reached over a connection the SBC opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StreamPeer {
    pub(crate) addr: SocketAddr,
    pub(crate) side: Side,
    /// TLS: the name the server's certificate must carry (and the SNI sent when it is a host
    /// name); `None`: plain TCP.
    pub(crate) tls_name: Option<ServerName<'static>>,
}

/// The TLS name of a next hop: the configured `server_name`, else its IP address.
fn tls_name(
    what: &str,
    addr: SocketAddr,
    name: Option<&str>,
) -> Result<ServerName<'static>, String> {
    match name {
        Some(n) => ServerName::try_from(n.to_owned())
            .map_err(|_| format!("{what}: server_name: {n:?} is not a DNS name or IP address")),
        None => Ok(ServerName::IpAddress(addr.ip().into())),
    }
}

fn peer(
    what: &str,
    addr: SocketAddr,
    side: Side,
    transport: TransportName,
    name: Option<&str>,
) -> Result<Option<StreamPeer>, String> {
    let tls_name = match transport {
        TransportName::Udp => {
            if name.is_some() {
                return Err(format!("{what}: server_name: only for transport = \"tls\""));
            }
            return Ok(None);
        }
        TransportName::Tcp => {
            if name.is_some() {
                return Err(format!("{what}: server_name: only for transport = \"tls\""));
            }
            None
        }
        TransportName::Tls => Some(tls_name(what, addr, name)?),
    };
    Ok(Some(StreamPeer {
        addr,
        side,
        tls_name,
    }))
}

impl Config {
    /// Every next hop reached over TCP or TLS, once per address (the first mention wins).
    pub(crate) fn stream_peers(&self) -> Result<Vec<StreamPeer>, String> {
        let mut out: Vec<StreamPeer> = Vec::new();
        let mut push = |p: Option<StreamPeer>| {
            if let Some(p) = p {
                if !out.iter().any(|o| o.addr == p.addr) {
                    out.push(p);
                }
            }
        };
        for g in &self.target_groups {
            let inside = self.inside.targets.iter().any(|t| *t.get_ref() == g.name);
            let side = if inside { Side::Inside } else { Side::Outside };
            for (i, t) in g.targets.iter().enumerate() {
                let what = format!("target_group {:?}: targets[{i}]", g.name);
                push(peer(
                    &what,
                    t.address,
                    side,
                    t.transport,
                    t.server_name.as_deref(),
                )?);
            }
        }
        for t in &self.trunks {
            let what = format!("trunk {:?}", t.name);
            match &t.outbound {
                Some(o) => push(peer(
                    &what,
                    o.proxy,
                    Side::Outside,
                    t.transport,
                    t.server_name.as_deref(),
                )?),
                None if t.server_name.is_some() => {
                    return Err(format!("{what}: server_name: needs outbound"));
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// Whether a connection to a next hop is opened over TLS.
    pub(crate) fn needs_tls_client(&self) -> bool {
        self.stream_peers()
            .is_ok_and(|p| p.iter().any(|p| p.tls_name.is_some()))
    }

    /// The checks of the stream keys.
    pub(super) fn validate_streams(&self) -> Result<(), String> {
        let t = &self.transport;
        if t.tcp_max_connections_per_source == 0 {
            return Err("transport.tcp_max_connections_per_source: must be at least 1".into());
        }
        if !(1..=300).contains(&t.tls_handshake_timeout_secs) {
            return Err("transport.tls_handshake_timeout_secs: must be in 1..=300".into());
        }
        if self.tls.client_cert.is_some() != self.tls.client_key.is_some() {
            return Err("tls.client_cert/client_key: give both or neither".into());
        }
        self.stream_peers().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[sip]\nudp = [\"127.0.0.1:5060\"]\n[inside]\ntargets = [\"pbx\"]\n";

    fn load(extra: &str) -> Result<Config, String> {
        Config::from_toml_with(&format!("{BASE}{extra}"), "t", None)
    }

    #[test]
    fn peers_by_transport_side_and_name() {
        let c = load(
            "[[target_group]]\nname = \"pbx\"\ntargets = [\
             { address = \"10.0.0.2:5060\", transport = \"udp\" },\
             { address = \"10.0.0.3:5060\", transport = \"tcp\" },\
             { address = \"10.0.0.4:5061\", transport = \"tls\", server_name = \"pbx.example\" }]\n\
             [[trunk]]\nname = \"carrier\"\ntransport = \"tls\"\n\
             outbound = { proxy = \"192.0.2.9:5061\" }\n",
        )
        .unwrap();
        let peers = c.stream_peers().unwrap();
        let by = |a: &str| peers.iter().find(|p| p.addr == a.parse().unwrap()).cloned();
        assert!(by("10.0.0.2:5060").is_none(), "UDP is not a stream peer");
        let tcp = by("10.0.0.3:5060").unwrap();
        assert_eq!((tcp.side, tcp.tls_name), (Side::Inside, None));
        let tls = by("10.0.0.4:5061").unwrap();
        assert_eq!(
            tls.tls_name,
            Some(ServerName::try_from("pbx.example").unwrap())
        );
        // A trunk without server_name is verified under its IP address.
        let trunk = by("192.0.2.9:5061").unwrap();
        assert_eq!(trunk.side, Side::Outside);
        assert_eq!(
            trunk.tls_name,
            Some(ServerName::IpAddress(
                "192.0.2.9".parse::<std::net::IpAddr>().unwrap().into()
            ))
        );
        assert!(c.needs_tls_client());
    }

    #[test]
    fn bad_stream_keys_are_named() {
        let e = load(
            "[[target_group]]\nname = \"pbx\"\ntargets = [\
             { address = \"10.0.0.2:5060\", transport = \"udp\", server_name = \"x\" }]\n",
        )
        .unwrap_err();
        assert!(
            e.contains("targets[0]: server_name: only for transport"),
            "{e}"
        );
        let e = load(
            "[[target_group]]\nname = \"pbx\"\ntargets = [\
             { address = \"10.0.0.2:5060\", transport = \"tls\", server_name = \"not a name\" }]\n",
        )
        .unwrap_err();
        assert!(e.contains("is not a DNS name"), "{e}");
        let pbx = "[[target_group]]\nname = \"pbx\"\ntargets = [{ address = \"10.0.0.2:5060\" }]\n";
        let e = load(&format!("[tls]\nclient_cert = \"/c.pem\"\n{pbx}")).unwrap_err();
        assert!(e.contains("tls.client_cert/client_key"), "{e}");
        let e = load(&format!(
            "[transport]\ntcp_max_connections_per_source = 0\n{pbx}"
        ))
        .unwrap_err();
        assert!(e.contains("tcp_max_connections_per_source"), "{e}");
        let e = load(&format!(
            "[transport]\ntls_handshake_timeout_secs = 0\n{pbx}"
        ))
        .unwrap_err();
        assert!(e.contains("tls_handshake_timeout_secs"), "{e}");
        let ok = load(pbx).unwrap();
        assert!(!ok.needs_tls_client());
        assert_eq!(ok.transport.tcp_max_connections_per_source, 32);
        assert_eq!(ok.transport.tls_handshake_timeout_secs, 10);
    }
}
