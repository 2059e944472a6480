import numpy as np
import pytest
import torch

import dgm_lab
from dgm_lab import runtime


def test_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv("DGM_LAB_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dgm_lab.device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert dgm_lab.device().type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert dgm_lab.device() == torch.device("cpu")


def test_device_override_by_argument_and_environment(monkeypatch):
    # a machine that has a GPU: DGM_LAB_DEVICE=cpu must still give the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("DGM_LAB_DEVICE", "cpu")
    assert dgm_lab.device() == torch.device("cpu")
    monkeypatch.setenv("DGM_LAB_DEVICE", "cuda:1")
    assert dgm_lab.device() == torch.device("cuda", 1)
    assert dgm_lab.device("cpu") == torch.device("cpu")  # the argument wins
    monkeypatch.setenv("DGM_LAB_DEVICE", "")  # empty: automatic
    assert dgm_lab.device() == torch.device("cuda")


def test_device_rejects_unavailable_or_bad_names(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.delenv("DGM_LAB_DEVICE", raising=False)
    with pytest.raises(ValueError, match=r"'cuda' was requested \(by prefer\)"):
        runtime.device("cuda")
    with pytest.raises(ValueError, match="'mps' was requested"):
        runtime.device("mps")
    with pytest.raises(TypeError, match="device name"):
        runtime.device(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown device 'not-a-device' \\(from prefer\\)"):
        runtime.device("not-a-device")
    monkeypatch.setenv("DGM_LAB_DEVICE", "gpu")
    with pytest.raises(ValueError, match="unknown device 'gpu' .*DGM_LAB_DEVICE"):
        runtime.device()
    monkeypatch.setenv("DGM_LAB_DEVICE", "cuda")
    with pytest.raises(ValueError, match="requested \\(by the environment variable DGM_LAB_DEVICE"):
        runtime.device()


def test_seed_everything_repeats_every_generator_exactly():
    def draw():
        g = dgm_lab.seed_everything(123)
        return (torch.rand(5), np.random.rand(5), __import__("random").random(),
                torch.rand(3, generator=g))

    a, b = draw(), draw()
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    torch.testing.assert_close(a[3], b[3], rtol=0, atol=0)


def test_seed_everything_seeds_each_generator_like_its_own_seed_function():
    import random

    for seed in (0, 7, 2**40 + 3):
        g = dgm_lab.seed_everything(seed)
        ours = (torch.rand(3), np.random.rand(3), random.random(),
                torch.rand(3, generator=g))
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        oracle = (torch.rand(3), np.random.rand(3), random.random(),
                  torch.rand(3, generator=torch.Generator().manual_seed(seed)))
        torch.testing.assert_close(ours[0], oracle[0], rtol=0, atol=0)
        np.testing.assert_array_equal(ours[1], oracle[1])
        assert ours[2] == oracle[2]
        torch.testing.assert_close(ours[3], oracle[3], rtol=0, atol=0)


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (1.5, TypeError), ("3", TypeError),
                                        (True, TypeError)])
def test_seed_everything_rejects_bad_seeds(bad, error):
    with pytest.raises(error, match="seed"):
        dgm_lab.seed_everything(bad)
