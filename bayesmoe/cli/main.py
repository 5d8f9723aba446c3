"""Entry point of the ``bayesmoe`` command: argument parsing, sub-command dispatch, clean errors.

Errors in user input print one line ``error: ...`` on stderr and exit with status 2, without a
traceback (set ``BAYESMOE_DEBUG=1`` to see one). Fit diagnostics print ``warning: ...`` lines.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import warnings

from . import __path__ as _cli_path


class _Parser(argparse.ArgumentParser):
    """argparse with SPEC's error format: one ``error:`` line, exit 2."""

    def error(self, message):
        sys.stderr.write(f"error: {self.prog}: {message}\n")
        raise SystemExit(2)


def _commands():
    for info in sorted(pkgutil.iter_modules(_cli_path), key=lambda m: m.name):
        if info.name in ("main", "output"):
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            yield module


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bayesmoe", description="Bayesian scaling-law inference for Mixture-of-Experts language models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in sorted(_commands(), key=lambda m: getattr(m, "ORDER", 50)):
        p = sub.add_parser(module.NAME, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(f"warning: {message}\n")


def main(argv: list[str] | None = None) -> int:
    """Run ``bayesmoe`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed)
        return int(exc.code or 0)
    warnings.showwarning = _show_warning
    warnings.filterwarnings("ignore", category=FutureWarning)
    from ..errors import BayesMoeError

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
        sys.stderr.write(f"error: unexpected {type(exc).__name__}: {first} (set BAYESMOE_DEBUG=1 for a traceback)\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
