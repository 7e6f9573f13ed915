"""Shared fixtures: datasets are generated once per session into a temporary cache."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from controller.model.dataset import Dataset, default_dataset  # noqa: E402
from controller.model.scenario import load_scenario  # noqa: E402
from rdma_emulator.processes import Proc, running  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    mp = pytest.MonkeyPatch()
    mp.setenv("SREM_CACHE", str(tmp_path_factory.mktemp("srem-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def small_dataset() -> Dataset:
    return default_dataset(load_scenario("small"), progress=False)


@pytest.fixture(scope="session")
def paper_dataset() -> Dataset:
    return default_dataset(load_scenario("paper"), progress=False)


@pytest.fixture(scope="module")
def memserver() -> Iterator[Proc]:
    """A `srem memserver` process on loopback, no latency, one per test module."""
    with running("memserver", "--listen", "127.0.0.1:0") as proc:
        yield proc
