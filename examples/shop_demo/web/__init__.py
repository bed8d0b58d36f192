"""The shop as a web app: FastAPI routes per module, a live dashboard at ``/``.

``python -m examples.shop_demo`` (``make demo``) serves it; :func:`create_app`
builds it (one bus per process, configured from the environment).
"""

from .app import create_app

__all__ = ["create_app"]
