"""Generate aiorabbit/codec/methods.py from the AMQP 0-9-1 JSON spec.

Usage: python tools/generate_methods.py [SPEC_JSON] [OUTPUT]

The spec defaults to tools/spec/amqp-rabbitmq-0.9.1.json in this
repository (RabbitMQ's; its licence terms are in tools/spec/license_info).
tests/test_codec_methods.py regenerates into memory and fails if the
committed module differs, so the tables cannot drift from the spec.
"""

from __future__ import annotations

import json
import keyword
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT / "tools" / "spec" / "amqp-rabbitmq-0.9.1.json"
DEFAULT_OUT = ROOT / "aiorabbit" / "codec" / "methods.py"

PY_TYPES = {
    "octet": "int",
    "short": "int",
    "long": "int",
    "longlong": "int",
    "shortstr": "str",
    "longstr": "bytes",
    "bit": "bool",
    "table": "dict[str, Any]",
    "timestamp": "int",
}
STRUCTS = {"octet": "B", "short": "H", "long": "I", "longlong": "Q", "timestamp": "Q"}


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def attr(name: str) -> str:
    py = name.replace("-", "_")
    return py + "_" if keyword.iskeyword(py) else py


def resolve(spec: dict, arg: dict) -> str:
    if "type" in arg:
        return arg["type"]
    domains = dict(spec["domains"])
    return domains[arg["domain"]]


def default_literal(kind: str, value: object) -> str:
    if kind == "table":
        return "None"
    if kind == "longstr":
        return repr(str(value).encode()) if value is not None else 'b""'
    return repr(value)


def gen_encode(cls_id: int, m_id: int, args: list[tuple[str, str]]) -> list[str]:
    lines = [
        "    def encode(self) -> bytes:",
        '        """The method frame payload: class id, method id, arguments."""',
    ]
    head = f"b'\\x{cls_id >> 8:02x}\\x{cls_id & 255:02x}\\x{m_id >> 8:02x}\\x{m_id & 255:02x}'"
    if not args:
        lines.append(f"        return {head}")
        return lines
    lines.append(f"        out: list[bytes] = [{head}]")
    i = 0
    while i < len(args):
        name, kind = args[i]
        if kind == "bit":
            bits = []
            while i < len(args) and args[i][1] == "bit" and len(bits) < 8:
                bits.append(args[i][0])
                i += 1
            expr = " | ".join(
                f"({'1' if n == 0 else str(1 << n)} if self.{b} else 0)" for n, b in enumerate(bits)
            )
            lines.append(f"        out.append(OCTET.pack({expr}))")
            continue
        if kind in STRUCTS:
            run = []
            while i < len(args) and args[i][1] in STRUCTS:
                run.append(args[i])
                i += 1
            fmt = ">" + "".join(STRUCTS[k] for _, k in run)
            fields = ", ".join(f"self.{n}" for n, _ in run)
            names = ", ".join(repr(n) for n, _ in run)
            lines.append(f"        out.append(pack_fields({fmt!r}, ({names},), {fields}))")
            continue
        if kind == "shortstr":
            lines.append(f"        out.append(encode_shortstr(self.{name}, {name!r}))")
        elif kind == "longstr":
            lines.append(f"        out.append(encode_longstr(self.{name}))")
        elif kind == "table":
            lines.append(f"        out.append(encode_table(self.{name}))")
        else:
            raise ValueError(kind)
        i += 1
    lines.append('        return b"".join(out)')
    return lines


def gen_decode(cls: str, args: list[tuple[str, str]]) -> list[str]:
    lines = [
        "    @classmethod",
        f"    def decode(cls, data: Buffer) -> {cls}:",
        '        """Decode the arguments (the payload after the two ids)."""',
        "        self = cls.__new__(cls)",
    ]
    if args:
        lines.append("        offset = 0")
    i = 0
    while i < len(args):
        name, kind = args[i]
        if kind == "bit":
            bits = []
            while i < len(args) and args[i][1] == "bit" and len(bits) < 8:
                bits.append(args[i][0])
                i += 1
            lines.append("        flags = data[offset]")
            lines.append("        offset += 1")
            for n, b in enumerate(bits):
                lines.append(f"        self.{b} = bool(flags & {1 << n})")
            continue
        if kind in STRUCTS:
            run = []
            while i < len(args) and args[i][1] in STRUCTS:
                run.append(args[i])
                i += 1
            fmt = ">" + "".join(STRUCTS[k] for _, k in run)
            targets = ", ".join(f"self.{n}" for n, _ in run)
            comma = "," if len(run) == 1 else ""
            size = sum({"B": 1, "H": 2, "I": 4, "Q": 8}[STRUCTS[k]] for _, k in run)
            lines.append(f"        ({targets}{comma}) = unpack_fields({fmt!r}, data, offset)")
            lines.append(f"        offset += {size}")
            continue
        if kind == "shortstr":
            lines.append(f"        self.{name}, offset = read_shortstr(data, offset)")
        elif kind == "longstr":
            lines.append(f"        self.{name}, offset = read_longstr(data, offset)")
        elif kind == "table":
            lines.append(f"        self.{name}, offset = decode_table(data, offset)")
        i += 1
    if args:
        lines.append("        if offset != len(data):")
        lines.append("            raise FrameError(f\"{cls.NAME}: {len(data) - offset} trailing bytes\")")
    else:
        lines.append("        if len(data):")
        lines.append("            raise FrameError(f\"{cls.NAME}: {len(data)} trailing bytes\")")
    lines.append("        return self")
    return lines


