"""Wafer maps: SEMI E142 and G85 XML, text maps (SINF and vendor grids) and binary TSK maps.

``common`` holds :class:`MapData`, :func:`read_map`, :func:`write_map` and the helpers the
format modules share; ``e142``, ``g85``, ``textmap`` (with ``textmap_grids``) and ``tsk`` read
(and, for the XML formats, write) one format each.
"""

from .common import MapData, read_map, write_map

__all__ = ["MapData", "read_map", "write_map"]
