"""RecurrentPPO (sb3-contrib) policies whose LSTMs are weight- or layer-normalized.

``import agents`` registers the aliases (:func:`agents.policies.register_policies`), after which::

    RecurrentPPO("WnLstmPolicy", "CartPoleNoVel-v1")    # WNLSTM, weight norm in the MLP heads
    RecurrentPPO("LnLstmPolicy", env)                   # LNLSTM, layer norm in the MLP heads
    RecurrentPPO("LnCnnLstmPolicy", atari_env)          # LN CNN + LNLSTM (``CnnLnLstmPolicy`` before 0.2)
    RecurrentPPO("BnCnnLstmPolicy", atari_env)          # the baseline: BN CNN + plain nn.LSTM
    RecurrentPPO("NormLstmPolicy", env, policy_kwargs=dict(norm="ln", lstm="wn"))

Policy kwargs added to sb3-contrib's ``RecurrentActorCriticPolicy``:

* ``lstm`` -- the recurrent module of the actor and critic: a name of :data:`LSTM_KINDS` (``"none"`` is
  ``nn.LSTM``, ``"wn"`` :class:`~rlnorm.rnn.WNLSTM`, ``"ln"`` :class:`~rlnorm.rnn.LNLSTM`) or any class with
  ``nn.LSTM``'s constructor and call signature. ``lstm_kwargs`` go to its constructor.
* ``norm``, ``norm_kwargs`` -- as in :mod:`agents.policies.actor_critic`: the normalization of the features
  extractor (CNN) and of the MLP heads after the LSTM. BatchNorm is never put inside the LSTM (its statistics
  would mix time
  steps and padded sequences); the ``Bn`` aliases keep ``nn.LSTM`` and put BN in the other layers.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from agents.policies.base import NormPolicyMixin
from agents.policies.extractors import NormCombinedExtractor, NormMlpExtractor
from agents.policies.options import RolloutWeightCache, check_policy_norm, orthogonal_init_weights
from rlnorm.rnn import LNLSTM, WNLSTM
from rlnorm.weight_norm import picklable_parametrizations_

#: ``lstm`` policy kwarg -> recurrent module class.
LSTM_KINDS: dict[str, type[nn.Module]] = {"none": nn.LSTM, "wn": WNLSTM, "ln": LNLSTM}


def lstm_class_for(lstm: str | type[nn.Module]) -> type[nn.Module]:
    """The recurrent module class selected by the ``lstm`` policy kwarg.

    :param lstm: a name of :data:`LSTM_KINDS` or an ``nn.Module`` subclass with ``nn.LSTM``'s signature
    """
    if isinstance(lstm, str):
        if lstm not in LSTM_KINDS:
            raise ValueError(f"policy_kwargs['lstm'] must be one of {', '.join(LSTM_KINDS)}; got {lstm!r}")
        return LSTM_KINDS[lstm]
    if isinstance(lstm, type) and issubclass(lstm, nn.Module):
        return lstm
    raise ValueError(
        f"policy_kwargs['lstm'] must be one of {', '.join(LSTM_KINDS)} or an nn.Module subclass; got {lstm!r}"
    )


def lstm_for_norm(norm: str) -> str:
    """The LSTM flavour of an experiment arm: ``"wn"`` for weight norm, ``"ln"`` for layer norm, else ``"none"``.

    :param norm: one of :data:`rlnorm.layers.LAYER_NORMS`
    """
    check_policy_norm(norm, False)
    return {"wn": "wn", "wn+mobn": "wn", "ln": "ln"}.get(norm, "none")


class NormRecurrentActorCriticPolicy(RolloutWeightCache, NormPolicyMixin, RecurrentActorCriticPolicy):
    """sb3-contrib's :class:`RecurrentActorCriticPolicy` with a chosen LSTM module and normalized layers.

    Takes every argument of :class:`RecurrentActorCriticPolicy` plus the ones below. sb3-contrib builds
    ``nn.LSTM`` modules in its constructor; they are replaced by ``lstm`` ones and the optimizer is rebuilt so
    that it covers the new parameters. Orthogonal init (``ortho_init``) sets the *effective* weights of the
    extractor and heads, so it is correct for weight-normalized layers; the LSTMs keep their own init, as in
    sb3-contrib.

    :param lstm: ``"none"`` (``nn.LSTM``), ``"wn"`` (:class:`~rlnorm.rnn.WNLSTM`), ``"ln"``
        (:class:`~rlnorm.rnn.LNLSTM`) or an ``nn.LSTM``-compatible class; ``None`` takes the class default
    :param lstm_kwargs: extra constructor arguments of the LSTM modules (e.g. ``forget_bias``, ``dropout``)
    :param norm: normalization of the features extractor and MLP heads, one of
        :data:`rlnorm.layers.LAYER_NORMS`; ``None`` takes the class default
    :param norm_kwargs: options of that normalization
    :param features_extractor_class: ``None`` takes the class default (flatten; for Cnn policies the CNN chosen
        from the image size, see :func:`agents.policies.extractors.cnn_class_for`)
    :param features_extractor_kwargs: kwargs of the extractor; the policy's ``norm`` is added for the
        norm-aware extractors unless given here
    :param net_arch: as sb3-contrib (default ``[]`` behind a CNN, ``dict(pi=[64, 64], vf=[64, 64])`` otherwise)
    :param lstm_hidden_size: number of hidden units of each LSTM layer
    :param n_lstm_layers: number of LSTM layers
    :param head_norm: ``"none"``, ``"wn"`` or ``"cosine"``: the action and value output layers
        (:mod:`agents.policies.heads`)
    :param head_kwargs: options of the cosine head (``scale``, ``learn_scale``)
    :param kwargs: the other :class:`RecurrentActorCriticPolicy` arguments

    A named class (``LnLstmPolicy``) fixes ``lstm`` and ``norm``: another value is an error naming both.
    """

    #: ``lstm`` used when the kwarg is not given
    default_lstm: ClassVar[str] = "none"

    init_weights = staticmethod(orthogonal_init_weights)

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        *,
        lstm: str | type[nn.Module] | None = None,
        lstm_kwargs: dict[str, Any] | None = None,
        norm: str | None = None,
        norm_kwargs: dict[str, Any] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        lstm_hidden_size: int = 256,
        n_lstm_layers: int = 1,
        head_norm: str = "none",
        head_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        type(self).check_fixed_options(lstm=lstm)
        lstm = self.default_lstm if lstm is None else lstm
        lstm_class = lstm_class_for(lstm)
        if lstm_kwargs is not None and not isinstance(lstm_kwargs, dict):
            raise ValueError(f"policy_kwargs['lstm_kwargs'] must be a dict, got {lstm_kwargs!r}")
        net_arch, features_extractor_class, features_extractor_kwargs = self._setup_norms(
            observation_space,
            norm=norm,
            norm_kwargs=norm_kwargs,
            net_arch=net_arch,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            head_norm=head_norm,
            head_kwargs=head_kwargs,
        )
        # read by _build_mlp_extractor, which the parent constructor calls
        self.lstm_kind, self.lstm_class = lstm, lstm_class
        plain = lstm_class is nn.LSTM
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            lstm_hidden_size=lstm_hidden_size,
            n_lstm_layers=n_lstm_layers,
            lstm_kwargs=lstm_kwargs if plain else None,
            **kwargs,
        )
        self.lstm_kwargs = dict(lstm_kwargs or {})
        if not plain:
            # sb3-contrib hard-codes nn.LSTM: swap in the chosen class, then rebuild the optimizer it made.
            def build() -> nn.Module:
                return lstm_class(self.features_dim, lstm_hidden_size, num_layers=n_lstm_layers, **self.lstm_kwargs)

            self.lstm_actor = build()
            if self.lstm_critic is not None:
                self.lstm_critic = build()
            self.to(self.device)
            self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)
        picklable_parametrizations_(self)  # WNLSTM uses torch's weight_norm, which torch refuses to pickle

    @staticmethod
    def _process_sequence(
        features: torch.Tensor,
        lstm_states: tuple[torch.Tensor, torch.Tensor],
        episode_starts: torch.Tensor,
        lstm: nn.Module,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """sb3-contrib's ``_process_sequence`` in one LSTM call for :class:`~rlnorm.rnn.WNLSTM`/``LNLSTM``.

        sb3-contrib steps the LSTM one time step per call once any episode starts inside a sequence (most
        minibatches when episodes are short); these modules take the reset flags (``episode_starts``) and
        zero the states inside a single call, with the same result. Other modules go through sb3-contrib.

        :param features: ``(n_seq * seq_len, features_dim)``, sequence-major
        :param lstm_states: ``(h, c)``, each ``(n_layers, n_seq, hidden)``
        :param episode_starts: ``(n_seq * seq_len,)`` flags
        :param lstm: the actor's or critic's LSTM
        :return: ``(n_seq * seq_len, hidden)`` outputs and the last states
        """
        if not isinstance(lstm, (WNLSTM, LNLSTM)):
            return RecurrentActorCriticPolicy._process_sequence(features, lstm_states, episode_starts, lstm)
        n_seq = lstm_states[0].shape[1]
        sequence = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)
        starts = episode_starts.reshape((n_seq, -1)).swapaxes(0, 1)
        resets = None if bool(torch.all(starts == 0.0)) else starts
        output, lstm_states = lstm(sequence, lstm_states, episode_starts=resets)
        return torch.flatten(output.transpose(0, 1), start_dim=0, end_dim=1), lstm_states

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = NormMlpExtractor(
            self.lstm_output_dim,
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            norm=self.norm,
            norm_kwargs=self.norm_kwargs,
            device=self.device,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        self._normalize_heads(["action_net", "value_net"], lr_schedule)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            lstm=self.lstm_kind,
            lstm_kwargs=self.lstm_kwargs,
            norm=self.norm,
            norm_kwargs=self.norm_kwargs,
            head_norm=self.head_norm,
            head_kwargs=self.head_kwargs,
            lstm_hidden_size=self.lstm_output_dim,
            n_lstm_layers=self.lstm_hidden_state_shape[0],
            shared_lstm=self.shared_lstm,
            enable_critic_lstm=self.enable_critic_lstm,
        )
        return data


class NormRecurrentActorCriticCnnPolicy(NormRecurrentActorCriticPolicy):
    """:class:`NormRecurrentActorCriticPolicy` for channel-first images: a normalized Nature CNN (Atari) or
    small CNN (MinAtar) before the LSTM."""

    default_extractor = None


class NormRecurrentActorCriticMultiInputPolicy(NormRecurrentActorCriticPolicy):
    """:class:`NormRecurrentActorCriticPolicy` for ``Dict`` observations (normalized CNN for the image keys)."""

    default_extractor = NormCombinedExtractor


# One class per alias, so that saved models name an importable class (SB3 pickles the policy class).
class WnLstmPolicy(NormRecurrentActorCriticPolicy):
    """:class:`~rlnorm.rnn.WNLSTM` actor and critic, weight norm in the MLP heads."""

    fixed_options: ClassVar[dict[str, Any]] = {"lstm": "wn", "norm": "wn"}


class LnLstmPolicy(NormRecurrentActorCriticPolicy):
    """:class:`~rlnorm.rnn.LNLSTM` actor and critic, layer norm in the MLP heads."""

    fixed_options: ClassVar[dict[str, Any]] = {"lstm": "ln", "norm": "ln"}


class BnLstmPolicy(NormRecurrentActorCriticPolicy):
    """The batch-norm baseline: ``nn.LSTM`` actor and critic, batch norm in the MLP heads."""

    fixed_options: ClassVar[dict[str, Any]] = {"lstm": "none", "norm": "bn"}


class WnCnnLstmPolicy(NormRecurrentActorCriticCnnPolicy):
    """Weight-normalized CNN, :class:`~rlnorm.rnn.WNLSTM` actor and critic."""

    fixed_options: ClassVar[dict[str, Any]] = {"lstm": "wn", "norm": "wn"}


class LnCnnLstmPolicy(NormRecurrentActorCriticCnnPolicy):
    """Layer-normalized CNN, :class:`~rlnorm.rnn.LNLSTM` actor and critic."""

    fixed_options: ClassVar[dict[str, Any]] = {"lstm": "ln", "norm": "ln"}


class BnCnnLstmPolicy(NormRecurrentActorCriticCnnPolicy):
    """The batch-norm baseline: batch-normalized CNN, ``nn.LSTM`` actor and critic."""

    fixed_options: ClassVar[dict[str, Any]] = {"lstm": "none", "norm": "bn"}


class WnMultiInputLstmPolicy(NormRecurrentActorCriticMultiInputPolicy):
    """``Dict`` observations: weight-normalized extractor, :class:`~rlnorm.rnn.WNLSTM` actor and critic."""

    fixed_options: ClassVar[dict[str, Any]] = {"lstm": "wn", "norm": "wn"}


class LnMultiInputLstmPolicy(NormRecurrentActorCriticMultiInputPolicy):
    """``Dict`` observations: layer-normalized extractor, :class:`~rlnorm.rnn.LNLSTM` actor and critic."""

    fixed_options: ClassVar[dict[str, Any]] = {"lstm": "ln", "norm": "ln"}


class BnMultiInputLstmPolicy(NormRecurrentActorCriticMultiInputPolicy):
    """``Dict`` observations, the batch-norm baseline: batch-normalized extractor, ``nn.LSTM``."""

    fixed_options: ClassVar[dict[str, Any]] = {"lstm": "none", "norm": "bn"}


# the class names before 0.2 (network before norm): saved models name them
CnnWnLstmPolicy, CnnLnLstmPolicy, CnnBnLstmPolicy = WnCnnLstmPolicy, LnCnnLstmPolicy, BnCnnLstmPolicy
NormRecurrentActorCriticPolicy.alias_name = "NormLstmPolicy"
NormRecurrentActorCriticCnnPolicy.alias_name = "NormCnnLstmPolicy"
NormRecurrentActorCriticMultiInputPolicy.alias_name = "NormMultiInputLstmPolicy"


def recurrent_aliases() -> dict[str, type[RecurrentActorCriticPolicy]]:
    """Every RecurrentPPO alias name added by rlnorm -> policy class."""
    return {
        "NormLstmPolicy": NormRecurrentActorCriticPolicy,
        "NormCnnLstmPolicy": NormRecurrentActorCriticCnnPolicy,
        "WnLstmPolicy": WnLstmPolicy,
        "LnLstmPolicy": LnLstmPolicy,
        "BnLstmPolicy": BnLstmPolicy,
        "WnCnnLstmPolicy": WnCnnLstmPolicy,
        "LnCnnLstmPolicy": LnCnnLstmPolicy,
        "BnCnnLstmPolicy": BnCnnLstmPolicy,
        "NormMultiInputLstmPolicy": NormRecurrentActorCriticMultiInputPolicy,
        "WnMultiInputLstmPolicy": WnMultiInputLstmPolicy,
        "LnMultiInputLstmPolicy": LnMultiInputLstmPolicy,
        "BnMultiInputLstmPolicy": BnMultiInputLstmPolicy,
        # the names before 0.2 (network before norm), kept as aliases
        "CnnNormLstmPolicy": NormRecurrentActorCriticCnnPolicy,
        "CnnWnLstmPolicy": WnCnnLstmPolicy,
        "CnnLnLstmPolicy": LnCnnLstmPolicy,
        "CnnBnLstmPolicy": BnCnnLstmPolicy,
    }


def recurrent_policy_for(network: str, norm: str) -> tuple[type[RecurrentActorCriticPolicy], dict[str, Any]]:
    """The policy class and kwargs of one RecurrentPPO experiment arm: the LSTM flavour follows ``norm``.

    :param network: ``"cnn"`` or ``"mlp"``
    :param norm: the arm's norm, one of :data:`rlnorm.layers.LAYER_NORMS`
    :return: (policy class, ``{"norm": norm, "lstm": lstm_for_norm(norm)}``)
    """
    if network not in ("cnn", "mlp"):
        raise ValueError(f"network must be one of cnn, mlp; got {network!r}")
    cls = NormRecurrentActorCriticCnnPolicy if network == "cnn" else NormRecurrentActorCriticPolicy
    return cls, {"norm": norm, "lstm": lstm_for_norm(norm)}
