"""rlnorm: batch-independent normalization (weight norm, layer norm, ...) for deep RL and recurrent models.

The library is PyTorch-only; the Stable-Baselines3 integration lives in the ``agents`` package.
"""

from rlnorm.diagnostics import batch_dependence, layer_statistics, train_eval_gap
from rlnorm.init import init_weights_, kaiming_normal_, kaiming_uniform_, orthogonal_, xavier_normal_, xavier_uniform_
from rlnorm.layers import ACTIVATIONS, LAYER_NORMS, check_norm, conv2d, linear
from rlnorm.moved import install_moved_modules
from rlnorm.norms import NORM_KINDS, make_norm
from rlnorm.registry import NORMS, NormSpec, norm_names
from rlnorm.rnn import LNLSTM, WNLSTM, LNLSTMCell, WNLSTMCell
from rlnorm.validation import ConfigError
from rlnorm.weight_norm import (
    MeanOnlyBatchNorm,
    apply_weight_norm,
    data_dependent_init_,
    enable_weight_cache,
    is_weight_normalized,
)

__version__ = "0.2.0"

# where the modules of the 0.1 layout went (CHANGELOG.md); the old paths import with a DeprecationWarning
install_moved_modules(
    {
        "rlnorm.pixelcnn_layers": ("rlnorm.pixelcnn.layers",),
        "rlnorm.pixelcnn_logistic": ("rlnorm.pixelcnn.logistic",),
        "rlnorm.pixelcnn_frames": ("rlnorm.pixelcnn.frames",),
        "rlnorm.rnn_ln_kernel": ("rlnorm.rnn.ln_kernel",),
    }
)

__all__ = [
    "ACTIVATIONS",
    "LAYER_NORMS",
    "LNLSTM",
    "NORMS",
    "NORM_KINDS",
    "WNLSTM",
    "ConfigError",
    "LNLSTMCell",
    "MeanOnlyBatchNorm",
    "NormSpec",
    "WNLSTMCell",
    "apply_weight_norm",
    "batch_dependence",
    "check_norm",
    "conv2d",
    "data_dependent_init_",
    "enable_weight_cache",
    "init_weights_",
    "is_weight_normalized",
    "kaiming_normal_",
    "kaiming_uniform_",
    "layer_statistics",
    "linear",
    "make_norm",
    "norm_names",
    "orthogonal_",
    "train_eval_gap",
    "xavier_normal_",
    "xavier_uniform_",
]
