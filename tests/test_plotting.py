import numpy as np
import pytest
import torch

from dgm_lab.plotting import density_heatmap, image_grid, training_curves


def test_image_grid_tiles_images_in_order():
    images = torch.zeros(5, 8, 8)
    for i in range(5):
        images[i] = i / 4
    ax = image_grid(images.reshape(5, 64), nrow=3, pad=1)
    canvas = ax.get_images()[0].get_array()
    assert canvas.shape == (2 * 9 + 1, 3 * 9 + 1)
    # image 4 (value 1.0) is second in the second row
    assert canvas[1 + 9 + 3, 1 + 9 + 3] == pytest.approx(1.0)
    assert canvas[1 + 3, 1 + 2 * 9 + 3] == pytest.approx(0.5)


def test_image_grid_rejects_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        image_grid(torch.rand(4, 10))
    with pytest.raises(ValueError, match="images must be"):
        image_grid(torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="NaN"):
        image_grid(torch.full((2, 4), float("nan")))


def test_density_heatmap_shows_the_density_on_the_grid():
    # standard normal: the brightest pixel sits at the origin and the peak is 1/(2 pi)
    def log_prob(x):
        return -0.5 * (x**2).sum(1) - np.log(2 * np.pi)

    ax = density_heatmap(log_prob, bounds=(-3, 3, -3, 3), resolution=61,
                         samples=torch.randn(50, 2))
    values = ax.get_images()[0].get_array()
    assert values.shape == (61, 61)
    assert np.unravel_index(values.argmax(), values.shape) == (30, 30)
    assert values.max() == pytest.approx(1 / (2 * np.pi), rel=1e-5)


def test_density_heatmap_rejects_bad_bounds():
    with pytest.raises(ValueError, match="bounds"):
        density_heatmap(lambda x: x.sum(1), bounds=(1, -1, 0, 1))


def test_training_curves_plots_every_curve():
    ax = training_curves({"train": [3, 2, 1], "validation": [3.5, 2.5, 2.0]})
    assert [line.get_label() for line in ax.get_lines()] == ["train", "validation"]
    with pytest.raises(ValueError, match="empty"):
        training_curves({})
