import pytest
import torch

from quantlab_assets.compute.torch_runtime.device import choose_device, seed_everything


def test_cpu_when_cuda_is_not_allowed_is_fp32():
    choice = choose_device(allow_cuda=False)
    assert choice.device == torch.device("cpu")
    assert choice.precision == "fp32"
    assert choice.autocast_dtype is None
    assert choice.lightning_accelerator == "cpu" and choice.lightning_precision == "32-true"
    assert "not allowed" in choice.reason


def test_bf16_on_cpu_is_refused_not_silently_downgraded():
    with pytest.raises(ValueError, match="bf16"):
        choose_device(allow_cuda=False, precision="bf16")


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="fp16"):
        choose_device(precision="fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_no_cuda_visible_falls_back_to_cpu():
    choice = choose_device(allow_cuda=True)
    assert not choice.is_cuda and "no cuda" in choice.reason


def test_seed_everything_repeats_draws():
    seed_everything(7)
    first = torch.randn(4)
    seed_everything(7)
    assert torch.equal(first, torch.randn(4))
