"""SIP for both sides of the house: the prober (``checking``) and the sandbox's gateway.

``message`` (requests and responses, pure), ``sdp`` (offers and answers, pure),
``digest`` (challenges and credentials, pure), ``stream`` (framing on TCP and TLS),
``rtp`` (G.711 media). It imports nothing else of reconciler, so the sandbox may use it.
"""
