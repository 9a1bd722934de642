"""PixelCNN: causal masks, masked weight norm, likelihood, sampling, frame encoders and input checks."""

import math

import numpy as np
import pytest
import torch

from rlnorm.pixelcnn.frames import BinaryFrameEncoder, GreyFrameEncoder, frame_encoder_for
from rlnorm.pixelcnn.layers import PIXELCNN_NORMS, MaskedConv2d, apply_masked_weight_norm, causal_mask
from rlnorm.pixelcnn.logistic import discretized_logistic_log_probs
from rlnorm.pixelcnn.model import PixelCNN
from rlnorm.weight_norm import is_weight_normalized, wn_g, wn_v

H = W = 8
LEVELS = 8


def make_model(norm: str, arch: str = "gated", **kwargs) -> PixelCNN:
    torch.manual_seed(0)
    kw = {"levels": LEVELS, "image_size": (H, W), "hidden_channels": 8, "n_layers": 3, "arch": arch, "norm": norm}
    kw.update(kwargs)
    model = PixelCNN(**kw)
    if norm == "wn":
        model.data_init_(torch.randint(0, LEVELS, (16, 1, H, W)))
    return model


def input_gradient(model: PixelCNN, x: torch.Tensor, i: int, j: int, image: int | None = 0) -> torch.Tensor:
    """|d logits[image, :, i, j] / d input| (summed over all images if ``image`` is None) per input pixel."""
    z = model.embed(x).requires_grad_()
    logits = model.logits_from_input(z)[:, :, i, j]
    (logits.sum() if image is None else logits[image].sum()).backward()
    return z.grad.abs()[:, 0]


def test_masks_are_raster_causal():
    a, b = causal_mask((5, 5), "A"), causal_mask((5, 5), "B")
    assert a[2, 2] == 0 and b[2, 2] == 1
    assert a[:2].all() and not a[3:].any() and not a[2, 3:].any() and a[2, :2].all()
    assert (b - a).sum() == 1
    v_a, v_b = causal_mask((3, 3), "vA"), causal_mask((3, 3), "vB")
    assert v_a.tolist() == [[1, 1, 1], [0, 0, 0], [0, 0, 0]] and v_b[1].tolist() == [1, 1, 1]
    assert causal_mask((1, 5), "hA").tolist() == [[1, 1, 0, 0, 0]]
    assert causal_mask((1, 5), "hB").tolist() == [[1, 1, 1, 0, 0]]


@pytest.mark.parametrize("arch", ["gated", "plain"])
@pytest.mark.parametrize("norm", PIXELCNN_NORMS)
def test_output_has_zero_gradient_wrt_current_and_future_pixels(arch, norm):
    model = make_model(norm, arch)
    if norm == "bn":
        model.eval()  # batch statistics mix positions; running statistics do not (see the next test)
    x = torch.randint(0, LEVELS, (8, 1, H, W))
    for i, j in [(0, 0), (3, 4), (7, 7), (5, 0)]:
        grad = input_gradient(model, x, i, j)
        assert grad[0].flatten()[i * W + j :].max() == 0, f"pixel ({i},{j}) sees its own or a future input"
        assert grad[1:].max() == 0, "output depends on other images of the batch"
        # summed over the batch so a unit that happens to be dead in one image does not hide the path
        grad = input_gradient(model, x, i, j, image=None)
        assert grad.flatten(1)[:, i * W + j :].max() == 0
        if j > 0:
            assert grad[:, i, j - 1].sum() > 0, "the left neighbour must be visible"
        if i > 0:
            assert grad[:, i - 1, j].sum() > 0, "the upper neighbour must be visible"


def test_batch_norm_in_train_mode_leaks_future_pixels_and_other_images():
    model = make_model("bn")
    grad = input_gradient(model, torch.randint(0, LEVELS, (3, 1, H, W)), 3, 4)
    assert grad[0].flatten()[3 * W + 4 :].max() > 0
    assert grad[1:].max() > 0


