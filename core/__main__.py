"""`python -m core` is the `momask` command."""
import sys

from core.cli import main

sys.exit(main())
