"""``python -m nbseg`` (and ``torchrun -m nbseg``): the command line."""
import sys

from .cli.main import main

sys.exit(main())