def generate(spec: dict) -> str:
    out = [
        '"""Every AMQP 0-9-1 method, with RabbitMQ\'s extensions.',
        "",
        "GENERATED by tools/generate_methods.py from amqp-rabbitmq-0.9.1.json; do not",
        "edit by hand.  Each class encodes its own frame payload (``encode``) and",
        "decodes one (``decode``); :func:`decode_method` dispatches on the ids.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any, ClassVar",
        "",
        "from ..exceptions import FrameError",
        "from ._primitives import (",
        "    OCTET,",
        "    Buffer,",
        "    Method,",
        "    encode_longstr,",
        "    encode_shortstr,",
        "    pack_fields,",
        "    read_longstr,",
        "    read_shortstr,",
        "    unpack_fields,",
        ")",
        "from .table import decode_table, encode_table",
        "",
    ]
    names: list[str] = []
    index_lines: list[str] = []
    responses: list[str] = []
    for c in spec["classes"]:
        method_names = {m["name"] for m in c["methods"]}
        for m in c["methods"]:
            cls = camel(c["name"]) + camel(m["name"])
            names.append(cls)
            args = [(attr(a["name"]), resolve(spec, a), a) for a in m["arguments"]]
            sig_required = [a for a in args if "default-value" not in a[2]]
            sig_optional = [a for a in args if "default-value" in a[2]]
            out.append("")
            out.append("")
            out.append(f"class {cls}(Method):")
            out.append(f'    """``{c["name"]}.{m["name"]}`` ({c["id"]}, {m["id"]})."""')
            out.append("")
            slots = ", ".join(repr(a[0]) for a in args)
            out.append(f"    __slots__ = ({slots}{',' if len(args) == 1 else ''})")
            out.append(f"    NAME: ClassVar[str] = '{c['name']}.{m['name']}'")
            out.append(f"    CLASS_ID: ClassVar[int] = {c['id']}")
            out.append(f"    METHOD_ID: ClassVar[int] = {m['id']}")
            out.append(f"    INDEX: ClassVar[int] = {(c['id'] << 16) | m['id']:#010x}")
            out.append(f"    SYNCHRONOUS: ClassVar[bool] = {bool(m.get('synchronous'))}")
            out.append(f"    CONTENT: ClassVar[bool] = {bool(m.get('content'))}")
            out.append(f"    FIELDS: ClassVar[tuple[str, ...]] = ({slots}{',' if len(args) == 1 else ''})")
            for name, kind, _ in args:
                out.append(f"    {name}: {PY_TYPES[kind]}")
            out.append("")
            if args:
                params = ["self", "*"]
                for name, kind, _ in sig_required:
                    params.append(f"{name}: {PY_TYPES[kind]}")
                for name, kind, a in sig_optional:
                    t = PY_TYPES[kind] + (" | None" if kind == "table" else "")
                    params.append(f"{name}: {t} = {default_literal(kind, a['default-value'])}")
                out.append(f"    def __init__({', '.join(params)}) -> None:")
                for name, kind, _ in args:
                    if kind == "table":
                        out.append(f"        self.{name} = {{}} if {name} is None else dict({name})")
                    else:
                        out.append(f"        self.{name} = {name}")
                out.append("")
            out.extend(gen_encode(c["id"], m["id"], [(a[0], a[1]) for a in args]))
            out.append("")
            out.extend(gen_decode(cls, [(a[0], a[1]) for a in args]))
            index_lines.append(f"    {cls}.INDEX: {cls},")
            if m.get("synchronous"):
                replies = [m["name"] + "-ok"]
                if c["name"] == "basic" and m["name"] == "get":
                    replies.append("get-empty")
                replies = [r for r in replies if r in method_names]
                tup = ", ".join(camel(c["name"]) + camel(r) for r in replies)
                responses.append(f"{cls}.RESPONSES = ({tup},)")
    out.append("")
    out.append("")
    out.append("# Replies each synchronous method waits for.")
    out.extend(responses)
    out.append("")
    out.append("METHODS: dict[int, type[Method]] = {")
    out.extend(index_lines)
    out.append("}")
    out.append('"""Method classes by ``(class_id << 16) | method_id``."""')
    out.append("")
    out.append("__all__ = [")
    out.append('    "METHODS",')
    out.extend(f'    "{n}",' for n in names)
    out.append("]")
    return "\n".join(out) + "\n"


def main() -> None:
    spec_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SPEC
    out_path = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_OUT
    spec = json.loads(spec_path.read_text())
    out_path.write_text(generate(spec))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
