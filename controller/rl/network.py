"""The per-instance placement networks of Fig. 3, all evaluated as one batched tensor computation.

Instance k has its own network: state features -> hidden layer (ReLU) -> one output per host it may
use; with per-host features (features.py, `host_estimates`), each output adds their weighted sum,
the weights the instance's own. The output layer is truly partially connected: its weights are stored only for the (instance,
host) pairs the static filter keeps, in one flat tensor, and gathered per forward pass; cut pairs
have no parameters and output -inf. The outputs are Q-values of placing the instance on each host;
the paper's softmax over them is monotone, so the chosen host is the same.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


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
        # row of w2 for every (instance, host); cut pairs point one past the end, at a zero row
        index = torch.full((num_instances, num_hosts), num_outputs, dtype=torch.long)
        index[mask] = torch.arange(num_outputs)
        self.register_buffer("index", index)
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
