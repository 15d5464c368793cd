"""Run the code of README.md against the real broker, as a reader would.

The rules for README authors:

* Every ```` ```python ```` block runs, each in a subprocess of its own (the
  interpreter running these tests, so the aiorabbit under test), in an
  empty temporary directory, with ``AMQP_URL`` set from the ``amqp_url``
  fixture, and must exit 0 within ``TIMEOUT`` seconds.
* A block that cannot run alone (it uses a ``conn`` or ``ch`` from
  elsewhere, a made-up host, a top-level ``await``...) is a fragment: put
  ``<!-- fragment -->`` on the line just before its fence.  Fragments are
  the only blocks not run, and they must still parse as Python (a top-level
  ``await`` is allowed in them).
* A block is run as a script, exactly as written.  One that defines
  ``async def main`` must run it too (``asyncio.run(main())``,
  ``uvloop.run(main())``...): the test fails rather than adding the call,
  because a reader copying the block would not have it either.
* A block that defines test functions (``def test_...`` / ``async def
  test_...`` at the top level) is a pytest file: it is written to
  ``test_block.py`` beside a ``pytest.ini`` that turns the fixtures on the
  way the README says (``aiorabbit_fixtures = true``), and pytest must pass
  it with every test run.
* A block that creates a FastAPI application (``app = FastAPI(...)``) is
  imported as a module and driven with FastAPI's ``TestClient``: startup,
  the health route, a ``POST /jobs`` that the block's consumer must take and
  acknowledge, and shutdown (``FASTAPI_DRIVER`` below).  Change the driver
  with the block.

The shell block of the "Command line" section is run too, under ``set -euo
pipefail``, with the ``aiorabbit`` command of this environment first on
``PATH``.

The blocks run in the README's order on one broker, without clearing
anything in between, so that two sections colliding on a name (the same
queue declared with other arguments) fail here as they would for a reader.
The fixed names they use (``README_QUEUES``) are deleted before the first
block and after the last, and a file lock keeps two test runs on one
machine from using them at the same time.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import re
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import aiorabbit

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

FRAGMENT = "<!-- fragment -->"
#: The longest one block may run.
TIMEOUT = 60.0
#: Every queue a block of the README declares under a fixed name.
README_QUEUES = ("tasks", "invoices", "jobs", "jobs.dead", "rpc.double", "orders")

_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    lang: str
    line: int  # 1-based line of the opening fence
    heading: str  # the nearest heading above
    code: str
    fragment: bool

    id: str = ""  # the heading as a slug, numbered when a heading has several blocks


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text``, with the marker and heading before it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    heading = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        opening = _FENCE.match(line)
        if opening is None:
            i += 1
            continue
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"README.md line {start + 1}: the block is never closed")
        i += 1
        marked = start > 0 and lines[start - 1].strip() == FRAGMENT
        blocks.append(Block(opening.group(1), start + 1, heading, "\n".join(body) + "\n", marked))
    seen: dict[str, int] = {}
    for block in blocks:
        heading = re.sub(r"[^a-z0-9]+", "-", block.heading.lower()).strip("-") or "top"
        slug = f"{block.lang or 'text'}-{heading}"
        seen[slug] = seen.get(slug, 0) + 1
        block.id = slug if seen[slug] == 1 else f"{slug}-{seen[slug]}"
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.lang == "python"]
RUNNABLE = [b for b in PYTHON if not b.fragment]


def _top_level_names(tree: ast.Module) -> set[str]:
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def _calls_main(tree: ast.Module) -> bool:
    """True if a top-level statement (not a function body) calls ``main()``."""
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "main":
                return True
    return False


def _imported_modules(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def _creates_fastapi_app(tree: ast.Module) -> bool:
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "app" for t in stmt.targets)
            and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name)
            and stmt.value.func.id == "FastAPI"
        ):
            return True
    return False


FASTAPI_DRIVER = textwrap.dedent(
    """
    import asyncio
    import time
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient would rather have httpx2
        from fastapi.testclient import TestClient

    import aiorabbit
    import readme_block as block


    async def ready(queue):
        async with aiorabbit.connect(name="readme-test-check") as conn:
            ch = await conn.channel()
            return (await ch.queue_declare(queue, passive=True)).message_count


    with TestClient(block.app) as client:
        response = client.get("/health/rabbitmq")
        assert response.status_code == 200, (response.status_code, response.text)
        response = client.post("/jobs", json={"id": "1", "text": "hello"})
        assert response.status_code == 202, (response.status_code, response.text)
        deadline = time.monotonic() + 15
        while asyncio.run(ready("jobs")):
            assert time.monotonic() < deadline, "the consumer never took the job"
            time.sleep(0.1)
    # After shutdown: acknowledged (not requeued) and not dead-lettered.
    assert asyncio.run(ready("jobs")) == 0, "the job went back to the queue"
    assert asyncio.run(ready("jobs.dead")) == 0, "the job was dead-lettered"
    print("driven: health 200, POST /jobs 202, job consumed and acked")
    """
)


# ----------------------------------------------------------------------
# fixtures


async def _delete_readme_queues(url: str) -> None:
    async with aiorabbit.connect(url, name="readme-test-cleanup") as conn:
        ch = await conn.channel()
        for queue in README_QUEUES:
            await ch.queue_delete(queue)  # succeeds when the queue does not exist


@pytest.fixture(scope="module")
def _readme_names(amqp_url: str) -> Iterator[None]:
    """The README's fixed names, cleared before the first block and after
    the last one, not in between: the blocks run in the README's order, one
    after the other on the same broker, as a reader would run them, so a
    block that declares a name another one uses with other arguments fails.
    A file lock keeps two runs on one machine from doing so at once."""
    with contextlib.ExitStack() as stack:
        if fcntl is not None:
            handle = stack.enter_context(
                open(Path(tempfile.gettempdir()) / "aiorabbit-readme-tests.lock", "w")
            )
            fcntl.flock(handle, fcntl.LOCK_EX)
        asyncio.run(_delete_readme_queues(amqp_url))
        try:
            yield
        finally:
            asyncio.run(_delete_readme_queues(amqp_url))


@pytest.fixture
def broker(amqp_url: str, _readme_names: None) -> dict[str, str]:
    """The environment a block runs in."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["AMQP_URL"] = amqp_url
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # The interpreter of these tests and its console scripts come first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


