"""The one table of normalization names: :data:`NORMS`, name -> :class:`NormSpec`.

Every other list of norm names in the project is derived from it: the names :func:`rlnorm.norms.make_norm`,
:func:`rlnorm.layers.linear` / :func:`~rlnorm.layers.conv2d` and the PixelCNN accept (their *scopes*), which
ones depend on the batch, which ones are weight-normalized, the policy aliases (``WnCnnPolicy``), the LSTM of
a recurrent arm, and the order of the reports. Adding a norm means adding one row here (and its class).

The PixelCNN's ``pixel_ln`` / ``pixel_gn`` normalize each pixel over its channels, which is not what ``ln`` /
``gn`` do elsewhere (statistics over ``(C, H, W)`` per sample), so they have names of their own. The PixelCNN
spelled them ``ln`` / ``gn`` before; :func:`check_norm_name` still accepts those there, with a
``DeprecationWarning``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from rlnorm.validation import check_choice

if TYPE_CHECKING:
    from torch import nn

#: Where a norm name is accepted: an activation norm of :func:`rlnorm.norms.make_norm`; a layer stack of
#: :mod:`rlnorm.layers` (and so a policy's ``norm``); a layer of :mod:`rlnorm.pixelcnn`; a policy's output
#: layers (its ``head_norm``).
SCOPES: tuple[str, ...] = ("activation", "layer", "pixelcnn", "head")


@dataclass(frozen=True)
class NormSpec:
    """What the code needs to know about one normalization.

    :param name: the name configs and constructors use
    :param description: a few words for tables and docs
    :param scopes: where the name is accepted, a subset of :data:`SCOPES`
    :param alias_prefix: prefix of its policy aliases (``"Wn"`` -> ``WnMlpPolicy``, ``WnCnnPolicy``); ``None``
        for no alias
    :param batch_dependent: in train mode one sample's output depends on the other samples of its batch
    :param needs_batch_gt1: train mode divides by the batch's own standard deviation, which a batch of one
        sample does not have: it fails (``bn`` on flat inputs) or degenerates (``brn`` falls back on its
        running-statistics correction)
    :param weight_normalized: the layer's weight is reparametrized as ``g * v / ||v||`` (data-dependent init
        applies)
    :param has_shift: the norm has a learned shift of its own (or removes the mean), which makes the bias of
        the layer before it redundant
    :param lstm: the LSTM a recurrent policy arm with this norm uses (``"none"`` is ``nn.LSTM``); the names
        that are their own ``lstm`` are the LSTM kinds (:func:`lstm_kinds`)
    :param pixel_rows: PixelCNN only: the activation norm applied to each pixel's channel vector, i.e. to the
        rows of the ``(N*H*W, C)`` view (``None``: not a per-pixel norm)
    :param old_names: former spellings still accepted where this norm is (with a ``DeprecationWarning``)
    """

    name: str
    description: str
    scopes: frozenset[str]
    alias_prefix: str | None = None
    batch_dependent: bool = False
    needs_batch_gt1: bool = False
    weight_normalized: bool = False
    has_shift: bool = False
    lstm: str = "none"
    pixel_rows: str | None = None
    old_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.scopes) - set(SCOPES)
        if unknown:
            raise ValueError(f"NormSpec {self.name!r}: unknown scopes {sorted(unknown)}; choose from {SCOPES}")


_FLAGS = ("batch_dependent", "needs_batch_gt1", "weight_normalized", "has_shift")
_STACK = frozenset({"activation", "layer"})


def _table(*specs: NormSpec) -> MappingProxyType[str, NormSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


#: Every normalization, in the order tables and figures list them.
NORMS: MappingProxyType[str, NormSpec] = _table(
    NormSpec("none", "no normalization", frozenset(SCOPES)),
    NormSpec(
        "wn", "weight normalization", frozenset({"layer", "pixelcnn", "head"}), "Wn", weight_normalized=True, lstm="wn"
    ),
    NormSpec(
        "wn+mobn",
        "weight normalization + mean-only batch norm",
        frozenset({"layer"}),
        "WnMobn",
        batch_dependent=True,
        weight_normalized=True,
        has_shift=True,
        lstm="wn",
    ),
    NormSpec(
        "bn",
        "batch normalization",
        frozenset({"activation", "layer", "pixelcnn"}),
        "Bn",
        batch_dependent=True,
        needs_batch_gt1=True,
        has_shift=True,
        pixel_rows="bn",  # rows of (N*H*W, C): the statistics of BatchNorm2d
    ),
    NormSpec("ln", "layer normalization", _STACK, "Ln", has_shift=True, lstm="ln"),
    NormSpec("gn", "group normalization", _STACK, "Gn", has_shift=True),
    NormSpec("in", "instance normalization", _STACK, "In", has_shift=True),
    NormSpec("sn", "switchable normalization", _STACK, "Sn", batch_dependent=True, has_shift=True),
    NormSpec("brn", "batch renormalization", _STACK, "Brn", batch_dependent=True, needs_batch_gt1=True, has_shift=True),
    NormSpec("rms", "RMS normalization", _STACK, "Rms"),
    # rows of the weight scaled to one norm and the input's scale divided out (rlnorm.weight_norm.CosineLinear)
    NormSpec("cosine", "cosine normalization", frozenset({"head"})),
    NormSpec(
        "pixel_ln",
        "layer normalization over each pixel's channels",
        frozenset({"pixelcnn"}),
        has_shift=True,
        pixel_rows="ln",
        old_names=("ln",),
    ),
    NormSpec(
        "pixel_gn",
        "group normalization over each pixel's channels",
        frozenset({"pixelcnn"}),
        has_shift=True,
        pixel_rows="gn",
        old_names=("gn",),
    ),
)


def norm_spec(name: str) -> NormSpec:
    """The row of ``name`` in :data:`NORMS` (a ``ConfigError`` listing the names if there is none)."""
    return NORMS[check_choice(name, "norm", NORMS)]


def norm_names(scope: str | None = None, **flags: bool) -> tuple[str, ...]:
    """The names of the norms accepted in ``scope`` whose boolean properties equal ``flags``, in table order.

    ``norm_names("layer", weight_normalized=True)`` is ``("wn", "wn+mobn")``.

    :param scope: one of :data:`SCOPES`, or ``None`` for every norm
    :param flags: :class:`NormSpec` boolean fields and the value they must have
    """
    if scope is not None:
        check_choice(scope, "scope", SCOPES)
    for key in flags:
        check_choice(key, "flag", _FLAGS)
    return tuple(
        spec.name
        for spec in NORMS.values()
        if (scope is None or scope in spec.scopes) and all(getattr(spec, k) == v for k, v in flags.items())
    )


def check_norm_name(name: object, scope: str, field: str = "norm", *, source: str = "", stacklevel: int = 2) -> str:
    """Return the norm ``name`` if ``scope`` accepts it, else raise a ``ConfigError`` naming ``field``.

    A former spelling of a norm of ``scope`` (:attr:`NormSpec.old_names`, e.g. the PixelCNN's ``ln``) is
    accepted with a ``DeprecationWarning`` and the current name is returned.

    :param name: the candidate
    :param scope: one of :data:`SCOPES`
    :param field: the dotted field named in the error and the warning
    :param source: where the value came from, for the error
    :param stacklevel: of the warning, as :func:`warnings.warn` counts it from this function
    """
    allowed = norm_names(scope)
    if isinstance(name, str) and name not in allowed:
        for current in allowed:
            if name in NORMS[current].old_names:
                warnings.warn(
                    f"{field}: {name!r} is the former name of {current!r} ({NORMS[current].description}) here; "
                    f"write {current!r}",
                    DeprecationWarning,
                    stacklevel=stacklevel,
                )
                return current
    return check_choice(name, field, allowed, source=source)


def alias_norms() -> dict[str, str]:
    """Policy alias prefix -> norm name (``{"Wn": "wn", "WnMobn": "wn+mobn", ...}``), in table order."""
    return {spec.alias_prefix: spec.name for spec in NORMS.values() if spec.alias_prefix is not None}


def lstm_kinds() -> tuple[str, ...]:
    """The ``lstm`` names of the recurrent policies: the norms whose LSTM is their own (``none``, ``wn``, ``ln``)."""
    return tuple(spec.name for spec in NORMS.values() if spec.lstm == spec.name)


def lstm_modules() -> dict[str, type[nn.Module]]:
    """``lstm`` name -> recurrent module: ``nn.LSTM``, :class:`~rlnorm.rnn.WNLSTM`, :class:`~rlnorm.rnn.LNLSTM`."""
    # imported on demand: the table itself is plain data, importable without building the LSTM kernels
    from torch import nn

    from rlnorm.rnn import LNLSTM, WNLSTM

    classes: dict[str, type[nn.Module]] = {"none": nn.LSTM, "wn": WNLSTM, "ln": LNLSTM}
    return {kind: classes[kind] for kind in lstm_kinds()}


def lstm_for_norm(norm: str) -> str:
    """The LSTM of a recurrent arm whose other layers use ``norm`` (``wn+mobn`` -> ``wn``, ``bn`` -> ``none``).

    :param norm: a norm of the ``layer`` scope
    """
    return NORMS[check_norm_name(norm, "layer")].lstm
