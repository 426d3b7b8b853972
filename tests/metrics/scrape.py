"""Reading a stage's /metrics as a test: the value of each sample, by name and labels."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset], float]


def scrape(url: str) -> Samples:
    """{(sample name, labels): value}; empty when nothing answers there (yet)."""
    try:
        response = httpx.get(url, timeout=5)
    except httpx.TransportError:
        return {}
    if response.status_code != 200:
        return {}
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of that name whose labels include these (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (sample, found), v in samples.items() if sample == name and wanted <= found)
