"""Running one ``bayesmoe`` command line: argument parsing, dispatch to a command module, clean errors.

Errors in user input print one line ``error: ...`` on stderr and return status 2, without a traceback
(set ``BAYESMOE_DEBUG=1`` to see one). Warnings print as ``warning: ...`` lines while the command runs;
the caller's warning filters and ``warnings.showwarning`` are restored afterwards. ``docs/cli.md``
describes every command.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from types import ModuleType
from typing import Mapping

from ..config import configure
from ..errors import BayesMoeError


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error format: one ``error:`` line, exit 2."""

    def error(self, message: str) -> None:
        sys.stderr.write(f"error: {self.prog}: {message}\n")
        raise SystemExit(2)


def build_parser(commands: Mapping[str, ModuleType]) -> argparse.ArgumentParser:
    """The ``bayesmoe`` parser with one sub-command per module of ``commands`` (in their order).

    Each command module defines ``NAME``, ``HELP``, optionally ``DESCRIPTION``, ``add_arguments(parser)``
    and ``run(args) -> int``.
    """
    parser = _Parser(
        prog="bayesmoe", description="Bayesian scaling-law inference for Mixture-of-Experts language models."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module in commands.items():
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(f"warning: {message}\n")


def run(argv: list[str] | None, commands: Mapping[str, ModuleType]) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) against ``commands`` and run the command; returns the exit status."""
    parser = build_parser(commands)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed)
        return int(exc.code or 0)
    configure()
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        warnings.filterwarnings("ignore", category=FutureWarning)
        try:
            return int(args._run(args) or 0)
        except BayesMoeError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2
        except KeyboardInterrupt:
            sys.stderr.write("error: interrupted\n")
            return 130
        except Exception as exc:  # an unexpected failure still ends in one line unless debugging
            if os.environ.get("BAYESMOE_DEBUG"):
                raise
            first = (str(exc).splitlines() or [""])[0]
            sys.stderr.write(
                f"error: unexpected {type(exc).__name__}: {first} (set BAYESMOE_DEBUG=1 for a traceback)\n"
            )
            return 2
