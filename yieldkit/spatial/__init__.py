"""Spatial statistics of wafer maps: clustering statistics and defect cluster detection."""

from __future__ import annotations

from .adjacency import CONTIGUITIES, adjacency_matrix, grid_edges
from .clusters import DefectClusters, cluster_summary, csr_eps, detect_clusters
from .stats import clustering_stats, join_count_moments, morans_i_moments

__all__ = [
    "CONTIGUITIES",
    "DefectClusters",
    "adjacency_matrix",
    "cluster_summary",
    "clustering_stats",
    "csr_eps",
    "detect_clusters",
    "grid_edges",
    "join_count_moments",
    "morans_i_moments",
]
