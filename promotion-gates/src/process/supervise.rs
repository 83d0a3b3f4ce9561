//! Supervising the child: its process group is killed on timeout, after the main process
//! exits, and when an evaluation is dropped half-way, so no descendant outlives the gate.

use std::io;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Captured, StreamCapture, READ_CHUNK};

pub(super) enum Ending {
    Exited(ExitStatus),
    TimedOut { output_closed: bool },
}

pub(super) struct Supervised {
    pub(super) ending: Ending,
    pub(super) duration: Duration,
    pub(super) leftovers: bool,
    pub(super) stdout: Captured,
    pub(super) stderr: Captured,
}

/// Kills the child's process group: on timeout, after the main process exits, and when the
/// evaluation is dropped half-way.
pub(super) struct GroupGuard {
    pgid: Pid,
    armed: AtomicBool,
}

impl GroupGuard {
    pub(super) fn new(pgid: Pid) -> Self {
        GroupGuard {
            pgid,
            armed: AtomicBool::new(true),
        }
    }
    /// Sends SIGKILL to the group; true when some process received it.
    pub(super) fn kill(&self) -> bool {
        // `killpg` with 0 or 1 would signal our own group or be platform-specific.
        if !self.armed.load(Ordering::Relaxed) || self.pgid.as_raw() <= 1 {
            return false;
        }
        killpg(self.pgid, Signal::SIGKILL).is_ok()
    }
    /// Kills what is left once the main process has been reaped, then disarms (the group id
    /// may be reused once the group is empty).
    pub(super) fn sweep(&self) -> bool {
        let killed = self.kill();
        self.armed.store(false, Ordering::Relaxed);
        killed
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(super) async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    capture: &mut StreamCapture,
) -> io::Result<()> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => return Ok(()),
            Ok(n) => capture.feed(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
