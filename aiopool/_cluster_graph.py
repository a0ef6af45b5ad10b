"""Who the primary is, proven from the replication graph (no I/O, no clock).

``read_only`` alone cannot tell a primary from a replica someone made
writable by mistake, or from an old primary that came back writable after a
fail-over.  The graph can: every probe reports where its node replicates
from (``SHOW REPLICA STATUS``: ``Master_Host``/``Master_Port``, and
``Master_Server_Id`` while connected) and, where the privilege allows, who
replicates from it (``SHOW REPLICA HOSTS``).  ``decide`` turns the probes of
every member into one verdict per node:

1. A server that replicates from another member is a replica, whatever its
   ``read_only`` says (``writable_replicas`` names the writable ones).
2. The writable servers that replicate from no member are the candidates.
   One candidate is the primary (a single server with no replicas too).
3. Of several candidates, the one other members replicate from is the
   primary; the others, which nobody follows, are fenced: no writes, no reads.
4. When the graph cannot tell (several candidates and none followed, or
   more than one followed, or a replication cycle), nobody gets the writes:
   ``refused`` says why and names the candidates.

Edges come from the replica's own status when it could be read; the
source's ``SHOW REPLICA HOSTS`` (which keeps listing a replica for a while
after it stopped) only fills in for members whose own status is unknown.
A member that is down contributes no edges: what it said before it went down
may no longer be true.  Galera nodes are left to ``classify``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ._cluster_probe import (
    Classified,
    NodeRole,
    NodeState,
    NodeStatus,
    SourceLink,
    classify,
    replica_verdict,
)

__all__ = ["Decision", "Member", "decide"]


@dataclass(frozen=True, slots=True)
class Member:
    """One node as the decision sees it."""

    name: str
    """``host:port`` as listed in the cluster's URL."""
    host: str
    port: int
    status: NodeStatus | None
    """Its latest probe, or None when it is down or never answered."""
    server_id: int | None = None
    """The last ``@@server_id`` it reported (kept while it is down)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The routing verdict for every member whose status is known."""

    verdicts: Mapping[str, Classified]
    """By member name; members without a status have none."""
    primary: str | None
    """The member that takes the writes (replication clusters only)."""
    sources: Mapping[str, str] = field(default_factory=dict)
    """What each replicating member follows: a member's name, or an address
    with ``(outside the cluster)`` or ``(not identified)``."""
    writable_replicas: tuple[str, ...] = ()
    """Members replicating from another member although ``read_only`` is off."""
    fenced: tuple[str, ...] = ()
    """Writable members nobody follows while another writable one is followed."""
    refused: str | None = None
    """Why writes are refused (the graph cannot tell), naming the candidates."""


_OUTSIDE = "outside"


def _identity(member: Member) -> int | None:
    status = member.status
    if status is not None and status.server_id is not None:
        return status.server_id
    return member.server_id


def _matches_address(link: SourceLink, member: Member) -> bool:
    host = link.host.lower()
    if (host, link.port) == (member.host.lower(), member.port):
        return True
    status = member.status
    return (
        status is not None
        and status.hostname is not None
        and status.port == link.port
        and status.hostname.lower() == host
    )


def _resolve(link: SourceLink, members: Sequence[Member]) -> str | None:
    """The member ``link`` points at; ``_OUTSIDE``, or None when it cannot be told.

    ``Master_Server_Id`` decides when known (a name and an address of one
    server compare unequal, its id does not); else the address.
    """
    if link.server_id is not None:
        for member in members:
            if _identity(member) == link.server_id:
                return member.name
    for member in members:
        if _matches_address(link, member):
            return member.name
    if link.server_id is not None and all(_identity(m) is not None for m in members):
        return _OUTSIDE  # every member's id is known and none is the source's
    return None


