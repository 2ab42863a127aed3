"""Inbound routing as code: pure decisions (``decide``), snapshots of manifests and ledgers
(``snapshot``), the agents check (``agents``) and the ``reconciler serve`` service.
"""
