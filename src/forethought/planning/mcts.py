"""Monte Carlo tree search in a learned model with the pUCT rule (MuZero, Schrittwieser et al., 2020).

    result = search(net, obs, MCTSSettings(simulations=25), discount=0.997, rng=rng)   # rng: root noise
    result.visits          # [A] visit counts of the root's actions
    action = select_action(result.visits, temperature=1.0, rng=rng)

Each simulation walks down from the root choosing ``argmax_a Q(s, a) + U(s, a)`` with
``U = P(s, a) sqrt(N(s)) / (1 + N(s, a)) (c1 + log((N(s) + c2 + 1) / c2))``, where ``Q`` is the
reward plus discounted value of the child, min-max normalised over every value seen in this tree
(0 for unvisited children), then expands the leaf with one call of the model's dynamics and
prediction functions and backs the discounted value up the path. The root's own value estimate
counts as its first visit, so the first simulation already follows the priors (with no visit,
every exploration term would be zero). With ``rng``, the root's
priors are mixed with Dirichlet(``dirichlet_alpha``) noise in fraction ``noise_fraction``; no
other node's priors are touched. The model is anything with MuZero's two inference calls
(:class:`SearchModel`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class SearchModel(Protocol):
    """MuZero's inference calls on one state (see :class:`~forethought.models.muzero_net.FrozenMuZero`);
    the latent state is whatever the model passes back to itself."""

    def initial_inference(self, obs: np.ndarray) -> tuple[Any, np.ndarray, float]:
        """``(latent, policy logits [A], value)`` of one flat observation ``[o]``."""

    def recurrent_inference(self, latent: Any, action: int) -> tuple[Any, float, np.ndarray, float]:
        """``(next latent, reward, logits [A], value)`` after action index ``action``."""


@dataclass
class MCTSSettings:
    """Search settings (paper values: ``c1 = 1.25``, ``c2 = 19652``, Dirichlet ``alpha = 0.25``,
    noise fraction 0.25; 50 simulations per move in the paper's board games)."""

    simulations: int = 25
    c1: float = 1.25
    c2: float = 19652.0
    dirichlet_alpha: float = 0.25
    noise_fraction: float = 0.25

    def __post_init__(self) -> None:
        if isinstance(self.simulations, bool) or not isinstance(self.simulations, int) or self.simulations < 1:
            raise ValueError(f"agent.search.simulations must be an integer >= 1, got {self.simulations!r}")
        for name in ("c1", "c2", "dirichlet_alpha"):
            if not getattr(self, name) > 0:
                raise ValueError(f"agent.search.{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.noise_fraction <= 1.0:
            raise ValueError(f"agent.search.noise_fraction must be in [0, 1], got {self.noise_fraction}")


class MinMax:
    """The smallest and largest value seen in one tree, for normalising ``Q`` to ``[0, 1]``."""

    def __init__(self) -> None:
        self.low, self.high = math.inf, -math.inf

    def update(self, value: float) -> None:
        self.low, self.high = min(self.low, value), max(self.high, value)

    def normalize(self, value: float) -> float:
        return (value - self.low) / (self.high - self.low) if self.high > self.low else value


@dataclass
class Node:
    """One state of the tree: its prior (from the parent's policy), the reward of the step into it,
    visit count and value sum, its latent state and children by action (once expanded)."""

    prior: float
    reward: float = 0.0
    visits: int = 0
    value_sum: float = 0.0
    latent: Any = None
    priors: np.ndarray | None = None  # softmax of the policy logits at expansion, [A]
    children: dict[int, "Node"] = field(default_factory=dict)

    @property
    def expanded(self) -> bool:
        return bool(self.children)

    def value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0

    def expand(self, latent: Any, reward: float, logits: np.ndarray) -> None:
        """Set the state reached and create one child per action, its prior from the softmax of
        ``logits [A]``."""
        self.latent, self.reward = latent, reward
        weights = np.exp(np.asarray(logits, np.float64) - np.max(logits))
        self.priors = weights / weights.sum()
        self.children = {a: Node(float(p)) for a, p in enumerate(self.priors)}


@dataclass
class SearchResult:
    """A finished search: root visit counts ``[A]``, the root's mean value, and the tree."""

    visits: np.ndarray
    value: float
    root: Node

    @property
    def policy(self) -> np.ndarray:
        """Visit distribution ``[A]`` (the policy target)."""
        return self.visits / self.visits.sum()


def add_root_noise(root: Node, alpha: float, fraction: float, rng: np.random.Generator) -> None:
    """Mix ``root``'s children's priors with a Dirichlet(``alpha``) draw: ``(1 - f) P + f noise``."""
    noise = rng.dirichlet([alpha] * len(root.children))
    for (action, child), eta in zip(sorted(root.children.items()), noise):
        child.prior = (1.0 - fraction) * child.prior + fraction * float(eta)


def _ucb(parent: Node, child: Node, settings: MCTSSettings, discount: float, bounds: MinMax) -> float:
    scale = settings.c1 + math.log((parent.visits + settings.c2 + 1.0) / settings.c2)
    explore = child.prior * math.sqrt(parent.visits) / (1 + child.visits) * scale
    exploit = bounds.normalize(child.reward + discount * child.value()) if child.visits else 0.0
    return exploit + explore


def search(model: SearchModel, obs: np.ndarray, settings: MCTSSettings, discount: float,
           rng: np.random.Generator | None = None) -> SearchResult:
    """Run ``settings.simulations`` simulations from the flat observation ``obs`` ``[o]``; ``rng``
    adds the Dirichlet noise at the root (None: no noise, no random draws)."""
    latent, logits, value = model.initial_inference(obs)
    root, bounds = Node(1.0), MinMax()
    root.expand(latent, 0.0, logits)
    if rng is not None and settings.noise_fraction > 0:
        add_root_noise(root, settings.dirichlet_alpha, settings.noise_fraction, rng)
    root.visits, root.value_sum = 1, float(value)  # the root's own evaluation counts once
    for _ in range(settings.simulations):
        node, path, action = root, [root], 0
        while node.expanded:
            scores = [_ucb(node, child, settings, discount, bounds) for child in node.children.values()]
            action = scores.index(max(scores))  # the first of equal scores
            node = node.children[action]
            path.append(node)
        next_latent, reward, logits, leaf_value = model.recurrent_inference(path[-2].latent, action)
        node.expand(next_latent, float(reward), logits)
        backed_up = float(leaf_value)
        for visited in reversed(path):
            visited.value_sum += backed_up
            visited.visits += 1
            bounds.update(visited.reward + discount * visited.value())
            backed_up = visited.reward + discount * backed_up
    visits = np.array([root.children[a].visits for a in sorted(root.children)], dtype=np.float64)
    return SearchResult(visits, root.value(), root)


def select_action(visits: np.ndarray, temperature: float, rng: np.random.Generator | None) -> int:
    """An action from visit counts ``[A]``: the most visited (first on ties) at temperature 0 or
    without ``rng``, else a draw with probabilities ``visits^(1/T)`` normalised."""
    if temperature == 0 or rng is None:
        return int(np.argmax(visits))
    weights = np.power(visits / visits.max(), 1.0 / temperature)
    return int(rng.choice(len(visits), p=weights / weights.sum()))
