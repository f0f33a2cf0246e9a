#!/usr/bin/env python3
"""The notes plugin as a remote plugin, in Python 3 with only the standard library.

It speaks the remote plugin protocol of docs/remote-protocol.md: the host calls it with signed HTTP
requests, and it uses the host's storage and events through the SDK over HTTP, with the SDK token each
call carries. It behaves like Plugins/Sources/NotesPlugin/NotesPlugin.swift:

    POST /resources/notes  {"text": "..."}   -> 201 the note, stored as note/{id}, notes.created published
    GET  /resources/notes?limit=&after=      -> 200 {"notes": [...], "next": id or null}
    GET  /resources/notes/{id}               -> 200 the note, or 404 NOT_FOUND

Run it with:

    PLUGIN_HOST_INSTALL_SECRET=phk_... python3 notes_plugin.py --port 9001

Enablement secrets are kept in memory only; after a restart the host sends `enabled` again ("resumed").
"""

import argparse
import base64
import hashlib
import heapq
import hmac
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PLUGIN_ID = "example.notes"
PLUGIN_VERSION = "1.0.0"
MAXIMUM_LIFETIME = 600          # seconds an expiry may lie ahead; bounds how long call ids are remembered
MAXIMUM_BODY = 8 * 1024 * 1024  # the host limits bodies to 1 MiB by default
SDK_TIMEOUT = 5.0
ENVELOPE_HEADERS = ("X-Plugin-Host-Call-Id", "X-Plugin-Host-Expires", "X-Plugin-Host-Content-Sha256",
                    "X-Plugin-Host-Context", "X-Plugin-Host-Signature")
HOOK_PATHS = {"/plugin-host/v1/enabled": "enabled", "/plugin-host/v1/disabled": "disabled",
              "/plugin-host/v1/event": "event"}
CALL_KINDS = ("request", "event", "enabled", "disabled")


class Refusal(Exception):
    """A call refused by the protocol layer: 401 with `X-Plugin-Host-Error: {code}`."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


class PluginFailure(Exception):
    """An error answer of the plugin itself: `status` with `{"error": {"code", "message"}}`."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def json_bytes(value):
    """Compact JSON with sorted keys, in UTF-8 (what the Swift SDK's encoder writes, bar `\\/`)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def error_body(code, message):
    return {"error": {"code": code, "message": message}}


def decode_context(header):
    """The context of a call from its base64url header, or a BAD_CONTEXT refusal."""
    try:
        text = header.replace("-", "+").replace("_", "/")
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        context = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise Refusal("BAD_CONTEXT", "X-Plugin-Host-Context is not base64url JSON") from None
    if not (isinstance(context, dict) and is_context(context)):
        raise Refusal("BAD_CONTEXT", "X-Plugin-Host-Context is not a version 1 call context")
    return context


def is_context(context):
    """Whether a decoded context has the fields and types of the doc's context JSON, with `v` 1."""
    def text(value):
        return isinstance(value, str)

    def integer(value):
        return isinstance(value, int) and not isinstance(value, bool)

    caller, sdk = context.get("caller"), context.get("sdk")
    return (integer(context.get("v")) and context["v"] == 1
            and context.get("call") in CALL_KINDS
            and all(text(context.get(key)) for key in ("tenant", "workspace", "plugin"))
            and (context.get("requestId") is None or text(context["requestId"]))
            and isinstance(caller, dict) and text(caller.get("subject")) and text(caller.get("role"))
            and isinstance(context.get("grants"), list) and all(text(grant) for grant in context["grants"])
            and isinstance(context.get("config"), dict)
            and isinstance(sdk, dict) and text(sdk.get("url")) and text(sdk.get("token")) and integer(sdk.get("expires")))


