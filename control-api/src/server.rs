//! The HTTP/1.1 server (HTTPS with rustls when a certificate is given) on the caller's
//! current-thread runtime, inside a [`tokio::task::LocalSet`]: it accepts at most
//! [`ServerConfig::max_connections`] connections at once (more wait in the kernel's backlog),
//! gives each [`ServerConfig::header_timeout`] to send its headers (and its TLS handshake) and at
//! most [`ServerConfig::connection_lifetime`] in all, refuses bodies over
//! [`ServerConfig::max_body`] with 413, and hands each request to [`crate::routes::respond`].

use std::convert::Infallible;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE,
};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

pub use tokio_rustls::rustls;

use crate::handle::Control;
use crate::routes::{respond, Auth, Reply};

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The bearer token expected.
    pub auth: Auth,
    /// HTTPS with this configuration; plain HTTP when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The largest request body (413 beyond).
    pub max_body: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a connection has for its TLS handshake, and for each request's headers.
    pub header_timeout: Duration,
    /// Time a connection may stay open in all.
    pub connection_lifetime: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            auth: Auth::default(),
            tls: None,
            max_body: 64 * 1024,
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(300),
        }
    }
}

/// Serve `listener` with `handle` until `shutdown` completes. Must run inside a
/// [`tokio::task::LocalSet`] of a current-thread runtime (the handle is not `Send`).
pub async fn serve(
    listener: TcpListener,
    cfg: ServerConfig,
    handle: Rc<dyn Control>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let acceptor = cfg.tls.clone().map(TlsAcceptor::from);
    let cfg = Rc::new(cfg);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => return,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("api: accept: {e}");
                    // Out of descriptors or similar: give the system a moment.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (cfg, handle, acceptor) = (cfg.clone(), handle.clone(), acceptor.clone());
        tokio::task::spawn_local(async move {
            let lifetime = cfg.connection_lifetime;
            let work = async {
                match acceptor {
                    Some(a) => {
                        match tokio::time::timeout(cfg.header_timeout, a.accept(stream)).await {
                            Ok(Ok(tls)) => connection(tls, &cfg, handle).await,
                            Ok(Err(e)) => tracing::debug!("api: TLS handshake: {e}"),
                            Err(_) => tracing::debug!("api: TLS handshake timed out"),
                        }
                    }
                    None => connection(stream, &cfg, handle).await,
                }
            };
            let _ = tokio::time::timeout(lifetime, work).await;
            drop(slot);
        });
    }
}

async fn connection<IO>(io: IO, cfg: &Rc<ServerConfig>, handle: Rc<dyn Control>)
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let c = cfg.clone();
    let svc = hyper::service::service_fn(move |req| {
        let (c, h) = (c.clone(), handle.clone());
        async move { Ok::<_, Infallible>(answer(req, &c, &*h).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(io), svc);
    if let Err(e) = conn.await {
        tracing::debug!("api: connection: {e}");
    }
}

fn to_response(r: Reply, close: bool) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(r.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if close {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn too_large(max: usize) -> Response<Full<Bytes>> {
    to_response(
        Reply::error(413, &format!("request body over {max} bytes"), None),
        true,
    )
}

async fn answer(
    req: Request<Incoming>,
    cfg: &ServerConfig,
    handle: &dyn Control,
) -> Response<Full<Bytes>> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cfg.max_body as u64) {
        return too_large(cfg.max_body);
    }
    let method = req.method().as_str().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match Limited::new(req.into_body(), cfg.max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(cfg.max_body),
        Err(e) => {
            return to_response(
                Reply::error(400, &format!("cannot read the request body: {e}"), None),
                true,
            )
        }
    };
    let reply = respond(
        handle,
        &cfg.auth,
        &method,
        &target,
        authorization.as_deref(),
        &body,
    );
    to_response(reply, false)
}

/// Serve `listener` with `handle` on a current-thread runtime of this thread, calling `tick` every
/// `every` between requests until it returns false; then stop serving and return. An error if
/// the runtime cannot start or the socket cannot be served (nothing was served then).
pub fn run_blocking(
    listener: std::net::TcpListener,
    cfg: ServerConfig,
    handle: Rc<dyn Control>,
    every: Duration,
    mut tick: impl FnMut() -> bool,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::task::spawn_local(serve(listener, cfg, handle, async {
            let _ = stop_rx.await;
        }));
        while tick() {
            tokio::time::sleep(every).await;
        }
        let _ = stop_tx.send(());
        let _ = task.await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    use super::*;
    use crate::testing::Fake;

    /// Serve on a thread of its own for `secs`; the address.
    fn server(cfg: ServerConfig, secs: u64) -> std::net::SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(secs);
            run_blocking(
                l,
                cfg,
                Rc::new(Fake::default()),
                Duration::from_millis(10),
                || Instant::now() < until,
            )
            .unwrap();
        });
        addr
    }

    fn health(s: &mut TcpStream) -> String {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn a_connection_that_does_not_finish_its_headers_is_closed() {
        let addr = server(
            ServerConfig {
                header_timeout: Duration::from_millis(300),
                ..ServerConfig::default()
            },
            5,
        );
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
        let t = Instant::now();
        let mut buf = Vec::new();
        // Closed (possibly with a 408) well before the read timeout.
        let _ = s.read_to_end(&mut buf);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    }

    #[test]
    fn connections_past_the_bound_wait_for_a_slot() {
        let addr = server(
            ServerConfig {
                max_connections: 1,
                header_timeout: Duration::from_millis(800),
                ..ServerConfig::default()
            },
            5,
        );
        // The first connection holds the only slot (it sends nothing) until its header timeout.
        let _idle = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
        let answer = health(&mut s);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            t.elapsed() >= Duration::from_millis(500),
            "served at once: {:?}",
            t.elapsed()
        );
    }
}
