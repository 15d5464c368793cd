"""tools/seams.py, the architecture report, on small synthetic packages (no broker)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.broker_free

ROOT = Path(__file__).resolve().parent.parent
SEAMS = ROOT / "tools" / "seams.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tools_seams", SEAMS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


seams = _load()


def make_package(tmp_path: Path, files: dict[str, str], name: str = "pkg") -> Path:
    pkg = tmp_path / name
    for rel, text in {"__init__.py": "", **files}.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return pkg


def function(name: str, lines: int, indent: str = "") -> str:
    """A function of exactly ``lines`` lines, ``def`` line included."""
    body = [f"{indent}    x = {i}" for i in range(lines - 2)]
    return "\n".join([f"{indent}def {name}():", *body, f"{indent}    return x", ""])


def private_names(report: object, rel: str) -> list[tuple[int, str, str | None]]:
    found = report.private.get(rel, [])  # type: ignore[attr-defined]
    return [(o.line, o.name, o.reason) for o in found]


def test_importing_the_tool_prints_and_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    _load()
    assert capsys.readouterr() == ("", "")


# -- a. private accesses ----------------------------------------------------------


def test_a_private_attribute_of_another_object_is_counted(tmp_path: Path) -> None:
    pkg = make_package(
        tmp_path,
        {
            "a.py": """\
                class A:
                    def f(self, other):
                        self._mine = 1
                        other._theirs()
                        return other.__dict__, other.public

                    @classmethod
                    def g(cls, other):
                        cls._also_mine = 2
                        super()._parent()
                        return other._x._y, other._replace(a=1)._asdict()  # namedtuple API
                """,
        },
    )
    report = seams.build_report(pkg)
    assert private_names(report, "pkg/a.py") == [
        (4, "other._theirs", None),
        (11, "other._x", None),
        (11, "other._x._y", None),
    ]
    assert report.private_total == 3


def test_private_names_imported_count_private_modules_do_not(tmp_path: Path) -> None:
    pkg = make_package(
        tmp_path,
        {
            "_compat.py": "wait_for = None\n",
            "codec/__init__.py": "",
            "codec/_primitives.py": "Buffer = bytes\n",
            "b.py": "_helper = 1\n__all__ = []\n",
            "a.py": """\
                from ._compat import wait_for
                from . import _compat
                from .codec._primitives import Buffer
                from .b import __all__ as _names
                from .b import _helper
                from .b import (
                    __all__,
                    _helper as h,
                )
                import os._private_module_of_the_stdlib
                """,
        },
    )
    report = seams.build_report(pkg)
    assert private_names(report, "pkg/a.py") == [(5, ".b._helper", None), (8, ".b._helper", None)]


def test_a_seam_comment_accepts_an_occurrence_that_still_counts(tmp_path: Path) -> None:
    pkg = make_package(
        tmp_path,
        {
            "a.py": """\
                def f(conn):
                    conn._a()  # seam: the channel writes through its connection
                    # seam: recovery swaps the inner channel
                    conn._b()
                    # seam: a long reason that
                    # goes on over two lines
                    conn._c()
                    conn._d()  # seam:
                    conn._e()  # a comment without the word
                    s = "# seam: in a string"; conn._f()
                    conn._g()
                """,
        },
    )
    report = seams.build_report(pkg)
    assert private_names(report, "pkg/a.py") == [
        (2, "conn._a", "the channel writes through its connection"),
        (4, "conn._b", "recovery swaps the inner channel"),
        (7, "conn._c", "a long reason that"),
        (8, "conn._d", None),
        (9, "conn._e", None),
        (10, "conn._f", None),
        (11, "conn._g", None),
    ]
    assert (report.private_total, report.private_accepted) == (7, 3)
    text = seams.format_text(report)
    assert "7 (3 accepted" in text
    assert "[seam: recovery swaps the inner channel]" in text
    assert "conn._g()" in text  # the source of an unaccepted occurrence


# -- b. import cycles ------------------------------------------------------------------


def cycles(pkg: Path) -> list[list[str]]:
    return [c.modules for c in seams.build_report(pkg).cycles]


def test_a_type_checking_import_makes_no_cycle(tmp_path: Path) -> None:
    pkg = make_package(
        tmp_path,
        {
            "a.py": "from .b import B\n",
            "b.py": """\
                from typing import TYPE_CHECKING
                import typing

                if TYPE_CHECKING:
                    from .a import A
                if typing.TYPE_CHECKING:
                    import pkg.a
                B = 1
                """,
        },
    )
    assert cycles(pkg) == []


def test_a_runtime_cycle_is_reported_even_through_a_function(tmp_path: Path) -> None:
    pkg = make_package(
        tmp_path,
        {
            "a.py": "from .b import B\n",
            "b.py": """\
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    pass
                else:
                    B = 1

                def lazy():
                    from . import a
                    return a
                """,
            "c.py": "import pkg.a\n",
        },
    )
    report = seams.build_report(pkg)
    assert [c.modules for c in report.cycles] == [["pkg.a", "pkg.b"]]
    edges = [(e.source, e.line, e.target, e.lazy) for e in report.cycles[0].edges]
    assert edges == [("pkg.a", 1, "pkg.b", False), ("pkg.b", 9, "pkg.a", True)]
    assert seams.check_failures(report) == ["1 import cycle(s)"]


def test_a_submodule_taking_a_name_from_its_package_is_a_cycle(tmp_path: Path) -> None:
    pkg = make_package(
        tmp_path,
        {
            "__init__.py": '__version__ = "1"\nfrom .conn import Connection\n',
            "conn.py": "from . import __version__\nConnection = 1\n",
            # A submodule reached through the package is no cycle with it.
            "other.py": "from . import conn\nfrom .sub import deep\n",
            "sub/__init__.py": "",
            "sub/deep.py": "from .. import conn\nfrom . import helper\n",
            "sub/helper.py": "",
        },
    )
    assert cycles(pkg) == [["pkg", "pkg.conn"]]


def test_a_module_importing_itself_is_a_cycle(tmp_path: Path) -> None:
    pkg = make_package(tmp_path, {"a.py": "def f():\n    from pkg import a\n"})
    assert cycles(pkg) == [["pkg.a"]]


# -- c, d, e. sizes ---------------------------------------------------------------------


def test_a_function_over_60_lines_is_reported_60_is_not(tmp_path: Path) -> None:
    source = "\n".join(
        [
            function("sixty", 60),
            "class K:",
            "    @staticmethod",
            "    @staticmethod",
            function("sixty_one", 61, indent="    "),
            function("outer", 3).replace("    x = 0\n", "    x = 0\n" + function("inner", 61, "    ")),
        ]
    )
    pkg = make_package(tmp_path, {"a.py": source})
    report = seams.build_report(pkg)
    found = [(f.qualname, f.lines) for f in report.long_functions]
    assert found == [("outer", 64), ("K.sixty_one", 61), ("outer.<locals>.inner", 61)]
    def_line = source.splitlines().index("    def sixty_one():") + 1
    assert report.long_functions[1].line == def_line  # the def line, not the decorators'


def test_modules_over_800_lines_except_generated_ones(tmp_path: Path) -> None:
    pkg = make_package(
        tmp_path,
        {
            "long.py": "x = 1\n" * 801,
            "just.py": "x = 1\n" * 800,
            "gen.py": '"""Tables.\n\nGENERATED by tools/generate_methods.py; do not\n"""\n' + "x = 1\n" * 900,
            "mentions.py": '"""Codecs shared by the generated method classes."""\n' + "x = 1\n" * 900,
        },
    )
    report = seams.build_report(pkg)
    assert report.long_modules == [("pkg/mentions.py", 901), ("pkg/long.py", 801)]
    assert report.generated == [("pkg/gen.py", 904)]


def test_the_largest_classes(tmp_path: Path) -> None:
    classes = [
        f"class C{n}:\n" + "".join(f"    def m{i}(self): pass\n" for i in range(n)) for n in range(1, 8)
    ]
    classes.append("class Long:\n    x = 1\n" + "    y = 2\n" * 20)
    pkg = make_package(tmp_path, {"a.py": "\n".join(classes)})
    report = seams.build_report(pkg)
    assert [c.qualname for c in report.classes_by_methods] == ["C7", "C6", "C5", "C4", "C3"]
    assert [c.qualname for c in report.classes_by_lines] == ["Long", "C7", "C6", "C5", "C4"]


# -- the command ----------------------------------------------------------------------


CLEAN = {"a.py": "def f(conn):\n    return conn._x  # seam: the one allowed\n"}


def test_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = make_package(tmp_path / "clean", CLEAN)
    assert seams.main(["--package", str(clean), "--check"]) == 0
    assert "check: clean" in capsys.readouterr().out

    private = make_package(tmp_path / "private", {"a.py": "def f(c):\n    return c._a, c._b, c._c\n"})
    assert seams.main(["--package", str(private), "--check", "--max-private", "2"]) == 1
    assert "3 private accesses > --max-private 2" in capsys.readouterr().out
    assert seams.main(["--package", str(private), "--check", "--max-private", "3"]) == 0
    assert seams.main(["--package", str(private), "--max-private", "0"]) == 0  # report only
    capsys.readouterr()

    failing = [
        {"a.py": "from .b import x\n", "b.py": "from .a import y\n"},  # a cycle
        {"a.py": "x = 1\n" * 801},  # a long module
        {"a.py": function("f", 61)},  # a long function
    ]
    for n, files in enumerate(failing):
        bad = make_package(tmp_path / f"bad{n}", files)
        assert seams.main(["--package", str(bad)]) == 0
        assert seams.main(["--package", str(bad), "--check"]) == 1
    capsys.readouterr()


def test_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pkg = make_package(tmp_path, {**CLEAN, "b.py": "from .a import f\n", "c.py": "import pkg.b\n"})
    assert seams.main(["--package", str(pkg), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["private"]["total"] == 1
    assert data["private"]["modules"]["pkg/a.py"] == [
        {
            "line": 2,
            "kind": "attribute",
            "name": "conn._x",
            "text": "return conn._x  # seam: the one allowed",
            "reason": "the one allowed",
            "accepted": True,
        }
    ]
    assert data["cycles"] == data["long_modules"] == data["long_functions"] == data["failures"] == []
    assert data["import_edges"] == 2


def test_the_script_reports_on_aiorabbit() -> None:
    """What CI prints (scripts/test.sh): report only, so it exits 0 whatever the totals."""
    done = subprocess.run(
        [sys.executable, str(SEAMS)], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for section in ("[a]", "[b]", "[c]", "[d]", "[e]", "check:"):
        assert f"\n{section}" in out
    assert "aiorabbit/codec/methods.py" in out.split("[c]")[1].split("[d]")[0]  # as generated
