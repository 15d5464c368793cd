"""Start an extra, throwaway RabbitMQ node for tests that need their own broker.

The shared broker (``rabbit@localhost`` on 127.0.0.1:5672) must never be
stopped or reconfigured, so tests that need TLS listeners, other auth
mechanisms, a broker restart or a crash get a node of their own::

    with BrokerNode(plugins=["rabbitmq_auth_mechanism_ssl"]) as node:
        async with aiorabbit.connect(node.url) as conn: ...
        node.restart()      # same ports, same data: durable things survive
        node.kill()         # SIGKILL, for "the broker crashed" tests
        node.start()

or, per test module, the ``broker_node`` fixture below (import it into the
test module: ``from .broker_node import broker_node  # noqa: F401``).

How the node is started
-----------------------
``/usr/lib/rabbitmq/bin/rabbitmq-server -detached`` (the real script, not
the ``/usr/sbin`` wrapper) runs as the ``rabbitmq`` user -- switched to by
``subprocess`` when the tests run as root -- with ``HOME`` set to that user's
home (``/var/lib/rabbitmq``) so the node reads the shared
``.erlang.cookie``, and with these environment variables, every path inside
one temporary directory owned by ``rabbitmq``:

``RABBITMQ_NODENAME``
    ``aiorabbit-test-<hex>@localhost``: a name of its own in epmd.
``RABBITMQ_NODE_PORT`` / ``RABBITMQ_DIST_PORT``
    The AMQP port (also set in the config file) and the Erlang distribution
    port, both picked free below the ephemeral range, so that an outgoing
    connection cannot grab them between a ``stop()`` and a ``start()``.
``RABBITMQ_CONFIG_FILE``
    A new-style ``rabbitmq.conf``: listeners on 127.0.0.1 only, plus the TLS
    options and whatever ``config`` the caller adds.
``RABBITMQ_ADVANCED_CONFIG_FILE``
    Our own ``advanced.config`` (``[].`` unless given), never the system one.
``RABBITMQ_ENABLED_PLUGINS_FILE``
    The node's own plugin list (the shared one would enable the shared
    node's plugins, with their listeners and ports).
``RABBITMQ_MNESIA_BASE`` / ``RABBITMQ_LOG_BASE``
    Its own data (kept across ``restart()``) and logs (``<node>.log``, whose
    tail is shown when the node does not start).
``RABBITMQ_PID_FILE``
    Written by the node; ``rabbitmqctl stop <pid file>`` waits for that
    process to exit.
``RABBITMQ_CONF_ENV_FILE``
    An empty file of our own: ``/etc/rabbitmq/rabbitmq-env.conf`` sets
    ``NODENAME=rabbit@localhost`` and ``ERL_FLAGS`` for the shared node.
``RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS`` / ``ERL_EPMD_ADDRESS``
    Keep the distribution listener (and epmd, should this node be the one
    that starts it) on 127.0.0.1, like the shared node.
``ERL_CRASH_DUMP``
    Where a node that dies at boot leaves its crash dump; its "Slogan" is
    quoted in the error.

Every other ``RABBITMQ_*`` / ``ERL_*`` variable of the test process is
dropped.  ``start.sh`` in the node directory repeats the exact command:
run it without ``-detached`` to see why a node refuses to boot (a detached
node's console output is lost; a bad config file dies before logging).

``rabbitmqctl`` is the real CLI too, run as root with
``HOME=/var/lib/rabbitmq`` (root can read the ``rabbitmq``-owned cookie;
with ``HOME=/root`` there is no cookie and every command fails with
"Failed to connect and authenticate").  Calling it directly also avoids the
``/usr/sbin`` wrapper's ``su -c "<joined arguments>"``, which passes
arguments through a shell.

Cleanup: ``stop()`` runs ``rabbitmqctl -n NODE stop PIDFILE``, then sends
SIGTERM/SIGKILL to any process still carrying this node's
``RABBITMQ_NODENAME`` in its environment (found through ``/proc``) and waits
for the node's ports to close.  The context manager and the fixture stop
the node however the test ends, and an ``atexit`` hook stops nodes left
running by an interrupted session.  ``epmd`` is shared by every node and
is left alone.  Set ``AIORABBIT_KEEP_NODE_DIR=1`` to keep the node
directories (config, logs, data) after the session.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import pwd
import random
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import pytest

__all__ = [
    "BrokerNode",
    "BrokerNodeError",
    "BrokerNodeUnavailable",
    "TLSFiles",
    "broker_node",
    "find_script",
    "rabbitmqctl",
    "unavailable_reason",
]

RABBITMQ_USER = os.environ.get("AIORABBIT_RABBITMQ_USER", "rabbitmq")
_SCRIPT_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin", "/usr/lib/rabbitmq/sbin")
_HOST = "127.0.0.1"


class BrokerNodeError(RuntimeError):
    """The extra node could not be started, stopped or controlled."""


class BrokerNodeUnavailable(BrokerNodeError):
    """This machine cannot run an extra node (no RabbitMQ, wrong user)."""


def find_script(name: str) -> str:
    """The path of a RabbitMQ script (``rabbitmq-server``, ``rabbitmqctl``).

    The real scripts are preferred over the distribution's ``/usr/sbin``
    wrappers, which switch user with ``su`` and re-quote the arguments.
    """
    for directory in _SCRIPT_DIRS:
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise BrokerNodeUnavailable(f"{name} is not installed")
    return found


def _rabbitmq_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(RABBITMQ_USER)
    except KeyError:
        raise BrokerNodeUnavailable(f"there is no {RABBITMQ_USER!r} user") from None


def unavailable_reason() -> str | None:
    """Why this machine cannot run an extra node, or ``None`` if it can."""
    try:
        find_script("rabbitmq-server")
        find_script("rabbitmqctl")
        account = _rabbitmq_account()
    except BrokerNodeUnavailable as exc:
        return str(exc)
    if os.geteuid() not in (0, account.pw_uid):
        return f"starting a RabbitMQ node needs root or the {RABBITMQ_USER!r} user"
    return None


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    # The CLI finds the cookie in $HOME; as root that must be the home of
    # the user the nodes run as.
    env["HOME"] = _rabbitmq_account().pw_dir
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


def rabbitmqctl(node: str | BrokerNode, *args: str, timeout: float = 60.0) -> str:
    """Run ``rabbitmqctl -n NODE ARGS...``; return its standard output.

    Raises :class:`BrokerNodeError` with the command's output when it fails.
    """
    name = node.nodename if isinstance(node, BrokerNode) else node
    cmd = [find_script("rabbitmqctl"), "-n", name, *args]
    try:
        proc = subprocess.run(
            cmd,
            env=_cli_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerNodeError(f"{shlex.join(cmd)} timed out after {timeout}s") from exc
    if proc.returncode != 0:
        raise BrokerNodeError(
            f"{shlex.join(cmd)} exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}".rstrip()
        )
    return proc.stdout


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    """PEM files for the node's TLS listener (readable by the node's user:
    put them in :attr:`BrokerNode.base_dir`, which is handed to it)."""

    cacertfile: str
    certfile: str
    keyfile: str


# --------------------------------------------------------------------------
# ports and processes

_handed_out: set[int] = set()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the broker's own listeners: TIME_WAIT leftovers of the last
        # run of the node do not count, a listening socket does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    """A free port below the ephemeral range (outgoing connections never
    take those, so the port stays ours across restarts)."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    reserved = {4369, 5671, 5672, 15672, 25672, 35672}
    if low > 12000:
        for _ in range(200):
            port = random.randrange(10000, low)
            if port in reserved or port in _handed_out or not _port_free(port):
                continue
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port = int(sock.getsockname()[1])
    _handed_out.add(port)
    return port


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        # A zombie is dead for our purposes.
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _processes_with_env(marker: bytes) -> list[int]:
    """PIDs of the processes whose environment holds ``marker`` (Linux)."""
    pids = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        if comm == "epmd":  # shared by every node on the host
            continue
        if environ.startswith(marker) or b"\0" + marker in environ:
            if _alive(int(entry)):
                pids.append(int(entry))
    return pids


