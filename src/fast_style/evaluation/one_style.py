"""One style of a model for a measurement: ``styles=<name or index>`` -> a :class:`StyleChoice`.

``scripts/evaluate.py``, the resemblance check and the benchmarks measure one style at a
time: the style loss is against one painting, and a benchmark runs one set of style
weights. The key has the name of ``stylize.py``'s option and takes what it takes for one
style alone: a name among the model's styles
(:func:`~fast_style.inference.mixing.style_names`) or an index 0..S-1; the choice is
w = e_k. A mix is refused, and a one-style model takes no ``styles=`` or its own name.
Every mistake is one line (:class:`~fast_style.inference.mixing.StyleOptionError`).
"""

from __future__ import annotations

from typing import Any

import torch

from fast_style.inference.mixing import StyleChoice, StyleOptionError, style_names
from fast_style.io.model_files import StyleModel


def one_style(model: StyleModel, spec: Any, *, first_by_default: bool = False) -> StyleChoice:
    """The :class:`StyleChoice` of style ``spec`` alone (weights e_k (S,), label its name; a
    one-style model: no weights). Without ``spec``, a multi-style model's first style when
    ``first_by_default``, else a one-line error that lists its styles."""
    names = style_names(model)
    if spec in (None, "") and len(names) > 1 and not first_by_default:
        raise StyleOptionError(f"{model.path.name} holds {len(names)} styles ({', '.join(names)}): choose one with "
                               f"styles={names[0]} (a name, or an index 0..{len(names) - 1})")
    index = 0 if spec in (None, "") else _index(model, names, spec)
    if len(names) == 1:
        return StyleChoice(label=model.style_name)
    weights = torch.zeros(len(names))
    weights[index] = 1.0
    return StyleChoice(len(names), weights, label=names[index])


def _index(model: StyleModel, names: list[str], spec: Any) -> int:
    if isinstance(spec, bool) or not isinstance(spec, (str, int)):
        raise StyleOptionError(f"styles={spec}: give one style, by name or index (its styles: {', '.join(names)})")
    text = str(spec).strip()
    if text in names:
        return names.index(text)
    if text.isdigit() and int(text) < len(names):
        return int(text)
    if ":" in text or "," in text:
        raise StyleOptionError(f"styles={spec}: a mix; this measures one style at a time, e.g. styles={names[0]}")
    if len(names) == 1:
        raise StyleOptionError(f"styles={spec}: {model.path.name} holds one style, {names[0]}; drop styles=")
    raise StyleOptionError(f"styles={spec}: no style {text!r} in {model.path.name}; its styles: {', '.join(names)} "
                           f"(or their indices 0..{len(names) - 1})")
