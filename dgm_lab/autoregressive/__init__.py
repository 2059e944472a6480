"""Autoregressive models (chapter 6): the chain rule of probability, one conditional at a time.

``base``: the shared :class:`AutoregressiveModel` (exact parallel likelihood, sequential
sampling). ``fvsbn``: one logistic regression per coordinate. ``nade``: NADE and its O(DH)
recursion, the order-agnostic DeepNADE, real-valued RNADE. ``made``: masked layers and the
MADE network, shared with the autoregressive flows of chapter 9; ``made_density``: MADE as a
density with mask ensembles, and structured MADE. ``pixelcnn``: masked convolutions, PixelCNN
and the gated PixelCNN. ``wavenet``: causal dilated convolutions and cached generation.
"""

from dgm_lab.autoregressive.base import AutoregressiveModel, conditional_log_probs, draw_levels
from dgm_lab.autoregressive.fvsbn import FVSBN, fvsbn_log_prob
from dgm_lab.autoregressive.made import MADE, MaskedLinear, made_degrees, made_masks
from dgm_lab.autoregressive.made_density import (
    MADEDensity,
    looking_back_blankets,
    structured_made_masks,
)
from dgm_lab.autoregressive.nade import NADE, RNADE, DeepNADE, nade_log_prob
from dgm_lab.autoregressive.pixelcnn import (
    GatedPixelCNN,
    MaskedConv2d,
    PixelCNN,
    horizontal_mask,
    pixelcnn_mask,
    vertical_mask,
)
from dgm_lab.autoregressive.wavenet import (
    CausalConv1d,
    WaveNet,
    causal_conv1d,
    receptive_field,
    sine_waves,
)

__all__ = ["FVSBN", "MADE", "NADE", "RNADE", "AutoregressiveModel", "CausalConv1d", "DeepNADE",
           "GatedPixelCNN", "MADEDensity", "MaskedConv2d", "MaskedLinear", "PixelCNN", "WaveNet",
           "causal_conv1d", "conditional_log_probs", "draw_levels", "fvsbn_log_prob",
           "horizontal_mask", "looking_back_blankets", "made_degrees", "made_masks",
           "nade_log_prob", "pixelcnn_mask", "receptive_field", "sine_waves",
           "structured_made_masks", "vertical_mask"]
