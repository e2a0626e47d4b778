"""The crypto of web push, run as a short-lived child process: `python -I seal.py keys|seal SECRETS_DIR`.

    keys   load the VAPID key pair from SECRETS_DIR, or make it (first start): the private key as PEM
           (PKCS 8) in `vapid-private-key.pem`, the public key (base64url, uncompressed P-256 point, the
           app's applicationServerKey) in `vapid-public-key`; both 0600 in a 0700 directory, each
           written to a temporary name and renamed. Prints {"public_key": …}.
    seal   reads a job (JSON) on stdin: {"subject", "expires", "payload" (base64url), "targets": [{"id",
           "aud", "p256dh", "auth"}]}; encrypts the payload for each target (RFC 8291, aes128gcm, a fresh
           ECDH key and salt each) and signs one VAPID JWT per audience (RFC 8292, ES256, `aud`, `exp`,
           `sub`). Prints {"public_key", "sealed": [{"id", "body" (base64url), "authorization"} or
           {"id", "error"}]}.

Why a child: `cryptography` costs the process that imports it ~10 MB for good (its Rust extension
bundles OpenSSL), and the daemon's idle RSS budget is 60 MB. The child lives ~0.1 s per batch of
pushes; the daemon never imports any of this and never holds the private key: only this program reads
it, and nothing it prints or fails with contains it. Self-contained on purpose (the standard library,
cryptography and Mozilla's py-vapid and http-ece), so it starts fast and runs with `-I`.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

PRIVATE_KEY_FILE = "vapid-private-key.pem"
PUBLIC_KEY_FILE = "vapid-public-key"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_or_make_keys(directory: Path) -> tuple[Any, str]:
    """The VAPID signer (py_vapid.Vapid02) and its public key, made and kept on first use."""
    from cryptography.hazmat.primitives import serialization
    from py_vapid import Vapid02

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    private = directory / PRIVATE_KEY_FILE
    try:
        pem = private.read_bytes()
    except FileNotFoundError:
        pem = b""
    if pem.strip():
        private.chmod(0o600)
        key = serialization.load_pem_private_key(pem, password=None)
        vapid = Vapid02(private_key=key, conf={"no-strict": True})
    else:
        vapid = Vapid02(conf={"no-strict": True})
        vapid.generate_keys()
        _write_private(private, vapid.private_pem())
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    public = _b64url(raw)
    public_file = directory / PUBLIC_KEY_FILE
    try:
        kept = public_file.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if kept != public:
        _write_private(public_file, public.encode() + b"\n")
    return vapid, public


def seal(job: dict[str, Any], vapid: Any) -> list[dict[str, str]]:
    """Each target's encrypted body and Authorization header, or why not."""
    import http_ece
    from cryptography.hazmat.primitives.asymmetric import ec

    payload = _unb64url(job["payload"])
    tokens: dict[str, str] = {}
    sealed: list[dict[str, str]] = []
    for target in job["targets"]:
        try:
            aud = target["aud"]
            if aud not in tokens:
                claims = {"aud": aud, "exp": int(job["expires"]), "sub": job["subject"]}
                tokens[aud] = vapid.sign(claims)["Authorization"]
            body = http_ece.encrypt(
                payload,
                private_key=ec.generate_private_key(ec.SECP256R1()),  # a fresh sender key per message
                dh=_unb64url(target["p256dh"]),
                auth_secret=_unb64url(target["auth"]),
                version="aes128gcm",
            )
            sealed.append({"id": target["id"], "body": _b64url(body), "authorization": tokens[aud]})
        except Exception as exc:  # one bad target is that target's failure, not the batch's
            sealed.append({"id": str(target.get("id", "")), "error": _describe(exc)})
    return sealed


def _describe(exc: BaseException) -> str:
    """The failure in one line: its class and message, never anything read from the key file."""
    message = " ".join(str(getattr(exc, "message", None) or exc).split())[:200]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("keys", "seal"):
        print("usage: seal.py keys|seal SECRETS_DIR", file=sys.stderr)
        return 2
    mode, directory = argv[0], Path(argv[1])
    try:
        vapid, public = load_or_make_keys(directory)
        answer: dict[str, Any] = {"public_key": public}
        if mode == "seal":
            answer["sealed"] = seal(json.loads(sys.stdin.buffer.read()), vapid)
    except Exception as exc:
        print(_describe(exc), file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
