"""The daemon's configuration: its schema, its layers, validation, and where things live.

`load_config(path)` reads `conf/dancodes.toml`, merges the file at `path` and then
`<data_dir>/settings.toml` over it table by table, validates the result against the schema below,
and resolves placeholders and the data directory. Any problem is a `ConfigError` whose one-line
message names the file and the key.
"""

from __future__ import annotations

import os
import re
import signal
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from .errors import ConfigError, UnknownKey
from .layout import Layout, layout
from .proxy import check_header, parse_networks
from .tls import ACME_PORTS

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Count = Annotated[int, msgspec.Meta(ge=1)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
_SERVICE_NAME = r"[a-z][a-z0-9_-]{0,31}"
ServiceName = Annotated[str, msgspec.Meta(pattern=f"^{_SERVICE_NAME}$")]


class _Table(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A TOML table: unknown keys are errors, so a typo never goes unnoticed."""


class Ports(_Table):
    public: Port = 8080
    opencode: Port = 4096
    app: Port = 4097


class DaemonSettings(_Table):
    stop_timeout: Positive = 5.0
    log_tail: Count = 1000
    reap_interval: Positive = 1.0
    health_requires: list[str] = msgspec.field(default_factory=lambda: ["opencode"])
    memory_interval: Positive = 5.0  # seconds between measures of the services' memory (supervisor.memory)


class OrphanPolicy(_Table):
    kill_after_minutes: NonNegative = 0.0
    only_if_service_restarted: bool = True
    check_interval: Positive = 30.0


class Probe(_Table):
    """An HTTP GET with a hard timeout; 2xx and 3xx count as healthy. No url: alive means ready."""

    url: str | None = None
    unix_socket: str | None = None
    timeout: Positive = 1.0
    # per try while starting, if shorter tries are wanted there (a server that drops requests made
    # before it listens); `timeout` applies once it runs, where a busy moment must not look wedged
    ready_timeout: Positive | None = None
    interval: Positive = 5.0
    failures: Count = 3
    start_timeout: Positive = 30.0
    start_seconds: NonNegative = 1.0  # without a url: how long the process must live to count as started


class RestartPolicy(_Table):
    policy: Literal["always", "on-failure", "never"] = "always"
    backoff_initial: Positive = 0.1
    backoff_max: Positive = 30.0
    backoff_jitter: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.1
    stable_after: NonNegative = 10.0  # healthy this long and the backoff starts over
    crash_loop_failures: Count = 5
    crash_loop_window: Positive = 60.0
    on_crash_loop: Literal["fatal", "slow"] = "slow"
    # seconds between retries once in a crash loop; unset: backoff_max. Never more than backoff_max:
    # a crash-looping service must not stay down longer than that per retry.
    slow_retry: Positive | None = None


class ServiceConfig(_Table):
    argv: Annotated[list[str], msgspec.Meta(min_length=1)]
    env: dict[str, str] = msgspec.field(default_factory=dict)
    cwd: str | None = None
    enabled: bool = True
    after: list[str] = msgspec.field(default_factory=list)
    probe: Probe = msgspec.field(default_factory=Probe)
    restart: RestartPolicy = msgspec.field(default_factory=RestartPolicy)
    stop_signal: str = "SIGTERM"
    stop_grace: Positive = 3.0
    dispose_url: str | None = None  # POSTed before the stop signal so the service can stop its tools
    # The agent: code the user did not write, steered by text from repos and the web. It runs as
    # `agent.user` (when the daemon is root) with an allowlisted environment (supervisor.agent).
    agent: bool = False
    # TCP ports this service listens on, which nothing else may hold: each start is refused while one
    # is taken (Caddy binds with SO_REUSEPORT and would share it silently). A number or a placeholder
    # such as "{ports.public}".
    owns_ports: list[int | str] = msgspec.field(default_factory=list)
    # The ceiling on the RSS of the service's whole process tree, in MB (supervisor.memory): past
    # `memory_limit_mb` it is restarted at the next moment no chat is in a turn; past
    # `memory_hard_limit_mb` (two measures in a row) at once, even mid-turn. A process already over a
    # limit when first measured is reported, not restarted (that would loop). Unset: no ceiling.
    # Changed live, it applies at once.
    memory_limit_mb: Positive | None = None
    memory_hard_limit_mb: Positive | None = None
    # The agent's turns that a restart cut (supervisor.chats): "mark" shows them as interrupted;
    # "continue" also sends each of them "continue" once opencode is back.
    resume: Literal["mark", "continue"] = "mark"

    def owned_ports(self) -> list[int]:
        """`owns_ports` as numbers (placeholders are expanded and checked at load); 0 owns nothing."""
        return [port for port in (int(p) for p in self.owns_ports) if port]


class AppSettings(_Table):
    # The origin the phone uses, e.g. "https://dancodes.fly.dev": CSRF checks compare against it and
    # the cookie is Secure when it is https. Empty: $DANCODES_PUBLIC_ORIGIN, else the request's own
    # Host (fine on loopback, not behind a TLS-terminating edge).
    public_origin: str = ""


class AuthSettings(_Table):
    cookie_name: str = "dancodes_auth"
    max_age_days: Positive = 30.0
    rotation_window_days: NonNegative = 7.0  # how long AUTH_SECRET_PREVIOUS still signs in
    free_attempts: Annotated[int, msgspec.Meta(ge=0)] = 3  # wrong passwords before delays start
    lockout_initial: Positive = 1.0  # seconds; doubles with each further failure
    lockout_max: Positive = 900.0


class ProxySettings(_Table):
    # The proxies in front (Fly's edge, an AWS ALB, Cloudflare) whose word on the client's address is
    # believed, as CIDRs, and the header they give it in (supervisor.proxy). Empty: $DANCODES_PROXY_TRUSTED
    # and $DANCODES_CLIENT_IP_HEADER, else no one is trusted and X-Forwarded-For.
    trusted: list[str] = msgspec.field(default_factory=list)
    client_ip_header: str = ""


class TlsSettings(_Table):
    # "off": plain HTTP (TLS is the edge's); "internal": Caddy's local CA; "acme": a certificate Caddy gets
    # and renews itself for `domain` (else app.public_origin's host), on ports 443 and 80 (supervisor.tls)
    mode: Literal["off", "acme", "internal"] = "off"
    domain: str = ""


class GitSettings(_Table):
    # {owner} and {name} are validated before they are put in; file:// bases serve the tests
    remote_url: str = "https://github.com/{owner}/{name}.git"
    github_api: str = "https://api.github.com"
    # who the agent's commits are by; empty: the GitHub user's noreply identity (with a token), else local
    user_name: str = ""
    user_email: str = ""
    # the agent's git and gh get $GITHUB_TOKEN (through their environment only); false: only the daemon
    # (the phone's push and PR) can publish
    agent_token: bool = True


class AgentSettings(_Table):
    # When the daemon runs as root, services with `agent = true` (opencode and every tool it runs) run
    # as this unprivileged user, created if missing. "root" opts out: then the agent can read every
    # secret the daemon holds and reach its sockets (README, "The agent's boundary").
    user: Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")] = "dancodes-agent"
    # Environment variables passed to the agent beyond the built-in allowlist (names, or NAME_* prefixes)
    env: list[Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\*?$")]] = msgspec.field(
        default_factory=list
    )


class GcSettings(_Table):
    interval_minutes: NonNegative = 60.0  # 0: only on demand (POST /admin/gc)
    idle_days: Positive = 14.0  # a worktree whose session is idle this long may go
    dispose_idle_minutes: NonNegative = 30.0  # opencode's instance for an idle worktree is disposed; 0: never
    new_worktree_grace_minutes: NonNegative = 10.0  # a new worktree's chat may not be listed yet: keep it


#: what RFC 8292 allows Apple's and the others' push services to call back: an address or a site
PUSH_SUBJECT_PATTERN = r"^((mailto:[^@\s/]+@[^@\s/]+)|(https://[^/\s?#]+))?$"


class PushSettings(_Table):
    # the VAPID `sub` claim: "mailto:you@example.com" or "https://your.site"; empty: the public origin
    # when it is https, else "mailto:dancodes@localhost" (Apple refuses anything but mailto: or https:)
    subject: Annotated[str, msgspec.Meta(pattern=PUSH_SUBJECT_PATTERN)] = ""
    max_subscriptions: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    # a device whose app said "visible" within this many seconds suppresses pushes (it beats every ~20 s)
    presence_seconds: Positive = 45.0
    send_timeout: Positive = 10.0  # seconds for one push service to answer
    ttl: Annotated[int, msgspec.Meta(ge=0, le=2_419_200)] = 86_400  # seconds a push service may hold one


class Config(_Table):
    data_dir: str = ""
    ports: Ports = msgspec.field(default_factory=Ports)
    daemon: DaemonSettings = msgspec.field(default_factory=DaemonSettings)
    orphans: OrphanPolicy = msgspec.field(default_factory=OrphanPolicy)
    app: AppSettings = msgspec.field(default_factory=AppSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    proxy: ProxySettings = msgspec.field(default_factory=ProxySettings)
    tls: TlsSettings = msgspec.field(default_factory=TlsSettings)
    git: GitSettings = msgspec.field(default_factory=GitSettings)
    gc: GcSettings = msgspec.field(default_factory=GcSettings)
    agent: AgentSettings = msgspec.field(default_factory=AgentSettings)
    push: PushSettings = msgspec.field(default_factory=PushSettings)
    services: dict[ServiceName, ServiceConfig] = msgspec.field(default_factory=dict)


@dataclass(frozen=True)
class Paths:
    """Where things live, resolved once at load."""

    layout: Layout  # the install's own files: conf/, the web app, the opencode pin (supervisor.layout)
    data_dir: Path
    run_dir: Path  # control socket, Caddy's admin socket

    @property
    def home(self) -> Path:
        return self.layout.root

    @property
    def conf_dir(self) -> Path:
        return self.layout.conf_dir

    @property
    def control_socket(self) -> Path:
        return self.run_dir / "dancodes.sock"

    @property
    def web_root(self) -> Path:
        return self.layout.web_root  # the mobile web app, built by scripts/build-web.sh

    @property
    def repos_dir(self) -> Path:
        return self.data_dir / "projects" / "repos"  # owner__name: regular clones

    @property
    def worktrees_dir(self) -> Path:
        return self.data_dir / "projects" / "worktrees"  # owner__name__<session id>: one per chat

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"  # 0700, the daemon's own: opencode's server password

    @property
    def push_dir(self) -> Path:
        return self.data_dir / "push"  # 0700, the daemon's own: the browsers' push subscriptions

    @property
    def plugins_dir(self) -> Path:
        return self.data_dir / "plugins"  # the daemon's copy of our opencode plugins, for the agent to read

    @property
    def agent_home(self) -> Path:
        return self.data_dir / "home"  # $HOME of the agent when it runs as its own user


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with placeholders expanded and paths resolved."""

    config: Config
    paths: Paths
    source: Path | None

    @property
    def services(self) -> dict[str, ServiceConfig]:
        return {name: svc for name, svc in self.config.services.items() if svc.enabled}


def default_data_dir(configured: str) -> Path:
    """$DANCODES_DATA_DIR, else the config's data_dir, else /vol when writable, else ./.dancodes."""
    env = os.environ.get("DANCODES_DATA_DIR")
    if env:
        return Path(env).absolute()
    if configured:
        return Path(configured).expanduser().absolute()
    vol = Path("/vol")
    if vol.is_dir() and os.access(vol, os.W_OK):
        return vol
    return Path(".dancodes").absolute()


#: In data_dir: the operator's live settings (`dancodes-ctl config set`), the top layer.
SETTINGS_FILE = "settings.toml"


def load_config(path: str | Path | None = None, *, settings: dict[str, Any] | None = None) -> LoadedConfig:
    """Read and validate the layers, then resolve placeholders and paths.

    The layers, each overriding the one before, table by table: `conf/dancodes.toml`, the file at
    `path`, and `<data_dir>/settings.toml` (or `settings`, to validate a change before it is written).
    """
    install = layout()
    conf_dir = install.conf_dir
    merged = _read_toml(conf_dir / "dancodes.toml")
    source = Path(path).absolute() if path is not None else None
    if source is not None:
        merged = _merge(merged, _read_toml(source))
    label = str(source or conf_dir / "dancodes.toml")
    config = _validate(merged, label)
    _check_semantics(config, label)
    data_dir = default_data_dir(config.data_dir)
    settings_path = data_dir / SETTINGS_FILE
    if settings is None and settings_path.is_file():
        settings = _read_toml(settings_path)
    if settings:
        label = str(settings_path)
        if "data_dir" in settings:
            raise ConfigError(
                f"config {label}: data_dir: cannot be set inside the data_dir itself",
                path=label,
                key="data_dir",
            )
        merged = _merge(merged, settings)
        config = _validate(merged, label)
        _check_semantics(config, label)
    paths = Paths(layout=install, data_dir=data_dir, run_dir=data_dir / "run")
    config = _expand(config, paths, label)
    return LoadedConfig(config=config, paths=paths, source=source)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}", path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}", path=str(path)) from None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _validate(merged: dict[str, Any], label: str) -> Config:
    # Services one by one first: msgspec's error path does not name a dict's key, and the key
    # (the service's name) is what the user needs to see.
    services = merged.get("services", {})
    if isinstance(services, dict):
        for name, table in services.items():
            if not re.fullmatch(_SERVICE_NAME, name):
                raise ConfigError(
                    f"config {label}: services.{name}: a service name is 1-32 lowercase "
                    "letters, digits, '-' or '_', starting with a letter",
                    path=label,
                    key=f"services.{name}",
                )
            try:
                msgspec.convert(table, type=ServiceConfig)
            except msgspec.ValidationError as exc:
                raise _config_error(label, exc, prefix=f"services.{name}") from None
    try:
        return msgspec.convert(merged, type=Config)
    except msgspec.ValidationError as exc:
        raise _config_error(label, exc) from None


