"""Batch dependence of whole policy networks: none for WN/LN/GN/..., present for BN-like norms in train mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from agents.policies import ALIAS_NORMS
from agents.policies import actor_critic as ac_policies
from agents.policies import dqn as dqn_policies
from rlnorm.diagnostics import batch_dependence
from rlnorm.layers import BATCH_DEPENDENT_NORMS

IMAGE = spaces.Box(0, 1, (4, 10, 10), np.uint8)
VECTOR = spaces.Box(-1, 1, (6,), np.float32)


class ActorCriticOutputs(nn.Module):
    """Observation -> (action logits, value): every layer of an actor-critic policy."""

    def __init__(self, policy: ac_policies.NormActorCriticPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent_pi, latent_vf = self.policy.mlp_extractor(self.policy.extract_features(obs))
        return self.policy.action_net(latent_pi), self.policy.value_net(latent_vf)


def _batch(space: spaces.Box, n: int = 16) -> torch.Tensor:
    space.seed(0)
    return torch.as_tensor(np.stack([space.sample() for _ in range(n)]))


@pytest.mark.parametrize("prefix", list(ALIAS_NORMS))
@pytest.mark.parametrize(("kind", "space"), [("Mlp", VECTOR), ("Cnn", IMAGE)])
def test_policy_batch_dependence_follows_the_norm(prefix, kind, space):
    norm = ALIAS_NORMS[prefix]
    ac = getattr(ac_policies, f"{prefix}{kind}Policy")(space, spaces.Discrete(4), lambda _: 1e-3)
    dqn = getattr(dqn_policies, f"{prefix}{kind}Policy")(space, spaces.Discrete(4), lambda _: 1e-3)
    x = _batch(space)
    for network in (ActorCriticOutputs(ac), dqn.q_net):
        network.train()
        train_dep = batch_dependence(network, x)
        network.eval()
        eval_dep = batch_dependence(network, x)
        assert eval_dep < 1e-5, f"{prefix}{kind}: eval mode must use running statistics only"
        if norm in BATCH_DEPENDENT_NORMS:
            assert train_dep > 1e-3, f"{prefix}{kind}: {norm} should depend on the batch in train mode"
        else:
            assert train_dep < 1e-5, f"{prefix}{kind}: {norm} leaked batch information ({train_dep})"
