"""Layer 7, the ``bayesmoe`` command line, the only layer that may import :mod:`bayesmoe.cli`.

Each command is a module with ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args)``, listed in
:data:`bayesmoe.cli.commands.COMMANDS` (and ``demo`` in :data:`bayesmoe.cli.main.COMMANDS`).
:mod:`.runner` parses, dispatches and turns errors into one ``error:`` line.
"""
