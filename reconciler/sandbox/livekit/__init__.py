"""LiveKit's SIP API, emulated: trunks and dispatch rules over Twirp (docs/partners.md,
"LiveKit's SIP API"), so the partner end of a trunk can be managed and tested with no
LiveKit server. ``service`` answers ``/twirp/livekit.SIP/<Method>``; ``store`` keeps the
objects and applies LiveKit's rules. Messages are LiveKit's own protobuf definitions
(the ``livekit-protocol`` package), so the official SDK talks to it unchanged.
"""
