"""dgm_lab: reference implementations for the Deep Generative Models course.

One module per chapter family (``naive_bayes``, ``density``, ``pca`` for linear latent
variable models, ``energy`` for the Boltzmann machines of chapter 4, ``autoencoders``,
``gan`` for chapter 8's generative adversarial networks, ...), plus a few shared
pieces: ``model`` (:class:`DensityModel`, the interface every density model follows),
``data`` (embedded datasets, no downloads), ``train`` (the one training loop), ``results``
(results files and checkpoints), ``plotting``, ``runtime`` (device and seeding) and
``grading`` (sandboxed autograding of the labs).
Chapters 7 and 12: ``variational`` (KL, gradient estimators, mean-field VI, KL fits), ``vae``.
"""

from dgm_lab.model import DensityModel
from dgm_lab.runtime import device, seed_everything

__version__ = "0.1.0"
__all__ = ["DensityModel", "device", "seed_everything", "__version__"]
