"""The per-instance placement networks of Fig. 3, all evaluated as one batched tensor computation.

Instance k has its own network: state features -> hidden layer (ReLU) -> one output per host it may
use; with per-host features (features.py, `host_estimates`), each output adds their weighted sum,
the weights the instance's own. The output layer is truly partially connected: its weights are stored only for the (instance,
host) pairs the static filter keeps, in one flat tensor, and gathered per forward pass; cut pairs
have no parameters and output -inf. The outputs are Q-values of placing the instance on each host;
the paper's softmax over them is monotone, so the chosen host is the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from controller.errors import SremError

Layout = dict[str, tuple[tuple[int, ...], torch.dtype]]
"""Name -> (shape, dtype) of every entry of a network's state_dict."""


def state_layout(num_features: int, connectivity: np.ndarray, hidden: int, host_features: int = 0) -> Layout:
    """The state_dict a PlacementQNetwork of these arguments has, known without building it: a
    checkpoint's tensors are checked against it, and its size judged, before anything is allocated."""
    num_instances, num_hosts = connectivity.shape
    own_features = num_features - num_instances * num_hosts * host_features
    outputs = int(np.count_nonzero(connectivity))
    weights: Layout = {"w_host": ((num_instances, host_features), torch.float32)} if host_features else {}
    return {**weights,
            "w1": ((num_instances, own_features, hidden), torch.float32), "b1": ((num_instances, hidden), torch.float32),
            "w2": ((outputs, hidden), torch.float32), "b2": ((outputs,), torch.float32),
            "mask": ((num_instances, num_hosts), torch.bool), "index": ((num_instances, num_hosts), torch.long)}


def parameter_count(layout: Layout) -> int:
    """Learned numbers in a network of this layout (its buffers, mask and index, are not learned)."""
    return sum(math.prod(shape) for shape, dtype in layout.values() if dtype.is_floating_point)


def output_index(mask: torch.Tensor) -> torch.Tensor:
    """The row of the output weights of every (instance, host); cut pairs point one past the end, at a zero row."""
    num_outputs = int(mask.sum())
    index = torch.full(mask.shape, num_outputs, dtype=torch.long)
    index[mask] = torch.arange(num_outputs)
    return index


def check_state(state: Any, layout: Layout, connectivity: np.ndarray, where: str | Path, key: str) -> None:
    """Refuse in one line a state_dict (at `key` of a file) that a network of `layout` and `connectivity`
    cannot load and run: an entry missing or unknown, of another shape or dtype, a weight that is not
    finite (NaN Q-values pick hosts arbitrarily), or a mask or index other than the connectivity's (they
    are derived, not learned: an index past the end would fail mid-run, another mask use cut pairs)."""
    if state is None:
        raise SremError("missing (the networks' weights)", where=where, key=key)
    if not isinstance(state, Mapping):
        raise SremError("not an object of the networks' tensors", where=where, key=key)
    unknown = [name for name in state if name not in layout]
    if unknown:
        raise SremError("unknown entry (not one of this network's)", where=where, key=f"{key}.{str(unknown[0])[:40]}")
    mask = torch.as_tensor(connectivity, dtype=torch.bool)
    derived = {"mask": mask, "index": output_index(mask)}
    for name, (shape, dtype) in layout.items():
        entry = f"{key}.{name}"
        if name not in state:
            raise SremError("missing", where=where, key=entry)
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor):
            raise SremError("not a tensor", where=where, key=entry)
        if tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise SremError(f"{_describe(tuple(tensor.shape), tensor.dtype)}, this network's is {_describe(shape, dtype)}",
                            where=where, key=entry)
        if dtype.is_floating_point and not bool(torch.isfinite(tensor).all()):
            raise SremError("holds a NaN or infinite weight", where=where, key=entry)
        if name in derived and not torch.equal(tensor, derived[name]):
            raise SremError("is not the one this substrate and configuration give", where=where, key=entry)


def _describe(shape: tuple[int, ...], dtype: torch.dtype) -> str:
    return f"{'x'.join(map(str, shape)) or 'scalar'} {str(dtype).removeprefix('torch.')}"


class PlacementQNetwork(nn.Module):
    def __init__(self, num_features: int, connectivity: np.ndarray, hidden: int = 64, host_features: int = 0) -> None:
        super().__init__()
        mask = torch.as_tensor(connectivity, dtype=torch.bool)
        num_instances, num_hosts = mask.shape
        self.host_features = host_features
        # The state's last part is per (instance, host) features: they enter the instance's output for
        # that host through its own weights, not the hidden layer.
        num_features -= num_instances * num_hosts * host_features
        self.num_features, self.hidden = num_features, hidden
        self.w_host = nn.Parameter(torch.zeros(num_instances, host_features)) if host_features else None
        self.register_buffer("mask", mask)
        self.w1 = nn.Parameter(torch.empty(num_instances, num_features, hidden))
        self.b1 = nn.Parameter(torch.zeros(num_instances, hidden))
        num_outputs = int(mask.sum())
        self.w2 = nn.Parameter(torch.empty(num_outputs, hidden))
        self.b2 = nn.Parameter(torch.zeros(num_outputs))
        self.register_buffer("index", output_index(mask))
        bound1, bound2 = 1.0 / num_features**0.5, 1.0 / hidden**0.5
        nn.init.uniform_(self.w1, -bound1, bound1)
        nn.init.uniform_(self.w2, -bound2, bound2)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """(batch, features) -> (batch, instances, hosts) Q-values, -inf where the static filter cut."""
        state, per_host = state[:, :self.num_features], state[:, self.num_features:]
        h = torch.relu(torch.einsum("bf,kfh->bkh", state, self.w1) + self.b1)
        w2 = torch.cat([self.w2, self.w2.new_zeros(1, self.hidden)])[self.index]
        b2 = torch.cat([self.b2, self.b2.new_zeros(1)])[self.index]
        q = torch.einsum("bkh,kjh->bkj", h, w2) + b2
        if self.host_features:
            q = q + torch.einsum("bkjf,kf->bkj", per_host.reshape(len(state), *self.mask.shape, self.host_features), self.w_host)
        return q.masked_fill(~self.mask, float("-inf"))
