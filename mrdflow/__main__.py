"""`python -m mrdflow` is the same as the `mrdflow` command."""

from mrdflow.cli import main

raise SystemExit(main())
