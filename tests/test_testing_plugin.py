"""The pytest plugin users opt into: entry point, fixtures, broker discovery.

Each scenario runs an inner pytest session in a subprocess (pytester) in a
fresh directory with no ini file, so only the installed entry point and what
the scenario writes decide whether the fixtures exist.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import aiorabbit
from aiorabbit import discovery, testing

pytest_plugins = ["pytester"]

# An inner test module: declares a queue and an exchange under amqp_names,
# round-trips a message on amqp_channel and records the names it used.
USES_FIXTURES = """
import asyncio, json, pathlib
import pytest
import aiorabbit

@pytest.mark.asyncio
async def test_round_trip(amqp_url, amqp_connection, amqp_channel, amqp_names):
    assert amqp_url.startswith("amqp")
    assert amqp_connection._loop is asyncio.get_running_loop()  # the test's own loop
    assert amqp_channel.connection is amqp_connection
    queue, exchange = amqp_names.queue("jobs"), amqp_names.exchange()
    await amqp_channel.exchange_declare(exchange, "fanout")
    await amqp_channel.queue_declare(queue)
    await amqp_channel.queue_bind(queue, exchange)
    await amqp_channel.basic_publish(b"hi", exchange=exchange)
    for _ in range(100):
        msg = await amqp_channel.basic_get(queue, no_ack=True)
        if msg is not None:
            break
    assert msg is not None and msg.body == b"hi"
    pathlib.Path("names.json").write_text(json.dumps([queue, exchange]))

@pytest.mark.asyncio
async def test_names_are_unique(amqp_names):
    assert amqp_names.queue() != amqp_names.queue()
    assert amqp_names.exchange("a").split(".")[-2] == "a"
"""


# The same module written for anyio's plugin, the way FastAPI's documentation
# writes async tests.
ANYIO_STYLE = (
    USES_FIXTURES.replace("@pytest.mark.asyncio", "@pytest.mark.anyio")
    + """
@pytest.fixture
def anyio_backend():
    return "asyncio"
