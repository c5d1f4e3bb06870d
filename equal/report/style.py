"""How methods look in figures: one colour per method, kept here with the rest of the report's presentation.

The paper's methods take matplotlib's tab20 colours in the registry's order, EQUAL alone in red; the distance bands
run from dark (nearest) to light grey-green (farthest); a name outside the table (Base, a user's method) is grey.
"""

from __future__ import annotations

from equal.select.methods import band_name, quantile_name

UNKNOWN_COLOUR = "#8C8C8C"
METHOD_COLOURS: dict[str, str] = {
    "EQUAL": "#D62728",
    "EQUAL (authors' code)": "#aec7e8",
    "EQUAL w/o warm-up": "#ff7f0e",
    "EQUAL w/o MAB": "#ffbb78",
    "EQUAL w/o exploration": "#2ca02c",
    "Thompson sampling": "#98df8a",
    "ε-greedy": "#1f77b4",
    "Uniform": "#ff9896",
    "Perplexity-MAB": "#9467bd",
    "Random": "#c5b0d5",
    "All": "#8c564b",
    "Avg-sim": "#c49c94",
    "Perplexity": "#e377c2",
    "LLM-scoring": "#f7b6d2",
    "Influence": "#bcbd22",
    "Influence-MAB": "#dbdb8d",
    "Rewriting": "#17becf",
    "Oracle (extracted)": "#7f7f7f",
    "Domain filter": "#393b79",
    "DSIR": "#6b6ecf",
    "Random in domain": "#9c9ede",
    **{band_name(b): c for b, c in enumerate(("#004d40", "#00796b", "#26a69a", "#80cbc4", "#c8e6e3"), start=1)},
    **{quantile_name(q): c for q, c in enumerate(("#7f2704", "#d94801", "#fd8d3c", "#fdd0a2"), start=1)},
}


def method_colour(name: str) -> str:
    """The plot colour of a method (grey for names outside the table, e.g. Base)."""
    return METHOD_COLOURS.get(name, UNKNOWN_COLOUR)
