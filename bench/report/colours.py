"""The one palette of every report figure: a fixed colour per method (a variant labelled with a
method's name), for the teacher and per loss term, the same in every figure of every study; any
other name (an ablation's variant, a student width) takes the next colour of :data:`SPARE`, in
the order given, so a study that passes its labels in grid order colours a label alike
in all its figures. Colours are hex RGB strings; the set is colour-blind safe (Okabe-Ito first)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: a variant labelled with the name of one of the built-in methods
METHOD_COLOURS: Mapping[str, str] = {
    "scratch": "#555555", "output_kd": "#E69F00", "fitnet": "#56B4E9", "at": "#009E73", "fakd": "#CC79A7",
    "skd": "#D55E00"}
TEACHER_COLOUR = "#B8860B"
#: a loss term (``skd_core.methods``' term names); a method's own term has the method's colour
TERM_COLOURS: Mapping[str, str] = {
    "pixel_l1": "#555555", "output_kd": "#E69F00", "fitnet": "#56B4E9", "at": "#009E73", "fakd": "#CC79A7",
    "skd_channel": "#D55E00", "skd_spatial": "#0072B2", "skd_feature": "#F0E442", "contrastive": "#882255"}
#: for other names, in this order (none of them a method's colour; a term never takes a term's)
SPARE = ("#0072B2", "#882255", "#44AA99", "#999933", "#AA4499", "#332288", "#88CCEE", "#661100", "#117733",
         "#DDCC77", "#6699CC", "#AA4466")


def _assign(names: Iterable[str], fixed: Mapping[str, str]) -> dict[str, str]:
    """``name -> colour``: ``fixed`` where it names one, else the next spare colour that no entry
    of ``fixed`` has (cycling once all are used)."""
    names = list(dict.fromkeys(names))
    colours = {n: fixed[n] for n in names if n in fixed}
    free = [c for c in SPARE if c not in fixed.values()]
    for i, name in enumerate(n for n in names if n not in colours):
        colours[name] = free[i % len(free)]
    return {n: colours[n] for n in names}


def label_colours(labels: Iterable[str]) -> dict[str, str]:
    """A colour per variant label (or student model), in the order given: a method's name gets
    its :data:`METHOD_COLOURS` entry, any other label a spare colour."""
    return _assign(labels, METHOD_COLOURS)


def term_colours(terms: Iterable[str]) -> dict[str, str]:
    """A colour per loss term, the built-in ones in :data:`TERM_COLOURS` order with their colour,
    then the others sorted, with spare colours (so a set of terms is coloured alike wherever it
    appears)."""
    order = list(TERM_COLOURS)
    return _assign(sorted(set(terms), key=lambda t: (order.index(t), "") if t in order else (len(order), t)),
                   TERM_COLOURS)