class RemoteState:
    """What the protocol layer remembers: the install secret's source, the enablement secret of each
    workspace, and the call ids seen, each until its expiry. Shared by all handler threads."""

    def __init__(self, install_secret_file=None):
        self.install_secret_file = install_secret_file
        self.lock = threading.Lock()
        self.enablements = {}   # workspace -> enablement secret
        self.seen_calls = {}    # call id -> expiry (Unix seconds)
        self.expiries = []      # heap of (expiry, call id), to prune seen_calls in order

    def install_secret(self):
        """Read on every use, so the file may be written or rotated while the server runs."""
        if self.install_secret_file:
            try:
                with open(self.install_secret_file, encoding="utf-8") as file:
                    secret = file.read().strip()
                if secret:
                    return secret
            except OSError:
                pass
        return os.environ.get("PLUGIN_HOST_INSTALL_SECRET", "").strip() or None

    def enablement_secret(self, workspace):
        with self.lock:
            return self.enablements.get(workspace)

    def set_enablement_secret(self, workspace, secret):
        with self.lock:
            if secret is None:
                self.enablements.pop(workspace, None)
            else:
                self.enablements[workspace] = secret

    def remember_call(self, call_id, expires, now):
        """Records a call id; False if it was seen before. Ids past their expiry are forgotten."""
        with self.lock:
            while self.expiries and self.expiries[0][0] < now:
                _, old = heapq.heappop(self.expiries)
                self.seen_calls.pop(old, None)
            if call_id in self.seen_calls:
                return False
            self.seen_calls[call_id] = expires
            heapq.heappush(self.expiries, (expires, call_id))
            return True

    def verify(self, method, target, call, headers, body):
        """Checks a signed call in the order of the doc's "What the remote must check" and returns its
        context. `call` is the kind the path means; `target` the path and ?query of the request line."""
        values = [headers.get(name) for name in ENVELOPE_HEADERS]
        if any(value is None for value in values):
            missing = [name for name, value in zip(ENVELOPE_HEADERS, values) if value is None]
            raise Refusal("MISSING_SIGNATURE", "the call lacks " + ", ".join(missing))
        call_id, expires_text, content_hash, context_text, signature = values
        context = decode_context(context_text)
        now = int(time.time())
        if not re.fullmatch(r"[+-]?[0-9]+", expires_text):
            raise Refusal("EXPIRED", "X-Plugin-Host-Expires is not a Unix time in seconds")
        expires = int(expires_text)
        if expires < now:
            raise Refusal("EXPIRED", f"the call expired at {expires}; it is now {now}")
        if expires > now + MAXIMUM_LIFETIME:
            raise Refusal("EXPIRED", f"the call expires more than {MAXIMUM_LIFETIME} s ahead; check the clocks")
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest().encode(), content_hash.encode("latin-1")):
            raise Refusal("CONTENT_MISMATCH", "the body's SHA-256 differs from X-Plugin-Host-Content-Sha256")
        if call == "enabled":
            key = self.install_secret()
            if key is None:
                raise Refusal("BAD_SIGNATURE", "no install secret is configured on this remote")
        else:
            key = self.enablement_secret(context["workspace"])
            if key is None:
                raise Refusal("UNKNOWN_ENABLEMENT", f"no enablement secret is known for workspace {context['workspace']}")
        text = "\n".join(["PH1-HMAC-SHA256", call_id, expires_text, method.upper(), target, content_hash, context_text])
        expected = "v1=" + hmac.new(key.encode("utf-8"), text.encode("latin-1"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode("latin-1")):
            raise Refusal("BAD_SIGNATURE", "the signature does not match")
        if context["plugin"] != PLUGIN_ID or context["call"] != call:
            raise Refusal("BAD_CONTEXT", f"the call is for {context['plugin']} {context['call']}; this remote serves "
                                         f"{PLUGIN_ID} and the path means {call}")
        if not self.remember_call(call_id, expires, now):
            raise Refusal("REPLAYED", f"call {call_id} was already received")
        return context


class HostSDK:
    """The host's services over HTTP, with the SDK token of one call. Host errors become PluginFailure
    with the host's status and code, so the caller sees e.g. 403 PERMISSION_DENIED."""

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP proxy

    def __init__(self, sdk):
        self.base, self.token = sdk["url"].rstrip("/"), sdk["token"]

    def call(self, name, body=None):
        request = urllib.request.Request(
            f"{self.base}/sdk/v1/{name}", data=None if body is None else json_bytes(body),
            method="GET" if body is None else "POST",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                     "Accept": "application/json"})
        try:
            with self.opener.open(request, timeout=SDK_TIMEOUT) as response:
                raw = response.read()
        except urllib.error.HTTPError as failure:
            try:
                error = json.loads(failure.read())["error"]
                code, message = error["code"], error["message"]
            except (ValueError, KeyError, TypeError, OSError):
                raise PluginFailure(502, "HOST_UNREACHABLE", f"the host answered {name} with {failure.code} "
                                                             "and no error body") from None
            raise PluginFailure(failure.code, code, message) from None
        except (OSError, ValueError) as failure:  # URLError, timeouts, refused or closed connections
            raise PluginFailure(502, "HOST_UNREACHABLE", f"cannot reach the host for {name}: {failure}") from None
        try:
            answer = json.loads(raw)
            if not isinstance(answer, dict):
                raise ValueError
            return answer
        except ValueError:
            raise PluginFailure(502, "HOST_UNREACHABLE", f"the host's answer to {name} is not a JSON object") from None

    def get(self, key):
        """The stored value under key, or None."""
        try:
            return base64.b64decode(self.call("storage/get", {"key": key})["value"])
        except PluginFailure as failure:
            if failure.code == "NOT_FOUND":
                return None
            raise

    def put(self, key, value):
        return self.call("storage/put", {"key": key, "value": base64.b64encode(value).decode("ascii")})

    def list(self, prefix, limit, after=None):
        body = {"prefix": prefix, "limit": limit}
        if after is not None:
            body["after"] = after
        return self.call("storage/list", body)

    def publish(self, event_type, payload):
        return self.call("events/publish", {"type": event_type, "payload": base64.b64encode(payload).decode("ascii")})

    def commit(self, operations):
        """A write batch: puts, deletes, checks and publishes committed together, all or none.
        Each operation is a dict: {"op": "put", "key", "value": bytes, "ifVersion"?},
        {"op": "delete", "key", "ifVersion"?}, {"op": "check", "key", "version"} or
        {"op": "publish", "type", "payload": bytes}. Returns the host's results, one per operation."""
        wire = []
        for operation in operations:
            operation = dict(operation)
            for field in ("value", "payload"):
                if field in operation:
                    operation[field] = base64.b64encode(operation[field]).decode("ascii")
            wire.append(operation)
        return self.call("batch", {"operations": wire})["results"]