def _wait(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------
# the node

_running: set[BrokerNode] = set()


@atexit.register
def _stop_leftovers() -> None:
    for node in list(_running):
        with contextlib.suppress(Exception):
            node.close()


class BrokerNode:
    """An extra RabbitMQ node with its own name, ports and directories.

    Construction only picks names and ports and creates :attr:`base_dir`
    (put certificates there before :meth:`start`); ``config`` entries are
    added to (or replace) the generated ``rabbitmq.conf`` lines, e.g.
    ``{"auth_mechanisms.1": "PLAIN"}``.  :attr:`config` can still be changed
    before a (re)start.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        plugins: Iterable[str] = (),
        config: Mapping[str, str] | None = None,
        tls: TLSFiles | None = None,
        advanced_config: str = "[].\n",
        startup_timeout: float = 60.0,
    ) -> None:
        reason = unavailable_reason()
        if reason:
            raise BrokerNodeUnavailable(reason)
        self.account = _rabbitmq_account()
        self.nodename = name or f"aiorabbit-test-{uuid.uuid4().hex[:10]}@localhost"
        self.plugins = list(plugins)
        self.tls = tls
        self.advanced_config = advanced_config
        self.startup_timeout = startup_timeout
        self.amqp_port = _free_port()
        self.tls_port = _free_port()
        self.dist_port = _free_port()
        self.base_dir = Path(tempfile.mkdtemp(prefix=f"{self.nodename.split('@')[0]}."))
        self.mnesia_dir = self.base_dir / "mnesia"
        self.log_dir = self.base_dir / "log"
        self.config_file = self.base_dir / "rabbitmq.conf"
        self.advanced_config_file = self.base_dir / "advanced.config"
        self.plugins_file = self.base_dir / "enabled_plugins"
        self.env_file = self.base_dir / "rabbitmq-env.conf"
        self.pid_file = self.base_dir / "rabbitmq.pid"
        self.crash_dump = self.base_dir / "erl_crash.dump"
        self.startup_output = self.base_dir / "startup.out"
        self.log_file = self.log_dir / f"{self.nodename}.log"
        self.config: dict[str, str] = self._default_config()
        self.config.update(config or {})
        self._closed = False
        self.mnesia_dir.mkdir()
        self.log_dir.mkdir()
        self._hand_over()

    # -- properties ---------------------------------------------------------

    def url_for(self, username: str = "guest", password: str = "guest") -> str:
        return f"amqp://{username}:{password}@{_HOST}:{self.amqp_port}/%2F"

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:PORT/%2F`` (guest may log in: loopback)."""
        return self.url_for()

    @property
    def tls_url(self) -> str:
        """``amqps://guest:guest@127.0.0.1:TLS_PORT/%2F`` (add ``cafile=``...)."""
        return f"amqps://guest:guest@{_HOST}:{self.tls_port}/%2F"

    @property
    def pid(self) -> int | None:
        """The node's OS pid from its pid file, if it wrote one."""
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def is_running(self) -> bool:
        return bool(self._processes())

    def __repr__(self) -> str:
        return f"<BrokerNode {self.nodename} amqp={self.amqp_port} tls={self.tls_port}>"

    # -- control ------------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """``rabbitmqctl -n <this node> ARGS...``."""
        return rabbitmqctl(self.nodename, *args, timeout=timeout)

    def add_user(self, username: str, password: str, *, vhost: str = "/", tags: str = "") -> None:
        """Create a user with full permissions on ``vhost``."""
        if password.startswith("-"):
            raise ValueError("rabbitmqctl would read a password starting with '-' as an option")
        self.ctl("add_user", username, password)
        self.ctl("set_permissions", "-p", vhost, username, ".*", ".*", ".*")
        if tags:
            self.ctl("set_user_tags", username, *tags.split())

    def start(self) -> None:
        """Start the node and wait until it has booted (``startup_timeout``)."""
        if self._closed:
            raise BrokerNodeError(f"{self!r} is closed")
        if self.is_running:
            raise BrokerNodeError(f"{self!r} is already running")
        for port in self._ports():
            if not _port_free(port):
                raise BrokerNodeError(f"port {port} of {self!r} is taken by another process")
        self.pid_file.unlink(missing_ok=True)
        self.crash_dump.unlink(missing_ok=True)
        self._write_files()
        env = self._server_env()
        cmd = [find_script("rabbitmq-server"), "-detached"]
        become = os.geteuid() != self.account.pw_uid  # root: become rabbitmq
        _running.add(self)
        started = time.monotonic()
        with self.startup_output.open("wb") as out:
            try:
                proc = subprocess.run(
                    cmd,
                    env=env,
                    cwd=self.base_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    timeout=30,
                    check=False,
                    user=self.account.pw_uid if become else None,
                    group=self.account.pw_gid if become else None,
                    extra_groups=[] if become else None,
                )
            except subprocess.TimeoutExpired:
                self._fail("`rabbitmq-server -detached` did not return within 30s")
        if proc.returncode != 0:
            self._fail(f"`rabbitmq-server -detached` exited with {proc.returncode}")
        self._await_startup(started)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the node gracefully (``rabbitmqctl stop``), then make sure
        none of its processes and none of its ports are left."""
        if not self._processes():
            self._wait_ports_closed(5)
            _running.discard(self)
            return
        args = ["stop", str(self.pid_file)] if self.pid is not None else ["stop"]
        with contextlib.suppress(BrokerNodeError):
            self.ctl(*args, timeout=timeout)
        if not _wait(lambda: not self._processes(), 10):
            self._signal_all(signal.SIGTERM, wait=10)
            self._signal_all(signal.SIGKILL, wait=10)
        self._wait_ports_closed(10)
        _running.discard(self)

    def kill(self) -> None:
        """SIGKILL the node (a crash: no connection.close is sent)."""
        self._signal_all(signal.SIGKILL, wait=10)
        self._wait_ports_closed(10)
        _running.discard(self)

    def restart(self) -> None:
        """Stop and start again: same name, ports and data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the node and delete its directory (unless
        ``AIORABBIT_KEEP_NODE_DIR`` is set)."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            _running.discard(self)
            if not os.environ.get("AIORABBIT_KEEP_NODE_DIR"):
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> BrokerNode:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the node's log file (or a note that there is none)."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return f"(no log file {self.log_file})"
        return "\n".join(text.splitlines()[-lines:])

    # -- internals ----------------------------------------------------------

    def _ports(self) -> tuple[int, ...]:
        return (self.amqp_port, self.tls_port, self.dist_port)

    def _default_config(self) -> dict[str, str]:
        return {
            "listeners.tcp.default": f"{_HOST}:{self.amqp_port}",
            "log.console": "false",
            "log.file.level": "info",
        }

    def _rendered_config(self) -> str:
        config = dict(self.config)
        if self.tls is not None:
            config.setdefault("listeners.ssl.default", f"{_HOST}:{self.tls_port}")
            config.setdefault("ssl_options.cacertfile", self.tls.cacertfile)
            config.setdefault("ssl_options.certfile", self.tls.certfile)
            config.setdefault("ssl_options.keyfile", self.tls.keyfile)
            config.setdefault("ssl_options.verify", "verify_peer")
            config.setdefault("ssl_options.fail_if_no_peer_cert", "false")
        return "".join(f"{key} = {value}\n" for key, value in config.items())

    def _write_files(self) -> None:
        self.config_file.write_text(self._rendered_config())
        self.advanced_config_file.write_text(self.advanced_config)
        self.plugins_file.write_text(f"[{','.join(self.plugins)}].\n")
        self.env_file.write_text("# empty: keeps /etc/rabbitmq/rabbitmq-env.conf out of this node\n")
        env = self._server_env()
        script = "".join(
            f"{key}={shlex.quote(env[key])} \\\n"
            for key in sorted(env)
            if key.startswith(("RABBITMQ_", "ERL_")) or key == "HOME"
        )
        start_sh = self.base_dir / "start.sh"
        start_sh.write_text(
            "#!/bin/sh\n# Start this node by hand (as the rabbitmq user); drop -detached to see\n"
            f"# its console output.\ncd {shlex.quote(str(self.base_dir))}\n"
            f"exec env {script}{shlex.quote(find_script('rabbitmq-server'))} \"$@\"\n"
        )
        start_sh.chmod(0o755)
        self._hand_over()

    def _hand_over(self) -> None:
        """Give the whole node directory to the user the node runs as."""
        uid, gid = self.account.pw_uid, self.account.pw_gid
        if os.geteuid() != 0:
            return
        for root, dirs, files in os.walk(self.base_dir):
            os.chown(root, uid, gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)

    def _server_env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_", "ERLANG_"))
        }
        env.update(
            {
                "HOME": self.account.pw_dir,
                "USER": self.account.pw_name,
                "LOGNAME": self.account.pw_name,
                "LC_ALL": os.environ.get("LC_ALL") or "C.UTF-8",
                "RABBITMQ_NODENAME": self.nodename,
                "RABBITMQ_NODE_IP_ADDRESS": _HOST,
                "RABBITMQ_NODE_PORT": str(self.amqp_port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_CONFIG_FILE": str(self.config_file),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.advanced_config_file),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.plugins_file),
                "RABBITMQ_MNESIA_BASE": str(self.mnesia_dir),
                "RABBITMQ_LOG_BASE": str(self.log_dir),
                "RABBITMQ_PID_FILE": str(self.pid_file),
                "RABBITMQ_CONF_ENV_FILE": str(self.env_file),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
                "ERL_EPMD_ADDRESS": _HOST,
                "ERL_CRASH_DUMP": str(self.crash_dump),
            }
        )
        return env

    def _processes(self) -> list[int]:
        pids = _processes_with_env(f"RABBITMQ_NODENAME={self.nodename}".encode() + b"\0")
        pid = self.pid
        if not pids and pid is not None and _alive(pid) and not Path("/proc").is_dir():
            pids = [pid]  # no /proc: trust the pid file
        return pids

    def _signal_all(self, sig: signal.Signals, wait: float) -> None:
        for pid in self._processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        _wait(lambda: not self._processes(), wait)

    def _wait_ports_closed(self, timeout: float) -> None:
        if not _wait(lambda: not any(_port_open(p) for p in self._ports()), timeout):
            open_ports = [p for p in self._ports() if _port_open(p)]
            raise BrokerNodeError(f"{self!r} stopped but ports {open_ports} still answer")

    def _await_startup(self, started: float) -> None:
        deadline = started + self.startup_timeout
        while True:
            pid = self.pid
            if pid is not None and not _alive(pid):
                self._fail("the node exited during boot")
            if pid is None and time.monotonic() - started > 2 and not self._processes():
                self._fail("the node exited before writing its pid file")
            if pid is not None and _port_open(self.amqp_port):
                break
            if time.monotonic() >= deadline:
                self._fail(f"the node did not answer on port {self.amqp_port} within "
                           f"{self.startup_timeout:.0f}s")
            time.sleep(0.1)
        remaining = max(5.0, deadline - time.monotonic())
        try:
            self.ctl("await_startup", "--timeout", str(int(remaining)), timeout=remaining + 10)
        except BrokerNodeError as exc:
            self._fail(f"rabbitmqctl await_startup failed: {exc}")

    def _fail(self, what: str) -> None:
        """Kill whatever is left of the node and raise a descriptive error."""
        details = [f"{self!r} did not start: {what}", f"node directory: {self.base_dir}"]
        with contextlib.suppress(OSError):
            output = self.startup_output.read_text(errors="replace").strip()
            if output:
                details.append(f"rabbitmq-server output:\n{output}")
        with contextlib.suppress(OSError):
            for line in self.crash_dump.read_text(errors="replace").splitlines()[:5]:
                if line.startswith("Slogan:"):
                    details.append(f"crash dump {line}")
        details.append(f"config file:\n{self.config_file.read_text()}".rstrip())
        details.append(f"log tail ({self.log_file}):\n{self.log_tail()}")
        details.append(
            f"to see the console output, run {self.base_dir / 'start.sh'} as {RABBITMQ_USER} "
            "(set AIORABBIT_KEEP_NODE_DIR=1 to keep the directory)"
        )
        self._signal_all(signal.SIGKILL, wait=10)
        _running.discard(self)
        raise BrokerNodeError("\n".join(details))


@pytest.fixture(scope="module")
def broker_node() -> Iterator[BrokerNode]:
    """An extra node (PLAIN/AMQPLAIN, guest/guest on loopback) for the test
    module; skipped where no node can be started."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"cannot start an extra RabbitMQ node: {reason}")
    with BrokerNode() as node:
        yield node
