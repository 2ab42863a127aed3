"""A declarative, GitOps-style reconciler for Exotel vSIP trunking.

Manifests in git describe trunks and everything on them; ``reconciler plan`` shows how
live Exotel state differs, ``reconciler apply`` makes it so.  ``reconciler sandbox``
serves a faithful emulator of Exotel's API so that all of it runs without an account.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"
