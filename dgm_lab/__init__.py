"""dgm_lab: reference implementations for the Deep Generative Models course.

One module per chapter family (``naive_bayes``, ``density``, ``pca`` for linear latent
variable models, ``energy`` for the Boltzmann machines of chapter 4, ``autoencoders``,
``autoregressive`` (chapter 6), ``variational`` and ``vae`` (chapter 7), ``gan`` (chapter 8),
``flows`` (chapter 9)), plus a few shared
pieces: ``model`` (:class:`DensityModel`, the interface every density model follows),
``data`` (embedded datasets, no downloads), ``train`` (the one training loop), ``results``
(results files and checkpoints), ``plotting``, ``runtime`` (device and seeding) and
``grading`` (sandboxed autograding of the labs).
"""

from dgm_lab.model import DensityModel
from dgm_lab.runtime import device, seed_everything

__version__ = "0.1.0"
__all__ = ["DensityModel", "device", "seed_everything", "__version__"]
