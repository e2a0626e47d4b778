"""Who the client is behind a proxy: the `[proxy]` settings checked and turned into Caddy's.

Behind Fly's edge, an AWS ALB or Cloudflare every connection comes from the proxy, so the login
throttle and the logs would put every client in one bucket: one attacker's lockout would lock the
owner out too. `[proxy] trusted` lists the proxies' address ranges (CIDRs) and `client_ip_header`
the header they name the client in. Caddy makes the choice (its `trusted_proxies`,
`client_ip_headers` and `trusted_proxies_strict` global options, rendered from these settings into
its environment): a peer inside a trusted range is believed, and the client is the right-most
address in the header that is not itself trusted (a client can prepend anything it likes, never
append); any other peer is the client itself and its headers are ignored. Caddy hands the app that
one address as X-Forwarded-For (conf/Caddyfile), which the throttle and the logs key on.

Empty `trusted` (the default) trusts no one. Unset in the config, `$DANCODES_PROXY_TRUSTED`
(addresses separated by spaces or commas) and `$DANCODES_CLIENT_IP_HEADER` give them, so a deploy
such as fly.toml's `[env]` can set them without a config file.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import ConfigError

TRUSTED_ENV = "DANCODES_PROXY_TRUSTED"
HEADER_ENV = "DANCODES_CLIENT_IP_HEADER"
DEFAULT_HEADER = "X-Forwarded-For"
#: what Caddy's environment carries (conf/Caddyfile reads them in its global `servers` options)
CADDY_TRUSTED_ENV = "DANCODES_CADDY_TRUSTED_PROXIES"
CADDY_HEADER_ENV = "DANCODES_CADDY_CLIENT_IP_HEADER"

# an HTTP field name (RFC 9110 token)
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ClientAddressPolicy:
    """The proxies believed about the client's address, and the header they name it in."""

    trusted: tuple[Network, ...] = ()
    header: str = DEFAULT_HEADER

    def caddy_env(self) -> dict[str, str]:
        """The variables conf/Caddyfile reads; no ranges there makes Caddy trust no one."""
        return {
            CADDY_TRUSTED_ENV: " ".join(str(network) for network in self.trusted),
            CADDY_HEADER_ENV: self.header,
        }


def parse_networks(values: Iterable[str], key: str, *, indexed: bool = True) -> tuple[Network, ...]:
    """CIDRs (a bare address is its own /32 or /128); ConfigError naming `key` (and index) at a bad one."""
    networks = []
    for index, value in enumerate(values):
        try:
            # strict=False: "10.0.0.1/8" means the /8 it is in, as Caddy reads it
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            where = f"{key}.{index}" if indexed else key
            raise ConfigError(
                f"{where}: '{value}' is not an IP range (a CIDR such as 10.0.0.0/8, or one address)",
                key=where,
            ) from None
    return tuple(networks)


def check_header(value: str, key: str) -> str:
    if not _HEADER_NAME.fullmatch(value):
        raise ConfigError(f"{key}: '{value}' is not an HTTP header name", key=key)
    return value


def resolve(trusted: list[str], header: str, environ: Mapping[str, str]) -> ClientAddressPolicy:
    """The policy from `[proxy]`, else the environment; ConfigError naming the key or the variable."""
    if trusted:
        networks = parse_networks(trusted, "proxy.trusted")
    else:
        listed = environ.get(TRUSTED_ENV, "").replace(",", " ").split()
        networks = parse_networks(listed, f"${TRUSTED_ENV}", indexed=False)
    if header:
        name = check_header(header, "proxy.client_ip_header")
    else:
        from_env = environ.get(HEADER_ENV, "").strip()
        name = check_header(from_env, f"${HEADER_ENV}") if from_env else DEFAULT_HEADER
    return ClientAddressPolicy(trusted=networks, header=name)
