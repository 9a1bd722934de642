"""What every norm-aware policy family shares: the constructor prologue, the option names and the alias classes.

A family is an SB3/sb3-contrib policy class subclassed with :class:`NormPolicyMixin` first in its bases
(``class NormSACPolicy(NormPolicyMixin, SACPolicy)``). Its constructor calls :meth:`NormPolicyMixin._setup_norms`
before the parent constructor, which checks the options against the class's name, fills in the default
features extractor and passes the norm to it. :func:`define_aliases` then creates the ``<Norm><Network>Policy``
classes of the family (``WnMlpPolicy``, ``LnCnnPolicy``, ...) in the family's module, one importable class per
name so that saved models find it again.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor

from agents.policies.extractors import NORM_EXTRACTORS, cnn_class_for
from agents.policies.heads import check_head_norm, normalize_heads_
from agents.policies.options import ALIAS_NORMS, check_policy_norm, extractor_with_norm, state_without_graph

#: Network kinds of the alias names -> the family class attribute ``default_extractor`` they use.
NETWORKS: tuple[str, ...] = ("Mlp", "Cnn", "MultiInput")


class NormPolicyMixin:
    """Options shared by every norm policy: ``norm``, ``norm_kwargs``, ``actor_norm``, ``critic_norm``,
    ``head_norm``, ``head_kwargs`` (:mod:`agents.policies.heads`).

    ``actor_norm`` / ``critic_norm`` override ``norm`` for the actor's and the critics' layers (the policy and
    value MLPs of PPO/A2C; the actor and critic networks, each with its own features extractor, of SAC, TD3, TQC,
    CrossQ). A named class (``WnMlpPolicy``) fixes its options (:attr:`fixed_options`); giving another value for
    one of them is an error that names both, since ``NormMlpPolicy`` is the place for free choice.
    """

    #: norm used when the ``norm`` kwarg is not given
    default_norm: ClassVar[str] = "none"
    #: options a named class fixes (``{"norm": "wn"}`` for ``WnMlpPolicy``); empty for the ``Norm*`` classes
    fixed_options: ClassVar[dict[str, Any]] = {}
    #: extractor used when ``features_extractor_class`` is not given (``None``: a CNN chosen by image size)
    default_extractor: ClassVar[type[BaseFeaturesExtractor] | None] = FlattenExtractor
    #: whether the heads sit directly on the CNN features when ``net_arch`` is not given (SB3's PPO/DQN Cnn default)
    empty_net_arch_behind_cnn: ClassVar[bool] = True

    norm: str
    actor_norm: str
    critic_norm: str
    norm_kwargs: dict[str, Any] | None
    head_norm: str
    head_kwargs: dict[str, Any] | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # a named class states its options once: what it fixes is also its default (default_norm, default_lstm...)
        for option, value in cls.__dict__.get("fixed_options", {}).items():
            setattr(cls, f"default_{option}", value)

    @classmethod
    def check_fixed_options(cls, **given: Any) -> None:
        """Raise ``ValueError`` when a given option contradicts the class's name.

        :param given: option name -> value passed by the user (``None``: not given)
        """
        for key, value in given.items():
            fixed_key = "norm" if key in ("actor_norm", "critic_norm") else key
            if value is None or fixed_key not in cls.fixed_options:
                continue
            fixed = cls.fixed_options[fixed_key]
            if value != fixed:
                generic = cls.generic_name()
                raise ValueError(
                    f"{cls.__name__} has {fixed_key}={fixed!r} by its name, but policy_kwargs['{key}']={value!r} "
                    f"was given; use {generic} with policy_kwargs=dict({key}={value!r}) for a free choice"
                )

    @classmethod
    def generic_name(cls) -> str:
        """The ``Norm*Policy`` alias a named class derives from (the first base without fixed options)."""
        for base in cls.__mro__:
            if issubclass(base, NormPolicyMixin) and not base.__dict__.get("fixed_options"):
                return getattr(base, "alias_name", base.__name__)
        return cls.__name__

    def _setup_norms(
        self,
        observation_space: gym.Space,
        *,
        norm: str | None,
        norm_kwargs: dict[str, Any] | None,
        net_arch: Any,
        features_extractor_class: type[BaseFeaturesExtractor] | None,
        features_extractor_kwargs: dict[str, Any] | None,
        actor_norm: str | None = None,
        critic_norm: str | None = None,
        wn_data_init: bool = False,
        head_norm: str = "none",
        head_kwargs: dict[str, Any] | None = None,
    ) -> tuple[Any, type[BaseFeaturesExtractor], dict[str, Any]]:
        """The constructor prologue: check the options, set ``self.norm`` & co., resolve the extractor.

        Runs before the parent constructor (which builds the networks and reads these attributes).

        :return: ``(net_arch, features_extractor_class, features_extractor_kwargs)`` for the parent constructor
        """
        type(self).check_fixed_options(norm=norm, actor_norm=actor_norm, critic_norm=critic_norm)
        norm = check_policy_norm(self.default_norm if norm is None else norm, wn_data_init)
        self.norm, self.norm_kwargs = norm, norm_kwargs
        self.actor_norm = check_policy_norm(norm if actor_norm is None else actor_norm, False, "actor_norm")
        self.critic_norm = check_policy_norm(norm if critic_norm is None else critic_norm, False, "critic_norm")
        self.head_norm, self.head_kwargs = check_head_norm(head_norm, head_kwargs), head_kwargs
        if features_extractor_class is None:
            features_extractor_class = self.default_extractor or cnn_class_for(observation_space)
            if self.default_extractor is None and net_arch is None and self.empty_net_arch_behind_cnn:
                net_arch = []  # SB3's CnnPolicy default: the heads sit directly on the CNN features
        features_extractor_class, features_extractor_kwargs = extractor_with_norm(
            features_extractor_class, features_extractor_kwargs, norm, norm_kwargs
        )
        return net_arch, features_extractor_class, features_extractor_kwargs

    def __getstate__(self) -> dict[str, Any]:
        return state_without_graph(self)  # type: ignore[arg-type]

    def _norm_constructor_parameters(self) -> dict[str, Any]:
        """The norm options, for ``_get_constructor_parameters`` (saving and ``BaseModel.load``)."""
        return {
            "norm": self.norm,
            "norm_kwargs": self.norm_kwargs,
            "actor_norm": self.actor_norm,
            "critic_norm": self.critic_norm,
            "head_norm": self.head_norm,
            "head_kwargs": self.head_kwargs,
        }

    def _normalize_heads(self, names: list[str], lr_schedule: Any) -> None:
        """Make the output layers ``names`` ``head_norm`` heads and rebuild the optimizer over the new parameters
        (call at the end of ``_build``, before any step)."""
        if normalize_heads_(self, names, self.head_norm, self.head_kwargs):  # type: ignore[arg-type]
            self.optimizer = self.optimizer_class(  # type: ignore[attr-defined]
                self.parameters(),  # type: ignore[attr-defined]
                lr=lr_schedule(1),
                **self.optimizer_kwargs,  # type: ignore[attr-defined]
            )


def extractor_kwargs_for(
    extractor_class: type[BaseFeaturesExtractor], kwargs: dict[str, Any], norm: str, user_kwargs: dict[str, Any] | None
) -> dict[str, Any]:
    """``kwargs`` with ``norm`` for a norm-aware extractor, unless the user gave the extractor's norm explicitly.

    :param extractor_class: the features extractor class
    :param kwargs: the policy's resolved extractor kwargs
    :param norm: the norm of the network that owns this extractor (actor or critic)
    :param user_kwargs: the extractor kwargs as the user gave them
    """
    if not issubclass(extractor_class, NORM_EXTRACTORS) or "norm" in (user_kwargs or {}):
        return kwargs
    return {**kwargs, "norm": norm}


def define_aliases(
    namespace: dict[str, Any],
    families: dict[str, type],
    description: str,
    norms: dict[str, str] = ALIAS_NORMS,
) -> dict[str, type]:
    """Create the named classes ``<Norm><Network>Policy`` of one family in ``namespace`` and return every alias.

    :param namespace: the family module's ``globals()``; each class is set there under its name (with that
        module as ``__module__``) so that a saved model names an importable class
    :param families: network (``Mlp``, ``Cnn``, ``MultiInput``) -> the family's generic class for it
    :param description: what the classes are, for their docstrings (``"SAC policy"``)
    :param norms: alias prefix -> norm (default :data:`~agents.policies.options.ALIAS_NORMS`)
    :return: alias name -> class, the generic ``Norm<Network>Policy`` names included
    """
    aliases: dict[str, type] = {f"Norm{network}Policy": cls for network, cls in families.items()}
    for network, base in families.items():
        base.alias_name = f"Norm{network}Policy"
        for prefix, norm in norms.items():
            name = f"{prefix}{network}Policy"
            cls = namespace.get(name)
            if cls is None:
                doc = f"{description}, {network} networks, norm={norm!r} (:class:`{base.__name__}` by name)."
                if norm == "in":
                    doc += " Instance norm is undefined on vectors: every fully connected layer uses layer norm."
                attrs = {"fixed_options": {"norm": norm}, "__doc__": doc}
                attrs.update(__module__=namespace["__name__"], __qualname__=name)
                cls = type(name, (base,), attrs)
                namespace[name] = cls
            aliases[name] = cls
    return aliases