class NotesPlugin:
    """The plugin's own behaviour, the same as the Swift NotesPlugin."""

    def handle(self, method, path, query, body, context):
        """Answers a request below /resources/ with (status, JSON value)."""
        sdk = HostSDK(context["sdk"])
        if (method, path) == ("POST", "notes"):
            return self.create(body, context, sdk)
        if (method, path) == ("GET", "notes"):
            return self.list(query, sdk)
        if method == "GET" and path.startswith("notes/"):
            note_id = path[len("notes/"):]
            stored = sdk.get(f"note/{note_id}")
            if stored is None:
                raise PluginFailure(404, "NOT_FOUND", f"note {note_id} not found")
            return 200, json.loads(stored)
        raise PluginFailure(404, "NOT_FOUND", f"{method} {path} not found")

    def create(self, body, context, sdk):
        try:
            value = json.loads(body)
        except ValueError:
            raise PluginFailure(400, "BAD_REQUEST", "the body is not valid JSON") from None
        if not isinstance(value, dict) or "text" not in value:
            raise PluginFailure(400, "BAD_REQUEST", "missing field text")
        text = value["text"]
        if not isinstance(text, str):
            raise PluginFailure(400, "BAD_REQUEST", "field text must be String")
        max_length = context["config"].get("maxLength")
        if not isinstance(max_length, int) or isinstance(max_length, bool):
            max_length = 10_000
        if not 1 <= len(text) <= max_length:
            raise PluginFailure(400, "BAD_REQUEST", f"text must have 1 to {max_length} characters")
        now = time.time()
        # Keys sort by creation time, so listing returns notes in the order they were written.
        note_id = "%013d-%s" % (int(now * 1000), secrets.token_hex(4))
        note = {"id": note_id, "text": text, "createdBy": context["caller"]["subject"],
                "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
        # The note and its event commit together, as in the Swift plugin.
        sdk.commit([{"op": "put", "key": f"note/{note_id}", "value": json_bytes(note), "ifVersion": 0},
                    {"op": "publish", "type": "notes.created", "payload": json_bytes(note)}])
        return 201, note

    def list(self, query, sdk):
        parameters = urllib.parse.parse_qs(query, keep_blank_values=True)
        limit_text = parameters.get("limit", [""])[0]
        limit = int(limit_text) if re.fullmatch(r"[+-]?[0-9]{1,18}", limit_text) else 100  # as Swift's Int(_:)
        after = parameters.get("after", [None])[0]
        page = sdk.list("note/", limit, None if after is None else f"note/{after}")
        try:
            notes = [json.loads(base64.b64decode(entry["value"], validate=True)) for entry in page["entries"]]
        except (ValueError, KeyError, TypeError):
            raise PluginFailure(500, "PLUGIN_ERROR", "a stored note or the host's list answer is malformed") from None
        cursor = page.get("nextCursor")
        return 200, {"notes": notes, "next": cursor[len("note/"):] if isinstance(cursor, str) else None}


class Handler(BaseHTTPRequestHandler):
    """One HTTP/1.1 connection; keeps it alive, since every answer carries Content-Length."""

    protocol_version = "HTTP/1.1"
    server_version = f"notes-plugin/{PLUGIN_VERSION}"

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def dispatch(self):
        try:
            body = self.read_body()
        except PluginFailure as failure:
            self.close_connection = True
            return self.answer(failure.status, error_body(failure.code, failure.message))
        state = self.server.state
        path, _, query = self.path.partition("?")
        try:
            if path == "/health":
                if self.command not in ("GET", "HEAD"):
                    raise PluginFailure(405, "METHOD_NOT_ALLOWED", "use GET /health")
                self.answer(200, {"status": "ok", "plugin": {"id": PLUGIN_ID, "version": PLUGIN_VERSION}})
            elif path == "/resources" or path.startswith("/resources/"):
                context = state.verify(self.command, self.path, "request", self.headers, body)
                resource = urllib.parse.unquote(path[len("/resources/"):])
                self.answer(*self.server.plugin.handle(self.command.upper(), resource, query, body, context))
            elif path in HOOK_PATHS:
                if self.command != "POST":
                    raise PluginFailure(405, "METHOD_NOT_ALLOWED", f"use POST {path}")
                call = HOOK_PATHS[path]
                context = state.verify(self.command, self.path, call, self.headers, body)
                if call == "enabled":
                    state.set_enablement_secret(context["workspace"], self.enablement_secret(body))
                elif call == "disabled":
                    state.set_enablement_secret(context["workspace"], None)
                self.answer(200, {})  # notes has no enabled hook and subscribes to no events
            else:
                raise PluginFailure(404, "NOT_FOUND", f"{self.command} {path} not found")
        except Refusal as refusal:
            self.answer(401, error_body(refusal.code, refusal.message), {"X-Plugin-Host-Error": refusal.code})
        except PluginFailure as failure:
            self.answer(failure.status, error_body(failure.code, failure.message))
        except Exception:  # a bug: log it, answer 500, keep serving
            traceback.print_exc(file=sys.stderr)
            self.answer(500, error_body("PLUGIN_ERROR", "the plugin failed; see its log"))

    @staticmethod
    def enablement_secret(body):
        """The secret of an `enabled` body; a resumed enablement stores it the same way."""
        try:
            value = json.loads(body)
            secret, resumed = value["enablementSecret"], value.get("resumed", False)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise PluginFailure(400, "BAD_REQUEST", "the body must be {\"enablementSecret\", \"resumed\"}") from None
        if not isinstance(secret, str) or not re.fullmatch(r"phk_[A-Za-z0-9_-]{43}", secret) or not isinstance(resumed, bool):
            raise PluginFailure(400, "BAD_REQUEST", "enablementSecret must be phk_ and 43 base64url characters")
        return secret

    def read_body(self):
        """Exactly Content-Length bytes, or the chunks of a chunked body."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                try:
                    size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
                except ValueError:
                    raise PluginFailure(400, "BAD_REQUEST", "malformed chunked body") from None
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass  # trailers
                    return bytes(data)
                if len(data) + size > MAXIMUM_BODY:
                    raise PluginFailure(413, "PAYLOAD_TOO_LARGE", "the body is too large")
                data += self.rfile.read(size)
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length", "0").strip()
        if not length.isdigit():
            raise PluginFailure(400, "BAD_REQUEST", "malformed Content-Length")
        if int(length) > MAXIMUM_BODY:
            raise PluginFailure(413, "PAYLOAD_TOO_LARGE", "the body is too large")
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            raise PluginFailure(400, "BAD_REQUEST", "the body ended early")
        return body

    def answer(self, status, value, headers=None):
        data = json_bytes(value)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, header in (headers or {}).items():
            self.send_header(name, header)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format, *args):
        pass  # no line per request

    def log_error(self, format, *args):
        sys.stderr.write(f"notes_plugin: {format % args}\n")


class NotesServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, state):
        super().__init__(address, Handler)
        self.state, self.plugin = state, NotesPlugin()


def main(argv=None):
    parser = argparse.ArgumentParser(description="The notes plugin as a remote plugin (docs/remote-protocol.md).")
    parser.add_argument("--port", type=int, required=True, help="port to listen on; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--install-secret-file", help="file holding the install secret, read on every enabled "
                                                      "call; else PLUGIN_HOST_INSTALL_SECRET")
    args = parser.parse_args(argv)
    server = NotesServer((args.host, args.port), RemoteState(args.install_secret_file))
    stop = threading.Event()
    # A parent may start us with signals blocked (threads of Swift and libdispatch block them, and a
    # child inherits the mask): unblock the two we stop on.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
