"""The math of World Models: MDN likelihood, VAE KL, temperature, CMA-ES, batched dream rollouts."""

import math

import cma
import numpy as np
import pytest
import torch

from lightning_dreamer.losses.world_models import mdn_nll, vae_kl, vae_loss
from lightning_dreamer.nets.controller import LinearController, dream_rollouts
from lightning_dreamer.nets.mdnrnn import MDNRNN


def test_mdn_nll_equals_direct_mixture_density_on_a_hand_example():
    # One latent dim, two components: weights 0.25 / 0.75, N(0, 1) and N(2, 0.5^2), target 1.
    logpi = torch.log(torch.tensor([[0.25, 0.75]]))
    mean = torch.tensor([[0.0, 2.0]])
    logstd = torch.log(torch.tensor([[1.0, 0.5]]))
    density = 0.25 * math.exp(-0.5) / math.sqrt(2 * math.pi) + 0.75 * math.exp(-0.5 * 4) / (0.5 * math.sqrt(2 * math.pi))
    torch.testing.assert_close(mdn_nll(logpi, mean, logstd, torch.tensor([1.0])), torch.tensor([-math.log(density)]))


def test_mdn_nll_is_finite_far_out():
    logpi = torch.log_softmax(torch.randn(4, 3, 5), -1)
    nll = mdn_nll(logpi, torch.zeros(4, 3, 5), torch.full((4, 3, 5), -3.0), torch.full((4, 3), 1e4))
    assert torch.isfinite(nll).all() and (nll > 1e6).all()


def test_vae_kl_matches_closed_form_and_tolerance():
    mean, logvar = torch.randn(6, 32), torch.randn(6, 32)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(32), torch.ones(32))
    torch.testing.assert_close(vae_kl(mean, logvar), torch.distributions.kl_divergence(q, p).sum(-1))
    _, kl = vae_loss(torch.zeros(6, 3, 4, 4), torch.zeros(6, 3, 4, 4), torch.zeros(6, 32), torch.zeros(6, 32), 0.5)
    assert torch.equal(kl, torch.full((6,), 16.0))  # KL 0 is lifted to the tolerance 0.5 * 32


def test_temperature_changes_sample_spread():
    torch.manual_seed(0)
    logpi = torch.log(torch.tensor([0.5, 0.5])).expand(20_000, 1, 2)
    mean = torch.tensor([-1.0, 1.0]).expand(20_000, 1, 2)
    logstd = torch.full((20_000, 1, 2), math.log(0.1))
    spread = {}
    for tau in (0.01, 1.0, 4.0):
        z = MDNRNN.sample(logpi, mean, logstd, tau, torch.rand(20_000, 1), torch.randn(20_000, 1))
        spread[tau] = z.std().item()
        within = ((z + 1).abs() < 0.1 * math.sqrt(tau) * 4) | ((z - 1).abs() < 0.1 * math.sqrt(tau) * 4)
        assert within.float().mean() > 0.99  # samples stay around the components, width sqrt(tau) * std
    assert spread[0.01] < spread[1.0] < spread[4.0]
    # Low temperature sharpens the mixture weights towards the most likely component.
    skewed = torch.log(torch.tensor([0.3, 0.7])).expand(20_000, 1, 2)
    cold = MDNRNN.sample(skewed, mean, logstd, 0.05, torch.rand(20_000, 1), torch.randn(20_000, 1))
    warm = MDNRNN.sample(skewed, mean, logstd, 1.0, torch.rand(20_000, 1), torch.randn(20_000, 1))
    assert (cold > 0).float().mean() > 0.99 and abs((warm > 0).float().mean() - 0.7) < 0.02


def test_cma_es_converges_on_shifted_sphere_in_controller_dimension():
    controller = LinearController(32 + 256, 1)  # the cartpole controller's size: 289 parameters
    dim = controller.num_params
    target = np.random.default_rng(0).normal(0, 0.5, dim)
    es = cma.CMAEvolutionStrategy(np.zeros(dim), 0.5, {"popsize": 32, "seed": 1, "verbose": -9})
    start = float(np.sum(target ** 2))
    for _ in range(260):
        candidates = es.ask()
        es.tell(candidates, [float(np.sum((np.asarray(x) - target) ** 2)) for x in candidates])
    assert es.result.fbest < 0.01 * start  # measured: 0.55% after 250 generations
    assert np.sum((es.result.xfavorite - target) ** 2) < 0.01 * start


@pytest.mark.parametrize("discrete", [False, True])
def test_batched_dream_rollouts_equal_separate_rollouts(discrete):
    torch.manual_seed(0)
    m = MDNRNN(z_dim=4, action_dim=3, hidden=16, mixtures=5)
    with torch.no_grad():
        m.done.bias.fill_(-3.0)  # episodes end now and then
    controller = LinearController(4 + 16, 3, discrete)
    pop, reps = 5, 3
    params = torch.randn(pop, controller.num_params)
    z0 = torch.randn(pop, reps, 4)
    seeds = torch.arange(pop * reps).reshape(pop, reps) + 100
    batched = dream_rollouts(m, controller, params, z0, seeds, horizon=30, tau=1.2, chunk=7)
    separate = torch.stack([dream_rollouts(m, controller, params[i : i + 1], z0[i : i + 1], seeds[i : i + 1], horizon=30, tau=1.2, chunk=7)[0]
                            for i in range(pop)])
    torch.testing.assert_close(batched, separate, rtol=1e-5, atol=1e-5)
    # and the seeds matter
    other = dream_rollouts(m, controller, params, z0, seeds + 1000, horizon=30, tau=1.2, chunk=7)
    assert not torch.allclose(batched, other)


def test_dream_rollouts_run_in_float32_under_bf16_autocast():
    # The Trainer's bf16-mixed wraps the controller stage in autocast; the dream must not follow it.
    torch.manual_seed(0)
    m = MDNRNN(z_dim=4, action_dim=2, hidden=16, mixtures=3)
    controller = LinearController(4 + 16, 2)
    params, z0 = torch.randn(3, controller.num_params), torch.randn(3, 2, 4).bfloat16()  # V's z under autocast
    seeds = torch.arange(6).reshape(3, 2)
    plain = dream_rollouts(m, controller, params, z0.float(), seeds, horizon=40, use_done=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = dream_rollouts(m, controller, params, z0, seeds, horizon=40, use_done=False)
        assert m.mdn(torch.zeros(1, 16)).dtype == torch.bfloat16  # autocast is on out here
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, plain, rtol=0, atol=0)
