"""Splitting a cluster's URL (or list of URLs) into one URL per node.

``urlsplit`` cannot read ``h1:3306,h2:3306`` (it takes everything after the
last colon as one port), so the host list is cut out by hand; each node then
gets an ordinary single-host URL that ``parse_url`` validates as usual.  Every
message shows the URL with its password replaced by ``***``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._config import parse_url

__all__ = ["NodeAddress", "check_node_kwargs", "redact_cluster_url", "split_cluster_url"]


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """One node of a cluster: where it listens, and its ``asyncmy.connect`` keywords."""

    host: str
    port: int
    url: str
    """The node's own single-host URL (it holds the password: never log it)."""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _cut(url: str) -> tuple[str, str, str, str]:
    """``scheme://userinfo@hosts/rest`` -> (scheme, userinfo, hosts, rest)."""
    scheme, sep, after = url.partition("://")
    if not sep:
        raise ValueError("not a URL (expected mysql://user:password@host:port,.../db)")
    end = len(after)
    for mark in "/?#":
        pos = after.find(mark)
        if pos != -1:
            end = min(end, pos)
    netloc, rest = after[:end], after[end:]
    userinfo, at, hosts = netloc.rpartition("@")
    return scheme, userinfo if at else "", hosts, rest


def redact_cluster_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (works for host lists too)."""
    try:
        scheme, userinfo, hosts, rest = _cut(url)
    except ValueError:
        return "<unparsable URL>"
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    at = "@" if userinfo else ""
    return f"{scheme}://{userinfo}{at}{hosts}{rest}"


def _split_host(item: str, shown: str, index: int) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` -> (host, port)."""
    if item.startswith("["):
        host, bracket, tail = item[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"url {shown!r}: host {index} ({item!r}) is not a valid address")
        port_text = tail[1:]
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise ValueError(f"url {shown!r}: host {index} ({item!r}) has no host name")
    if not port_text:
        return host, 3306
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(
            f"url {shown!r}: host {index} ({item!r}) has a bad port (expected a number 1-65535)"
        )
    return host, int(port_text)


def _node_url(scheme: str, userinfo: str, host: str, port: int, rest: str) -> str:
    at = "@" if userinfo else ""
    shown_host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{userinfo}{at}{shown_host}:{port}{rest}"


def _split_one(url: str) -> list[NodeAddress]:
    shown = redact_cluster_url(url)
    try:
        scheme, userinfo, hosts, rest = _cut(url)
    except ValueError as exc:
        raise ValueError(f"url {shown!r} is {exc}") from None
    if not hosts:
        raise ValueError(f"url {shown!r} names no hosts (expected host:port,host:port,...)")
    nodes = []
    for index, item in enumerate(hosts.split(","), start=1):
        host, port = _split_host(item.strip(), shown, index)
        node_url = _node_url(scheme, userinfo, host, port, rest)
        # The single-server rules for the scheme, the options and the database.
        if "unix_socket" in parse_url(node_url):
            raise ValueError(f"url {shown!r}: unix_socket cannot be used with a host list")
        nodes.append(NodeAddress(host, port, node_url))
    return nodes


def split_cluster_url(url: str | Sequence[str]) -> list[NodeAddress]:
    """One ``NodeAddress`` per node, from a multi-host URL or a list of URLs.

    Raises ``ValueError`` naming the problem (no hosts, a bad port, a node
    listed twice, anything ``parse_url`` rejects), never showing the password.
    """
    if isinstance(url, str):
        nodes = _split_one(url)
    elif isinstance(url, Sequence) and all(isinstance(u, str) for u in url):
        nodes = [node for one in url for node in _split_one(one)]
        if not nodes:
            raise ValueError("url: the list of node URLs is empty")
    else:
        raise ValueError(f"url must be a string or a list of strings, got {type(url).__name__}")
    seen: set[tuple[str, int]] = set()
    for node in nodes:
        key = (node.host.lower(), node.port)
        if key in seen:
            raise ValueError(f"url: node {node} is listed twice")
        seen.add(key)
    return nodes


def check_node_kwargs(kwargs: dict[str, Any]) -> None:
    """Refuse keywords that would send every node's connections to one place."""
    for key in ("host", "port", "unix_socket"):
        if key in kwargs:
            raise ValueError(
                f"{key}= cannot be given to a ClusterPool: list the nodes in the URL "
                "(mysql://user:password@host1:port1,host2:port2/db)"
            )
