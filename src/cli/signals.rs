//! Signals: SIGBUS, raised when another program truncates a mapped log under a reader, becomes
//! one clear sentence and exit code 2 instead of a crash; and the stop flag that `append
//! --stdin` and `ship` raise on SIGTERM, SIGINT (and SIGHUP) to end cleanly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::Context as _;
pub use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The first of the signals raises `stop`; a second ends the process at once (exit 128 +
/// signal), in case the clean stop hangs.
pub struct Signals {
    /// Raised by the first signal.
    pub stop: Arc<AtomicBool>,
    /// Which signal that was (0: none yet).
    received: Arc<AtomicUsize>,
}

impl Signals {
    /// Catches each of `signals`.
    pub fn install(signals: &[i32]) -> anyhow::Result<Self> {
        let received = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        for &signal in signals {
            // NOTE: the order matters: the shutdown is armed by the first signal, for the next,
            // and the signal is stored before the flag is raised, so whoever sees the flag can
            // name the signal.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                128 + signal,
                Arc::clone(&stop),
            )
            .and_then(|_| {
                signal_hook::flag::register_usize(
                    signal,
                    Arc::clone(&received),
                    usize::try_from(signal).unwrap_or(0),
                )
            })
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .with_context(|| {
                format!(
                    "cannot catch {}",
                    signal_name(usize::try_from(signal).unwrap_or(0))
                )
            })?;
        }
        Ok(Signals { stop, received })
    }

    /// The signal received (0 if none).
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

/// The name of a signal the CLI catches.
pub fn signal_name(signal: usize) -> &'static str {
    match i32::try_from(signal) {
        Ok(SIGTERM) => "SIGTERM",
        Ok(SIGINT) => "SIGINT",
        Ok(SIGHUP) => "SIGHUP",
        _ => "a signal",
    }
}

/// Installs the handler. Readers map the log; if a program other than nexus-audit truncates it
/// while it is mapped, touching a page past the new end raises SIGBUS.
#[allow(unsafe_code)]
pub fn install_sigbus_handler() {
    extern "C" fn on_sigbus(_: libc::c_int) {
        const MSG: &[u8] = b"nexus-audit: error: the log file shrank while it was being read (another program truncated it); nothing was changed\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is a static buffer.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(2);
        }
    }
    // SAFETY: `action` is fully initialised before use; the handler above only calls
    // async-signal-safe functions and never returns into the faulting code.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        libc::sigemptyset(&raw mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &raw const action, std::ptr::null_mut());
    }
}
