"""`python -m core` is the `momask` command."""
import sys

from .cli import main

sys.exit(main())
