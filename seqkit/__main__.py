"""Allow `python -m seqkit`."""

from seqkit.cli import main

raise SystemExit(main())
