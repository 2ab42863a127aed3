"""Exotel in a box: the sandbox's voice side (docs/sandbox.md, "Calls").

``records`` (what a call did, as its record and ladder show it), ``dialer`` (one INVITE
to one destination, as Exotel's gateway places it, with its media), ``inbound`` (a PSTN
call to a DID, followed through what was applied), ``gateway`` (the SIP listener), and
``endpoints`` (``/_sandbox/calls``). Built on ``reconciler.sip``; nothing else of
reconciler.
"""
