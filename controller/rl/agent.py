"""The SR-EM agent as deployed: its configuration, its filtered per-instance networks, and how it
picks a placement through the filters. Training (training.py) and the `srem` policy both build on
it; nothing here trains."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config

from controller.errors import SremError
from controller.model.feasibility import capacities, place_one_by_one
from controller.model.substrate import HostKind, Substrate
from controller.rl.features import StateEncoder
from controller.rl.network import PlacementQNetwork, check_state, parameter_count, state_layout
from controller.validation import key_path

AgentName = Literal["srem", "ddqn-cm"]
Variant = Literal["hybrid", "static", "dynamic", "none"]
Credit = Literal["shared", "instance"]
Exploration = Literal["placement", "instance"]
Order = Literal["size", "gain"]
Features = Literal["paper", "schedule", "hosts"]
VARIANTS: dict[str, tuple[bool, bool]] = {
    "hybrid": (True, True),
    "static": (True, False),
    "dynamic": (False, True),
    "none": (False, False),
}
"""variant -> (static filter, dynamic filter)."""

MAX_HIDDEN = 1024
"""Hidden units of an instance's network at most: 16 times the 64 that SR-EM and DDQN-CM train with."""
MAX_PARAMETERS = 2**29
"""Learned numbers of all the instances' networks at most (2 GiB of float32): the `large` preset's at
the default width (about 302 million) fit; more is refused before anything is allocated."""

Count = Annotated[int, Field(ge=1)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]


# Bounds and choices are declared on the fields: the trainer (through Agent) and a checkpoint's reader
# check the same ones (`parse_config`); the dataclass itself stays a plain one.
@with_config(ConfigDict(extra="forbid", allow_inf_nan=False))
@dataclass
class TrainConfig:
    """Hyperparameters: the paper's learning rate and 2% final epsilon; what the paper leaves open, set
    for the recalibrated `paper` scenario (README, "What SR-EM changes"): per-instance credit and
    exploration, the gain order, a discount of 0.7 (the paper's 0.3 values a move made a step ahead too
    little), 5,000 episodes."""

    variant: Variant = "hybrid"
    episodes: Count = 5000
    learning_rate: Positive = 0.2
    discount: Share = 0.7
    epsilon_start: Share = 1.0
    epsilon_end: Share = 0.02
    hidden: Annotated[int, Field(ge=1, le=MAX_HIDDEN)] = 64
    batch_size: Count = 32
    replay_size: Count = 20000
    target_sync_steps: Count = 250
    gradient_clip: Positive = 1.0
    double_q: bool = False
    host_kinds: Annotated[tuple[Literal["SERVER", "LM", "EM"], ...], Field(min_length=1)] = ("SERVER", "LM", "EM")
    seed: Annotated[int, Field(ge=0)] = 0
    checkpoint_every: Count = 1000
    credit: Credit = "instance"
    """`shared`: every instance's network learns the step's reward (eq. 20), as the paper; `instance`:
    each learns eq. 20 read over the requests it serves (credit.py)."""
    exploration: Exploration = "instance"
    """`placement`: with probability epsilon the whole placement is random; `instance`: each instance
    explores on its own with probability epsilon, the others follow their networks."""
    order: Order = "gain"
    """Which instance the dynamic filter serves first when instances compete for room: `size`, the
    largest (so that big ones find room); `gain`, the one whose best host beats its best server by
    the most Q-value (so that room goes where the networks expect it to pay most)."""

    features: Features = "paper"
    """`paper`: the state of section V-A (features.py); `schedule`: with each instance's flags for a class
    busy in the coming step and in the one after, read from the public schedule; `hosts`: with those and
    the model's estimate of every (instance, host) pair (features.py, `host_features`)."""
    teacher: str | None = None
    """A policy spec (e.g. `schedule-foresight`) whose decisions on training workloads are demonstrations:
    learned from before the episodes start (`pretrain_updates`) and alongside them, with the Bellman target
    and a large margin for the teacher's host (DQfD, Hester et al. 2018). None: reinforcement only, as the paper."""
    demonstrations: Annotated[int, Field(ge=0)] = 300
    """Training workloads the teacher's days are recorded on (the first ones)."""
    pretrain_updates: Annotated[int, Field(ge=0)] = 3000
    """Batches learned from the demonstrations alone before the first episode."""
    margin: Annotated[float, Field(ge=0.0)] = 0.1
    """How far below the teacher's host's Q-value the margin loss pushes every other host's."""
    margin_weight: Annotated[float, Field(ge=0.0)] = 1.0
    agent: AgentName = "srem"
    """Which agent this trains: SR-EM, or the DDQN-CM baseline (`ddqn_cm_config`). Checkpoints record it,
    so that each policy refuses the other's."""

    def encoder(self, substrate: Substrate) -> StateEncoder:
        return StateEncoder(substrate, schedule=self.features != "paper", host_estimates=self.features == "hosts")

    def network(self, encoder: StateEncoder, mask: np.ndarray) -> PlacementQNetwork:
        return PlacementQNetwork(encoder.size, mask, self.hidden, encoder.host_feature_count)

    def filters(self) -> tuple[bool, bool]:
        return VARIANTS[self.variant]

    def allowed_kinds(self) -> tuple[HostKind, ...]:
        return tuple(HostKind[k] for k in self.host_kinds)


