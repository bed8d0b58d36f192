"""``python -m hookbus`` runs the ``hookbus`` command."""

import sys

from .cli import main

sys.exit(main())