_AT_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def _config_error(label: str, exc: msgspec.ValidationError, prefix: str = "") -> ConfigError:
    message = str(exc)
    key: str | None = prefix or None
    match = _AT_PATH.search(message)
    if match:
        found = re.sub(r"\[(\d+)\]", r".\1", match["path"]).lstrip(".")
        key = ".".join(k for k in (prefix, found) if k)
        message = message[: match.start()]
    message = message.replace("`", "'")
    message = message[0].lower() + message[1:]
    unknown = re.fullmatch(r"object contains unknown field '(?P<field>[^']+)'", message)
    if unknown:
        key = f"{key}.{unknown['field']}" if key else unknown["field"]
        message = "unknown key"
    where = f"{key}: " if key else ""
    error = UnknownKey if unknown else ConfigError
    return error(f"config {label}: {where}{message}", path=label, key=key)


def _check_semantics(config: Config, label: str) -> None:
    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"config {label}: {key}: {message}", path=label, key=key)

    names = set(config.services)
    for name, svc in config.services.items():
        for dep in svc.after:
            if dep not in names:
                raise fail(f"services.{name}.after", f"no service named '{dep}'")
            if dep == name:
                raise fail(f"services.{name}.after", "a service cannot wait for itself")
        if not svc.stop_signal.startswith("SIG") or not hasattr(signal.Signals, svc.stop_signal):
            raise fail(f"services.{name}.stop_signal", f"'{svc.stop_signal}' is not a signal name")
        soft, hard = svc.memory_limit_mb, svc.memory_hard_limit_mb
        if soft is not None and hard is not None and hard < soft:
            raise fail(
                f"services.{name}.memory_hard_limit_mb",
                f"{hard:g} MB is below memory_limit_mb ({soft:g} MB): the hard limit is the higher one",
            )
        if svc.probe.unix_socket and not svc.probe.url:
            raise fail(f"services.{name}.probe.unix_socket", "needs probe.url as well")
        restart = svc.restart
        if restart.slow_retry is not None and restart.slow_retry > restart.backoff_max:
            raise fail(
                f"services.{name}.restart.slow_retry",
                f"{restart.slow_retry:g}s is longer than backoff_max ({restart.backoff_max:g}s): "
                "a crash loop must not keep the service down longer than backoff_max per retry",
            )
    seen: dict[int, str] = {}
    for key in ("public", "opencode", "app"):
        port = getattr(config.ports, key)
        if port and port in seen:
            raise fail(f"ports.{key}", f"{port} is also ports.{seen[port]}: each port has one owner")
        seen[port] = key
    for dep in config.daemon.health_requires:
        if dep not in names:
            raise fail("daemon.health_requires", f"no service named '{dep}'")
    try:
        parse_networks(config.proxy.trusted, "proxy.trusted")
        if config.proxy.client_ip_header:
            check_header(config.proxy.client_ip_header, "proxy.client_ip_header")
    except ConfigError as exc:
        raise ConfigError(f"config {label}: {exc}", path=label, key=exc.key) from None
    _topological_order(config.services, label)


