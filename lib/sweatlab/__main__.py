"""``python -m sweatlab``: the same as the ``sweatlab`` command."""

from sweatlab.tools.cli import main

raise SystemExit(main())
