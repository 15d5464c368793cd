"""``aiorabbit declare`` and ``aiorabbit delete``: exchanges, queues, bindings."""

from __future__ import annotations

import argparse
import json
from collections.abc import Coroutine
from typing import Any

from ..channel import Channel
from .common import Formatter, add_arguments_option, connection, info, messages, number, table_arguments
from .errors import CliError, ExitCode

__all__ = ["add_parsers"]

_ARTICLES = {"exchange": "an", "queue": "a", "binding": "a"}

DECLARE_EPILOG = """\
Exchanges and queues are durable unless --no-durable is given.  Declaring
one that exists with the same options is fine; with other options the broker
refuses (exit code 5).  --passive only checks that it exists.

declare queue prints the queue's name, message count and consumer count,
separated by tabs (or, with --json, as a JSON object).  An empty NAME ('')
has the broker name the queue; it stays until deleted.

examples:
  aiorabbit declare exchange events --type topic
  aiorabbit declare queue jobs --quorum -a x-delivery-limit=5
  aiorabbit declare queue jobs -a x-message-ttl=60000 -a x-dead-letter-exchange=dlx
  aiorabbit declare queue jobs --passive              # does it exist, how many messages?
  aiorabbit declare binding --exchange events --queue jobs -k 'user.*'
  aiorabbit declare binding --exchange events --destination audit -k '#'
  aiorabbit declare binding --exchange by-header --queue pdfs -a x-match=all -a format=pdf
"""

DELETE_EPILOG = """\
Deleting an exchange or a queue that does not exist succeeds (the broker's
rule).  delete queue prints how many messages the queue held.

examples:
  aiorabbit delete queue jobs --if-empty
  aiorabbit delete exchange events --if-unused
  aiorabbit delete binding --exchange events --queue jobs -k 'user.*'
"""


def add_parsers(commands: Any) -> list[argparse.ArgumentParser]:
    # Both levels: global options go after "declare" as well as after its kind.
    parsers: list[argparse.ArgumentParser] = []
    for verb, helptext, epilog in (
        ("declare", "declare an exchange, a queue or a binding", DECLARE_EPILOG),
        ("delete", "delete an exchange, a queue or a binding", DELETE_EPILOG),
    ):
        parser = commands.add_parser(
            verb, help=helptext, description=helptext.capitalize() + ".", epilog=epilog,
            formatter_class=Formatter,
        )
        parsers.append(parser)
        kinds = parser.add_subparsers(dest="kind", metavar="{exchange,queue,binding}", required=True)
        for kind, build in (("exchange", _exchange), ("queue", _queue), ("binding", _binding)):
            what = f"{verb} {_ARTICLES[kind]} {kind}"
            sub = kinds.add_parser(
                kind, help=what, description=what.capitalize() + ".", epilog=epilog, formatter_class=Formatter
            )
            sub.set_defaults(handler=command, sigterm_code=ExitCode.INTERRUPTED, verb=verb)
            build(sub, declare=verb == "declare")
            parsers.append(sub)
    return parsers


def _exchange(parser: argparse.ArgumentParser, *, declare: bool) -> None:
    parser.add_argument("name", metavar="NAME", help="the exchange")
    if not declare:
        parser.add_argument("--if-unused", action="store_true", help="only if nothing is bound to it")
        return
    parser.add_argument(
        "-t", "--type", default="direct", metavar="TYPE",
        help="direct (default), fanout, topic, headers, or a plugin's type (x-...)",
    )
    _declare_options(parser)
    parser.add_argument("--internal", action="store_true", help="only other exchanges may publish to it")
    add_arguments_option(parser, "an exchange argument (e.g. alternate-exchange)")


def _queue(parser: argparse.ArgumentParser, *, declare: bool) -> None:
    parser.add_argument("name", metavar="NAME", help="the queue ('' for a name chosen by the broker)")
    parser.add_argument("--json", action="store_true", help="print the result as a JSON object")
    if not declare:
        parser.add_argument("--if-unused", action="store_true", help="only if it has no consumers")
        parser.add_argument("--if-empty", action="store_true", help="only if it holds no messages")
        return
    _declare_options(parser)
    kind = parser.add_mutually_exclusive_group()
    for queue_type, what in (("quorum", "a quorum queue"), ("stream", "a stream")):
        kind.add_argument(
            f"--{queue_type}", dest="queue_type", action="store_const", const=queue_type,
            help=f"{what} (x-queue-type={queue_type})",
        )
    add_arguments_option(parser, "a queue argument")