"""
)
# Inner runs with pytest-asyncio turn its warnings (an unset loop scope, an
# unmarked async fixture in strict mode) into errors.
STRICT_WARNINGS = ("-o", "asyncio_default_fixture_loop_scope=function", "-W", "error")


async def _assert_deleted(channel: aiorabbit.Channel, pytester: pytest.Pytester) -> None:
    queue, exchange = json.loads((pytester.path / "names.json").read_text())
    assert queue.startswith("test.test_round_trip.jobs.")
    conn = channel.connection
    with pytest.raises(aiorabbit.NotFound):
        await channel.queue_declare(queue, passive=True)
    ch = await conn.channel()
    with pytest.raises(aiorabbit.NotFound):
        await ch.exchange_declare(exchange, "fanout", passive=True)


async def test_fixtures_are_off_unless_asked_for(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USES_FIXTURES)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*fixture 'amqp_*' not found*"])
    # The entry point was loaded all the same: its options exist.
    assert "--amqp-url" in pytester.runpytest_subprocess("--help").stdout.str()


async def test_command_line_flag_turns_them_on(pytester: pytest.Pytester, channel: aiorabbit.Channel) -> None:
    pytester.makepyfile(USES_FIXTURES)
    pytester.runpytest_subprocess("--aiorabbit").assert_outcomes(passed=2)
    await _assert_deleted(channel, pytester)


async def test_ini_setting_turns_them_on(pytester: pytest.Pytester, channel: aiorabbit.Channel) -> None:
    pytester.makeini("[pytest]\naiorabbit_fixtures = true\n")
    pytester.makepyfile(USES_FIXTURES)
    pytester.runpytest_subprocess().assert_outcomes(passed=2)
    await _assert_deleted(channel, pytester)


async def test_conftest_opt_in_without_the_entry_point(
    pytester: pytest.Pytester, channel: aiorabbit.Channel
) -> None:
    pytester.makeconftest('pytest_plugins = ["aiorabbit.testing"]\n')
    pytester.makepyfile(USES_FIXTURES)
    pytester.runpytest_subprocess("-p", "no:aiorabbit").assert_outcomes(passed=2)
    await _assert_deleted(channel, pytester)


async def test_url_option_and_ini_setting(pytester: pytest.Pytester, amqp_url: str) -> None:
    # Both differ from $AMQP_URL (the fixture's last resort) as text, not as broker.
    assert amqp_url.startswith("amqp://guest:guest@127.0.0.1:5672/")
    by_option = amqp_url.replace("127.0.0.1", "localhost")
    by_ini = amqp_url.replace("%2F", "")
    pytester.makepyfile(
        """
        def test_url(amqp_url):
            print("URL=" + amqp_url)
        """
    )
    result = pytester.runpytest_subprocess("--aiorabbit", "-s", f"--amqp-url={by_option}")
    result.stdout.fnmatch_lines([f"*URL={by_option}"])
    pytester.makeini(f"[pytest]\naiorabbit_fixtures = true\namqp_url = {by_ini}\n")
    pytester.runpytest_subprocess("-s").stdout.fnmatch_lines([f"*URL={by_ini}"])


async def test_a_silent_broker_fails_the_tests_that_need_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"amqp://guest:s3cret@127.0.0.1:{_free_port()}/"
    monkeypatch.setenv("AMQP_URL", dead)
    pytester.makepyfile(
        """
        def test_needs_broker(amqp_url):
            pass

        def test_does_not():
            pass
        """
    )
    result = pytester.runpytest_subprocess("--aiorabbit")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*does not answer*"])
    assert "s3cret" not in result.stdout.str()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("where", ["env", "option"])
async def test_a_malformed_url_fails_the_tests_that_need_it_without_its_password(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # An unescaped "/" in the password: urllib's error would quote it.
    malformed = "amqp://guest:s3cr3t-PW/x@127.0.0.1/"
    pytester.makepyfile(
        """
        def test_needs_broker(amqp_url):
            pass
        """
    )
    if where == "env":
        monkeypatch.setenv("AMQP_URL", malformed)
        result = pytester.runpytest_subprocess("--aiorabbit", "--tb=long")
    else:
        result = pytester.runpytest_subprocess("--aiorabbit", "--tb=long", f"--amqp-url={malformed}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*malformed AMQP URL amqp://guest:******@127.0.0.1/*"])
    if where == "env":  # (pytest itself may echo its own command line)
        assert "s3cr3t-PW" not in result.stdout.str() + result.stderr.str()
    else:
        assert "s3cr3t-PW" not in "\n".join(
            line for line in result.stdout.lines if "--amqp-url" not in line
        )


def test_broker_url_takes_the_given_url_then_the_environment(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with discovery.broker_url(amqp_url) as url:
        assert url == amqp_url
    monkeypatch.setenv("AMQP_URL", amqp_url)
    with discovery.broker_url() as url:
        assert url == amqp_url


def test_broker_url_falls_back_to_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMQP_URL")
    with discovery.broker_url() as url:
        assert url == discovery.LOCAL_URL


def test_broker_url_says_how_to_start_a_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMQP_URL")
    monkeypatch.setattr(discovery, "LOCAL_URL", f"amqp://127.0.0.1:{_free_port()}/")
    # No testcontainers (as on a machine without it): the fallback reports that.
    monkeypatch.setitem(sys.modules, "testcontainers.rabbitmq", None)
    with pytest.raises(testing.BrokerUnavailable, match="rabbitmq-server -detached"), discovery.broker_url():
        pass


def test_broker_url_starts_and_stops_a_container(monkeypatch: pytest.MonkeyPatch) -> None:
    # No Docker engine runs here, so a stand-in for testcontainers' class checks
    # our side of it: the image asked for, the URL built, the container stopped.
    import types

    calls: list[str] = []

    class Container:
        def __init__(self, image: str) -> None:
            calls.append(f"image {image}")

        def start(self) -> None:
            calls.append("start")

        def get_container_host_ip(self) -> str:
            return "127.0.0.1"

        def get_exposed_port(self, port: int) -> int:
            return 5672 if port == 5672 else -1

        def stop(self) -> None:
            calls.append("stop")

    monkeypatch.delenv("AMQP_URL")
    monkeypatch.setattr(discovery, "LOCAL_URL", f"amqp://127.0.0.1:{_free_port()}/")
    module = types.SimpleNamespace(RabbitMqContainer=Container)
    monkeypatch.setitem(sys.modules, "testcontainers.rabbitmq", module)
    with discovery.broker_url() as url:
        assert url == "amqp://guest:guest@127.0.0.1:5672/%2F"
        assert calls == ["image rabbitmq:3-management", "start"]
    assert calls[-1] == "stop"


def test_broker_url_rejects_a_silent_url_without_its_password() -> None:
    with pytest.raises(testing.BrokerUnavailable) as info, discovery.broker_url(
        f"amqps://user:hunter2@127.0.0.1:{_free_port()}/vhost"
    ):
        pass
    assert "hunter2" not in str(info.value)
    assert "amqps://user:******@127.0.0.1" in str(info.value)


async def test_names_cleanup_tolerates_missing_and_refused_deletes(
    amqp_url: str, channel: aiorabbit.Channel
) -> None:
    names = testing.Names("test.cleanup")
    assert names.queue() != names.queue()  # never declared: deleting them is a 404, ignored
    exchange = names.exchange()
    await channel.exchange_declare(exchange, "direct")
    names.exchanges.insert(0, "amq.direct")  # a reserved name: refused with 403, ignored
    await names.cleanup(amqp_url)
    with pytest.raises(aiorabbit.NotFound):
        await channel.exchange_declare(exchange, "direct", passive=True)
    await testing.Names("test.empty").cleanup("amqp://127.0.0.1:1/")  # nothing to do: no connection


def test_safe_name_keeps_names_short_and_legal() -> None:
    assert testing._safe_name("test_x[param/with spaces]") == "test_x-param-with-spaces-"
    assert len(testing._safe_name("a" * 500)) == 80
    assert testing._safe_name("[]") == "test"


def test_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "aiorabbit"]
    assert entry.value == "aiorabbit.pytest_plugin"
    assert Path(entry.load().__file__).name == "pytest_plugin.py"


async def test_a_missing_fixture_says_how_to_opt_in(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USES_FIXTURES)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*aiorabbit's fixtures are opt-in*--aiorabbit*aiorabbit_fixtures = true*"])


def test_broker_discovery_does_not_import_pytest() -> None:
    code = (
        "import sys, aiorabbit.discovery as d\n"
        "assert 'pytest' not in sys.modules, 'pytest imported'\n"
        "with d.broker_url() as url: print(url)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("amqp://")


async def test_anyio_plugin_alone(pytester: pytest.Pytester, channel: aiorabbit.Channel) -> None:
    # As where pytest-asyncio is not installed: not loaded, and not importable.
    pytester.makeconftest('import sys\nsys.modules["pytest_asyncio"] = None\n')
    pytester.makepyfile(
        ANYIO_STYLE
        + """
