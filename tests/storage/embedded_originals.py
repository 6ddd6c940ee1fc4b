"""mongomock's own methods and walks that the embedded backend's patches replaced.

The differential tests run each patched operation against mongomock's original.
"""

from __future__ import annotations

from typing import Any

import mongomock.collection
import mongomock.helpers

from evalstore.storage import embedded, embedded_reads


def original_methods() -> dict[tuple[type, str], Any]:
    """mongomock's own methods the patches replaced (empty before installation)."""
    originals = embedded._ORIGINALS
    return {
        (cls, name): originals[name]
        for cls, name, _patched in embedded._PATCHES
        if name in originals
    }


def original_walks() -> dict[str, Any]:
    """mongomock's own document walks that the fast ones replaced (empty before)."""
    helpers, namespace = vars(mongomock.helpers), vars(mongomock.collection)
    walks = {
        name: getattr(helpers[name], "_evalstore_original", None)
        for name in embedded_reads._DATETIME_STEPS
    }
    walks["_recursive_key_check_null_character"] = getattr(
        namespace["_recursive_key_check_null_character"], "_evalstore_original", None
    )
    return {name: walk for name, walk in walks.items() if walk is not None}
