//! `nexus-audit proxy` with the official MCP Python SDK (mcp 2.3.0): its client and server, in
//! the 2026-07-28 stateless protocol and in legacy (initialize handshake) mode, and its server
//! acting on lines `serde_json` refuses.
//!
//! The SDK is installed into `target/mcp-venv` by `tests/mcp/setup-venv.sh` when missing (the
//! script takes a lock, so parallel tests do not race). Without network access to `PyPI` on a
//! clean checkout these tests fail, naming the script: they never pass silently.

#[path = "mcp/session.rs"]
mod session;

use session::{
    client_through_proxy_matches_direct, python_sdk_server,
    sdk_server_runs_hostile_calls_and_each_is_recorded,
};

#[test]
fn sdk_client_gets_the_same_results_through_the_proxy_in_the_stateless_era() {
    client_through_proxy_matches_direct(
        "modern",
        &python_sdk_server(),
        "nexus-test-server",
        "Error executing tool explode",
    );
}

#[test]
fn sdk_client_gets_the_same_results_through_the_proxy_in_legacy_mode() {
    client_through_proxy_matches_direct(
        "legacy",
        &python_sdk_server(),
        "nexus-test-server",
        "Error executing tool explode",
    );
}

/// The Python SDK (pydantic's JSON parser, stdin decoded with errors="replace") runs calls
/// holding a number beyond f64, NaN, invalid UTF-8 or two `method` keys; each is recorded.
#[test]
fn python_sdk_server_runs_calls_serde_refuses_and_each_is_recorded() {
    sdk_server_runs_hostile_calls_and_each_is_recorded(
        &python_sdk_server(),
        &[
            "number_out_of_range",
            "non_finite_number",
            "invalid_utf8",
            "duplicate_key",
        ],
    );
}
