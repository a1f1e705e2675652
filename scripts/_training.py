"""What the training scripts share: recording a new model file's SHA-256 in yieldkit/classify/pretrained.py."""

from __future__ import annotations

import logging
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("training")


def update_model_hash(constant: str, digest: str) -> None:
    """Write ``digest`` as the value of ``constant`` (``MODEL_SHA256`` or ``MIXED_MODEL_SHA256``) in
    ``yieldkit/classify/pretrained.py``, atomically; the other constant is left as it is."""
    from yieldkit.io.atomic import atomic_write

    src = REPO / "yieldkit" / "classify" / "pretrained.py"
    text, n = re.subn(rf'^{constant} = "[0-9a-f]{{64}}"', f'{constant} = "{digest}"', src.read_text(),
                      flags=re.MULTILINE)
    if n != 1:
        raise SystemExit(f"{src}: expected one line '{constant} = \"<sha256>\"', found {n}")
    with atomic_write(src) as fh:
        fh.write(text)
    log.info("updated %s in %s", constant, src)
