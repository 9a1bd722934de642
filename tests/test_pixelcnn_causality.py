"""PixelCNN causality, measured: every norm is exactly causal in eval mode, the batch-independent ones in train
mode too, batch norm in train mode is not (and is no normalized density); a broken mask is caught."""

import pytest
import torch

from rlnorm.pixelcnn.causality import (
    Dependence,
    future_blind_log_prob,
    logit_dependence,
    raster_index,
    total_probability,
)
from rlnorm.pixelcnn.layers import PIXELCNN_NORMS
from rlnorm.pixelcnn.model import PixelCNN
from rlnorm.registry import NORMS

H = W = 6
LEVELS = 4
PIXELS = [(0, 0), (2, 3), (3, 0), (5, 5), (4, 2)]
BATCH_INDEPENDENT = [n for n in PIXELCNN_NORMS if not NORMS[n].batch_dependent]


def make_model(norm: str, arch: str = "gated", levels: int = LEVELS, **kwargs) -> PixelCNN:
    torch.manual_seed(0)
    model = PixelCNN(levels=levels, image_size=(H, W), hidden_channels=8, n_layers=3, arch=arch, norm=norm, **kwargs)
    if norm == "wn":
        model.data_init_(torch.randint(0, levels, (16, 1, H, W)))
    return model


def images(n: int, levels: int = LEVELS, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, levels, (n, 1, H, W), generator=torch.Generator().manual_seed(seed))


def test_the_batch_independent_norms_list_is_what_the_registry_says():
    assert set(BATCH_INDEPENDENT) == {"none", "wn", "pixel_ln", "pixel_gn"} and "bn" in PIXELCNN_NORMS


@pytest.mark.parametrize("arch", ["gated", "plain"])
@pytest.mark.parametrize("norm", PIXELCNN_NORMS)
def test_every_norm_is_exactly_causal_in_eval_mode(arch, norm):
    dependence = logit_dependence(make_model(norm, arch), images(4), PIXELS, training=False)
    assert dependence.causal, dependence
    assert dependence.past > 0  # the measurement sees the dependence that is allowed


@pytest.mark.parametrize("arch", ["gated", "plain"])
@pytest.mark.parametrize("norm", BATCH_INDEPENDENT)
def test_batch_independent_norms_are_exactly_causal_in_train_mode(arch, norm):
    dependence = logit_dependence(make_model(norm, arch), images(4), PIXELS, training=True)
    assert (dependence.future, dependence.other_images) == (0.0, 0.0)
    assert dependence.past > 0


@pytest.mark.parametrize("arch", ["gated", "plain"])
def test_batch_norm_in_train_mode_sees_its_own_later_pixels_and_the_other_images(arch):
    model = make_model("bn", arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dependence = logit_dependence(model, images(4), PIXELS, training=True)
    assert not dependence.causal
    assert dependence.future > 0 and dependence.other_images > 0
    # a batch of one image still sees its own future
    alone = logit_dependence(model, images(1), PIXELS, training=True)
    assert alone.future > 0 and alone.other_images == 0.0
    # measured on a copy: the running statistics did not move
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_broken_mask_is_caught():
    model = make_model("none")
    conv = model.blocks[0].horizontal
    with torch.no_grad():  # the first layer sees its own pixel and the ones to its right
        conv.mask.fill_(1.0)
        conv.weight.normal_()
    dependence = logit_dependence(model, images(4), PIXELS, training=False)
    assert dependence.future > 0 and not dependence.causal


def test_dependence_regions_split_the_image_in_raster_order():
    order = raster_index(2, 3)
    assert order.tolist() == [[0, 1, 2], [3, 4, 5]]
    # the last pixel of a model that only sees its left neighbour: all of the dependence is past
    dependence = logit_dependence(make_model("none"), images(2), [(H - 1, W - 1)], training=False)
    assert isinstance(dependence, Dependence) and dependence.n_pixels == 1 and dependence.past > 0
    with pytest.raises(ValueError, match="pixels must be"):
        logit_dependence(make_model("none"), images(2), [(H, 0)], training=False)
    with pytest.raises(ValueError, match="image must lie"):
        logit_dependence(make_model("none"), images(2), training=False, image=2)


def tiny(norm: str) -> PixelCNN:
    torch.manual_seed(0)
    model = PixelCNN(levels=2, image_size=(3, 3), hidden_channels=8, n_layers=2, norm=norm)
    if norm == "wn":
        model.data_init_(torch.randint(0, 2, (16, 1, 3, 3)))
    return model


@pytest.mark.parametrize("norm", PIXELCNN_NORMS)
def test_probabilities_over_all_images_sum_to_one_in_eval_mode(norm):
    assert total_probability(tiny(norm), (3, 3), training=False) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("norm", BATCH_INDEPENDENT)
def test_batch_independent_norms_are_densities_in_train_mode(norm):
    assert total_probability(tiny(norm), (3, 3), training=True) == pytest.approx(1.0, abs=1e-5)


def test_batch_norm_in_train_mode_is_not_a_density_but_its_future_blind_evaluation_is():
    model = tiny("bn")
    assert abs(total_probability(model, (3, 3), training=True) - 1.0) > 1e-3
    everything = torch.cartesian_prod(*[torch.arange(2)] * 9).view(-1, 1, 3, 3)
    filler = torch.ones_like(everything)  # any fixed filler gives a density
    total = torch.logsumexp(future_blind_log_prob(model, everything, filler).double(), 0).exp().item()
    assert total == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="at most"):
        total_probability(model, (4, 4), training=True)


@pytest.mark.parametrize("norm", ["none", "wn", "pixel_ln"])
def test_future_blind_log_prob_equals_log_prob_for_a_causal_model(norm):
    model = make_model(norm)
    x = images(3)
    expected = model.log_prob(x).detach()
    assert torch.allclose(future_blind_log_prob(model, x, images(3, seed=7)), expected, atol=1e-3)
    model.eval()
    bn = make_model("bn").eval()
    assert torch.allclose(future_blind_log_prob(bn, x, images(3, seed=7), training=False), bn.log_prob(x), atol=1e-3)
    with pytest.raises(ValueError, match="filler must have the shape"):
        future_blind_log_prob(model, x, images(2))
