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

It reads each line the way a lenient Python server does: a leading byte-order mark is
skipped, invalid UTF-8 becomes U+FFFD, and `json` takes lone surrogates, NaN, numbers beyond a
float, raw control characters and deep nesting. A batch (an array) is answered with an array.
Lines that are not JSON are echoed back as they are. At the end of input it exits with 0. With
PEER_TRACE set, every line received is appended to that file.

With PEER_STREAM set it reads its input as a stream of JSON values, as Go's json.Decoder does:
a message may span lines, and several may share one.
"""

import codecs
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


def call(i, name, args, raw, out=None):
    out = out or send
    if name == "echo":
        out(text_result(i, raw.decode("utf-8", "surrogateescape")))
    elif name == "fail":
        out(text_result(i, "boom: the backend said password=hunter2", isError=True))
    elif name == "rpcerr":
        out({"jsonrpc": "2.0", "id": i, "error": {"code": -32001, "message": "no such thing"}})
    elif name == "slow":
        def later():
            time.sleep(args.get("ms", 0) / 1000)
            send(text_result(i, "slept %d" % args.get("ms", 0)))

        threading.Thread(target=later).start()
    elif name == "input":
        out({"jsonrpc": "2.0", "id": i, "result": {"resultType": "input_required",
                                                   "inputRequests": {"q": {"method": "elicitation/create"}}}})
    elif name == "big":
        out(text_result(i, "x" * args.get("bytes", 0)))
    elif name == "garbage":
        out(b"this is not json {")
        out(text_result(i, "after garbage"))
    elif name == "stray":
        out(text_result(987654, "nobody asked"))
        out(text_result(i, "after stray"))
    elif name == "never":
        pass
    elif name == "die":
        os._exit(3)
    elif name == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        out({"jsonrpc": "2.0", "id": i, "error": {"code": -32602, "message": "unknown tool " + name}})


def parse(text):
    """Python's json, as lenient as it goes."""
    return json.loads(text, strict=False)


def handle(msg, raw, out):
    """Answers one message through out(obj_or_bytes)."""
    if not isinstance(msg, dict):
        return
    method = msg.get("method")
    i = msg.get("id")
    params = msg.get("params") or {}
    if method == "initialize":
        out({"jsonrpc": "2.0", "id": i, "result": {
            "protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
            "serverInfo": {"name": "raw-peer", "version": "1"}}})
    elif method == "server/discover":
        out({"jsonrpc": "2.0", "id": i, "result": {
            "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "raw-peer-2026", "version": "1"}}}})
    elif method == "tools/call":
        call(i, params.get("name"), params.get("arguments") or {}, raw, out)
    elif method == "resources/read":
        out({"jsonrpc": "2.0", "id": i, "result": {"contents": [{"uri": params.get("uri"), "text": "hello"}]}})
    elif method == "prompts/get":
        out({"jsonrpc": "2.0", "id": i, "result": {"messages": []}})
    elif i is not None:
        out({"jsonrpc": "2.0", "id": i, "result": {}})


def handle_value(msg, raw):
    if isinstance(msg, list):
        answers = []
        for m in msg:
            handle(m, raw, answers.append)
        objs = [a for a in answers if not isinstance(a, bytes)]
        if objs:
            send(objs)
    else:
        handle(msg, raw, send)


def lines(trace):
    for raw in sys.stdin.buffer:
        if trace:
            trace.write(raw)
            trace.flush()
        raw = raw.rstrip(b"\n")
        try:
            msg = parse(raw.decode("utf-8-sig", "replace"))
        except (ValueError, RecursionError):
            send(raw)
            continue
        handle_value(msg, raw)


def stream(trace):
    decoder = json.JSONDecoder(strict=False)
    utf8 = codecs.getincrementaldecoder("utf-8")("replace")
    buf = ""
    while True:
        chunk = os.read(0, 65536)
        if trace and chunk:
            trace.write(chunk)
            trace.flush()
        buf += utf8.decode(chunk, final=not chunk)
        while True:
            buf = buf.lstrip(" \t\r\n\ufeff")
            if not buf:
                break
            try:
                msg, end = decoder.raw_decode(buf)
            except (ValueError, RecursionError) as e:
                if chunk and getattr(e, "pos", 0) >= len(buf.rstrip()):
                    break  # the value goes on in the next chunk
                # Not JSON: skip the line, as a reader that resynchronises would.
                nl = buf.find("\n")
                buf = "" if nl < 0 else buf[nl + 1:]
                continue
            raw = buf[:end].encode("utf-8", "surrogatepass")
            buf = buf[end:]
            handle_value(msg, raw)
        if not chunk:
            return


def main():
    trace = open(os.environ["PEER_TRACE"], "ab") if os.environ.get("PEER_TRACE") else None
    if os.environ.get("PEER_STREAM"):
        stream(trace)
    else:
        lines(trace)
    # Let answers still being prepared by "slow" threads go out before exiting.
    for t in threading.enumerate():
        if t is not threading.current_thread():
            t.join()


main()
