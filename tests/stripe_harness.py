"""A local Stripe for the tests and the benchmark (本地 Stripe 测试替身); nothing here reaches the internet.

localstripe (an aiohttp imitation of Stripe's API) runs in a subprocess on a free loopback port. In
front of it, in a thread of this process, runs a small proxy that

- gives localstripe Stripe's ``Idempotency-Key`` behaviour, which it lacks: a POST repeated with the
  same key replays the first answer (with ``Idempotent-Replayed: true``); the same key with another
  path or other parameters is refused with an ``idempotency_error``;
- injects faults when a test asks: answer the next requests with an error without forwarding them
  (:meth:`LocalStripe.fail_next`), or forward them and hold the answer back past the client's timeout
  (:meth:`LocalStripe.delay_next`: "it timed out, but it happened").

The application and :class:`~marketplace.billing.stripe_gateway.StripeGateway` talk to the proxy
(``harness.settings``); the helpers that play the customer's browser or Stripe's dashboard
(:meth:`LocalStripe.confirm_with_card`, :meth:`LocalStripe.payment_intents` …) talk to localstripe directly.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from marketplace.settings import Settings

SECRET_KEY = "sk_test_marketplace"
PUBLISHABLE_KEY = "pk_test_marketplace"
WEBHOOK_SECRET = "whsec_marketplace_tests"
GOOD_CARD = "4242424242424242"
#: localstripe declines the charge made with this number (Stripe's "attaches, then the charge fails").
DECLINED_CARD = "4000000000000341"

#: Answers Stripe does not keep for an idempotency key: the request never started executing.
_NOT_KEPT = frozenset({400, 401, 409, 429})
_HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "content-length", "transfer-encoding", "accept-encoding"})


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy saw. ``outcome``: forwarded, replayed, injected_error or key_reused."""

    method: str
    path: str
    idempotency_key: str | None
    outcome: str
    status: int
    delayed: bool


@dataclass(frozen=True)
class _Reply:
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True)
class _Fault:
    status: int | None
    delay_seconds: float


@dataclass(frozen=True)
class _Kept:
    method: str
    path: str
    body: bytes
    reply: _Reply


