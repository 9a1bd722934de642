"""PixelCNN density models with the project's norms (van den Oord et al. 2016; Ostrovski et al. 2017).

- :mod:`rlnorm.pixelcnn.model`: :class:`PixelCNN` (gated or plain, softmax or discretized-logistic output).
- :mod:`rlnorm.pixelcnn.layers`: causal masks, masked convolutions, masked weight norm, per-pixel norms.
- :mod:`rlnorm.pixelcnn.logistic`: the discretized logistic mixture likelihood.
- :mod:`rlnorm.pixelcnn.frames`: turning agent observations into the model's integer images.
- :mod:`rlnorm.pixelcnn.causality`: measuring that a model is causal (and that batch norm in train mode is not).
"""

from rlnorm.pixelcnn.model import ARCHS, LOGITS_INIT_SCALE, OUTPUTS, GatedBlock, PixelCNN

__all__ = ["ARCHS", "LOGITS_INIT_SCALE", "OUTPUTS", "GatedBlock", "PixelCNN"]
