"""Exotel's API: the client, its rate gate and retries, envelopes, transport, and the
records its answers become. The only package that knows Exotel's paths and bodies, and
(with ``routing.agents``) the only one that imports httpx.
"""
