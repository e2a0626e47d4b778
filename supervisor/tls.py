"""How the public listener speaks: `[tls] mode`, turned into what conf/Caddyfile reads. Pure.

- "off": plain HTTP on `ports.public`; TLS is the edge's (Fly, an ALB), or there is none (loopback).
- "internal": HTTPS on `ports.public` with a certificate from Caddy's own local CA (a LAN, the tests);
  the CA's root is `<data_dir>/caddy/data/caddy/pki/authorities/local/root.crt`, for the phone to trust.
  The site answers for the public origin's host (else `localhost`).
- "acme": Caddy gets and renews a certificate for the domain itself (Let's Encrypt or ZeroSSL): it
  listens on 443, and on 80 to answer the ACME challenge and send HTTP to HTTPS. The domain is
  `tls.domain`, else the public origin's host; both ports must reach the machine.

The login cookie is Secure whenever the public origin is https (supervisor/auth/wall.py).
"""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from .errors import ConfigError

Mode = Literal["off", "acme", "internal"]

#: what conf/Caddyfile reads
SITE_ENV = "DANCODES_CADDY_SITE"
AUTO_HTTPS_ENV = "DANCODES_CADDY_AUTO_HTTPS"
ISSUER_ENV = "DANCODES_CADDY_CERT_ISSUER"

#: where Caddy listens with acme (HTTPS; HTTP for the challenge and the redirect), instead of ports.public
ACME_PORTS = (443, 80)


def caddy_env(mode: Mode, domain: str, public_origin: str, public_port: int) -> dict[str, str]:
    """The site address and the automatic-HTTPS settings for `mode`; ConfigError when acme has no domain."""
    host = urlsplit(public_origin).hostname or "" if public_origin else ""
    if mode == "off":
        # "disable_certs", not "off": with auto_https off, Caddy (2.11) ignores skip_install_trust and, as
        # root, installs a new local CA root into the system's trust store at every start (caddy#7944)
        return {SITE_ENV: f":{public_port}", AUTO_HTTPS_ENV: "disable_certs", ISSUER_ENV: "internal"}
    if mode == "internal":
        return {
            SITE_ENV: f"https://{host or 'localhost'}:{public_port}",
            AUTO_HTTPS_ENV: "disable_redirects",  # one port, HTTPS only
            ISSUER_ENV: "internal",
        }
    name = domain or host
    if not name or name == "localhost" or _is_address(name):
        raise ConfigError(
            "tls.mode: acme needs a domain name (tls.domain, or the host of app.public_origin), "
            f"not '{name or 'nothing'}'",
            key="tls.domain",
        )
    # Caddy's default behaviour (certificates, renewals, HTTP->HTTPS); this value changes nothing here
    return {SITE_ENV: name, AUTO_HTTPS_ENV: "ignore_loaded_certs", ISSUER_ENV: "acme"}


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
