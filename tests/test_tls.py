"""`[tls] mode`: what Caddy is told for each mode (pure), and "internal" for real: HTTPS from Caddy's
local CA on the public port, and the login cookie Secure."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from supervisor.errors import ConfigError
from supervisor.tls import AUTO_HTTPS_ENV, ISSUER_ENV, SITE_ENV, caddy_env
from tests.conftest import TEST_PASSWORD, DaemonProc, free_port, launch_daemon

#: Caddy alone: what it does with the system's trust store is what is at stake
CADDY_ONLY = "[services.opencode]\nenabled = false\n"


def test_each_mode_tells_caddy_where_and_how() -> None:
    assert caddy_env("off", "", "", 8080) == {
        SITE_ENV: ":8080",
        AUTO_HTTPS_ENV: "disable_certs",
        ISSUER_ENV: "internal",
    }
    internal = caddy_env("internal", "", "https://dc.lan:8443", 8443)
    assert (internal[SITE_ENV], internal[AUTO_HTTPS_ENV], internal[ISSUER_ENV]) == (
        "https://dc.lan:8443",
        "disable_redirects",
        "internal",
    )
    assert caddy_env("internal", "", "", 9443)[SITE_ENV] == "https://localhost:9443"
    assert caddy_env("acme", "", "https://dc.example.com", 8080)[SITE_ENV] == "dc.example.com"
    assert caddy_env("acme", "other.example.com", "https://dc.example.com", 8080)[ISSUER_ENV] == "acme"


def assert_no_trust_installed(daemon: DaemonProc) -> None:
    """The local CA's root stays in the data dir: Caddy, run as root, never installs it into the system's
    trust store (it did with auto_https off, at every start: hundreds of roots made every TLS context slow
    to load, and trusted certificates no one meant to trust)."""
    said = [str(e.get("msg", "")) for e in daemon.events() if e.get("service") == "caddy"]
    installing = ("installing root", "installed properly", "failed to install root")
    assert not [m for m in said if any(phrase in m for phrase in installing)], said


def test_plain_http_installs_no_root_in_the_system_trust(start_daemon: Callable[..., DaemonProc]) -> None:
    daemon = start_daemon(CADDY_ONLY)
    daemon.wait_for(lambda: daemon.service("caddy")["state"] == "running", 30, "caddy running")
    with httpx.Client(base_url=f"http://127.0.0.1:{daemon.ports['public']}", timeout=10) as client:
        assert client.get("/admin/health").status_code in (200, 503)  # plain HTTP, no redirect
    assert_no_trust_installed(daemon)


@pytest.mark.parametrize("origin", ["", "https://localhost", "https://192.0.2.7"])
def test_acme_without_a_domain_name_is_one_line(origin: str) -> None:
    with pytest.raises(ConfigError, match="acme needs a domain name") as raised:
        caddy_env("acme", "", origin, 443)
    assert raised.value.key == "tls.domain"


def test_internal_mode_serves_https_with_a_secure_cookie(tmp_path: Path) -> None:
    ports = {"public": free_port(), "opencode": free_port(), "app": free_port()}
    origin = f"https://localhost:{ports['public']}"
    config = f'[tls]\nmode = "internal"\n[app]\npublic_origin = "{origin}"\n'
    daemon = launch_daemon(tmp_path / "daemon", config, ports=ports)
    try:
        daemon.wait_for(lambda: daemon.service("caddy")["state"] == "running", 30, "caddy running")
        root = daemon.data_dir / "caddy" / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        daemon.wait_for(root.is_file, 30, "Caddy's local CA")
        trust = ssl.create_default_context(cafile=str(root))

        def served() -> bool:
            try:
                return httpx.get(f"{origin}/admin/health", verify=trust, timeout=5).status_code == 200
            except httpx.HTTPError:
                return False  # the site's certificate is issued a moment after the CA is made

        daemon.wait_for(served, 30, "the health check over https")
        with httpx.Client(base_url=origin, verify=trust, headers={"Origin": origin}, timeout=10) as client:
            login = client.post("/auth/login", data={"password": TEST_PASSWORD, "next": "/"})
            assert login.status_code == 303, login.text
            cookie = login.headers["set-cookie"]
            assert "Secure" in cookie
            assert "HttpOnly" in cookie
            assert client.get("/admin/repos").status_code == 200  # signed in over https
        # the same port speaks nothing in the clear
        plain = httpx.get(f"http://localhost:{ports['public']}/admin/health", timeout=10)
        assert plain.status_code == 400
        assert_no_trust_installed(daemon)
    finally:
        daemon.stop()
