"""The deploy recipes do what their comments promise, checked with the tools that run them.

- ``deploy/nginx.conf``: Debian's nginx accepts it (``nginx -t``), and a running nginx with it
  speaks HTTP/2, takes only POSTs on the webhook, and passes an update to the other labelbot
  process when one is down or dies mid-update.
- ``deploy/*.service``: ``systemd-analyze verify`` finds nothing to complain about, and every
  ``ExecStart`` is a real ``labelbot`` command.
- ``Dockerfile``, ``compose.yaml``: no Docker engine runs in CI, so their structure is checked:
  the user the bot runs as owns the directory of its SQLite file, every secret is required.
- ``deploy/healthcheck.py``: healthy and unhealthy in webhook and in polling mode, against a real
  ``labelbot run``.

A missing nginx, openssl or systemd-analyze skips its tests with a reason; under ``CI=true``
(where ``.ci/run`` installs them) it fails them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from sqlalchemy.engine import make_url

from bot.cli import build_parser
from bot.fakegram import FakeTelegram
from bot.settings import Settings
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
INSTALLED_LABELBOT = "/opt/labelbot/venv/bin/labelbot"
SECRETS = ("LABELBOT_BOT_TOKEN", "LABELBOT_WEBHOOK_SECRET", "POSTGRES_PASSWORD")


def tool(name: str) -> str:
    """The path of a command-line tool; a skip without it, or a failure under CI."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        message = f"{name} not found (.ci/run installs it with apt-get)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct free ports: the probes stay bound until all are chosen, or the kernel may hand
    out one port twice (nginx then proxies to itself)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


