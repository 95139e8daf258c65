"""``python -m sweatlab``: the same as the ``sweatlab`` command."""

from .cli import main

raise SystemExit(main())
