//! Turns SIGBUS, raised when another program truncates a mapped log under a reader, into one
//! clear sentence and exit code 2 instead of a crash.

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
