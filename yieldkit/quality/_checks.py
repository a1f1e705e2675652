"""The argument checks of the outgoing-quality functions (defined in :mod:`yieldkit._validation`)."""

from __future__ import annotations

from .._validation import as_at_least, as_fraction, as_nonnegative, as_positive, check_conf_level, out

__all__ = ["as_at_least", "as_fraction", "as_nonnegative", "as_positive", "check_conf_level", "out"]
