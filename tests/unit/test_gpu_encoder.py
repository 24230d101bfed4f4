"""The encoder's GPU path (`device: auto` picks CUDA where torch sees a GPU).

The CPU path is the default everywhere CI runs; these tests check the choice everywhere and
the GPU vectors wherever a GPU is present (skipped cleanly otherwise).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from longtail import content

MODEL = "all-MiniLM-L6-v2"
TEXTS = ["Ceramic blue teapot 1L", "Stainless steel electric kettle", "Cotton garden gloves"]


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.fixture(scope="module", autouse=True)
def offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def test_auto_picks_cuda_exactly_where_torch_sees_a_gpu() -> None:
    assert content.pick_device("auto") == ("cuda" if _cuda() else "cpu")
    assert content.pick_device("cpu") == "cpu"
    assert content.pick_device("cuda:1") == "cuda:1"


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="no GPU visible to torch: the CPU path is tested instead")
def test_gpu_vectors_match_the_cpu_ones() -> None:
    cpu = content.embed(TEXTS, MODEL, device="cpu")
    gpu = content.embed(TEXTS, MODEL, device="cuda")
    assert gpu.shape == cpu.shape == (3, 384) and gpu.dtype == np.float32
    assert np.allclose(np.linalg.norm(gpu, axis=1), 1.0, atol=1e-5)
    # Same model, other kernels: the same directions to float tolerance, not the same bits.
    assert (np.sum(gpu * cpu, axis=1) > 0.999).all()
    assert gpu[0] @ gpu[1] > gpu[0] @ gpu[2]
    # Run twice on the GPU: the same vectors to float tolerance.
    assert np.allclose(gpu, content.embed(TEXTS, MODEL, device="cuda"), atol=1e-5)