def test_gated_stack_has_no_blind_spot():
    model = make_model("none", "gated", n_layers=4)
    grad = input_gradient(model, torch.randint(0, LEVELS, (8, 1, H, W)), 4, 4, image=None).sum(0)
    # rows above within the vertical receptive field (4 layers x 1 column each side) and the left pixels
    assert (grad[1:4, 0:8] > 0).all()
    assert (grad[4, 0:4] > 0).all()


def test_masked_weight_norm_normalizes_over_unmasked_entries_only():
    torch.manual_seed(1)
    conv = apply_masked_weight_norm(MaskedConv2d(3, 4, 5, "A"))
    assert is_weight_normalized(conv)
    opt = torch.optim.Adam(conv.parameters(), lr=0.1)
    with torch.no_grad():
        wn_v(conv).normal_()  # also fills masked entries: the norm must ignore them
    for _ in range(3):
        w = conv.weight
        assert (w * (1 - conv.mask)).abs().max() == 0
        torch.testing.assert_close(w.flatten(1).norm(dim=1), wn_g(conv).flatten().abs())
        # flipping masked entries of v must not change the effective weight
        with torch.no_grad():
            v = wn_v(conv)
            saved = v.clone()
            v.add_((1 - conv.mask) * 10.0)
            torch.testing.assert_close(conv.weight, w)
            v.copy_(saved)
        loss = conv(torch.randn(2, 3, 6, 6)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        assert (wn_v(conv).grad * (1 - conv.mask)).abs().max() == 0
        opt.step()


def test_wn_data_init_gives_unit_variance_preactivations():
    model = make_model("wn")
    x = torch.randint(0, LEVELS, (64, 1, H, W))
    model.data_init_(x)
    out = model.blocks[0].vertical(model.embed(x))
    std = out.transpose(0, 1).flatten(1).std(1)
    # the vertical conv of row 0 only sees padding; the statistics are over all positions, so ~1
    torch.testing.assert_close(std, torch.ones_like(std), atol=0.05, rtol=0)


@pytest.mark.parametrize("norm", PIXELCNN_NORMS)
def test_untrained_model_on_uniform_data_is_about_log2_levels(norm):
    model = make_model(norm)
    x = torch.randint(0, LEVELS, (32, 1, H, W))
    bpd = model.bits_per_dim(x).mean().item()
    assert abs(bpd - math.log2(LEVELS)) < 0.25


@pytest.mark.parametrize("norm", PIXELCNN_NORMS)
def test_training_on_tiny_dataset_decreases_bits_per_dim(norm):
    model = make_model(norm)
    g = torch.Generator().manual_seed(0)
    # structured data: vertical stripes with a random phase, so the left pixel predicts the next one
    phase = torch.randint(0, 2, (16, 1, 1, 1), generator=g)
    x = ((torch.arange(W).view(1, 1, 1, W) + phase) % 2 * (LEVELS - 1)).expand(16, 1, H, W).contiguous()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = model.bits_per_dim(x).mean().item()
    for _ in range(40):
        loss = model.bits_per_dim(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    after = model.bits_per_dim(x).mean().item()
    assert after < before - 1.0


def test_log_prob_is_sum_of_per_pixel_log_softmax():
    model = make_model("pixel_ln")
    x = torch.randint(0, LEVELS, (2, 1, H, W))
    log_p = torch.log_softmax(model(x), dim=1).gather(1, x).sum((1, 2, 3))
    torch.testing.assert_close(model.log_prob(x), log_p)
    torch.testing.assert_close(model.bits_per_dim(x), -log_p / (math.log(2) * H * W))


def test_sample_shape_range_and_reproducibility():
    model = make_model("wn").eval()
    a = model.sample(3, generator=torch.Generator().manual_seed(5))
    b = model.sample(3, generator=torch.Generator().manual_seed(5))
    assert a.shape == (3, 1, H, W) and a.dtype == torch.long
    assert a.min() >= 0 and a.max() < LEVELS
    assert torch.equal(a, b)


def test_sample_follows_a_trained_model():
    model = make_model("none", hidden_channels=8)
    x = torch.zeros(8, 1, H, W, dtype=torch.long)  # all-black frames
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        model.bits_per_dim(x).mean().backward()
        opt.step()
    samples = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert (samples == 0).float().mean() > 0.9


def test_state_dict_round_trip_keeps_the_density():
    model = make_model("wn")
    clone = PixelCNN(levels=LEVELS, image_size=(H, W), hidden_channels=8, n_layers=3, norm="wn")
    clone.load_state_dict(model.state_dict())
    x = torch.randint(0, LEVELS, (2, 1, H, W))
    torch.testing.assert_close(clone.log_prob(x), model.log_prob(x))


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match=r"norm: must be one of none, wn, bn, pixel_ln, pixel_gn; got 'xn'"):
        PixelCNN(norm="xn")
    with pytest.raises(ValueError, match=r"arch.*gated, plain"):
        PixelCNN(arch="wide")
    with pytest.raises(ValueError, match="levels"):
        PixelCNN(levels=1)
    with pytest.raises(ValueError, match=r"output.*softmax, logistic_mixture"):
        PixelCNN(output="gaussian")
    with pytest.raises(ValueError, match="mask_type"):
        causal_mask((3, 3), "C")
    with pytest.raises(ValueError, match="odd"):
        causal_mask((2, 3), "A")
    model = make_model("none")
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(2, 3, H, W, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        model.log_prob(torch.zeros(2, 1, H, W))
    with pytest.raises(ValueError, match=r"\[0, 7\]"):
        model.log_prob(torch.full((2, 1, H, W), LEVELS, dtype=torch.long))
    with pytest.raises(ValueError, match="norm='wn'"):
        model.data_init_(torch.zeros(2, 1, H, W, dtype=torch.long))


def test_grey_encoder_downsamples_newest_frame_to_3_bits():
    enc = GreyFrameEncoder(size=42, bits=3)
    obs = np.zeros((2, 4, 84, 84), dtype=np.uint8)
    obs[:, -1, :42] = 255  # newest frame: top half white
    obs[:, 0] = 128  # older frames are ignored
    out = enc(obs)
    assert out.shape == (2, 1, 42, 42) and enc.levels == 8
    assert (out[:, :, :21] == 7).all() and (out[:, :, 21:] == 0).all()
    ramp = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(GreyFrameEncoder(size=16, bits=3)(ramp).flatten(), torch.arange(256) // 32)


def test_binary_encoder_packs_channels_losslessly():
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 2, size=(5, 4, 10, 10), dtype=np.uint8)
    enc = BinaryFrameEncoder(4, (10, 10), "bits")
    packed = enc(obs)
    assert enc.levels == 16 and packed.shape == (5, 1, 10, 10)
    unpacked = torch.stack([(packed[:, 0] >> c) & 1 for c in range(4)], dim=1)
    assert torch.equal(unpacked, torch.as_tensor(obs).long())
    collapsed = BinaryFrameEncoder(4, (10, 10), "argmax")(obs)
    assert collapsed.max() <= 4 and torch.equal(collapsed == 0, torch.as_tensor(obs).sum(1, keepdim=True) == 0)


def test_frame_encoder_choice_and_errors():
    assert isinstance(frame_encoder_for((4, 84, 84), 255), GreyFrameEncoder)
    assert isinstance(frame_encoder_for((4, 10, 10), 1), BinaryFrameEncoder)
    with pytest.raises(ValueError, match="high"):
        frame_encoder_for((4, 10, 10), 3)
    with pytest.raises(ValueError, match="argmax"):
        BinaryFrameEncoder(10, (10, 10), "bits")
    with pytest.raises(ValueError, match=r"mode.*bits, argmax"):
        BinaryFrameEncoder(4, (10, 10), "onehot")
    with pytest.raises(ValueError, match="uint8"):
        GreyFrameEncoder()(np.zeros((1, 4, 84, 84), dtype=np.float32))


@pytest.mark.parametrize(("kind", "rows"), [("pixel_ln", "ln"), ("pixel_gn", "gn"), ("bn", "bn")])
def test_pixel_norm_equals_the_registry_norm_applied_to_each_pixel(kind, rows):
    from rlnorm.norms import make_norm
    from rlnorm.pixelcnn.layers import PixelNorm

    torch.manual_seed(0)
    pixel = PixelNorm(kind, 16)
    with torch.no_grad():
        for p in pixel.parameters():
            p.uniform_(0.5, 1.5)
    reference = make_norm(rows, 16, spatial=False, **({"num_groups": 2} if rows == "gn" else {}))
    reference.load_state_dict(pixel.norm.state_dict())
    x = torch.randn(3, 16, 4, 5)
    rows = x.permute(0, 2, 3, 1).reshape(-1, 16)
    expected = reference(rows).reshape(3, 4, 5, 16).permute(0, 3, 1, 2)
    torch.testing.assert_close(pixel(x), expected)


def test_discretized_logistic_matches_bin_masses_and_sums_to_one():
    mean, log_scale = 0.3, -1.0
    params = torch.tensor([0.0, mean, log_scale]).view(1, 3, 1, 1)
    probs = discretized_logistic_log_probs(params, LEVELS)[0, :, 0, 0].exp()
    centres = torch.linspace(-1, 1, LEVELS)
    edges = torch.cat([torch.tensor([-math.inf]), (centres[:-1] + centres[1:]) / 2, torch.tensor([math.inf])])
    cdf = torch.sigmoid((edges - mean) / math.exp(log_scale))
    torch.testing.assert_close(probs, cdf[1:] - cdf[:-1])
    # a mixture, including sharp components far in a tail, stays normalized with finite gradients
    params = torch.randn(2, 9, 3, 3) * 3
    params[:, 6:] = -7.0
    params.requires_grad_()
    log_p = discretized_logistic_log_probs(params, 256)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(2, 3, 3))
    log_p.logsumexp(1).sum().backward()
    assert torch.isfinite(params.grad).all()


@pytest.mark.parametrize("norm", ["none", "wn", "pixel_ln"])
def test_logistic_mixture_head_is_causal_and_learns(norm):
    model = make_model(norm, output="logistic_mixture", n_mixtures=3)
    x = torch.randint(0, LEVELS, (4, 1, H, W))
    grad = input_gradient(model, x, 3, 4)
    assert grad[0].flatten()[3 * W + 4 :].max() == 0 and grad[1:].max() == 0
    data = torch.randint(2, 4, (16, 1, H, W))  # only two neighbouring levels: easy for a logistic
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = model.bits_per_dim(data).mean().item()
    for _ in range(40):
        opt.zero_grad()
        model.bits_per_dim(data).mean().backward()
        opt.step()
    assert model.bits_per_dim(data).mean().item() < before - 1.0
    assert model.sample(2).max() < LEVELS


@pytest.mark.parametrize(("old", "new"), [("ln", "pixel_ln"), ("gn", "pixel_gn")])
def test_former_norm_names_still_build_the_same_model_with_a_deprecation_warning(old, new):
    from rlnorm.pixelcnn.layers import PixelNorm, masked_conv

    with pytest.warns(DeprecationWarning, match=rf"norm: '{old}' is the former name of '{new}'.*write '{new}'"):
        legacy = make_model(old)
    assert legacy.norm == new
    current = make_model(new)
    assert legacy.state_dict().keys() == current.state_dict().keys()  # checkpoints saved under the old name load
    current.load_state_dict(legacy.state_dict())
    x = torch.randint(0, LEVELS, (2, 1, H, W))
    torch.testing.assert_close(current.log_prob(x), legacy.log_prob(x))
    with pytest.warns(DeprecationWarning):
        assert isinstance(masked_conv(4, 8, 3, "B", old)[1], PixelNorm)


def test_pixel_norm_refuses_a_norm_without_per_pixel_statistics():
    from rlnorm.pixelcnn.layers import PixelNorm

    with pytest.raises(ValueError, match=r"kind: must be one of bn, pixel_ln, pixel_gn; got 'wn'"):
        PixelNorm("wn", 8)
