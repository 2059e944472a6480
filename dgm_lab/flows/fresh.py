"""Training on fresh samples of a known density: infinite data for the 2-D toys.

The course scores every toy model on fixed points (``load_toy``: 2,000 train, 1,000
validation, 4,000 test). A flow trained on the 2,000 training points over and over learns
their particular positions too: its test NLL then mixes two shortfalls, *overfitting* (a finite
sample) and *capacity* (what the architecture cannot express). When the data come from a
density we can sample, a new batch every step removes the first: no point is ever seen twice,
so what is left of the gap to the true density is capacity and optimisation alone.
:class:`FreshSamples` is that data source; :func:`fresh_loader` wraps it in the
``DataLoader`` that :func:`dgm_lab.train.fit` takes as ``train_data``. Validation and test
stay on the fixed splits.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset

from dgm_lab._validation import check_int
from dgm_lab.data import TOY_SPLITS
from dgm_lab.model import DensityModel

__all__ = ["FreshSamples", "fresh_loader"]


class FreshSamples(IterableDataset):
    """An "epoch" of ``batches`` batches of ``batch_size`` new draws from ``density`` each.

    Every pass draws new points from the generator's running state, so no two batches (in
    one epoch or the next) repeat: training on it is stochastic gradient descent on the
    expected NLL :math:`-E_{x \\sim p}[\\log q(x)]` itself, not on a finite sample's average.
    The "epoch" only sets how often :func:`~dgm_lab.train.fit` validates.

    Arguments:
        density: a fitted :class:`~dgm_lab.model.DensityModel` to sample (e.g.
            ``toy_density("rings")``).
        batch_size: points per batch (>= 1).
        batches: batches per pass (>= 1), the ``len`` of the dataset.
        seed: seeds the dataset's own ``torch.Generator``: the same seed gives the same
            stream of batches, whatever else draws random numbers. Not a seed of the fixed
            splits of :func:`~dgm_lab.data.load_toy` (1, 2, 3): on some toys that stream
            replays points of the split (in batches of 512 from seed 1, 190 of the eight
            Gaussians' 2,000 training points).

    Returns:
        iterating yields ``batches`` tensors ``[batch_size, *density.event_shape]``.

    References:
        Papamakarios et al. (2017), Masked Autoregressive Flow for Density Estimation,
        sec. 4 (the KL divergence from the data to the model that maximum likelihood
        minimises); Robbins and Monro (1951), A Stochastic Approximation Method.

    Example:
        >>> data = FreshSamples(toy_density("rings"), batch_size=512, batches=20, seed=0)
        >>> fit(flow, negative_log_likelihood, fresh_loader(data), epochs=100,
        ...     val_data=load_toy("rings", "val"), patience=20)
    """

    def __init__(self, density: DensityModel, batch_size: int, batches: int, *,
                 seed: int = 0) -> None:
        if not isinstance(density, DensityModel):
            raise TypeError(f"density must be a dgm_lab DensityModel, got "
                            f"{type(density).__name__}")
        self.density = density
        self.batch_size = check_int(batch_size, "batch_size")
        self.batches = check_int(batches, "batches")
        seed = check_int(seed, "seed", minimum=0)
        split = next((name for name, (_, s) in TOY_SPLITS.items() if s == seed), None)
        if split is not None:
            raise ValueError(f"seed must not be {seed}: it draws the fixed {split!r} split of "
                             "load_toy, which a fresh stream would replay; use another seed")
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[torch.Tensor]:
        for _ in range(self.batches):
            # no_grad around the draw only: held across a yield it would switch autograd
            # off in the training loop too
            with torch.no_grad():
                x = self.density.sample(self.batch_size, generator=self.generator)
            yield x


def fresh_loader(data: FreshSamples) -> DataLoader:
    """The ``DataLoader`` that hands :func:`~dgm_lab.train.fit` the batches of ``data`` as
    they are (``batch_size=None``: each item already is a batch; no shuffling, no workers).

    Arguments:
        data: a :class:`FreshSamples`.

    Returns:
        a ``DataLoader`` of ``len(data)`` batches per pass.

    Example:
        >>> len(fresh_loader(FreshSamples(toy_density("two_moons"), 256, 10)))
        10
    """
    if not isinstance(data, FreshSamples):
        raise TypeError(f"data must be a FreshSamples, got {type(data).__name__}")
    return DataLoader(data, batch_size=None)
