"""RobustChannel cannot drift from Channel, nor RobustConnection from Connection.

Every public method of :class:`aiorabbit.Channel` must exist on
:class:`aiorabbit.RobustChannel` with the same parameters (names, kinds,
defaults, annotations: strings, the modules use ``from __future__ import
annotations``), the same sync/async kind and the same return annotation, and
every public property of Channel must exist on RobustChannel with the same
annotation, except for the differences listed in :data:`CHANNEL_RETURNS`.
The methods :class:`aiorabbit.Connection` and :class:`aiorabbit.RobustConnection`
share must take the same parameters, except for :data:`CONNECTION_PARAMETERS`.

A failure lists every mismatch.  Introspection only: no broker.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from typing import Any

import pytest

import aiorabbit

pytestmark = pytest.mark.broker_free


#: The return annotations RobustChannel may change, by method or property
#: name: (Channel's, RobustChannel's, why).  An entry must be in use: when both
#: sides agree again, or either changes, the test says so.
CHANNEL_RETURNS: dict[str, tuple[str, str, str]] = {
    "queue_declare": (
        "DeclareOk",
        "DeclaredQueue",
        "DeclaredQueue subclasses DeclareOk; its .queue follows a server-named queue across recoveries",
    ),
    "consume": (
        "Consumer",
        "RobustConsumer",
        "the consumer resumes on the reopened channel after a recovery",
    ),
    "connection": (
        "Connection",
        "RobustConnection",
        "a robust channel belongs to the robust connection (the plain one is replaced on recovery)",
    ),
}

#: The methods Connection and RobustConnection share, and their properties.
CONNECTION_METHODS = (
    "channel",
    "close",
    "update_secret",
    "wait_closed",
    "wait_unblocked",
    "add_blocked_callback",
    "remove_blocked_callback",
)
CONNECTION_PROPERTIES = (
    "is_open",
    "is_closed",
    "is_blocked",
    "blocked_reason",
    "closed_reason",
    "server_properties",
    "params",
)

#: The parameter annotations RobustConnection may change:
#: (method, parameter) -> (Connection's, RobustConnection's, why).
CONNECTION_PARAMETERS: dict[tuple[str, str], tuple[str, str, str]] = {
    (name, "callback"): (
        "BlockedCallback",
        "Callable[[RobustConnection, str | None], Any]",
        "a blocked callback is given the connection it was added to",
    )
    for name in ("add_blocked_callback", "remove_blocked_callback")
}


# -- introspection -----------------------------------------------------------------


def annotation(value: Any) -> str:
    """An annotation as normalised text ('' when there is none)."""
    if value is inspect.Parameter.empty:
        return ""
    if not isinstance(value, str):
        return inspect.formatannotation(value)
    try:
        return ast.unparse(ast.parse(value, mode="eval"))
    except SyntaxError:
        return value


def describe(param: inspect.Parameter) -> str:
    text = param.name
    if param.annotation is not inspect.Parameter.empty:
        text += f": {annotation(param.annotation)}"
    if param.default is not inspect.Parameter.empty:
        text += f" = {param.default!r}"
    return text


def public_names(cls: type) -> list[str]:
    return sorted(name for name in dir(cls) if not name.startswith("_"))


def static(cls: type, name: str) -> Any:
    """The class attribute, undecorated; None when there is none."""
    try:
        value = inspect.getattr_static(cls, name)
    except AttributeError:
        return None
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    return value


def is_property(value: Any) -> bool:
    return isinstance(value, (property, functools.cached_property))


def property_annotation(value: Any) -> str:
    func = value.fget if isinstance(value, property) else value.func
    return annotation(inspect.signature(func).return_annotation)


def flavour(func: Any) -> str:
    if inspect.iscoroutinefunction(func):
        return "async def"
    if inspect.isasyncgenfunction(func):
        return "async generator"
    return "def"


def parameter_mismatches(
    where: str,
    a_name: str,
    a: inspect.Signature,
    b_name: str,
    b: inspect.Signature,
    allowed: dict[str, tuple[str, str, str]],
) -> list[str]:
    """Every difference between the parameters of ``a`` and ``b`` but ``self``."""
    a_params = [p for p in a.parameters.values() if p.name not in ("self", "cls")]
    b_params = [p for p in b.parameters.values() if p.name not in ("self", "cls")]
    b_by_name = {p.name: p for p in b_params}
    a_names = [p.name for p in a_params]
    problems = []
    for p in a_params:
        q = b_by_name.get(p.name)
        if q is None:
            problems.append(f"{where}: {b_name} lacks parameter `{describe(p)}` ({p.kind.description})")
            continue
        if p.kind != q.kind:
            problems.append(
                f"{where}: parameter {p.name!r} is {p.kind.description} on {a_name}, "
                f"{q.kind.description} on {b_name}"
            )
        if p.default is not inspect.Parameter.empty or q.default is not inspect.Parameter.empty:
            if p.default is inspect.Parameter.empty or q.default is inspect.Parameter.empty:
                problems.append(
                    f"{where}: parameter {p.name!r} default: "
                    f"{a_name} `{describe(p)}`, {b_name} `{describe(q)}`"
                )
            elif type(p.default) is not type(q.default) or p.default != q.default:
                problems.append(
                    f"{where}: parameter {p.name!r} default: {a_name} {p.default!r}, {b_name} {q.default!r}"
                )
        pa, qa = annotation(p.annotation), annotation(q.annotation)
        expected = allowed.get(p.name)
        if expected is not None:
            if (pa, qa) != expected[:2]:
                problems.append(
                    f"{where}: parameter {p.name!r} annotations are {pa!r} on {a_name} and {qa!r} on "
                    f"{b_name}, the table of allowed differences says {expected[0]!r} and {expected[1]!r}"
                )
        elif pa != qa:
            problems.append(f"{where}: parameter {p.name!r} annotation: {a_name} {pa!r}, {b_name} {qa!r}")
    for q in b_params:
        if q.name not in a_names:
            problems.append(
                f"{where}: {b_name} has an extra parameter `{describe(q)}` ({q.kind.description})"
            )
    common_a = [n for n in a_names if n in b_by_name]
    common_b = [q.name for q in b_params if q.name in a_names]
    if common_a != common_b:
        problems.append(f"{where}: parameter order: {a_name} {common_a}, {b_name} {common_b}")
    return problems


def instance_attributes(cls: type) -> set[str]:
    """The names assigned as ``self.<name> = ...`` in the methods of ``cls`` and its bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        names.update(getattr(klass, "__annotations__", {}))
        for node in ast.walk(tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                    if target.value.id == "self":
                        names.add(target.attr)
    return names


def has_attribute(cls: type, name: str) -> bool:
    return static(cls, name) is not None or name in instance_attributes(cls)


# -- Channel and RobustChannel ---------------------------------------------------------


def channel_mismatches() -> list[str]:
    plain, robust = aiorabbit.Channel, aiorabbit.RobustChannel
    problems: list[str] = []
    used: set[str] = set()

    def returns(name: str, a: str, b: str) -> None:
        allowed = CHANNEL_RETURNS.get(name)
        if allowed is not None:
            used.add(name)
            if (a, b) != allowed[:2]:
                problems.append(
                    f"{name}: returns {a!r} on Channel and {b!r} on RobustChannel, the table of "
                    f"allowed differences says {allowed[0]!r} and {allowed[1]!r}"
                )
        elif a != b:
            problems.append(f"{name}: return annotation: Channel {a!r}, RobustChannel {b!r}")

    for name in public_names(plain):
        a = static(plain, name)
        b = static(robust, name)
        if is_property(a):
            if not is_property(b):
                what = "nothing" if b is None else type(b).__name__
                problems.append(f"{name}: a property of Channel, {what} on RobustChannel")
                continue
            returns(name, property_annotation(a), property_annotation(b))
        elif callable(a):
            if b is None or not callable(b):
                what = "nothing" if b is None else type(b).__name__
                problems.append(f"{name}: a method of Channel, {what} on RobustChannel")
                continue
            if flavour(a) != flavour(b):
                problems.append(f"{name}: `{flavour(a)}` on Channel, `{flavour(b)}` on RobustChannel")
            sa, sb = inspect.signature(a), inspect.signature(b)
            problems += parameter_mismatches(name, "Channel", sa, "RobustChannel", sb, {})
            returns(name, annotation(sa.return_annotation), annotation(sb.return_annotation))
        elif b is None:
            problems.append(f"{name}: a {type(a).__name__} of Channel, missing on RobustChannel")
    for name in sorted(set(CHANNEL_RETURNS) - used):
        problems.append(f"{name}: in CHANNEL_RETURNS but no public member of Channel: remove the entry")
    return problems


def test_robust_channel_has_channels_methods_and_properties() -> None:
    problems = channel_mismatches()
    assert not problems, "RobustChannel differs from Channel:\n  " + "\n  ".join(problems)


def test_the_allowed_return_differences_name_public_types() -> None:
    assert issubclass(aiorabbit.DeclaredQueue, aiorabbit.DeclareOk)
    for name, (plain, robust, why) in CHANNEL_RETURNS.items():
        assert why and hasattr(aiorabbit, plain) and hasattr(aiorabbit, robust), name


def test_the_comparison_reports_each_difference() -> None:
    """The checker itself, on two made-up signatures."""

    def a(self: Any, queue: str = "", *, durable: bool = False, timeout: float | None = None) -> None:
        pass

    def b(
        self: Any, queue: str = "x", durable: bool = False, *, timeout: float = 1.0, extra: int = 0
    ) -> None:
        pass

    async def c(self: Any) -> None:
        pass

    problems = parameter_mismatches("m", "A", inspect.signature(a), "B", inspect.signature(b), {})
    assert problems == [
        "m: parameter 'queue' default: A '', B 'x'",
        "m: parameter 'durable' is keyword-only on A, positional or keyword on B",
        "m: parameter 'timeout' default: A None, B 1.0",
        "m: parameter 'timeout' annotation: A 'float | None', B 'float'",
        "m: B has an extra parameter `extra: int = 0` (keyword-only)",
    ]
    assert parameter_mismatches("m", "A", inspect.signature(a), "B", inspect.signature(a), {}) == []
    assert parameter_mismatches("m", "A", inspect.signature(a), "C", inspect.signature(c), {}) == [
        "m: C lacks parameter `queue: str = ''` (positional or keyword)",
        "m: C lacks parameter `durable: bool = False` (keyword-only)",
        "m: C lacks parameter `timeout: float | None = None` (keyword-only)",
    ]
    assert (flavour(a), flavour(c)) == ("def", "async def")


# -- Connection and RobustConnection ------------------------------------------------------


def connection_mismatches() -> list[str]:
    plain, robust = aiorabbit.Connection, aiorabbit.RobustConnection
    problems: list[str] = []
    for name in CONNECTION_METHODS:
        a, b = static(plain, name), static(robust, name)
        missing = [cls.__name__ for cls, f in ((plain, a), (robust, b)) if f is None or not callable(f)]
        if missing:
            problems.append(f"{name}: not a method of {' nor '.join(missing)}")
            continue
        if flavour(a) != flavour(b):
            problems.append(f"{name}: `{flavour(a)}` on Connection, `{flavour(b)}` on RobustConnection")
        allowed = {param: v for (method, param), v in CONNECTION_PARAMETERS.items() if method == name}
        problems += parameter_mismatches(
            name, "Connection", inspect.signature(a), "RobustConnection", inspect.signature(b), allowed
        )
    for name in CONNECTION_PROPERTIES:
        for cls in (plain, robust):
            if not has_attribute(cls, name):
                problems.append(f"{name}: no attribute or property of {cls.__name__}")
    for method, _param in CONNECTION_PARAMETERS:
        if method not in CONNECTION_METHODS:
            problems.append(f"{method}: in CONNECTION_PARAMETERS but not compared: remove the entry")
    return problems


def test_robust_connection_takes_connections_parameters() -> None:
    problems = connection_mismatches()
    assert not problems, "RobustConnection differs from Connection:\n  " + "\n  ".join(problems)