def _declare_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--durable", action=argparse.BooleanOptionalAction, default=True,
        help="survive a broker restart (default: durable)",
    )
    parser.add_argument(
        "--auto-delete", action="store_true", help="deleted once its last consumer or binding goes"
    )
    parser.add_argument("--passive", action="store_true", help="only check that it exists")


def _binding(parser: argparse.ArgumentParser, *, declare: bool) -> None:
    parser.add_argument(
        "-e", "--exchange", required=True, metavar="SOURCE", help="the exchange messages come from"
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--queue", metavar="QUEUE", help="the queue they go to")
    target.add_argument("-d", "--destination", metavar="EXCHANGE", help="the exchange they go to")
    parser.add_argument(
        "-k", "--routing-key", default="", metavar="KEY", help="the binding key (default: '')"
    )
    add_arguments_option(parser, "a binding argument (e.g. x-match for a headers exchange)")


def command(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    """Check the options; return the declaring or deleting."""
    arguments = table_arguments(args) if hasattr(args, "arguments") else None
    if getattr(args, "queue_type", None):
        arguments = {**(arguments or {}), "x-queue-type": args.queue_type}
    if args.kind == "exchange" and not args.name and args.verb == "declare":
        raise CliError("the default exchange cannot be declared: give a NAME")
    return _run(args, arguments)


async def _run(args: argparse.Namespace, arguments: dict[str, Any] | None) -> int:
    async with connection(args) as conn:
        ch = await conn.channel()
        action = _ACTIONS[args.verb, args.kind]
        await action(ch, args, arguments)
    return ExitCode.OK


async def _declare_exchange(ch: Channel, args: argparse.Namespace, arguments: dict[str, Any] | None) -> None:
    await ch.exchange_declare(
        args.name, args.type, passive=args.passive, durable=args.durable, auto_delete=args.auto_delete,
        internal=args.internal, arguments=arguments,
    )
    done = "exists" if args.passive else f"declared ({args.type})"
    info(args, f"exchange {args.name!r} {done}")


async def _declare_queue(ch: Channel, args: argparse.Namespace, arguments: dict[str, Any] | None) -> None:
    ok = await ch.queue_declare(
        args.name, passive=args.passive, durable=args.durable, auto_delete=args.auto_delete,
        arguments=arguments,
    )
    if args.json:
        print(json.dumps({"queue": ok.queue, "messages": ok.message_count, "consumers": ok.consumer_count}))
    else:
        print(f"{ok.queue}\t{ok.message_count}\t{ok.consumer_count}")
    verb = "queue" if args.passive else "declared queue"
    consumers = f"{number(ok.consumer_count)} consumer{'' if ok.consumer_count == 1 else 's'}"
    info(args, f"{verb} {ok.queue!r}: {messages(ok.message_count)}, {consumers}")


async def _declare_binding(ch: Channel, args: argparse.Namespace, arguments: dict[str, Any] | None) -> None:
    if args.queue is not None:
        await ch.queue_bind(args.queue, args.exchange, args.routing_key, arguments)
    else:
        await ch.exchange_bind(args.destination, args.exchange, args.routing_key, arguments)
    info(args, f"bound {_binding_text(args)}")


async def _delete_exchange(ch: Channel, args: argparse.Namespace, arguments: dict[str, Any] | None) -> None:
    await ch.exchange_delete(args.name, if_unused=args.if_unused)
    info(args, f"deleted exchange {args.name!r}")


async def _delete_queue(ch: Channel, args: argparse.Namespace, arguments: dict[str, Any] | None) -> None:
    count = await ch.queue_delete(args.name, if_unused=args.if_unused, if_empty=args.if_empty)
    print(json.dumps({"queue": args.name, "messages": count}) if args.json else count)
    info(args, f"deleted queue {args.name!r} ({messages(count)})")


async def _delete_binding(ch: Channel, args: argparse.Namespace, arguments: dict[str, Any] | None) -> None:
    if args.queue is not None:
        await ch.queue_unbind(args.queue, args.exchange, args.routing_key, arguments)
    else:
        await ch.exchange_unbind(args.destination, args.exchange, args.routing_key, arguments)
    info(args, f"unbound {_binding_text(args)}")


def _binding_text(args: argparse.Namespace) -> str:
    target = f"queue {args.queue!r}" if args.queue is not None else f"exchange {args.destination!r}"
    return f"{target} from exchange {args.exchange!r} with key {args.routing_key!r}"


_ACTIONS = {
    ("declare", "exchange"): _declare_exchange,
    ("declare", "queue"): _declare_queue,
    ("declare", "binding"): _declare_binding,
    ("delete", "exchange"): _delete_exchange,
    ("delete", "queue"): _delete_queue,
    ("delete", "binding"): _delete_binding,
}
