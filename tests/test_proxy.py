"""Behind a proxy: `[proxy]` checked, Caddy's choice of the client, and the throttle and logs keyed on it."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.config import load_config
from supervisor.errors import ConfigError
from supervisor.proxy import (
    CADDY_HEADER_ENV,
    CADDY_TRUSTED_ENV,
    DEFAULT_HEADER,
    HEADER_ENV,
    TRUSTED_ENV,
    ClientAddressPolicy,
    resolve,
)
from tests.conftest import TEST_PASSWORD, daemon_env
from tests.stack import Stack, running_stack
from tests.test_wall import Echo, caddy_in_front_of_echo, reached

# -- the settings, pure ------------------------------------------------------------------------------


def test_no_settings_trust_no_one() -> None:
    policy = resolve([], "", {})
    assert policy == ClientAddressPolicy(trusted=(), header=DEFAULT_HEADER)
    assert policy.caddy_env() == {CADDY_TRUSTED_ENV: "", CADDY_HEADER_ENV: "X-Forwarded-For"}


def test_config_ranges_and_header_reach_caddy() -> None:
    policy = resolve(["172.16.0.0/16", "10.0.0.1", "fd00::/8"], "Fly-Client-IP", {TRUSTED_ENV: "1.2.3.0/24"})
    assert policy.trusted == (
        ipaddress.ip_network("172.16.0.0/16"),
        ipaddress.ip_network("10.0.0.1/32"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert policy.caddy_env() == {
        CADDY_TRUSTED_ENV: "172.16.0.0/16 10.0.0.1/32 fd00::/8",
        CADDY_HEADER_ENV: "Fly-Client-IP",
    }


def test_the_environment_fills_what_the_config_leaves_empty() -> None:
    policy = resolve([], "", {TRUSTED_ENV: "172.16.0.0/16, 10.0.0.0/8", HEADER_ENV: " CF-Connecting-IP "})
    assert [str(n) for n in policy.trusted] == ["172.16.0.0/16", "10.0.0.0/8"]
    assert policy.header == "CF-Connecting-IP"


@pytest.mark.parametrize(
    ("trusted", "header", "environ", "message"),
    [
        (["10.0.0.0/8", "10.0.0.0/33"], "", {}, "proxy.trusted.1: '10.0.0.0/33' is not an IP range"),
        (["fly"], "", {}, "proxy.trusted.0: 'fly' is not an IP range"),
        ([], "", {TRUSTED_ENV: "10.0.0.0/8 nope"}, "$DANCODES_PROXY_TRUSTED: 'nope' is not an IP range"),
        ([], "X Forwarded For", {}, "proxy.client_ip_header: 'X Forwarded For' is not an HTTP header name"),
        ([], "", {HEADER_ENV: "Fly-Client-IP:"}, "$DANCODES_CLIENT_IP_HEADER: 'Fly-Client-IP:' is not"),
    ],
)
def test_a_bad_range_or_header_is_one_line_naming_it(
    trusted: list[str], header: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(trusted, header, environ)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_the_config_file_is_refused_with_the_key_named(tmp_path: Path) -> None:
    path = tmp_path / "dancodes.toml"
    path.write_text('[proxy]\ntrusted = ["10.0.0.0/8", "300.1.2.3/32"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"config {path}: proxy.trusted.1: '300.1.2.3/32' is not an IP range")
    assert caught.value.key == "proxy.trusted.1"
    path.write_text('[proxy]\nclient_ip_header = "Fly Client IP"\n')
    with pytest.raises(ConfigError, match=r"proxy\.client_ip_header: 'Fly Client IP' is not"):
        load_config(path)
    path.write_text('[proxy]\ntrusted = ["10.0.0.0/8"]\nclient_ip_header = "Fly-Client-IP"\n')
    assert load_config(path).config.proxy.trusted == ["10.0.0.0/8"]


def test_the_daemon_refuses_a_bad_range_from_the_environment(tmp_path: Path) -> None:
    env = {
        **daemon_env(tmp_path),
        "DANCODES_DATA_DIR": str(tmp_path / "data"),
        TRUSTED_ENV: "172.16.0.0/12 fly",
    }
    run = [sys.executable, "-c", "import sys; from supervisor.cli import main; sys.exit(main(['run']))"]
    result = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("dancodes: $DANCODES_PROXY_TRUSTED: 'fly' is not an IP range")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


# -- Caddy's choice of the client, from the settings the daemon renders ------------------------------


def client_seen(port: int, headers: list[tuple[str, str]]) -> list[str]:
    """The X-Forwarded-For the app gets for a request from 127.0.0.1 with these headers."""
    return reached(port, "/auth/login", headers).get("x-forwarded-for", [])


@pytest.fixture(scope="module")
def behind_trusted_xff(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Echo]]:
    policy = resolve(["127.0.0.0/8", "10.0.0.0/8"], "X-Forwarded-For", {})
    with caddy_in_front_of_echo(tmp_path_factory.mktemp("xff"), policy.caddy_env()) as running:
        yield running


@pytest.mark.parametrize(
    ("sent", "client"),
    [
        ([("X-Forwarded-For", "203.0.113.5")], "203.0.113.5"),
        # the right-most address that is not a trusted proxy: what a client prepends changes nothing
        ([("X-Forwarded-For", "6.6.6.6, 203.0.113.5")], "203.0.113.5"),
        ([("X-Forwarded-For", "6.6.6.6, 203.0.113.5, 10.1.2.3")], "203.0.113.5"),
        ([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.5, 10.1.2.3")], "203.0.113.5"),
        ([("X-Forwarded-For", "2001:db8::7")], "2001:db8::7"),
        # nothing usable: the peer itself
        ([], "127.0.0.1"),
        ([("X-Forwarded-For", "not-an-address")], "127.0.0.1"),
        ([("X-Forwarded-For", "10.1.2.3")], "127.0.0.1"),
        # only the configured header counts
        ([("Fly-Client-IP", "203.0.113.9")], "127.0.0.1"),
    ],
)
def test_a_trusted_peer_names_the_client(
    behind_trusted_xff: tuple[int, Echo], sent: list[tuple[str, str]], client: str
) -> None:
    port, _ = behind_trusted_xff
    assert client_seen(port, sent) == [client]


def test_a_trusted_proxys_scheme_is_passed_on_but_the_host_is_the_requests(
    behind_trusted_xff: tuple[int, Echo],
) -> None:
    """The edge terminates TLS and says so; a client's X-Forwarded-Host it passes along is not believed."""
    port, _ = behind_trusted_xff
    got = reached(port, "/auth/login", [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example")])
    assert got["x-forwarded-proto"] == ["https"]
    assert got["x-forwarded-host"] == [f"127.0.0.1:{port}"]


def test_a_single_address_header_like_flys(tmp_path: Path) -> None:
    policy = resolve(["127.0.0.0/8"], "Fly-Client-IP", {})
    with caddy_in_front_of_echo(tmp_path, policy.caddy_env()) as (port, _):
        assert client_seen(port, [("Fly-Client-IP", "203.0.113.9")]) == ["203.0.113.9"]
        assert client_seen(port, [("X-Forwarded-For", "203.0.113.5")]) == ["127.0.0.1"]


def test_an_untrusted_peers_headers_are_ignored(tmp_path: Path) -> None:
    # loopback is not in the trusted range: the header is the peer's own claim
    policy = resolve(["10.0.0.0/8"], "X-Forwarded-For", {})
    with caddy_in_front_of_echo(tmp_path, policy.caddy_env()) as (port, _):
        assert client_seen(port, [("X-Forwarded-For", "203.0.113.5")]) == ["127.0.0.1"]
        got = reached(
            port, "/auth/login", [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example")]
        )
        assert got["x-forwarded-proto"] == ["http"]
        assert got["x-forwarded-host"] == [f"127.0.0.1:{port}"]


# -- the throttle and the logs through the daemon ---------------------------------------------------


def lock_out(stack: Stack, headers: dict[str, str]) -> list[int]:
    statuses = []
    with stack.anonymous() as client:
        for _ in range(6):
            response = client.post("/auth/login", data={"password": "wrong-guess-xyz"}, headers=headers)
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
    return statuses


def login_status(stack: Stack, headers: dict[str, str]) -> int:
    with stack.anonymous() as client:
        return client.post(
            "/auth/login", data={"password": TEST_PASSWORD, "next": "/"}, headers=headers
        ).status_code


AUTH = "[auth]\nfree_attempts = 1\nlockout_initial = 60.0\n"


def test_clients_behind_a_trusted_proxy_get_their_own_buckets(tmp_path: Path) -> None:
    extra = AUTH + '[proxy]\ntrusted = ["127.0.0.0/8"]\nclient_ip_header = "X-Forwarded-For"\n'
    with running_stack(tmp_path, extra) as stack:
        attacker = {"X-Forwarded-For": "203.0.113.5"}
        owner = {"X-Forwarded-For": "198.51.100.7"}
        statuses = lock_out(stack, attacker)
        assert statuses[0] == 401
        assert statuses[-1] == 429, statuses
        # the attacker is locked out, even behind a proxy of its own or with the right password
        assert login_status(stack, {"X-Forwarded-For": "6.6.6.6, 203.0.113.5"}) == 429
        assert login_status(stack, attacker) == 429
        # the owner, behind the same proxy, is not
        assert login_status(stack, owner) == 303
        events = stack.daemon.events()
    locked = [e for e in events if e.get("event") == "login_locked_out"]
    assert {e.get("client") for e in locked} == {"203.0.113.5"}
    assert [e.get("client") for e in events if e.get("event") == "login_ok"] == ["198.51.100.7"]


def test_with_no_trusted_proxy_a_spoofed_header_makes_no_new_bucket(tmp_path: Path) -> None:
    with running_stack(tmp_path, AUTH) as stack:
        statuses = lock_out(stack, {"X-Forwarded-For": "203.0.113.5"})
        assert statuses[-1] == 429, statuses
        # another claimed address is still the same peer: locked out, the right password not even tried
        assert login_status(stack, {"X-Forwarded-For": "198.51.100.7"}) == 429
        assert login_status(stack, {"Fly-Client-IP": "198.51.100.8"}) == 429
        events = stack.daemon.events()
    clients = {e.get("client") for e in events if e.get("event", "").startswith("login_")}
    assert clients == {"127.0.0.1"}
