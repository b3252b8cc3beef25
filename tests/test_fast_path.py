"""The fast path (issue #15): compiled update passes, prefetched replay batches, run.compile.

Compiled passes must give the eager passes' losses and gradients on a fixed batch. Random draws
inside a compiled graph come from inductor's own generator unless ``fallback_random`` is set;
with it set, both paths draw the same numbers and the results agree to float rounding.
"""

import threading

import pytest
import torch
from tensordict import TensorDict

from conftest import ROOT, fake_batch, make_agent
from lightning_dreamer.data import Replay, ReplayBatches
from lightning_dreamer.hardware import auto_compile


def update_numbers(agent, batch, seed: int):
    """Losses and the gradients of the model and actor losses of one update's passes."""
    torch.manual_seed(seed)
    post, model_loss, logs = agent.passes["model"](batch)
    agent.zero_grad()
    model_loss.backward()
    model_grads = {n: p.grad.clone() for n, p in agent.named_parameters() if p.grad is not None}
    behaviour, metrics = agent.behaviour_losses(post, batch["is_terminal"])
    agent.zero_grad()
    behaviour["actor"].backward()
    actor_grads = {n: p.grad.clone() for n, p in agent.named_parameters() if p.grad is not None}
    losses = {"model": model_loss.detach(), **{k: v.detach() for k, v in behaviour.items()},
              **{k: v.detach() for k, v in logs.items()}, **{k: v.detach() for k, v in metrics.items()}}
    return losses, model_grads, actor_grads


def assert_same(eager, compiled, rtol: float):
    for a, b in zip(eager, compiled):
        assert set(a) == set(b)
        for name in a:
            scale = a[name].abs().max().item() + 1e-6
            assert (a[name] - b[name]).abs().max().item() <= rtol * scale, name


def check_compiled_matches_eager(algo: str, rtol: float, backend: str = "inductor"):
    import torch._dynamo
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    agent = make_agent(algo, "model.horizon=4")
    batch = fake_batch(agent, B=3, T=5)
    eager = update_numbers(agent, batch, seed=1)
    torch._dynamo.utils.counters.clear()
    agent.compile_passes("default", backend=backend)
    old = inductor_config.fallback_random
    inductor_config.fallback_random = True
    try:
        compiled = update_numbers(agent, batch, seed=1)
    finally:
        inductor_config.fallback_random = old
    assert not torch._dynamo.utils.counters["graph_break"], dict(torch._dynamo.utils.counters["graph_break"])
    assert_same(eager, compiled, rtol)
    agent.compile_passes(None)
    assert agent.passes["model"] == agent.model_pass
    torch._dynamo.reset()


@pytest.mark.parametrize("algo", ["dreamer_v2", "dreamer_v1"])
def test_captured_passes_match_eager(algo):
    """Dynamo + AOT autograd capture each pass whole (no graph break) and changes no number."""
    check_compiled_matches_eager(algo, rtol=1e-6, backend="aot_eager")


@pytest.mark.slow
def test_inductor_compiled_passes_match_eager():
    """The code inductor generates (what run.compile uses) gives the eager losses and gradients."""
    check_compiled_matches_eager("dreamer_v2", rtol=1e-4)


def test_auto_compile_choice():
    assert auto_compile("cuda")[0] == "reduce-overhead"
    assert auto_compile("cpu")[0] == "eager"


def test_free_nats_has_no_python_branch_on_a_tensor():
    from lightning_dreamer.losses import free_nats

    small = torch.full((4,), 0.5, requires_grad=True)
    out = free_nats(small, 1.0)
    out.sum().backward()
    assert torch.equal(out, torch.ones(4)) and torch.equal(small.grad, torch.zeros(4))
    big = torch.full((4,), 2.0, requires_grad=True)
    out = free_nats(big, 1.0)
    out.sum().backward()
    assert torch.equal(out, big.detach()) and torch.equal(big.grad, torch.ones(4))


def _replay(steps: int) -> Replay:
    replay = Replay(200, batch_size=2, seq_len=4)
    for i in range(steps):
        replay.add(_step(i))
    return replay


def _step(i: int) -> TensorDict:
    return TensorDict({"state": torch.full((3,), float(i)), "action": torch.zeros(1), "reward": torch.tensor(0.0),
                       "is_first": torch.tensor(i == 0), "is_terminal": torch.tensor(False),
                       "episode": torch.tensor(0)}, batch_size=[])


def test_prefetched_batches_while_the_collector_writes():
    replay = _replay(20)
    batches = iter(ReplayBatches(replay.sample, prefetch=2))
    writer_done = threading.Event()

    def write():
        for i in range(20, 120):
            replay.add(_step(i))
        writer_done.set()

    thread = threading.Thread(target=write)
    thread.start()
    for _ in range(30):
        batch = next(batches)
        assert batch["state"].shape == (2, 4, 3)
        # each row is 4 consecutive steps of the one episode: no torn read under the writer
        assert torch.equal(batch["state"][:, 1:, 0] - batch["state"][:, :-1, 0], torch.ones(2, 3))
    thread.join()
    assert writer_done.is_set() and len(replay) == 120
    assert max(next(batches)["state"].max().item() for _ in range(20)) > 19  # new steps reach the batches


def test_prefetch_thread_errors_reach_the_consumer():
    def broken():
        raise RuntimeError("storage gone")

    with pytest.raises(RuntimeError, match="storage gone"):
        next(iter(ReplayBatches(broken, prefetch=2)))


@pytest.mark.slow
def test_fit_with_prefetch_counts_exactly(tmp_path):
    """A run whose batches come from the prefetching thread counts steps and updates exactly."""
    from lightning_dreamer.__main__ import main

    states = {}
    for prefetch in (0, 2):
        run = tmp_path / f"run{prefetch}"
        args = ["fit", "--config", f"{ROOT}/configs/tiny_point.yaml", f"run.dir={run}", "run.total_env_steps=120",
                "run.eval_every=0", f"replay.prefetch={prefetch}", "run.threads=1", "--trainer.enable_progress_bar", "false"]
        assert main(args) == 0
        states[prefetch] = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["lightning_dreamer"]
    for key in ("policy_steps", "updates", "replay_steps", "episodes"):
        assert states[2][key] == states[0][key], key
    assert states[2]["policy_steps"] == 120


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: CUDA graphs")
def test_cuda_graph_update_trains(tmp_path):
    from lightning_dreamer.__main__ import main

    run = tmp_path / "run"
    args = ["fit", "--config", f"{ROOT}/configs/tiny_point.yaml", f"run.dir={run}", "run.total_env_steps=120",
            "run.eval_every=0", "run.compile=reduce-overhead", "--trainer.accelerator", "gpu",
            "--trainer.enable_progress_bar", "false"]
    assert main(args) == 0
    rows = (run / "logs" / "csv" / "metrics.csv").read_text().splitlines()
    assert len(rows) > 1
