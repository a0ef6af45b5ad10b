"""The warnings a ClusterPool logs about its replication graph, once per episode.

They are issued at the end of a monitor round, from every node's latest
probe: a round's probes arrive one by one, and a graph half updated (one
node's new status next to another's old one) can look wrong for a moment.
The flags that make them "once" live on the nodes (and, for refused writes,
in the text last warned about, which the cluster keeps).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ._cluster_graph import Decision
from ._cluster_node import ClusterNode
from ._cluster_probe import NodeState

__all__ = ["report"]

logger = logging.getLogger("aiopool")


def report(
    cluster: str, nodes: Sequence[ClusterNode], decision: Decision, warned_refused: str | None
) -> str | None:
    """Log what started (or, for refused writes, ended) since the last report.

    Returns the refusal now warned about, for the next call.
    """
    for node in nodes:
        writable_replica = node.name in decision.writable_replicas
        if writable_replica and not node.warned_writable:
            logger.warning(
                "cluster %r: node %s is writable (read_only=OFF) but replicates from %s: "
                "it stays a replica and gets no writes; set read_only=ON on it",
                cluster,
                node.name,
                decision.sources.get(node.name),
            )
        node.warned_writable = writable_replica
        fenced = node.state is NodeState.FENCED
        if fenced and not node.warned_fenced:
            logger.warning(
                "cluster %r: node %s is fenced: %s; no writes and no reads go to it until "
                "it is read_only or replicates from the primary",
                cluster,
                node.name,
                node.detail,
            )
        node.warned_fenced = fenced
    if decision.refused is not None and warned_refused is None:
        logger.warning(
            "cluster %r: writes are refused, the replication graph does not tell which "
            "server is the primary: %s",
            cluster,
            decision.refused,
        )
    elif decision.refused is None and warned_refused is not None:
        logger.info("cluster %r: writes resume, the primary is %s", cluster, decision.primary)
    return decision.refused
