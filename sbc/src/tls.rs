//! TLS settings from PEM files: the server side of the SBC's TLS listeners, and the client side of
//! the connections it opens toward TLS targets and trunks (server verification against the system
//! roots or a configured CA file, optional client certificate for mutual TLS). The ring provider.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Where Debian and its derivatives keep the system's trusted roots (one PEM bundle).
pub(crate) const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of PEM file `path` (`key` names the setting in errors).
fn load_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut io::BufReader::new(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{key} {}: no certificate in PEM file",
            path.display()
        ));
    }
    Ok(certs)
}

/// The private key of PEM file `path` (`key` names the setting in errors).
fn load_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut io::BufReader::new(f))
        .map_err(|e| format!("{key} {}: {e}", path.display()))?
        .ok_or_else(|| format!("{key} {}: no private key in PEM file", path.display()))
}

/// The TLS server configuration of the listeners, from PEM files.
pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs = load_certs("tls.cert", cert)?;
    let key_der = load_key("tls.key", key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| format!("tls: {e}"))?;
    // No TLS 1.3 session tickets: SIP connections are long-lived and rarely resumed, and some SIP
    // stacks (sipsak 0.9.8 with GnuTLS, seen here) take the ticket records that follow the handshake
    // for the answer they wait for and give up.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// What the connections the SBC opens over TLS trust and present.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ClientFiles<'a> {
    /// PEM bundle of the trusted roots; `None`: the system's ([`SYSTEM_ROOTS`]).
    pub(crate) ca_file: Option<&'a Path>,
    /// Certificate chain and key presented to servers that ask for one (mutual TLS).
    pub(crate) cert: Option<(&'a Path, &'a Path)>,
}

/// The TLS client configuration of outgoing connections: the server's certificate is always
/// verified (chain to a trusted root, validity, name or IP address).
pub(crate) fn client_config(files: ClientFiles<'_>) -> Result<Arc<ClientConfig>, String> {
    let (key, path) = match files.ca_file {
        Some(p) => ("tls.ca_file", p),
        None => ("tls.ca_file (system roots)", Path::new(SYSTEM_ROOTS)),
    };
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(load_certs(key, path)?);
    if added == 0 {
        return Err(format!(
            "{key} {}: no usable CA certificate",
            path.display()
        ));
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots);
    let config = match files.cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                load_certs("tls.client_cert", cert)?,
                load_key("tls.client_key", key)?,
            )
            .map_err(|e| format!("tls.client_cert: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_roots_load() {
        if !Path::new(SYSTEM_ROOTS).exists() {
            eprintln!("NOTE: no {SYSTEM_ROOTS} here");
            return;
        }
        client_config(ClientFiles::default()).unwrap();
    }

    #[test]
    fn missing_or_empty_ca_file_is_named() {
        let e = client_config(ClientFiles {
            ca_file: Some(Path::new("/nonexistent/ca.pem")),
            cert: None,
        })
        .unwrap_err();
        assert!(e.starts_with("tls.ca_file /nonexistent/ca.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("sbc-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = client_config(ClientFiles {
            ca_file: Some(&empty),
            cert: None,
        })
        .unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
