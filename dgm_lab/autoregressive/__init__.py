"""Autoregressive models (chapter 6): the chain rule of probability, one conditional at a time.

``made``: masked layers and the MADE network, shared with the autoregressive flows of
chapter 9.
"""

from dgm_lab.autoregressive.made import MADE, MaskedLinear, made_degrees, made_masks

__all__ = ["MADE", "MaskedLinear", "made_degrees", "made_masks"]
