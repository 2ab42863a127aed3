"""One HTTP request to the API as the handlers see it (not a phone call), and the
pagination every list shares.

Called by the server (which builds a :class:`ApiRequest` per request) and by the handlers.
Pure: no I/O. Pagination follows docs/exotel-api.md section 6a: ``offset``/``page_size``,
root-relative page URIs that keep the other query parameters, and no ``metadata`` at
all when the whole collection is empty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from reconciler.sandbox import rules
from reconciler.sandbox.envelope import JSON, Reply, listing, missing, not_found
from reconciler.sandbox.store import Account, Store, Trunk

T = TypeVar("T")


@dataclass(frozen=True)
class ApiRequest:
    store: Store
    account: Account
    path: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: Any

    def trunk(self) -> Trunk:
        return self.account.trunk(self.params["trunk_sid"])

    def child(self, children: Mapping[str, T], child_id: str | None) -> T:
        """A child of this trunk by id; another trunk's child or an odd id is 404/1000."""
        if not child_id or child_id not in children:
            raise not_found()
        return children[child_id]

    def remove_child(self, children: dict[str, T], key: str = "id") -> T:
        """DELETE's child: named in the query (``?id=``, ``?name=``), not the path."""
        child_id = self.query.get(key)
        if not child_id:
            raise missing(key)
        self.child(children, child_id)  # 404/1000 when it is not on this trunk
        return children.pop(child_id)

    def now(self) -> str:
        return self.store.clock()

    def new_id(self) -> str:
        return self.store.new_id(self.account.sid)


def paginate(call: ApiRequest, newest_first: Sequence[T], render: Callable[[T], JSON]) -> Reply:
    offset, page_size = rules.page_params(call.query)
    if not newest_first:
        return listing([], None)
    page = [render(item) for item in newest_first[offset : offset + page_size]]
    others = {k: v for k, v in call.query.items() if k not in {"offset", "page_size"}}

    def uri(at: int) -> str:
        return f"{call.path}?{urlencode({**others, 'offset': at, 'page_size': page_size})}"

    metadata = {
        "page_size": page_size,
        "first_page_uri": uri(0),
        "prev_page_uri": uri(max(0, offset - page_size)) if offset > 0 else None,
        "next_page_uri": uri(offset + page_size)
        if offset + page_size < len(newest_first)
        else None,
    }
    return listing(page, metadata)


def newest_first(children: Mapping[str, T]) -> list[T]:
    """Children by id, highest first: ids only grow, so reverse insertion order."""
    return list(children.values())[::-1]
