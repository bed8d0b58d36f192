"""The ``hookbus`` command line's commands (click; ``pip install 'hookbus[cli]'``)."""
