//! The event loops that drive a [`Worker`]: io_uring ([`uring`]) and epoll + `recvmmsg`
//! ([`epoll`], its batches in `mmsg`), and the choice between them with the fall-back from io_uring
//! to epoll. They name sockets and connections by the tokens of [`crate::tokens`]; the io_uring
//! provided-buffer ring is the `sbc-bufring` crate.

pub(crate) mod epoll;
mod mmsg;
pub(crate) mod uring;

use crate::worker::Worker;

/// Which loop a worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Driver {
    IoUring,
    Epoll,
}

/// Run `w` on `driver` until the stop flag is set (io_uring failing at run time continues on epoll);
/// the worker's last counters then go to the control thread.
pub(crate) fn run(mut w: Worker, driver: Driver) {
    let result = match driver {
        Driver::IoUring => match uring::run(&mut w) {
            Err(e) if !w.stopping() => {
                tracing::warn!(
                    worker = w.id,
                    "io_uring driver failed ({e}); continuing on epoll"
                );
                epoll::run(&mut w)
            }
            other => other,
        },
        Driver::Epoll => epoll::run(&mut w),
    };
    if let Err(e) = result {
        tracing::error!(worker = w.id, "worker stopped on error: {e}");
    }
    w.finish()
}
