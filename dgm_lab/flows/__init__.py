"""Normalizing flows (chapter 9): exact likelihoods from invertible maps.

``base``: transforms that return their log-determinant, composition, the :class:`Flow`
density and simple layers. ``coupling``: NICE and RealNVP. ``glow``: actnorm, invertible 1x1
convolutions, Glow. ``autoregressive``: MAF and IAF, built on MADE (chapter 6), and MAF with
splines. ``spline``: rational-quadratic spline couplings (neural spline flows).
``fresh``: training on new draws of a known density.
``dequantization``: flows on integer images and an honest bound on their likelihood.
"""

from dgm_lab.flows.autoregressive import (
    MaskedAffineAutoregressive,
    MaskedSplineAutoregressive,
    autoregressive_spline_flow,
    iaf,
    maf,
)
from dgm_lab.flows.base import (
    Chain,
    ElementwiseAffine,
    Flow,
    Inverse,
    Logit,
    Permutation,
    Reshape,
    Squeeze,
    Transform,
    negative_log_likelihood,
    standard_normal_log_prob,
)
from dgm_lab.flows.coupling import (
    AdditiveCoupling,
    AffineCoupling,
    ConvNet,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    mlp,
    nice,
    real_nvp,
)
from dgm_lab.flows.dequantization import DequantizedFlow, VariationalDequantizer, uniform_dequantize
from dgm_lab.flows.glow import ActNorm, InvertibleConv1x1, actnorm_parameters, glow, real_nvp_image
from dgm_lab.flows.spline import SplineCoupling, neural_spline_flow, rational_quadratic_spline

__all__ = ["ActNorm", "AdditiveCoupling", "AffineCoupling", "Chain", "ConvNet",
           "DequantizedFlow", "ElementwiseAffine", "Flow", "Inverse", "InvertibleConv1x1",
           "Logit", "MaskedAffineAutoregressive", "MaskedSplineAutoregressive", "Permutation",
           "Reshape", "SplineCoupling", "Squeeze",
           "Transform", "VariationalDequantizer", "actnorm_parameters", "alternating_mask",
           "autoregressive_spline_flow",
           "channel_mask", "checkerboard_mask", "glow", "iaf", "maf", "mlp",
           "negative_log_likelihood", "neural_spline_flow", "nice", "rational_quadratic_spline",
           "real_nvp", "real_nvp_image",
           "standard_normal_log_prob", "uniform_dequantize"]
