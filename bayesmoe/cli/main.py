"""Entry point of the ``bayesmoe`` command (``[project.scripts]``): every command of :mod:`.commands`, and ``demo``."""
from __future__ import annotations

import sys
from types import ModuleType

from . import demo
from .commands import COMMANDS as DATA_COMMANDS
from .runner import run

#: Every command by name, in ``--help`` order.
COMMANDS: dict[str, ModuleType] = {**DATA_COMMANDS, demo.NAME: demo}


def main(argv: list[str] | None = None) -> int:
    """Run ``bayesmoe`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    return run(argv, COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
