"""One value from a Prometheus /metrics endpoint: how the live loop watches the EMAC (its start time
tells a restart) and how the compose health checks ask the loop whether it has deployed."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def metric(address: str, name: str, timeout_s: float = 2.0) -> float | None:
    """The value of the unlabelled sample `name` at http://ADDRESS/metrics; None when the endpoint does not
    answer or has no such sample."""
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout_s) as answer:
            text = answer.read().decode()
    except (OSError, urllib.error.URLError):
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    return None