def _edges(members: Sequence[Member]) -> tuple[dict[str, str], dict[str, str]]:
    """(member -> member it follows, member -> how its source is shown)."""
    edges: dict[str, str] = {}
    shown: dict[str, str] = {}
    for member in members:
        status = member.status
        if status is None or status.wsrep_on or status.source is None:
            continue
        link = status.source
        if not link.active:
            continue  # replication stopped: it follows nobody now
        target = _resolve(link, members)
        address = f"{link.host}:{link.port}"
        if target == member.name:
            continue
        if target is None:
            edges[member.name] = shown[member.name] = f"{address} (not identified)"
        elif target == _OUTSIDE:
            shown[member.name] = f"{address} (outside the cluster)"
        else:
            edges[member.name] = shown[member.name] = target
    by_id = {i: m for m in members if (i := _identity(m)) is not None}
    for source in members:
        ids = source.status.replica_ids if source.status is not None else None
        for replica_id in ids or ():
            replica = by_id.get(replica_id)
            if replica is None or replica is source or replica.name in edges:
                continue
            if replica.status is None or not replica.status.source_visible:
                edges[replica.name] = shown[replica.name] = source.name
    return edges, shown


def _cycles(edges: Mapping[str, str]) -> list[list[str]]:
    """Every replication cycle among members, each once, from its first-listed node."""
    found: list[list[str]] = []
    seen: set[str] = set()
    for start in edges:
        path: list[str] = []
        node: str | None = start
        while node is not None and node not in seen and node not in path:
            path.append(node)
            node = edges.get(node)
        if node is not None and node in path:
            found.append(path[path.index(node) :])
        seen.update(path)
    return found


def _writable(status: NodeStatus) -> bool:
    return not (status.read_only or status.innodb_read_only)


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)


def decide(members: Sequence[Member], max_lag: float | None) -> Decision:
    """One verdict per member whose status is known; see the module's rules."""
    edges, shown = _edges(members)
    followers: dict[str, list[str]] = {}
    for follower, source in edges.items():
        followers.setdefault(source, []).append(follower)
    verdicts: dict[str, Classified] = {}
    candidates: list[str] = []
    writable_replicas: list[str] = []
    for member in members:
        status = member.status
        if status is None:
            continue
        if status.wsrep_on:
            verdicts[member.name] = classify(status, max_lag)
        elif member.name in edges:
            verdict = replica_verdict(status, max_lag)
            if _writable(status):
                writable_replicas.append(member.name)
                why = f"writable (read_only=OFF) but replicates from {edges[member.name]}"
                detail = why if verdict.detail is None else f"{why}; {verdict.detail}"
                verdict = Classified(verdict.role, verdict.state, False, verdict.readable, detail)
            verdicts[member.name] = verdict
        elif _writable(status):
            candidates.append(member.name)
        else:
            verdicts[member.name] = classify(status, max_lag)
    primary, fenced, refused = _choose(candidates, followers, _cycles(edges))
    for name in candidates:
        if name == primary:
            verdicts[name] = Classified(NodeRole.PRIMARY, NodeState.ONLINE, True, True)
        elif name in fenced:
            assert primary is not None
            detail = (
                f"writable (read_only=OFF) but no member replicates from it, while "
                f"{primary} is followed by {_names(followers[primary])}"
            )
            verdicts[name] = Classified(NodeRole.PRIMARY, NodeState.FENCED, False, False, detail)
        else:
            verdicts[name] = Classified(
                NodeRole.PRIMARY, NodeState.AMBIGUOUS, False, False, refused
            )
    return Decision(
        verdicts=verdicts,
        primary=primary,
        sources=shown,
        writable_replicas=tuple(writable_replicas),
        fenced=tuple(fenced),
        refused=refused,
    )


def _choose(
    candidates: Sequence[str], followers: Mapping[str, Sequence[str]], cycles: list[list[str]]
) -> tuple[str | None, list[str], str | None]:
    """(primary, fenced, why writes are refused) among the writable candidates."""
    if cycles:
        loops = "; ".join(" -> ".join([*c, c[0]]) for c in cycles)
        others = f"; writable servers replicating from no member: {_names(candidates)}"
        return None, [], f"replication cycle {loops}" + (others if candidates else "")
    if len(candidates) <= 1:
        return (candidates[0] if candidates else None), [], None
    followed = [c for c in candidates if followers.get(c)]
    if len(followed) == 1:
        primary = followed[0]
        return primary, [c for c in candidates if c != primary], None
    if followed:
        each = _names([f"{c} (followed by {_names(followers[c])})" for c in followed])
        return None, [], f"{len(followed)} writable servers each have replicas: {each}"
    return (
        None,
        [],
        (
            f"{len(candidates)} writable servers replicate from no member and no member "
            f"replicates from any of them: {_names(candidates)}"
        ),
    )
