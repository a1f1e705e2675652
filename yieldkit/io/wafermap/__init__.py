"""Wafer maps: SEMI E142 and G85 XML, text maps (SINF and vendor grids) and binary TSK maps.

``common`` holds :class:`MapData`, :func:`read_map` and the helpers the format modules share;
``e142``, ``g85``, ``textmap`` (with ``textmap_grids``) and ``tsk`` each read one format,
recognise it (``sniff``) and register it with :mod:`yieldkit.io.registry`; ``writer`` holds
:func:`write_map` (E142 and G85).
"""

from . import e142, g85, textmap, tsk
from .common import MapData, read_map
from .writer import write_map

__all__ = ["MapData", "e142", "g85", "read_map", "textmap", "tsk", "write_map"]