# --- nginx ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for bot.example.org, in place of Let's Encrypt's."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    request = "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=bot.example.org"
    subprocess.run(
        [tool("openssl"), *request.split(), "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def nginx_site(certificate: tuple[Path, Path], ports: dict[int, int] | None = None) -> str:
    """deploy/nginx.conf with the test's certificate; ``ports`` moves listen and upstream ports."""
    site = (DEPLOY / "nginx.conf").read_text()
    live = "/etc/letsencrypt/live/bot.example.org/"
    assert f"{live}fullchain.pem" in site and f"{live}privkey.pem" in site
    site = site.replace(f"{live}fullchain.pem", str(certificate[0]))
    site = site.replace(f"{live}privkey.pem", str(certificate[1]))
    for old, new in (ports or {}).items():
        site, count = re.subn(rf"(?<=[ :\]]){old}(?=[ ;])", str(new), site)
        assert count, f"port {old} not in deploy/nginx.conf"
    if not ipv6():  # nginx would fail to bind [::]: the machine's lack, not the config's
        site = re.sub(r"^\s*listen \[::\].*\n", "", site, flags=re.MULTILINE)
    return site


def ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def nginx_main_conf(folder: Path, site: str, *, foreground: bool = False) -> Path:
    """A minimal nginx.conf that includes the site in its http block, everything in ``folder``."""
    (folder / "labelbot.conf").write_text(site)
    temp = "".join(
        f"  {kind}_temp_path {folder / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = folder / "nginx.conf"
    conf.write_text(
        ("daemon off;\nmaster_process off;\n" if foreground else "")
        + f"pid {folder / 'nginx.pid'};\nerror_log stderr;\nevents {{}}\n"
        + f"http {{\n  access_log off;\n{temp}  include {folder / 'labelbot.conf'};\n}}\n"
    )
    return conf


def test_nginx_accepts_the_config(certificate: tuple[Path, Path], tmp_path: Path) -> None:
    # nginx -t binds the listen port: a free one, so neither root nor a taken 443 is needed.
    conf = nginx_main_conf(tmp_path, nginx_site(certificate, {443: free_port()}))

    result = subprocess.run(
        [tool("nginx"), "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    complaints = [
        line
        for line in result.stderr.splitlines()
        if re.search(r"\[(warn|emerg|alert|crit|error)\]", line)
        # nginx >= 1.25.1 deprecates http2 in the listen line but still honours it; older
        # versions (Debian 12, Ubuntu 24.04) know no other way.
        and 'the "listen ... http2" directive is deprecated' not in line
    ]
    assert complaints == []


@dataclass
class Upstream:
    """A stand-in for one labelbot webhook process on a port: alive, or dying mid-update."""

    port: int
    dies_mid_update: bool = False
    received: list[bytes] = field(default_factory=list)
    server: web.AppRunner | asyncio.Server | None = None

    async def start(self) -> None:
        if self.dies_mid_update:
            self.server = await asyncio.start_server(self._die, "127.0.0.1", self.port)
            return
        app = web.Application()
        app.router.add_post("/telegram", self._update)
        app.router.add_get("/healthz", self._health)
        self.server = web.AppRunner(app, access_log=None)
        await self.server.setup()
        await web.TCPSite(self.server, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if isinstance(self.server, web.AppRunner):
            await self.server.cleanup()
        elif self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _update(self, request: web.Request) -> web.Response:
        self.received.append(await request.read())
        return web.Response(text=f"processed on {self.port}")

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"database": "ok"})

    async def _die(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read the request, then drop the connection with no answer: a process killed."""
        data = await reader.read(65536)
        if data:
            self.received.append(data)
        writer.transport.abort()


@dataclass
class Proxy:
    url: str
    port: int
    upstream_ports: tuple[int, int]


@pytest.fixture
async def proxy(certificate: tuple[Path, Path], tmp_path: Path) -> AsyncIterator[Proxy]:
    """nginx running deploy/nginx.conf on free ports, in front of two upstream ports."""
    https, first, second = free_ports(3)
    site = nginx_site(certificate, {443: https, 8443: first, 8444: second})
    conf = nginx_main_conf(tmp_path, site, foreground=True)
    process = await asyncio.create_subprocess_exec(
        tool("nginx"),
        "-e",
        "stderr",  # not the packaged log file, which only root may open
        "-p",
        str(tmp_path),
        "-c",
        str(conf),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(100):
            if process.returncode is not None:
                break
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", https)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        if process.returncode is not None:
            assert process.stderr is not None
            pytest.fail(f"nginx did not start: {(await process.stderr.read()).decode()}")
        yield Proxy(f"https://127.0.0.1:{https}", https, (first, second))
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGQUIT)
            await asyncio.wait_for(process.wait(), 10)


async def post_updates(proxy: Proxy, count: int) -> list[tuple[int, str]]:
    replies = []
    async with aiohttp.ClientSession() as session:
        for update_id in range(count):
            async with session.post(
                f"{proxy.url}/telegram", json={"update_id": update_id}, ssl=False
            ) as response:
                replies.append((response.status, await response.text()))
    return replies


@pytest.mark.parametrize("failure", ["down", "dies mid-update"])
async def test_nginx_passes_updates_to_the_other_process_when_one_fails(
    proxy: Proxy, failure: str
) -> None:
    first, second = proxy.upstream_ports
    alive = Upstream(second)
    broken = Upstream(first, dies_mid_update=True)
    await alive.start()
    if failure == "dies mid-update":
        await broken.start()
    try:
        replies = await post_updates(proxy, 4)
    finally:
        await alive.stop()
        await broken.stop()

    assert replies == [(200, f"processed on {second}")] * 4
    assert sorted(alive.received) == sorted(f'{{"update_id": {i}}}'.encode() for i in range(4))
    if failure == "dies mid-update":
        assert broken.received, "nginx never tried the dying process"


async def test_nginx_speaks_http2_takes_only_posts_on_the_webhook_and_hides_the_rest(
    proxy: Proxy,
) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    _reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port, ssl=context)
    protocol = writer.get_extra_info("ssl_object").selected_alpn_protocol()
    writer.close()
    upstreams = [Upstream(port) for port in proxy.upstream_ports]
    for upstream in upstreams:
        await upstream.start()
    try:
        async with aiohttp.ClientSession() as session:
            statuses = {}
            for method, path in (("GET", "/telegram"), ("GET", "/"), ("GET", "/healthz")):
                async with session.request(method, f"{proxy.url}{path}", ssl=False) as response:
                    statuses[method, path] = response.status
    finally:
        for upstream in upstreams:
            await upstream.stop()

    assert protocol == "h2"
    assert statuses == {("GET", "/telegram"): 403, ("GET", "/"): 404, ("GET", "/healthz"): 200}
    assert all(not upstream.received for upstream in upstreams)


def test_nginx_upstreams_are_the_ports_of_the_systemd_instances() -> None:
    site = (DEPLOY / "nginx.conf").read_text()
    servers = re.findall(r"^\s*server 127\.0\.0\.1:(\d+) (.*);$", site, re.MULTILINE)
    enabled = re.search(r"systemctl enable --now ((?:labelbot@\d+ ?)+)", site)
    template = (DEPLOY / "labelbot@.service").read_text()

    assert len(servers) >= 2, "failover needs more than one upstream server"
    assert all("max_fails=" in options and "fail_timeout=" in options for _, options in servers)
    assert enabled is not None
    assert enabled.group(1).split() == [f"labelbot@{port}" for port, _ in servers]
    assert "Environment=LABELBOT_PORT=%i" in template.splitlines()


# --- systemd ----------------------------------------------------------------------------------


def unit_values(path: Path, key: str) -> list[str]:
    return [
        line.split("=", 1)[1]
        for line in path.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


UNITS = sorted(DEPLOY.glob("*.service"))


def test_systemd_analyze_verify_finds_nothing_wrong_with_the_units(tmp_path: Path) -> None:
    # The units run labelbot from /opt/labelbot/venv; verify insists that the binary exists, so
    # the copies it checks point at a stand-in. Everything else is verified as shipped.
    stand_in = tmp_path / "labelbot"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    for unit in UNITS:
        text = unit.read_text()
        assert INSTALLED_LABELBOT in text
        (tmp_path / unit.name).write_text(text.replace(INSTALLED_LABELBOT, str(stand_in)))
    names = [unit.name.replace("@.", "@8443.") for unit in UNITS]

    result = subprocess.run(
        [tool("systemd-analyze"), "verify", "--man=no", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert {"labelbot.service", "labelbot@8443.service", "labelbot-migrate.service"} <= set(names)


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_each_unit_runs_a_real_labelbot_command_as_the_packaged_user(unit: Path) -> None:
    (command,) = unit_values(unit, "ExecStart")
    binary, *args = shlex.split(command)
    sysusers = (DEPLOY / "labelbot.sysusers").read_text()

    assert binary == INSTALLED_LABELBOT
    build_parser().parse_args(args)  # exits (a test failure) on an unknown command
    assert unit_values(unit, "User") == ["labelbot"]
    assert re.search(r"^u labelbot - .* /var/lib/labelbot$", sysusers, re.MULTILINE)
    # The state directory is created for that user and is where the bot starts, so the
    # default SQLite file (a relative path) lands in it.
    assert unit_values(unit, "StateDirectory") == ["labelbot"]
    assert unit_values(unit, "WorkingDirectory") == ["%S/labelbot"]
    assert unit_values(unit, "EnvironmentFile") == ["/etc/labelbot/labelbot.env"]


def test_the_template_waits_for_the_migrations_and_excludes_the_polling_unit() -> None:
    template = DEPLOY / "labelbot@.service"

    assert "labelbot-migrate.service" in unit_values(template, "Requires")
    assert "labelbot-migrate.service" in " ".join(unit_values(template, "After"))
    assert unit_values(template, "Conflicts") == ["labelbot.service"]
    assert unit_values(DEPLOY / "labelbot-migrate.service", "Type") == ["oneshot"]


def test_the_example_environment_file_is_valid_settings_with_sqlite_in_the_state_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("LABELBOT_"):
            monkeypatch.delenv(name)
    for line in (DEPLOY / "labelbot.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            monkeypatch.setenv(key, value)

    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert settings.webhook_url is None  # polling until the operator sets a URL and a secret
    assert make_url(settings.database_url).database == "/var/lib/labelbot/labelbot.db"


# --- Dockerfile and compose.yaml ----------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_the_image_user_owns_the_directory_of_the_default_sqlite_file() -> None:
    steps = dockerfile_instructions()
    (user,) = [args for kind, args in steps if kind == "USER"]
    env = " ".join(args for kind, args in steps if kind == "ENV")
    url = re.search(r"LABELBOT_DATABASE_URL=(\S+)", env)
    assert url is not None, "the image must say where its SQLite file goes"
    database = Path(str(make_url(url.group(1)).database))
    runs = " ".join(args for kind, args in steps if kind == "RUN")
    owned = re.search(rf"install -d -o {user} -g {user} -m \d+ (\S+)", runs)
    after_user = steps[[kind for kind, _ in steps].index("USER") :]

    assert database.is_absolute()
    assert owned is not None and database.parent == Path(owned.group(1))
    assert re.search(rf"useradd .*\b{user}\b", runs)
    assert ("VOLUME", str(database.parent)) in steps
    # The working directory is writable too (the demo and exports write there).
    assert ("WORKDIR", str(database.parent)) in after_user


def test_the_image_installs_every_package_and_ships_its_health_check() -> None:
    steps = dockerfile_instructions()
    copies = [args.split() for kind, args in steps if kind == "COPY"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = re.search(r"packages = \[(.*?)\]", pyproject)
    assert packages is not None
    (health,) = [args for kind, args in steps if kind == "HEALTHCHECK"]
    command = re.search(r"CMD (\[.*\])", health)
    assert command is not None

    for package in re.findall(r'"(\w+)"', packages.group(1)):
        assert [package, f"./{package}"] in copies
    assert ["deploy/healthcheck.py", yaml.safe_load(command.group(1))[-1]] in copies


def test_compose_requires_every_secret_and_never_defaults_one() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    values = [
        str(value)
        for service in compose["services"].values()
        for value in (service.get("environment") or {}).values()
    ]

    for secret in SECRETS:
        uses = [m for v in values for m in re.findall(rf"\$\{{{secret}([^}}]*)\}}", v)]
        assert any(use.startswith(":?") for use in uses), f"{secret} is not required"
        assert not any(re.match(r":?-", use) for use in uses), f"{secret} has a default"
    bot = compose["services"]["bot"]["environment"]
    assert bot["LABELBOT_LISTEN"] == "0.0.0.0"
    assert (
        f"127.0.0.1:{bot['LABELBOT_PORT']}:{bot['LABELBOT_PORT']}"
        in (compose["services"]["bot"]["ports"])
    )


# --- the container health check -----------------------------------------------------------------


def health_check(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABELBOT_")}
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py")],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_health_check_in_polling_mode_is_the_database_being_reachable(tmp_path: Path) -> None:
    sqlite = {"LABELBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"}
    lost = {"LABELBOT_DATABASE_URL": f"postgresql+asyncpg://labelbot:pw@127.0.0.1:{free_port()}/x"}

    assert health_check(sqlite, tmp_path) == (0, "healthy: database: ok\n")
    code, output = health_check(lost, tmp_path)
    assert code == 1
    assert output.startswith("unhealthy: database unreachable")
    assert "pw" not in output


def test_health_check_never_prints_the_token_of_invalid_settings(tmp_path: Path) -> None:
    code, output = health_check(
        {"LABELBOT_BOT_TOKEN": "123:very-secret", "LABELBOT_WEBHOOK_URL": "https://x/telegram"},
        tmp_path,
    )

    assert code == 1
    assert "LABELBOT_WEBHOOK_SECRET is required" in output
    assert "very-secret" not in output


@pytest.fixture
def webhook_env(telegram: FakeTelegram, tmp_path: Path) -> Iterator[dict[str, str]]:
    port = free_port()
    yield {
        "LABELBOT_BOT_TOKEN": telegram.token,
        "LABELBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "LABELBOT_TELEGRAM_BASE_URL": telegram.base_url,
        "LABELBOT_TELEGRAM_BASE_FILE_URL": telegram.base_file_url,
        "LABELBOT_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
        "LABELBOT_WEBHOOK_SECRET": "s3cret",
        "LABELBOT_LISTEN": "0.0.0.0",
        "LABELBOT_PORT": str(port),
    }


async def test_health_check_in_webhook_mode_follows_the_bots_healthz(
    webhook_env: dict[str, str], tmp_path: Path
) -> None:
    before = await asyncio.to_thread(health_check, webhook_env, tmp_path)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABELBOT_")}
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        env={**clean, **webhook_env},
        cwd=tmp_path,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(60):
            during = await asyncio.to_thread(health_check, webhook_env, tmp_path)
            if during[0] == 0:
                break
            await asyncio.sleep(0.5)
    finally:
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), 20)
    after = await asyncio.to_thread(health_check, webhook_env, tmp_path)

    assert before[0] == 1 and "Connection refused" in before[1]
    assert during[0] == 0, during[1]
    assert '"database": "ok"' in during[1]
    assert after[0] == 1