def _error_reply(status: int, error_type: str, message: str) -> _Reply:
    body = json.dumps({"error": {"type": error_type, "message": message}}).encode()
    return _Reply(status, "application/json", body)


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, upstream_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.faults: deque[_Fault] = deque()
        self.seen: list[ProxiedRequest] = []
        self.kept: dict[tuple[str, str], _Kept] = {}
        self.key_locks: dict[tuple[str, str], threading.Lock] = {}

    def take_fault(self) -> _Fault | None:
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def note(self, request: ProxiedRequest) -> None:
        with self.lock:
            self.seen.append(request)

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[_Reply, str]:
        key = headers.get("idempotency-key") if method == "POST" else None
        if not key:
            return self.forward(method, path, headers, body), "forwarded"
        scope = (headers.get("authorization", ""), key)
        with self.lock:
            key_lock = self.key_locks.setdefault(scope, threading.Lock())
        # Requests with the same key run one after the other, so a concurrent repeat sees the first answer.
        with key_lock:
            kept = self.kept.get(scope)
            if kept is not None:
                if (kept.method, kept.path, kept.body) != (method, path, body):
                    message = (
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different request."
                    )
                    return _error_reply(400, "idempotency_error", message), "key_reused"
                return kept.reply, "replayed"
            reply = self.forward(method, path, headers, body)
            if reply.status not in _NOT_KEPT:
                self.kept[scope] = _Kept(method, path, body, reply)
            return reply, "forwarded"

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        passed_on = {name: value for name, value in headers.items() if name not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            upstream.request(method, path, body=body, headers=passed_on)
            response = upstream.getresponse()
            return _Reply(response.status, response.getheader("Content-Type", "application/json"), response.read())
        except OSError as exc:
            return _error_reply(502, "api_error", f"localstripe did not answer: {exc}")
        finally:
            upstream.close()

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.seen.clear()
            self.kept.clear()
            self.key_locks.clear()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection's thread ends after this
    server: _Proxy

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        fault = self.server.take_fault() if self.path.startswith("/v1/") else None
        if fault is not None and fault.status is not None:
            reply = _error_reply(fault.status, "api_error", "injected by the test harness")
            outcome = "injected_error"
        else:
            reply, outcome = self.server.answer(self.command, self.path, headers, body)
        delayed = fault is not None and fault.status is None
        self.server.note(
            ProxiedRequest(self.command, self.path, headers.get("idempotency-key"), outcome, reply.status, delayed)
        )
        if delayed:
            time.sleep(fault.delay_seconds)
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            if outcome == "replayed":
                self.send_header("Idempotent-Replayed", "true")
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting, as the delayed-answer tests intend

    do_POST = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the proxy's record is :attr:`LocalStripe.requests`."""


class LocalStripe:
    """localstripe behind the proxy. ``with LocalStripe(settings) as stripe: …`` or start()/stop()."""

    def __init__(self, base_settings: Settings) -> None:
        self._base_settings = base_settings
        self._process: subprocess.Popen[bytes] | None = None
        self._proxy: _Proxy | None = None
        self._stderr = tempfile.TemporaryFile()
        #: localstripe itself (for the browser's Stripe.js and the helpers below).
        self.url = ""
        #: The proxy: the Stripe API address the application uses.
        self.api_base = ""

    def __enter__(self) -> LocalStripe:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> LocalStripe:
        self._process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=tempfile.gettempdir(),
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], 15)
        line = self._process.stdout.readline().strip() if ready else b""
        if not line.isdigit():
            self._give_up("localstripe did not start")
        self.url = f"http://127.0.0.1:{int(line)}"
        self._wait_until_answering()
        self._proxy = _Proxy(int(line))
        threading.Thread(target=self._proxy.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        self.api_base = f"http://127.0.0.1:{self._proxy.server_port}"
        return self

    def stop(self) -> None:
        if self._proxy is not None:
            self._proxy.shutdown()
            self._proxy.server_close()
            self._proxy = None
        if self._process is not None:
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        self._stderr.close()

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                status, _ = self.request("GET", "/v1/balance")
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self._give_up("localstripe does not answer")
            time.sleep(0.05)

    def _give_up(self, what: str) -> NoReturn:
        self._stderr.seek(0)
        tail = self._stderr.read()[-2000:].decode(errors="replace")
        self.stop()
        raise RuntimeError(f"{what}: {tail}")

    @property
    def settings(self) -> Settings:
        """The base settings pointed at the proxy, with test keys and secrets."""
        return dataclasses.replace(
            self._base_settings,
            stripe_secret_key=SECRET_KEY,
            stripe_publishable_key=PUBLISHABLE_KEY,
            stripe_api_base=self.api_base,
            stripe_js_url=f"{self.url}/js.stripe.com/v3/",
            stripe_webhook_secret=WEBHOOK_SECRET,
            stripe_payment_method_types=("card",),
            stripe_timeout_seconds=5.0,
        )

    # -- the proxy --------------------------------------------------------------------------------

    def fail_next(self, count: int = 1, *, status: int = 500) -> None:
        """Answer the next ``count`` API requests with ``status`` without forwarding them."""
        assert self._proxy is not None
        with self._proxy.lock:
            self._proxy.faults.extend(_Fault(status, 0.0) for _ in range(count))

    def delay_next(self, count: int = 1, *, seconds: float) -> None:
        """Forward the next ``count`` API requests, then hold each answer back ``seconds``."""
        assert self._proxy is not None
        with self._proxy.lock:
            self._proxy.faults.extend(_Fault(None, seconds) for _ in range(count))

    def clear_faults(self) -> None:
        assert self._proxy is not None
        with self._proxy.lock:
            self._proxy.faults.clear()

    @property
    def requests(self) -> list[ProxiedRequest]:
        """What the proxy saw, oldest first."""
        assert self._proxy is not None
        with self._proxy.lock:
            return list(self._proxy.seen)

    def reset(self) -> None:
        """Forget every Stripe object, webhook endpoint, kept idempotent answer, pending fault and request."""
        assert self._proxy is not None
        self._proxy.clear()
        self._expect(self.request("DELETE", "/_config/data"))
        self.forget_webhooks()

    # -- localstripe directly ---------------------------------------------------------------------

    def request(self, method: str, path: str, params: dict[str, Any] | None = None) -> tuple[int, Any]:
        """Call localstripe with the test secret key; POST bodies are JSON (localstripe accepts it)."""
        body = None
        if method == "GET" and params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        elif method == "POST":
            body = json.dumps(params or {}).encode()
        connection = http.client.HTTPConnection("127.0.0.1", urllib.parse.urlsplit(self.url).port, timeout=10)
        try:
            headers = {"Authorization": f"Bearer {SECRET_KEY}", "Content-Type": "application/json"}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode(errors="replace")

    @staticmethod
    def _expect(answer: tuple[int, Any]) -> Any:
        status, body = answer
        if status != 200:
            raise RuntimeError(f"localstripe answered {status}: {body}")
        return body

    def confirm_with_card(self, intent_id: str, card_number: str = GOOD_CARD) -> dict[str, Any]:
        """Pay a PaymentIntent by card as the customer's browser would; returns the intent afterwards.

        localstripe cannot confirm with a ``payment_method`` argument, so the card goes onto the intent
        first. A declined card is not an error here: the intent comes back ``requires_payment_method``
        with ``last_payment_error`` set.
        """
        card = {"number": card_number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}
        method = self._expect(self.request("POST", "/v1/payment_methods", {"type": "card", "card": card}))
        self._expect(self.request("POST", f"/v1/payment_intents/{intent_id}", {"payment_method": method["id"]}))
        status, body = self.request("POST", f"/v1/payment_intents/{intent_id}/confirm")
        if status not in (200, 402):
            raise RuntimeError(f"localstripe answered {status}: {body}")
        return self._expect(self.request("GET", f"/v1/payment_intents/{intent_id}"))

    def register_webhook(
        self, url: str, secret: str = WEBHOOK_SECRET, *, events: list[str] | None = None, name: str = "tests"
    ) -> None:
        """Have localstripe POST its events (signed with ``secret``) to ``url``, about a second after each."""
        params: dict[str, Any] = {"url": url, "secret": secret}
        if events is not None:
            params["events"] = events
        self._expect(self.request("POST", f"/_config/webhooks/{name}", params))

    def forget_webhooks(self) -> None:
        self._expect(self.request("DELETE", "/_config/webhooks"))

    def payment_intents(self, **metadata: str) -> list[dict[str, Any]]:
        """Every PaymentIntent localstripe holds whose metadata includes ``metadata``, oldest first."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = self._expect(self.request("GET", "/v1/payment_intents", params))
            found.extend(page["data"])
            if not page["has_more"]:
                break
            params["starting_after"] = page["data"][-1]["id"]
        return [i for i in found if all(i["metadata"].get(k) == v for k, v in metadata.items())]


# -- the subprocess -------------------------------------------------------------------------------


def _fill_localstripe_gaps() -> None:
    """Patch localstripe where it differs from Stripe in ways billing relies on."""
    from aiohttp import web
    from localstripe import resources, server, webhooks

    # It pickles its whole store to /tmp/localstripe.pickle after every write: slow, and shared by
    # every run on the machine. Each of our runs starts empty and keeps its data in memory.
    resources.Store.dump_to_disk = lambda self: None

    # Stripe keeps a PaymentIntent's description and payment methods and reports amount_received.
    intent_init = resources.PaymentIntent.__init__

    def payment_intent_init(
        self: Any, description: str | None = None, payment_method_types: list[str] | None = None, **params: Any
    ) -> None:
        intent_init(self, payment_method_types=payment_method_types, **params)
        self.description = description
        self.payment_method_types = payment_method_types or ["card"]

    resources.PaymentIntent.__init__ = payment_intent_init
    resources.PaymentIntent.amount_received = property(lambda self: self.amount if self.status == "succeeded" else 0)

    # Stripe refuses to refund more than is left of the charge; localstripe refunds anything.
    refund_init = resources.Refund.__init__

    def refund_within_charge(
        self: Any, charge: str | None = None, payment_intent: str | None = None, amount: Any = None, **params: Any
    ) -> None:
        target = charge
        if target is None and payment_intent is not None:
            latest = resources.PaymentIntent._api_retrieve(payment_intent).latest_charge
            target = latest.id if latest is not None else None
        if target is not None:
            charged = resources.Charge._api_retrieve(target)
            left = charged.amount - charged.amount_refunded
            if left <= 0:
                raise resources.UserError(
                    400, f"Charge {target} has already been refunded.", {"code": "charge_already_refunded"}
                )
            wanted = resources.try_convert_to_int(amount)
            if isinstance(wanted, int) and wanted > left:
                message = f"Refund amount ({wanted}) is greater than unrefunded amount on charge ({left})"
                raise resources.UserError(400, message, {"code": "amount_too_large"})
        refund_init(self, charge=charge, payment_intent=payment_intent, amount=amount, **params)

    resources.Refund.__init__ = refund_within_charge

    async def forget_webhooks(request: web.Request) -> web.Response:
        webhooks._webhooks.clear()
        return web.Response()

    server.app.router.add_delete("/_config/webhooks", forget_webhooks)


def _serve_localstripe() -> None:
    """Run localstripe on a free loopback port (printed on stdout) until our parent closes our stdin."""
    from aiohttp import web
    from localstripe import server

    _fill_localstripe_gaps()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(sock.getsockname()[1], flush=True)

    def exit_with_parent() -> None:
        sys.stdin.buffer.read()  # returns when the parent closes the pipe or dies
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    web.run_app(server.app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    _serve_localstripe()
