"""`python -m memopainter` is the `memopainter` command."""

from memopainter.cli.main import main

raise SystemExit(main())
