"""Norm-aware features extractors and MLP heads for Stable-Baselines3 policies.

Every layer is built by :func:`rlnorm.layers.linear` / :func:`rlnorm.layers.conv2d`, so one ``norm`` name
(any of :data:`rlnorm.layers.LAYER_NORMS`) selects weight norm, an activation norm, or nothing.

Instance norm is undefined on a flat ``(N, C)`` tensor (each statistic would cover one value), so for
fully connected layers ``norm="in"`` falls back to layer norm (:func:`flat_norm`); the convolutions keep it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, MlpExtractor, NatureCNN
from stable_baselines3.common.utils import get_device
from torch import nn

from rlnorm.layers import check_norm, conv2d, linear

#: Smallest image side the Nature CNN accepts (8x8 stride 4, 4x4 stride 2, 3x3 stride 1).
NATURE_MIN_SIDE = 36


def flat_norm(norm: str) -> str:
    """The norm used for fully connected layers when ``norm`` is asked for: ``"in"`` becomes ``"ln"``.

    :param norm: one of :data:`rlnorm.layers.LAYER_NORMS`
    """
    check_norm(norm)
    return "ln" if norm == "in" else norm


def norm_mlp(
    input_dim: int,
    net_arch: list[int],
    activation_fn: type[nn.Module],
    norm: str = "none",
    norm_kwargs: dict[str, Any] | None = None,
) -> list[nn.Module]:
    """Hidden layers ``[linear(norm), activation] * len(net_arch)`` (no output layer).

    :param input_dim: size of the input vector
    :param net_arch: number of units of each hidden layer
    :param activation_fn: activation after each normalized layer
    :param norm: normalization of every hidden layer (``"in"`` gives ``"ln"``, see :func:`flat_norm`)
    :param norm_kwargs: options of the normalization
    """
    layers: list[nn.Module] = []
    last = input_dim
    for units in net_arch:
        layers += [linear(last, units, flat_norm(norm), norm_kwargs=norm_kwargs), activation_fn()]
        last = units
    return layers


class NormMlpExtractor(MlpExtractor):
    """SB3's :class:`MlpExtractor` (actor and critic hidden layers, ``net_arch`` as there) with normalized layers.

    :param feature_dim: size of the features vector
    :param net_arch: ``[units, ...]`` shared spec or ``dict(pi=[...], vf=[...])``
    :param activation_fn: activation function
    :param norm: normalization of the hidden layers, one of :data:`rlnorm.layers.LAYER_NORMS`
    :param norm_kwargs: options of the normalization
    :param device: torch device
    :param actor_norm: normalization of the policy layers (default ``norm``)
    :param critic_norm: normalization of the value layers (default ``norm``)
    """

    def __init__(
        self,
        feature_dim: int,
        net_arch: list[int] | dict[str, list[int]],
        activation_fn: type[nn.Module],
        norm: str = "none",
        norm_kwargs: dict[str, Any] | None = None,
        device: torch.device | str = "auto",
        actor_norm: str | None = None,
        critic_norm: str | None = None,
    ) -> None:
        super().__init__(feature_dim, net_arch, activation_fn, device)
        if isinstance(net_arch, dict):
            pi_arch, vf_arch = net_arch.get("pi", []), net_arch.get("vf", [])
        else:
            pi_arch = vf_arch = net_arch
        # replace SB3's plain layers; the latent sizes computed by the parent stay valid
        device = get_device(device)
        pi_norm, vf_norm = actor_norm or norm, critic_norm or norm
        self.policy_net = nn.Sequential(*norm_mlp(feature_dim, pi_arch, activation_fn, pi_norm, norm_kwargs)).to(device)
        self.value_net = nn.Sequential(*norm_mlp(feature_dim, vf_arch, activation_fn, vf_norm, norm_kwargs)).to(device)
        self.norm = norm


def _check_image_box(observation_space: gym.Space, name: str, normalized_image: bool = False) -> tuple[int, int, int]:
    """``(C, H, W)`` of a 3-D ``Box``, taken as channel-first.

    An SB3 image space (uint8 in [0, 255], or any 3-D box with ``normalized_image``) is trusted as SB3 trusts it:
    SB3 has transposed it with ``VecTransposeImage`` or was told to skip that, so ``C > H`` is fine (10 grey
    channels stacked 5 times give ``(50, 41, 40)``). Any other box (MinAtar's 0/1 planes) is not transposed by SB3,
    so a channel-last layout (``C`` larger than ``H`` or ``W``) is refused there.
    """
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 3:
        raise ValueError(
            f"{name}: observation_space must be a channel-first Box of shape (C, H, W), got {observation_space}"
        )
    c, h, w = observation_space.shape
    trusted = is_image_space(observation_space, check_channels=False, normalized_image=normalized_image)
    if not trusted and (c > h or c > w):
        raise ValueError(
            f"{name}: observations must be channel-first (C, H, W), got shape {(c, h, w)} "
            "(SB3 transposes only uint8 [0, 255] images; transpose other boxes yourself)"
        )
    return c, h, w


def _n_flatten(cnn: nn.Module, observation_space: spaces.Box) -> int:
    with torch.no_grad():
        return cnn(torch.zeros((2, *observation_space.shape))).shape[1]


class NormNatureCNN(NatureCNN):
    """The DQN Nature CNN (conv 8x8/4 32, conv 4x4/2 64, conv 3x3/1 64, linear ``features_dim``), normalized.

    Same layout and attribute names (``cnn``, ``linear``) as SB3's :class:`NatureCNN`; every convolution and
    the linear layer are built with ``norm``.

    :param observation_space: channel-first image ``Box`` ``(C, H, W)`` with ``H, W >= 36``
    :param features_dim: number of output features
    :param norm: normalization of every layer, one of :data:`rlnorm.layers.LAYER_NORMS`
    :param norm_kwargs: options of the normalization
    :param normalized_image: as SB3: skip the uint8/[0, 255] check for already normalized images
    """

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 512,
        norm: str = "none",
        norm_kwargs: dict[str, Any] | None = None,
        normalized_image: bool = False,
    ) -> None:
        check_norm(norm, field="features_extractor_kwargs['norm']")
        c, h, w = _check_image_box(observation_space, type(self).__name__, normalized_image)
        if min(h, w) < NATURE_MIN_SIDE:
            raise ValueError(
                f"NormNatureCNN needs images of at least {NATURE_MIN_SIDE}x{NATURE_MIN_SIDE}, got {h}x{w}; "
                "use NormSmallCNN for small images (e.g. MinAtar)"
            )
        super().__init__(observation_space, features_dim, normalized_image)
        kw = norm_kwargs
        self.cnn = nn.Sequential(
            conv2d(c, 32, 8, stride=4, norm=norm, norm_kwargs=kw),
            nn.ReLU(),
            conv2d(32, 64, 4, stride=2, norm=norm, norm_kwargs=kw),
            nn.ReLU(),
            conv2d(64, 64, 3, stride=1, norm=norm, norm_kwargs=kw),
            nn.ReLU(),
            nn.Flatten(),
        )
        n_flatten = _n_flatten(self.cnn, observation_space)
        self.linear = nn.Sequential(linear(n_flatten, features_dim, flat_norm(norm), norm_kwargs=kw), nn.ReLU())
        self.norm = norm


class NormSmallCNN(BaseFeaturesExtractor):
    """The MinAtar CNN (Young & Tian, 2019): conv 3x3/1 with 16 channels, linear ``features_dim``, normalized.

    Meant for small channel-first images such as MinAtar's ``Box(0, 1, (C, 10, 10), uint8)``; inputs are used as
    SB3's preprocessing gives them (divided by 255 only for SB3 image spaces).

    :param observation_space: channel-first ``Box`` ``(C, H, W)``
    :param features_dim: number of output features
    :param norm: normalization of every layer, one of :data:`rlnorm.layers.LAYER_NORMS`
    :param norm_kwargs: options of the normalization
    :param channels: number of convolution channels
    """

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 128,
        norm: str = "none",
        norm_kwargs: dict[str, Any] | None = None,
        channels: int = 16,
    ) -> None:
        check_norm(norm, field="features_extractor_kwargs['norm']")
        c, _, _ = _check_image_box(observation_space, type(self).__name__)
        super().__init__(observation_space, features_dim)
        self.cnn = nn.Sequential(
            conv2d(c, channels, 3, stride=1, norm=norm, norm_kwargs=norm_kwargs), nn.ReLU(), nn.Flatten()
        )
        n_flatten = _n_flatten(self.cnn, observation_space)
        self.linear = nn.Sequential(
            linear(n_flatten, features_dim, flat_norm(norm), norm_kwargs=norm_kwargs), nn.ReLU()
        )
        self.norm = norm

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))


def cnn_class_for(observation_space: gym.Space, normalized_image: bool = False) -> type[BaseFeaturesExtractor]:
    """:class:`NormNatureCNN` for images of at least 36x36 (Atari), else :class:`NormSmallCNN` (MinAtar).

    :param observation_space: channel-first image ``Box``
    :param normalized_image: as SB3 (the space is an image even if not uint8 in [0, 255])
    """
    _, h, w = _check_image_box(observation_space, "Cnn policy", normalized_image)
    return NormNatureCNN if min(h, w) >= NATURE_MIN_SIDE else NormSmallCNN


class NormCombinedExtractor(CombinedExtractor):
    """SB3's :class:`CombinedExtractor` for ``Dict`` spaces with a normalized CNN for every image key.

    Image keys (SB3's :func:`is_image_space`) go through :func:`cnn_class_for`'s CNN with ``norm``; the other
    keys are flattened, as in SB3.

    :param observation_space: ``Dict`` observation space
    :param cnn_output_dim: number of features of each CNN
    :param norm: normalization of the CNN layers, one of :data:`rlnorm.layers.LAYER_NORMS`
    :param norm_kwargs: options of the normalization
    :param normalized_image: as SB3
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        cnn_output_dim: int = 256,
        norm: str = "none",
        norm_kwargs: dict[str, Any] | None = None,
        normalized_image: bool = False,
    ) -> None:
        check_norm(norm, field="features_extractor_kwargs['norm']")
        # CombinedExtractor's own constructor would build SB3's NatureCNN first, which refuses images under 36x36
        super(CombinedExtractor, self).__init__(observation_space, features_dim=1)
        extractors: dict[str, nn.Module] = {}
        total = 0
        for key, subspace in observation_space.spaces.items():
            if is_image_space(subspace, normalized_image=normalized_image):
                cnn_cls = cnn_class_for(subspace, normalized_image)
                kwargs: dict[str, Any] = {"normalized_image": normalized_image} if cnn_cls is NormNatureCNN else {}
                extractors[key] = cnn_cls(subspace, cnn_output_dim, norm=norm, norm_kwargs=norm_kwargs, **kwargs)
                total += cnn_output_dim
            else:
                extractors[key] = nn.Flatten()
                total += get_flattened_obs_dim(subspace)
        self.extractors = nn.ModuleDict(extractors)
        self._features_dim = total
        self.norm = norm


#: Extractors taking a ``norm`` keyword; the policies pass their ``norm`` to these.
NORM_EXTRACTORS: tuple[type[BaseFeaturesExtractor], ...] = (NormNatureCNN, NormSmallCNN, NormCombinedExtractor)
