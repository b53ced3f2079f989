"""LightGBM's text model format read without compiling anything: the header, its feature
names and the tree blocks. The numba evaluator parses the trees further; the bundle and the
live side need only the names, and must not pay numba's start-up for them."""

from __future__ import annotations


def split_model(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """``(header, trees)`` as ``key=value`` maps; header flags (no ``=``) map to ``""``."""
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line == "end of trees":
            return header, trees
        if line.startswith("Tree="):
            if line != f"Tree={len(trees)}":
                raise ValueError(f"model text: expected 'Tree={len(trees)}', found {line!r}")
            trees.append({})
        elif line:
            key, _, value = line.partition("=")
            (trees[-1] if trees else header)[key] = value
    raise ValueError(
        "model text: no 'end of trees' line; pass the whole output of Booster.model_to_string()"
    )


def header_names(header: dict[str, str]) -> tuple[str, ...]:
    missing = [
        k
        for k in ("num_class", "num_tree_per_iteration", "max_feature_idx", "objective")
        if k not in header
    ]
    if missing:
        raise ValueError(f"model text: header lacks {', '.join(missing)}; not a LightGBM model")
    if header["num_class"] != "1" or header["num_tree_per_iteration"] != "1":
        raise ValueError(
            f"model text: num_class={header['num_class']}, num_tree_per_iteration="
            f"{header['num_tree_per_iteration']}; only single-output models are supported"
        )
    if "average_output" in header:
        raise ValueError("model text: random-forest models (average_output) are not supported")
    names = tuple(header.get("feature_names", "").split())
    if len(names) != int(header["max_feature_idx"]) + 1:
        raise ValueError(
            f"model text: {len(names)} feature_names for max_feature_idx="
            f"{header['max_feature_idx']}"
        )
    return names


def feature_names(text: str) -> tuple[str, ...]:
    """The model's feature names, in the order it reads them; a ``ValueError`` for a text
    that is not a single-output LightGBM model.

    >>> feature_names("tree\nnum_class=1\nnum_tree_per_iteration=1\nmax_feature_idx=1\n"
    ...               "objective=regression\nfeature_names=a b\nend of trees")
    ('a', 'b')
    """
    return header_names(split_model(text)[0])
