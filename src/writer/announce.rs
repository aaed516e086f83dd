//! The `config_loaded` record: which configuration a writer started with, found cheaply at the
//! end of the log (the configuration file itself is read above the writer, in `config`).

use std::path::Path;

use crate::error::Result;

/// The `action` of the record a writer appends when it starts with a configuration that
/// differs from the last one the log records.
pub const CONFIG_LOADED: &str = "config_loaded";

/// How far back from the end a writer looks for the last `config_loaded` record. Past it, the
/// configuration is announced again: a start costs at most this much reading, whatever the
/// log's size, and every 16 MiB of log names its configuration.
pub(crate) const CONFIG_SCAN_BYTES: usize = 16 << 20;

/// `config_sha256` of the last `config_loaded` record in the final [`CONFIG_SCAN_BYTES`] of the
/// log at `path`.
///
/// # Errors
///
/// The reader's error when the log cannot be mapped.
pub(crate) fn last_recorded_sha256(path: &Path) -> Result<Option<String>> {
    let snapshot = crate::reader::Snapshot::open(path)?;
    Ok(last_in_window(snapshot.data(), CONFIG_SCAN_BYTES))
}

/// `config_sha256` of the last `config_loaded` record among the complete lines of the final
/// `window` bytes of `data`, found by searching backwards for the action's quoted name: only
/// lines holding it are parsed.
fn last_in_window(data: &[u8], window: usize) -> Option<String> {
    let start = data.len().saturating_sub(window);
    let needle = format!("\"{CONFIG_LOADED}\"");
    let finder = memchr::memmem::FinderRev::new(needle.as_bytes());
    let mut end = data.len();
    while let Some(found) = finder.rfind(&data[start..end]) {
        let at = start + found;
        let line_start = memchr::memrchr(b'\n', &data[..at]).map_or(0, |i| i + 1);
        if line_start < start {
            // The line began before the window.
            return None;
        }
        let line_end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i);
        if let Ok(record) = serde_json::from_slice::<serde_json::Value>(&data[line_start..line_end])
            && record["action"] == CONFIG_LOADED
        {
            return record["details"]["config_sha256"]
                .as_str()
                .map(str::to_owned);
        }
        end = line_start;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(sha: &str) -> String {
        format!(
            "{{\"seq\":0,\"action\":\"config_loaded\",\"details\":{{\"config_sha256\":\"{sha}\"}}}}\n"
        )
    }

    #[test]
    fn the_last_config_loaded_in_the_window_is_found() {
        let call =
            "{\"seq\":1,\"action\":\"mcp_call\",\"details\":{\"action\":\"config_loaded\"}}\n";
        let log = format!("{}{}{call}{call}", stamp("a"), stamp("b"));
        assert_eq!(
            last_in_window(log.as_bytes(), 1 << 20).as_deref(),
            Some("b")
        );
        // Only the part of the log inside the window counts.
        let window = 2 * call.len() + stamp("b").len();
        assert_eq!(last_in_window(log.as_bytes(), window).as_deref(), Some("b"));
        assert_eq!(last_in_window(log.as_bytes(), window - 1), None);
        assert_eq!(last_in_window(call.repeat(3).as_bytes(), 1 << 20), None);
    }
}
