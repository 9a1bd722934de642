"""rlnorm.registry: the one table of norm names, and every list of names derived from it."""

from __future__ import annotations

import warnings

import pytest
import torch

from rlnorm.layers import BATCH_DEPENDENT_NORMS, LAYER_NORMS, WEIGHT_NORM_KINDS, conv2d, linear
from rlnorm.norms import BATCH_DEPENDENT_KINDS, NORM_KINDS, make_norm
from rlnorm.pixelcnn.layers import PIXELCNN_NORMS
from rlnorm.registry import (
    NORMS,
    SCOPES,
    NormSpec,
    alias_norms,
    check_norm_name,
    lstm_for_norm,
    lstm_kinds,
    lstm_modules,
    norm_names,
    norm_spec,
)
from rlnorm.validation import ConfigError


def test_the_derived_tables_keep_their_names_and_order() -> None:
    assert NORM_KINDS == ("none", "bn", "ln", "gn", "in", "sn", "brn", "rms")
    assert LAYER_NORMS == ("none", "wn", "wn+mobn", "bn", "ln", "gn", "in", "sn", "brn", "rms")
    assert WEIGHT_NORM_KINDS == ("wn", "wn+mobn")
    assert {"bn", "brn", "sn", "wn+mobn"} == BATCH_DEPENDENT_NORMS
    assert {"bn", "brn", "sn"} == BATCH_DEPENDENT_KINDS
    assert PIXELCNN_NORMS == ("none", "wn", "bn", "pixel_ln", "pixel_gn")
    assert norm_names("head") == ("none", "wn", "cosine")  # agents.policies.heads.HEAD_NORMS
    assert norm_names("layer", needs_batch_gt1=True) == ("bn", "brn")
    assert list(alias_norms().items()) == [
        ("Wn", "wn"), ("WnMobn", "wn+mobn"), ("Bn", "bn"), ("Ln", "ln"), ("Gn", "gn"), ("In", "in"),
        ("Sn", "sn"), ("Brn", "brn"), ("Rms", "rms"),
    ]  # fmt: skip
    assert lstm_kinds() == ("none", "wn", "ln")
    assert set(lstm_modules()) == set(lstm_kinds())
    assert {n: lstm_for_norm(n) for n in ("none", "wn", "wn+mobn", "ln", "bn", "gn")} == {
        "none": "none", "wn": "wn", "wn+mobn": "wn", "ln": "ln", "bn": "none", "gn": "none",
    }  # fmt: skip


def test_table_is_consistent() -> None:
    for name, spec in NORMS.items():
        assert isinstance(spec, NormSpec) and spec.name == name
        assert spec.scopes and set(spec.scopes) <= set(SCOPES)
        assert not spec.needs_batch_gt1 or spec.batch_dependent, name
        assert (spec.alias_prefix is None) == ("layer" not in spec.scopes or name == "none"), name
        assert spec.lstm in lstm_kinds(), name
        assert spec.pixel_rows is None or ("pixelcnn" in spec.scopes and spec.pixel_rows in NORM_KINDS), name
        for old in spec.old_names:  # a former spelling never shadows a current name of the same scope
            assert all(old not in norm_names(scope) for scope in spec.scopes), (name, old)
    assert len({s.alias_prefix for s in NORMS.values() if s.alias_prefix}) == len(alias_norms())
    with pytest.raises(ValueError, match="unknown scopes"):
        NormSpec("x", "x", frozenset({"everywhere"}))


@pytest.mark.parametrize("norm", LAYER_NORMS)
def test_properties_match_what_the_layers_do(norm: str) -> None:
    """The table's flags describe the built layers: bias dropped iff a shift, batch dependence measured."""
    spec = norm_spec(norm)
    stack = conv2d(3, 4, 3, norm=norm)
    conv = stack[0] if isinstance(stack, torch.nn.Sequential) else stack
    assert (conv.bias is None) == spec.has_shift
    if norm == "in":  # instance norm needs spatial inputs: one statistic per value on (N, C)
        return
    layer = linear(4, 4, norm=norm).train()
    x = torch.randn(6, 4)
    x2 = torch.cat([x[:3], torch.randn(3, 4) * 5 + 3])
    assert (not torch.allclose(layer(x)[:3], layer(x2)[:3], atol=1e-5)) == spec.batch_dependent
    if norm == "bn":  # the plainest case of needs_batch_gt1: a flat batch of one has no variance
        assert spec.needs_batch_gt1
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            make_norm(norm, 4, spatial=False).train()(torch.randn(1, 4))


def test_scope_queries_and_errors() -> None:
    assert norm_names() == tuple(NORMS)
    assert norm_names("pixelcnn", has_shift=False) == ("none", "wn")
    with pytest.raises(ConfigError, match=r"^scope: must be one of activation, layer, pixelcnn, head; got 'lstm'"):
        norm_names("lstm")
    with pytest.raises(ConfigError, match=r"^flag: must be one of "):
        norm_names("layer", shiny=True)
    with pytest.raises(ConfigError, match=r"^norm: must be one of .*pixel_gn; got 'weird'"):
        norm_spec("weird")


def test_former_pixelcnn_names_are_accepted_there_only_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"exploration\.norm: 'gn' is the former name of 'pixel_gn'"):
        assert check_norm_name("gn", "pixelcnn", "exploration.norm") == "pixel_gn"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_norm_name("ln", "layer") == "ln"  # a layer's ln is the real layer norm
        assert check_norm_name("pixel_ln", "pixelcnn") == "pixel_ln"
    with pytest.raises(ConfigError, match=r"^src: train\.norms\[0\]: must be one of none, wn, bn, pixel_ln, pixel_gn"):
        check_norm_name("in", "pixelcnn", "train.norms[0]", source="src")


def test_every_norm_has_a_report_colour() -> None:
    from agents.report.plots import NORM_COLORS

    assert set(NORM_COLORS) == set(NORMS)
    assert len(set(NORM_COLORS.values())) == len(NORM_COLORS)


def test_report_order_is_the_table_order() -> None:
    from agents.report.tables import ordered

    assert ordered(["zz", *reversed(NORMS), "aa"]) == [*NORMS, "aa", "zz"]
