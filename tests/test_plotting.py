import numpy as np
import pytest
import torch

from dgm_lab.data import toy_density
from dgm_lab.model import DensityModel
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
    assert canvas[0, 0] == canvas[9, 5] == 0.0  # the lines between images


def test_image_grid_pads_with_the_value_asked_for():
    """Signed filters on a diverging map want neutral lines (0.5), not the end of the map."""
    canvas = image_grid(torch.ones(2, 4, 4), nrow=2, pad_value=0.5).get_images()[0].get_array()
    assert canvas[0, 0] == canvas[2, 5] == 0.5 and canvas[2, 2] == 1.0
    with pytest.raises(ValueError, match="pad_value"):
        image_grid(torch.ones(2, 4, 4), pad_value=2.0)


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


def test_density_heatmap_of_a_model_matches_its_log_prob_on_the_grid():
    moons = toy_density("two_moons")
    ax = density_heatmap(moons.log_prob, bounds=(-2, 2, -1.5, 1.5), resolution=5,
                         log_scale=True)
    xs, ys = np.linspace(-2, 2, 5), np.linspace(-1.5, 1.5, 5)
    grid = torch.tensor([[x, y] for y in ys for x in xs], dtype=torch.float32)  # row = y
    np.testing.assert_allclose(ax.get_images()[0].get_array(),
                               moons.log_prob(grid).reshape(5, 5).numpy(), rtol=1e-6)


class _Elsewhere(DensityModel):
    """A model that claims to live on the 'meta' device and records what it is given."""

    seen: list = []

    @property
    def device(self):
        return torch.device("meta")

    def log_prob(self, x):
        self.seen.append(x.device)
        return torch.zeros(len(x))


def test_density_heatmap_builds_its_grid_on_the_models_device():
    model = _Elsewhere()
    density_heatmap(model.log_prob, resolution=3)
    assert model.seen == [torch.device("meta")]
    seen = []

    def plain(x):
        seen.append(x.device)
        return torch.zeros(len(x))

    density_heatmap(plain, resolution=3)
    density_heatmap(plain, resolution=3, device="meta")
    assert seen == [torch.device("cpu"), torch.device("meta")]


def test_density_heatmap_rejects_bad_arguments():
    with pytest.raises(ValueError, match="bounds"):
        density_heatmap(lambda x: x.sum(1), bounds=(1, -1, 0, 1))
    with pytest.raises(TypeError, match="bounds must be four numbers"):
        density_heatmap(lambda x: x.sum(1), bounds=(0, 1, 0))
    with pytest.raises(TypeError, match="log_prob must be callable"):
        density_heatmap(torch.zeros(3))
    with pytest.raises(ValueError, match="log_prob must map"):
        density_heatmap(lambda x: x, resolution=4)
    with pytest.raises(ValueError, match="resolution must be >= 2"):
        density_heatmap(lambda x: x.sum(1), resolution=1)


def test_training_curves_plots_every_curve():
    ax = training_curves({"train": [3, 2, 1], "validation": [3.5, 2.5, 2.0]})
    assert [line.get_label() for line in ax.get_lines()] == ["train", "validation"]
    with pytest.raises(ValueError, match="empty"):
        training_curves({})
