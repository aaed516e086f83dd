"""A scripted raw JSON-RPC server for the proxy's edge-case tests (standard library only).

Reads newline-delimited JSON-RPC on stdin and answers on stdout. What it does depends on the
tool called:

  echo     result whose text is the request line exactly as received
  fail     result with isError: true
  rpcerr   a JSON-RPC error, code -32001
  slow     answers after args.ms milliseconds, from its own thread (out of order)
  input    a result of type input_required
  big      a result of args.bytes bytes
  garbage  a line that is not JSON, then the answer
  stray    an answer to an id nobody asked for, then the answer
  never    no answer
  die      exits with code 3 without answering
  kill     kills itself with SIGKILL

Lines that are not JSON are echoed back as they are. At the end of input it exits with 0. With
PEER_TRACE set, every line received is appended to that file.
"""

import json
import os
import signal
import sys
import threading
import time

out_lock = threading.Lock()
stdout = sys.stdout.buffer


def send(obj_or_bytes):
    data = obj_or_bytes if isinstance(obj_or_bytes, bytes) else json.dumps(obj_or_bytes).encode()
    with out_lock:
        stdout.write(data + b"\n")
        stdout.flush()


def text_result(i, text, **extra):
    result = {"content": [{"type": "text", "text": text}]}
    result.update(extra)
    return {"jsonrpc": "2.0", "id": i, "result": result}


def call(i, name, args, raw):
    if name == "echo":
        send(text_result(i, raw.decode("utf-8", "surrogateescape")))
    elif name == "fail":
        send(text_result(i, "boom: the backend said password=hunter2", isError=True))
    elif name == "rpcerr":
        send({"jsonrpc": "2.0", "id": i, "error": {"code": -32001, "message": "no such thing"}})
    elif name == "slow":
        def later():
            time.sleep(args.get("ms", 0) / 1000)
            send(text_result(i, "slept %d" % args.get("ms", 0)))

        threading.Thread(target=later).start()
    elif name == "input":
        send({"jsonrpc": "2.0", "id": i, "result": {"resultType": "input_required",
                                                   "inputRequests": {"q": {"method": "elicitation/create"}}}})
    elif name == "big":
        send(text_result(i, "x" * args.get("bytes", 0)))
    elif name == "garbage":
        send(b"this is not json {")
        send(text_result(i, "after garbage"))
    elif name == "stray":
        send(text_result(987654, "nobody asked"))
        send(text_result(i, "after stray"))
    elif name == "never":
        pass
    elif name == "die":
        os._exit(3)
    elif name == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        send({"jsonrpc": "2.0", "id": i, "error": {"code": -32602, "message": "unknown tool " + name}})


def main():
    trace = open(os.environ["PEER_TRACE"], "ab") if os.environ.get("PEER_TRACE") else None
    for raw in sys.stdin.buffer:
        if trace:
            trace.write(raw)
            trace.flush()
        raw = raw.rstrip(b"\n")
        try:
            msg = json.loads(raw)
        except ValueError:
            send(raw)
            continue
        method = msg.get("method")
        i = msg.get("id")
        params = msg.get("params") or {}
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": i, "result": {
                "protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                "serverInfo": {"name": "raw-peer", "version": "1"}}})
        elif method == "server/discover":
            send({"jsonrpc": "2.0", "id": i, "result": {
                "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
                "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "raw-peer-2026", "version": "1"}}}})
        elif method == "tools/call":
            call(i, params.get("name"), params.get("arguments") or {}, raw)
        elif method == "resources/read":
            send({"jsonrpc": "2.0", "id": i, "result": {"contents": [{"uri": params.get("uri"), "text": "hello"}]}})
        elif method == "prompts/get":
            send({"jsonrpc": "2.0", "id": i, "result": {"messages": []}})
        elif i is not None:
            send({"jsonrpc": "2.0", "id": i, "result": {}})
    # Let answers still being prepared by "slow" threads go out before exiting.
    for t in threading.enumerate():
        if t is not threading.current_thread():
            t.join()


main()
