"""``python -m resume``: the same as the ``resume`` command."""

from resume._cli import main

raise SystemExit(main())