_CONFIG = TypeAdapter(TrainConfig)


def parse_config(data: Mapping[str, Any], where: str | Path) -> TrainConfig:
    """A training configuration from its fields' values, refused in one line naming the first bad key
    (unknown, of the wrong type, or out of its bounds). The value is not echoed: it may be huge."""
    try:
        return _CONFIG.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = "unknown key" if first["type"] == "unexpected_keyword_argument" else first["msg"]
        raise SremError(message, where=where, key=f"config.{key_path(tuple(first['loc']))}") from None


def connectivity(substrate: Substrate, config: TrainConfig) -> np.ndarray:
    """Which outputs exist: the static filter's mask when it is on, else every host of an allowed kind."""
    use_static, _ = config.filters()
    if use_static:
        return capacities(substrate).can_ever_hold(config.allowed_kinds())
    kinds = np.array([h.kind in config.allowed_kinds() for h in substrate.hosts])
    return np.broadcast_to(kinds, (len(substrate.instances), len(kinds))).copy()


def check_weights(substrate: Substrate, config: TrainConfig, state: Any, where: str | Path, key: str) -> None:
    """Refuse in one line a state_dict (at `key` of file `where`) that the networks `config` gives on
    `substrate` cannot load: checked against their layout, nothing built (network.py, `check_state`)."""
    encoder, mask = config.encoder(substrate), connectivity(substrate, config)
    check_state(state, state_layout(encoder.size, mask, config.hidden, encoder.host_feature_count), mask, where, key)


class Agent:
    """The networks and the way they pick placements; shared by training and the deployed `srem` policy.

    The configuration is checked against its bounds, and the networks' size before they are built,
    each in one line naming `where` (a checkpoint's file, or the training configuration)."""

    def __init__(self, substrate: Substrate, config: TrainConfig, where: str | Path = "training configuration") -> None:
        parse_config(asdict(config), where)
        self.config = config
        self.tables = capacities(substrate)
        self.mask = connectivity(substrate, config)
        self.encoder = config.encoder(substrate)
        layout = state_layout(self.encoder.size, self.mask, config.hidden, self.encoder.host_feature_count)
        size = parameter_count(layout)
        if size > MAX_PARAMETERS:
            raise SremError(f"{len(substrate.instances)} instance networks of {config.hidden} hidden units over "
                            f"{self.encoder.size} features: {size:,} parameters, more than the {MAX_PARAMETERS:,} "
                            "srem builds", where=where, key="config.hidden")
        self.net = config.network(self.encoder, self.mask)
        self.dynamic = config.filters()[1]
        self.server_columns = self.tables.kinds == HostKind.SERVER

    @torch.no_grad()
    def q_values(self, state: np.ndarray) -> np.ndarray:
        return self.net(torch.as_tensor(state).unsqueeze(0))[0].numpy()

    def act(self, state: np.ndarray, rng: np.random.Generator | None = None) -> tuple[int, ...]:
        """The best placement through the filters, or a random one when `rng` is given (exploration).

        Without the static filter, `mask` holds every host of an allowed kind, so exploring and
        exploiting range over all of them, as the paper's unfiltered variants do.
        """
        scores = self.q_values(state) if rng is None else np.zeros(self.mask.shape)
        return place_one_by_one(self.tables, scores, self.mask, self.dynamic, rng, self._order(scores))

    def act_exploring(self, state: np.ndarray, epsilon: float, rng: np.random.Generator) -> tuple[int, ...]:
        """Epsilon-greedy as `config.exploration` says: the whole placement at random with probability
        epsilon, or every instance on its own (a random score makes it take a random allowed host)."""
        if self.config.exploration == "placement":
            return self.act(state, rng if rng.random() < epsilon else None)
        scores = self.q_values(state)
        explore = rng.random(len(scores)) < epsilon
        scores[explore] = rng.random((int(explore.sum()), scores.shape[1]))
        return place_one_by_one(self.tables, scores, self.mask, self.dynamic, order=self._order(scores))

    def _order(self, scores: np.ndarray) -> list[int] | None:
        if self.config.order == "size":
            return None
        masked = np.where(self.mask, scores, -np.inf)
        best_server = np.where(self.server_columns, masked, -np.inf).max(axis=1)
        gain = masked.max(axis=1) - np.where(np.isfinite(best_server), best_server, masked.max(axis=1))
        return sorted(range(len(gain)), key=lambda k: (-gain[k], k))

    def next_state_mask(self, next_placement: tuple[int, ...]) -> np.ndarray:
        """Hosts the filters allow in the next state (for the max of the Bellman target)."""
        return self.tables.could_move_to(next_placement, self.mask) if self.dynamic else self.mask
