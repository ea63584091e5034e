"""skd-bench (also python -m bench): benchmarks and ablations of knowledge distillation for image restoration.

One sub-command per module in :mod:`bench.commands`, imported only when its verb runs (so
``skd-bench --help`` and ``skd-bench report`` never load the training stack).

Every command prints a readable table, or JSON with ``--json``. However a command fails, it ends
with one line on stderr:

- a user error -- a bad flag, a :class:`skd_core.errors.SkdError` (config, data, checkpoint,
  device), or an ``OSError`` on a path (missing, unreadable, read-only, a file where a folder is
  expected) -- names what is wrong; exit status 2;
- anything else is a bug: ``internal error: TYPE: message``, exit status 1;
- Ctrl-C: ``interrupted``, exit status 130.

``--debug`` (or the environment variable ``SKD_DEBUG=1``) re-raises instead, with the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import NoReturn

from skd_core.errors import SkdError

from .commands import COMMANDS

DEBUG_ENV = "SKD_DEBUG"


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(load: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser with the verbs in ``load`` (default: all) complete; every other verb is listed
    with its help but its module is not imported."""
    parser = Parser(prog="skd-bench", description=__doc__.splitlines()[0])
    debug = "re-raise errors with their traceback (also: SKD_DEBUG=1)"
    parser.add_argument("--debug", action="store_true", help=debug)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    loaded = set(COMMANDS if load is None else load)
    for verb, (module, text) in COMMANDS.items():
        if verb in loaded:
            importlib.import_module(f"bench.commands.{module}").add_parser(sub)
        else:
            sub.add_parser(verb, help=text)
    for command in sub.choices.values():  # also accepted after the command
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug)
    return parser


def verb_of(argv: Sequence[str]) -> str | None:
    """The verb ``argv`` runs (its first word that is one), None when it names none."""
    return next((a for a in argv if a in COMMANDS), None)


def one_line(text: str) -> str:
    """``text`` with its lines joined by spaces (messages of libraries may span several)."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def describe_os_error(exc: OSError) -> str:
    """``"cannot write PATH: Permission denied"``-style text naming the path(s) of ``exc``."""
    reason = exc.strerror or one_line(str(exc)) or type(exc).__name__
    if exc.filename is None:
        return f"{reason} ({type(exc).__name__})"
    paths = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    return f"{paths}: {reason}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (see module doc)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = verb_of(argv)
    try:
        args = build_parser([verb] if verb else []).parse_args(argv)
    except SystemExit as exc:  # --help, or a bad flag already reported in one line
        return int(exc.code or 0)
    except SkdError as exc:  # a command that cannot load
        print(f"skd-bench: error: {one_line(exc)}", file=sys.stderr)
        return 2
    prog = f"skd-bench {args.command}"
    if args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        return int(args.func(args) or 0)
    try:
        return int(args.func(args) or 0)
    except SkdError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which closed it: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail again
        return 0
    except OSError as exc:
        print(f"{prog}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"{prog}: internal error: {type(exc).__name__}: {one_line(exc)} (rerun with --debug or "
              f"{DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 1
