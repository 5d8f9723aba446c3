"""The ``bayesmoe`` command line. Each module here with ``NAME``, ``HELP``, ``add_arguments`` and
``run`` is one sub-command; :mod:`bayesmoe.cli.main` finds them."""
