"""``python -m caramel_embedded``: the same command as the console script."""

from caramel_embedded.cli import run

run()