def _topological_order(services: dict[str, ServiceConfig], label: str) -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ConfigError(
                f"config {label}: services.{name}.after: dependency cycle",
                path=label,
                key=f"services.{name}.after",
            )
        visiting.add(name)
        for dep in services[name].after:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in services:
        visit(name)
    return order


def _port(key: str, text: str, label: str) -> int:
    if not text.isdecimal() or int(text) > 65535:
        raise ConfigError(
            f"config {label}: {key}: '{text}' is not a port number (0-65535)", path=label, key=key
        )
    return int(text)


def start_order(loaded: LoadedConfig) -> list[str]:
    """Enabled services, each after the ones it waits for."""
    enabled = loaded.services
    return [n for n in _topological_order(loaded.config.services, "") if n in enabled]


def _listening(config: Config, ports: list[int]) -> list[int]:
    """With `tls.mode = "acme"` the public listener is 443 and 80 (supervisor.tls), not ports.public:
    the service that owns ports.public owns those instead."""
    if config.tls.mode != "acme":
        return ports
    return [q for p in ports for q in (ACME_PORTS if p == config.ports.public else (p,))]


def _expand(config: Config, paths: Paths, label: str) -> Config:
    values = {
        "home": paths.home,
        "conf_dir": paths.conf_dir,
        "web_root": paths.web_root,
        "data_dir": paths.data_dir,
        "run_dir": paths.run_dir,
        "ports": config.ports,
    }

    def fill(key: str, text: str) -> str:
        try:
            return text.format_map(values)
        except (KeyError, AttributeError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"config {label}: {key}: bad placeholder in '{text}' ({exc})", path=label, key=key
            ) from None

    services: dict[str, ServiceConfig] = {}
    for name, svc in config.services.items():
        key = f"services.{name}"
        probe = msgspec.structs.replace(
            svc.probe,
            url=fill(f"{key}.probe.url", svc.probe.url) if svc.probe.url else None,
            unix_socket=fill(f"{key}.probe.unix_socket", svc.probe.unix_socket)
            if svc.probe.unix_socket
            else None,
        )
        services[name] = msgspec.structs.replace(
            svc,
            argv=[fill(f"{key}.argv", a) for a in svc.argv],
            env={k: fill(f"{key}.env.{k}", v) for k, v in svc.env.items()},
            cwd=fill(f"{key}.cwd", svc.cwd) if svc.cwd else None,
            dispose_url=fill(f"{key}.dispose_url", svc.dispose_url) if svc.dispose_url else None,
            probe=probe,
            owns_ports=_listening(
                config,
                [
                    _port(f"{key}.owns_ports.{i}", fill(f"{key}.owns_ports.{i}", str(p)), label)
                    for i, p in enumerate(svc.owns_ports)
                ],
            ),
        )
    return msgspec.structs.replace(config, services=services, data_dir=str(paths.data_dir))
