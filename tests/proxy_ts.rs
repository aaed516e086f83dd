//! `nexus-audit proxy` in front of a server on the official MCP TypeScript SDK
//! (`tests/mcp/server.mjs`, plain JavaScript): the Python SDK's client gets the same answers
//! through the proxy as direct, and the lines `serde_json` refuses that the TypeScript server
//! runs are each recorded.
//!
//! The SDK is installed into `target/mcp-node` by `tests/mcp/setup-node.sh` (pinned by
//! `tests/mcp/node/package-lock.json`; needs node, npm and the npm registry once); the client
//! comes from `target/mcp-venv` (`tests/mcp/setup-venv.sh`). Without them these tests fail,
//! naming the script.

#[path = "mcp/session.rs"]
mod session;

use session::{
    client_through_proxy_matches_direct, sdk_server_runs_hostile_calls_and_each_is_recorded,
    ts_sdk_server,
};

#[test]
fn sdk_client_gets_the_same_results_from_a_typescript_server_through_the_proxy() {
    client_through_proxy_matches_direct(
        "legacy",
        &ts_sdk_server(),
        "nexus-ts-server",
        "exploded: on purpose",
    );
}

/// The TypeScript SDK (`JSON.parse`, stdin decoded as UTF-8 with replacement) runs calls
/// holding a lone surrogate, a number beyond f64, nesting deeper than serde's 127 levels,
/// invalid UTF-8 or two `method` keys; each is recorded.
#[test]
fn typescript_sdk_server_runs_calls_serde_refuses_and_each_is_recorded() {
    sdk_server_runs_hostile_calls_and_each_is_recorded(
        &ts_sdk_server(),
        &[
            "lone_surrogate",
            "number_out_of_range",
            "deep_nesting",
            "invalid_utf8",
            "duplicate_key",
        ],
    );
}