async def _run(cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        out, _ = await proc.communicate()
        pytest.fail(f"{what} did not finish within {TIMEOUT:.0f} s; it printed:\n{out.decode()}")
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{what} exited {proc.returncode}; it printed:\n{text}"
    return text


# ----------------------------------------------------------------------
# the README's own shape


def test_readme_has_runnable_blocks() -> None:
    assert len(RUNNABLE) >= 5, [b.id for b in RUNNABLE]
    # The sections that once collided all run now.
    headings = {b.heading for b in RUNNABLE}
    for heading in ("Quick start", "FastAPI", "RPC", "Testing with pytest", "uvloop"):
        assert heading in headings, f"no runnable block under {heading!r}"


def test_fragment_markers_only_mark_python_blocks() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines):
        if line.strip() == FRAGMENT:
            following = lines[n + 1] if n + 1 < len(lines) else ""
            assert following.rstrip() == "```python", (
                f"README.md line {n + 1}: {FRAGMENT} must be just before a ```python fence"
            )


@pytest.mark.parametrize("block", [b for b in PYTHON if b.fragment], ids=lambda b: b.id)
def test_fragment_parses(block: Block) -> None:
    compile(block.code, f"README.md:{block.line}", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_block_follows_the_conventions(block: Block) -> None:
    tree = ast.parse(block.code, filename=f"README.md:{block.line}")  # no top-level await outside fragments
    if "main" in _top_level_names(tree):
        assert _calls_main(tree), (
            f"README.md line {block.line}: the block defines main() but never runs it; add "
            f"asyncio.run(main()) or mark it {FRAGMENT}"
        )


# ----------------------------------------------------------------------
# running them


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
@pytest.mark.slow
async def test_python_block_runs(block: Block, broker: dict[str, str], tmp_path: Path) -> None:
    tree = ast.parse(block.code)
    what = f"the README block at line {block.line} ({block.heading})"
    for optional in ("uvloop", "fastapi"):  # extras; uvloop does not exist on Windows
        if optional in _imported_modules(tree):
            pytest.importorskip(optional)
    tests = [name for name in _top_level_names(tree) if name.startswith("test_")]
    if tests:
        (tmp_path / "test_block.py").write_text(block.code)
        (tmp_path / "pytest.ini").write_text("[pytest]\naiorabbit_fixtures = true\n")
        out = await _run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_block.py"],
            tmp_path, broker, what,
        )
        assert f"{len(tests)} passed" in out, out
    elif _creates_fastapi_app(tree):
        (tmp_path / "readme_block.py").write_text(block.code)
        (tmp_path / "drive.py").write_text(FASTAPI_DRIVER)
        out = await _run([sys.executable, "drive.py"], tmp_path, broker, what)
        assert "driven:" in out, out
    else:
        (tmp_path / "block.py").write_text(block.code)
        out = await _run([sys.executable, "block.py"], tmp_path, broker, what)
    print(out)


def _cli_block() -> Block:
    blocks = [b for b in BLOCKS if b.heading == "Command line" and b.lang == "sh"]
    assert len(blocks) == 1, [b.id for b in blocks]
    return blocks[0]


def test_cli_block_is_consistent() -> None:
    """One queue through the whole block, and consume waits for no more than
    was published (it would wait for ever)."""
    code = _cli_block().code
    declared = re.findall(r"aiorabbit declare queue (\S+)", code)
    consumed = re.findall(r"aiorabbit consume (\S+)", code)
    deleted = re.findall(r"aiorabbit delete queue (\S+)", code)
    assert declared and consumed and deleted
    assert set(declared) == set(consumed) == set(deleted), (declared, consumed, deleted)
    published = len(re.findall(r"aiorabbit publish ", code))
    counts = [int(n) for n in re.findall(r"aiorabbit consume \S+ .*--count (\d+)", code)]
    assert counts and sum(counts) <= published, (counts, published)


@pytest.mark.slow
async def test_cli_block_runs(broker: dict[str, str], tmp_path: Path) -> None:
    block = _cli_block()
    script = tmp_path / "cli.sh"
    script.write_text("set -euo pipefail\n" + block.code)
    out = await _run(["bash", str(script)], tmp_path, broker, "the README's command line block")
    assert '"routing_key": "order.new"' in out, out
