"""One value from a Prometheus /metrics endpoint: how the live loop watches the EMAC (its start time
tells a restart) and how the compose health checks ask the loop whether it has deployed."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

MAX_BYTES = 4 << 20
"""Of one /metrics answer: the EMAC's and the loop's are kilobytes; the endpoint may be another container's."""


def metric(address: str, name: str, timeout_s: float = 2.0) -> float | None:
    """The value of the unlabelled sample `name` at http://ADDRESS/metrics; None when the endpoint does not
    answer, answers more than MAX_BYTES or not in the text format, or has no such sample."""
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout_s) as answer:
            body = answer.read(MAX_BYTES + 1)
    except (OSError, urllib.error.URLError):
        return None
    if len(body) > MAX_BYTES:
        return None
    try:
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and not sample.labels:
                    return float(sample.value)
    except ValueError:  # not the text format (UnicodeDecodeError is one too)
        return None
    return None
