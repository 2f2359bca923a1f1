"""seqkit-typical: the `typical` sampler and the `docstrings` data source.

seqkit finds this module through the `seqkit` entry-point group declared in
this distribution's pyproject.toml, so installing the distribution is all it
takes to make both components available to recipes.
"""

from __future__ import annotations

from seqkit import hookimpl
from seqkit_typical.docstrings import DocstringsOptions, DocstringsSource
from seqkit_typical.sampler import TypicalOptions, TypicalSampler, apply_typical

__all__ = [
    "DocstringsOptions",
    "DocstringsSource",
    "TypicalOptions",
    "TypicalSampler",
    "apply_typical",
]


@hookimpl
def seqkit_add_samplers() -> dict[str, type]:
    return {"typical": TypicalSampler}


@hookimpl
def seqkit_add_data_sources() -> dict[str, type]:
    return {"docstrings": DocstringsSource}
