"""The ``llmos`` command line (Typer + rich). ``llmos.cli.app:main`` is the console script."""