def test_pytest_asyncio_is_not_importable():
    with pytest.raises(ImportError):
        import pytest_asyncio
"""
    )
    result = pytester.runpytest_subprocess("--aiorabbit", "-p", "no:asyncio", "-W", "error")
    result.assert_outcomes(passed=3)
    await _assert_deleted(channel, pytester)


@pytest.mark.parametrize("first", ["asyncio", "anyio"])
async def test_anyio_tests_next_to_pytest_asyncio(
    pytester: pytest.Pytester, channel: aiorabbit.Channel, first: str
) -> None:
    # Both plugins, pytest-asyncio in its default strict mode.  "-p <first>"
    # loads that plugin before the other, whose fixture-setup wrapper then
    # wraps the first one's: both orders, as the installed plugins' order varies.
    pytester.makepyfile(ANYIO_STYLE)
    result = pytester.runpytest_subprocess("--aiorabbit", "-p", first, *STRICT_WARNINGS)
    result.assert_outcomes(passed=2)
    await _assert_deleted(channel, pytester)


@pytest.mark.parametrize("mode", ["strict", "auto"])
async def test_pytest_asyncio_modes(pytester: pytest.Pytester, channel: aiorabbit.Channel, mode: str) -> None:
    pytester.makepyfile(USES_FIXTURES)
    result = pytester.runpytest_subprocess("--aiorabbit", "-o", f"asyncio_mode={mode}", *STRICT_WARNINGS)
    result.assert_outcomes(passed=2)
    await _assert_deleted(channel, pytester)


@pytest.mark.parametrize("first", ["asyncio", "anyio"])
async def test_anyio_marked_tests_under_pytest_asyncio_auto_mode(
    pytester: pytest.Pytester, channel: aiorabbit.Channel, first: str
) -> None:
    # Auto mode makes pytest-asyncio run the @pytest.mark.anyio tests too, on
    # its loop.  When pytest-asyncio's wrapper is the outer one it runs their
    # async fixtures there as well; when anyio's is, anyio's plugin would run
    # them on its own loop, and the fixtures refuse, saying why.
    pytester.makepyfile(ANYIO_STYLE)
    args = ("--aiorabbit", "-p", first, "-o", "asyncio_mode=auto", *STRICT_WARNINGS)
    result = pytester.runpytest_subprocess(*args)
    if first == "anyio":
        result.assert_outcomes(passed=2)
        await _assert_deleted(channel, pytester)
    else:
        result.assert_outcomes(errors=2)
        result.stdout.fnmatch_lines(
            ["*run by pytest-asyncio*also asks for anyio_backend*another event loop*"]
        )


async def test_anyio_backend_other_than_asyncio_is_refused(pytester: pytest.Pytester) -> None:
    # The refusal comes before anyio's plugin needs trio: it shows whether trio
    # is installed or not.
    pytester.makepyfile(ANYIO_STYLE.replace('return "asyncio"', 'return "trio"'))
    result = pytester.runpytest_subprocess("--aiorabbit", "-p", "no:asyncio")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*fixture 'amqp_*' needs anyio's asyncio backend*runs on 'trio'*"])


async def test_without_an_async_plugin_the_fixtures_say_what_to_do(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_sync(amqp_channel):\n    pass\n")
    result = pytester.runpytest_subprocess("--aiorabbit", "-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no plugin runs it*@pytest.mark.anyio*install pytest-asyncio*"])


def test_fixtures_import_without_pytest_asyncio() -> None:
    code = (
        "import sys\n"
        "sys.modules['pytest_asyncio'] = None  # as if not installed\n"
        "import aiorabbit.testing as t\n"
        "assert t.amqp_channel and t.amqp_connection and t.amqp_names\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
