"""SIP probes of destinations: does a trunk's SBC answer, the way Exotel would reach it.

``sip`` builds and reads messages (pure), ``wire`` frames them over a stream, ``probe``
runs DNS, TCP, TLS and OPTIONS for one destination, ``invite`` places ``--invite``'s test
call, ``results`` holds what was found and ``report`` renders it. Used by
``pipeline.checking`` (``reconciler check``) and ``pipeline.tracing`` (``trace --probe``).
"""
