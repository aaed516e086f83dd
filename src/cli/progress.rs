//! A progress bar on stderr for long reads, shown only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressStyle};

use super::Context;

/// Files smaller than this finish too fast for a bar to help.
const MIN_BYTES: u64 = 64 << 20;

pub struct Progress(Option<ProgressBar>);

impl Progress {
    pub fn new(ctx: &Context, total: u64, what: &str) -> Self {
        if !ctx.stderr_tty || total < MIN_BYTES {
            return Progress(None);
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        Progress(Some(bar))
    }

    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
