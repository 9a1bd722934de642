"""What the norm-aware policies share: option checks, WN-correct orthogonal init, the data-init flag.

Kept apart from the policy classes so every family (:mod:`agents.policies.actor_critic`,
:mod:`agents.policies.dqn`, ...) treats ``norm``, ``norm_kwargs`` and ``wn_data_init`` alike; the constructor
prologue they share is :class:`agents.policies.base.NormPolicyMixin`.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn

from agents.policies.extractors import NORM_EXTRACTORS, NormCombinedExtractor
from rlnorm.init import orthogonal_
from rlnorm.layers import LAYER_NORMS, WEIGHT_NORM_KINDS, check_norm
from rlnorm.weight_norm import data_dependent_init_, set_inference_cache

#: Alias prefix -> norm name of :data:`rlnorm.layers.LAYER_NORMS` (``WnCnnPolicy`` has norm ``"wn"``).
ALIAS_NORMS: dict[str, str] = {
    "Wn": "wn",
    "WnMobn": "wn+mobn",
    "Bn": "bn",
    "Ln": "ln",
    "Gn": "gn",
    "In": "in",
    "Sn": "sn",
    "Brn": "brn",
    "Rms": "rms",
}


def check_policy_norm(norm: str, wn_data_init: bool, field: str = "norm") -> str:
    """Validate the policy kwargs ``norm`` (or ``field``) and ``wn_data_init`` before anything is built.

    :param norm: one of :data:`rlnorm.layers.LAYER_NORMS`
    :param wn_data_init: data-dependent init, only meaningful for weight-normalized layers
    :param field: the policy kwarg ``norm`` came from, for the error message
    :return: ``norm``
    """
    check_norm(norm, LAYER_NORMS, field=f"policy_kwargs['{field}']")
    if not isinstance(wn_data_init, bool):
        raise ValueError(f"policy_kwargs['wn_data_init'] must be a bool, got {wn_data_init!r}")
    if wn_data_init and norm not in WEIGHT_NORM_KINDS:
        raise ValueError(
            f"policy_kwargs['wn_data_init']=True needs a weight-normalized norm ({', '.join(WEIGHT_NORM_KINDS)}), "
            f"got norm={norm!r}"
        )
    return norm


def extractor_with_norm(
    features_extractor_class: type[BaseFeaturesExtractor],
    features_extractor_kwargs: dict[str, Any] | None,
    norm: str,
    norm_kwargs: dict[str, Any] | None,
) -> tuple[type[BaseFeaturesExtractor], dict[str, Any]]:
    """The extractor class and kwargs with the policy's ``norm`` filled in where the extractor takes one.

    SB3's ``CombinedExtractor`` is swapped for :class:`NormCombinedExtractor` (same behaviour with ``norm="none"``).
    A ``norm`` given explicitly in ``features_extractor_kwargs`` wins over the policy's; other extractors (e.g.
    SB3's ``FlattenExtractor`` or a user's) are left as they are.

    :param features_extractor_class: the requested extractor
    :param features_extractor_kwargs: its kwargs
    :param norm: the policy's norm
    :param norm_kwargs: the policy's norm options
    """
    kwargs = dict(features_extractor_kwargs or {})
    if features_extractor_class is CombinedExtractor:
        features_extractor_class = NormCombinedExtractor
    if issubclass(features_extractor_class, NORM_EXTRACTORS):
        kwargs.setdefault("norm", norm)
        if norm_kwargs:
            kwargs.setdefault("norm_kwargs", norm_kwargs)
    return features_extractor_class, kwargs


def orthogonal_init_weights(module: nn.Module, gain: float = 1.0) -> None:
    """SB3's ``init_weights`` made correct for weight-normalized layers: the *effective* weight is orthogonal.

    :param module: visited by ``nn.Module.apply``; only ``nn.Linear``/``nn.Conv2d`` are touched
    :param gain: the orthogonal gain (SB3: sqrt(2) hidden, 0.01 policy head, 1 value head)
    """
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        orthogonal_(module, gain=float(gain))


class _DictInput(nn.Module):
    """Calls ``model`` with a dict rebuilt from positional tensors (``data_dependent_init_`` takes tensors)."""

    def __init__(self, model: nn.Module, keys: list[str]) -> None:
        super().__init__()
        self.model, self.keys = model, keys

    def forward(self, *tensors: torch.Tensor) -> Any:
        return self.model(dict(zip(self.keys, tensors)))


def data_init_on_batch(model: nn.Module, obs: PyTorchObs) -> bool:
    """WN data-dependent init of ``model`` (called as ``model(obs)``) on one observation batch.

    :param model: maps an observation batch (tensor or dict of tensors) through the layers to initialize
    :param obs: the batch
    :return: ``False`` (and nothing done) when the batch has fewer than 2 samples
    """
    if isinstance(obs, dict):
        keys = list(obs)
        tensors = tuple(obs[k] for k in keys)
        if tensors[0].shape[0] < 2:
            return False
        data_dependent_init_(_DictInput(model, keys), *tensors)
        return True
    if obs.shape[0] < 2:
        return False
    data_dependent_init_(model, obs)
    return True


class RolloutWeightCache:
    """Mixin for an SB3 policy: reuse each normalized WN weight across the gradient-free calls of a rollout.

    SB3 calls ``set_training_mode(False)`` before collecting rollouts and in ``predict``, and
    ``set_training_mode(True)`` before updates, so in between the parameters rarely change and a
    weight-normalized layer need not recompute ``g * v / ||v||`` at every environment step
    (:func:`rlnorm.weight_norm.set_inference_cache`; the cache checks the parameters' versions, which every
    write, ``.data`` writes included, bumps). Target networks stay out of it all the same
    (:meth:`_weight_cache_scopes`): they are only evaluated in updates, where the cache is off.
    """

    def _weight_cache_scopes(self) -> list[nn.Module]:
        """The modules whose WN weights are cached (all of the policy by default)."""
        return [self]  # type: ignore[list-item]

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(mode)  # type: ignore[misc]
        for scope in self._weight_cache_scopes():
            set_inference_cache(scope, not mode)


#: State-dict name of the WN data-init flag: a float buffer, 1.0 once the init has run.
DATA_INIT_FLAG = "wn_data_initialized"


class DataInitFlag:
    """Mixin for a policy (an ``nn.Module``) that runs WN data-dependent init once, on its first training batch.

    Whether it is done is the float buffer :data:`DATA_INIT_FLAG` (every state-dict entry is a floating tensor,
    as SB3's save/load tooling expects: ``set_parameters`` of ``th.rand_like`` values, ``get_parameters``), so a
    loaded model never redoes it. Any non-zero value means done. State dicts of rlnorm 0.1.0, where the flag was
    an ``_extra_state`` dict, are migrated on load.
    """

    wn_data_init: bool
    _data_init_done: bool

    def _register_data_init_flag(self) -> None:
        """Add the flag buffer (call once ``nn.Module.__init__`` has run)."""
        self.register_buffer(DATA_INIT_FLAG, torch.zeros(()))
        self._data_init_done = False

    @property
    def data_init_pending(self) -> bool:
        """Whether the data-dependent init is still to be done on the next training batch."""
        return self.wn_data_init and not self._data_init_done

    def _set_data_init_done(self, done: bool) -> None:
        self._data_init_done = done
        getattr(self, DATA_INIT_FLAG).fill_(float(done))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        legacy = state_dict.pop(prefix + "_extra_state", None)  # rlnorm 0.1.0: {"wn_data_initialized": bool}
        if isinstance(legacy, dict) and prefix + DATA_INIT_FLAG not in state_dict:
            state_dict[prefix + DATA_INIT_FLAG] = torch.tensor(float(bool(legacy.get(DATA_INIT_FLAG, False))))
        super()._load_from_state_dict(state_dict, prefix, *args)  # type: ignore[misc]
        self._data_init_done = bool(getattr(self, DATA_INIT_FLAG) != 0)


def state_without_graph(module: nn.Module) -> dict[str, Any]:
    """``module.__dict__`` for pickling and ``deepcopy``, with its action distribution's last tensors detached.

    SB3's action distributions keep the tensors of their last call, which are part of an autograd graph after a
    loss was computed (e.g. right after ``train``); torch refuses to deep-copy those. The copy keeps them detached
    (a distribution object is dropped: the next ``proba_distribution`` call makes a new one).

    :param module: a policy or an actor with an ``action_dist`` attribute
    """
    state = module.__dict__.copy()
    dist = copy.copy(state.get("action_dist"))
    if dist is not None:
        for key, value in vars(dist).items():
            if isinstance(value, torch.Tensor):
                setattr(dist, key, value.detach())
            elif isinstance(value, torch.distributions.Distribution):
                setattr(dist, key, None)
        state["action_dist"] = dist
    return state
