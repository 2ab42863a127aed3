"""The route table: every endpoint of docs/exotel-api.md section 3, and which profile serves it.

Called by the sandbox's server to find the handler for a request, and to name the
route template in ``/_sandbox/stats``. Pure. Rows marked ``minimal=False`` are the
docs-only "manage" calls that profile ``minimal`` answers with 404/1000.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.sandbox import acl, credentials, destinations, numbers, settings, trunks
from reconciler.sandbox.envelope import Reply
from reconciler.sandbox.request import ApiRequest

Handler = Callable[[ApiRequest], Reply]
ACCOUNT = "/v2/accounts/{sid}"
TRUNK = ACCOUNT + "/trunks/{trunk_sid}"


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    minimal: bool  # served in profile "minimal" too

    @property
    def key(self) -> str:
        """How ``/_sandbox/stats`` names the route: ``GET /v2/accounts/{sid}/trunks``."""
        return f"{self.method} {self.template}"


ROUTES: tuple[Route, ...] = (
    Route("POST", ACCOUNT + "/trunks", trunks.create_trunk, minimal=True),
    Route("GET", ACCOUNT + "/trunks", trunks.list_trunks, minimal=False),
    Route("PUT", TRUNK, trunks.update_trunk, minimal=False),
    Route("DELETE", ACCOUNT + "/trunks", trunks.delete_trunk, minimal=True),
    Route("POST", TRUNK + "/phone-numbers", numbers.map_number, minimal=True),
    Route("GET", TRUNK + "/phone-numbers", numbers.list_numbers, minimal=True),
    Route("PUT", TRUNK + "/phone-numbers/{id}", numbers.update_number, minimal=True),
    Route("DELETE", TRUNK + "/phone-numbers", numbers.unmap_number, minimal=False),
    Route("GET", ACCOUNT + "/trunk-maps", numbers.trunk_map, minimal=False),
    Route("POST", TRUNK + "/whitelisted-ips", acl.add_ip, minimal=True),
    Route("GET", TRUNK + "/whitelisted-ips", acl.list_ips, minimal=True),
    Route("PUT", TRUNK + "/whitelisted-ips/{id}", acl.update_ip, minimal=False),
    Route("DELETE", TRUNK + "/whitelisted-ips", acl.remove_ip, minimal=False),
    Route("POST", TRUNK + "/destination-uris", destinations.add_destinations, minimal=True),
    Route("GET", TRUNK + "/destination-uris", destinations.list_destinations, minimal=True),
    Route("PUT", TRUNK + "/destination-uris/{id}", destinations.update_destination, minimal=False),
    Route("DELETE", TRUNK + "/destination-uris", destinations.remove_destination, minimal=False),
    Route("POST", TRUNK + "/credentials", credentials.add_credential, minimal=True),
    Route("GET", TRUNK + "/credentials", credentials.list_credentials, minimal=True),
    Route("PUT", TRUNK + "/credentials/{id}", credentials.update_credential, minimal=False),
    Route("DELETE", TRUNK + "/credentials", credentials.remove_credential, minimal=True),
    Route("GET", TRUNK + "/settings", settings.list_settings, minimal=False),
    Route("POST", TRUNK + "/settings", settings.set_settings, minimal=True),
    Route("DELETE", TRUNK + "/settings", settings.remove_setting, minimal=False),
)


def _compile(template: str) -> re.Pattern[str]:
    # A path parameter is one segment; ids and SIDs of any shape reach the handler,
    # which answers 404/1000 for ones it does not know.
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)))


_COMPILED: tuple[tuple[re.Pattern[str], tuple[Route, ...]], ...] = tuple(
    (_compile(template), tuple(r for r in ROUTES if r.template == template))
    for template in dict.fromkeys(r.template for r in ROUTES)
)


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route and path parameters for a request, or None (404/1000)."""
    for pattern, routes in _COMPILED:
        found = pattern.fullmatch(path)
        if found is None:
            continue
        for route in routes:
            if route.method == method:
                return route, found.groupdict()
        return None
    return None


def path_account(path: str) -> str | None:
    """The account SID a path names, for the auth check (``/v2/accounts/{sid}/...``, and
    the Calls API's ``/v1/Accounts/{sid}/...``)."""
    parts = path.split("/", 4)
    if len(parts) >= 4 and (parts[1], parts[2]) in (("v2", "accounts"), ("v1", "Accounts")):
        return parts[3] or None
    return None
