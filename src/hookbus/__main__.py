"""``python -m hookbus`` runs the ``hookbus`` command."""

import sys

from ._cli import main

sys.exit(main())
