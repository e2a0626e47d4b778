"""A push service on loopback for tests, and a browser's side of web push, written from the RFCs.

`PushService` is what FCM, Mozilla's autopush or Apple's service are to the daemon: it takes
`POST /<name>` and answers 201, or what the test scripted for that path (410: unsubscribed). It keeps
every request, and a test waits on their number, never on time.

`BrowserSubscription` is what `pushManager.subscribe()` makes: a P-256 key pair and a 16-byte auth
secret; `toJSON()` is what the app posts. `decrypt` undoes RFC 8291 (aes128gcm) with the private key
and `check_vapid` verifies the RFC 8292 JWT, both from `cryptography`'s primitives, not from the
libraries the daemon seals with, so a mistake there cannot cancel itself out here.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class PushRequest:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int  # what the service answered
    at: float = field(default_factory=time.monotonic)  # when it arrived


class PushService:
    """A loopback push service: `url(name)` is an endpoint; `answer(name, 410)` scripts a refusal."""

    def __init__(self) -> None:
        self.requests: list[PushRequest] = []
        self.answers: dict[str, int] = {}
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, name: str) -> str:
        return f"{self.origin}/{name}"

    def answer(self, name: str, status: int) -> None:
        self.answers[f"/{name}"] = status

    def __enter__(self) -> PushService:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def received(self, name: str | None = None) -> list[PushRequest]:
        with self._changed:
            return [r for r in self.requests if name is None or r.path == f"/{name}"]

    def wait_for(self, count: int, name: str | None = None, timeout: float = 60.0) -> list[PushRequest]:
        """Wait until `count` pushes (to `name`, or to any) have arrived; all of them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(got := self.received(name)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(got)} pushes to {name or 'any'} after {timeout:g}s, not {count}"
                    )
                self._changed.wait(left)
            return got

    def _record(self, request: PushRequest) -> None:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()


def _handler(service: PushService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = service.answers.get(self.path, 201)
            headers = {k.lower(): v for k, v in self.headers.items()}
            service._record(PushRequest(self.path, headers, body, status))
            text = b"" if status == 201 else b"push subscription has unsubscribed or expired.\n"
            self.send_response(status)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

    return Handler


@dataclass
class BrowserSubscription:
    """What a browser's `pushManager.subscribe()` makes for one endpoint."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: __import__("os").urandom(16))

    @property
    def public(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def to_json(self) -> dict[str, Any]:
        """`PushSubscription.toJSON()`."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(self.public), "auth": b64url(self.auth)},
        }

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 section 3.4 and RFC 8188: one aes128gcm record, from the header's salt and key."""
        salt, rs, idlen = body[:16], struct.unpack("!L", body[16:20])[0], body[20]
        sender_public = body[21 : 21 + idlen]
        ciphertext = body[21 + idlen :]
        assert idlen == 65, "keyid is the sender's public key"
        assert sender_public[0] == 4, "an uncompressed point"
        assert len(ciphertext) <= rs, "one record"
        sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public)
        ecdh = self.key.exchange(ec.ECDH(), sender)
        info = b"WebPush: info\x00" + self.public + sender_public
        ikm = HKDF(algorithm=hashes.SHA256(), length=32, salt=self.auth, info=info).derive(ecdh)
        cek = HKDF(hashes.SHA256(), 16, salt, b"Content-Encoding: aes128gcm\x00").derive(ikm)
        nonce = HKDF(hashes.SHA256(), 12, salt, b"Content-Encoding: nonce\x00").derive(ikm)
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
        text = padded.rstrip(b"\x00")
        assert text.endswith(b"\x02"), "the last record's delimiter"
        return text[:-1]


def check_vapid(authorization: str, public_key: str) -> dict[str, Any]:
    """Verify `vapid t=<JWT>, k=<key>` (RFC 8292) against the daemon's public key; the JWT's claims."""
    scheme, _, params = authorization.partition(" ")
    assert scheme.lower() == "vapid", authorization[:20]
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert fields["k"] == public_key, "k is the daemon's VAPID public key"
    header_b64, claims_b64, signature_b64 = fields["t"].split(".")
    header = json.loads(unb64url(header_b64))
    assert header == {"typ": "JWT", "alg": "ES256"}, header
    signature = unb64url(signature_b64)
    assert len(signature) == 64, "ES256: r and s, 32 bytes each"
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(public_key))
    key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if forged
    claims: dict[str, Any] = json.loads(unb64url(claims_b64))
    return claims
