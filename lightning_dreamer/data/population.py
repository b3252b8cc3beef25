"""Real-environment episodes of a whole population, for evolution strategies (World Models' C).

``P x R`` episodes (each of ``P`` candidates plays ``R`` episodes) are dealt to ``workers``
environments stepped together (a TorchRL batched env, e.g. ``envs.make_batched_env``): whenever a
worker's episode ends it takes the next episode in the queue. Every step batches all workers
through one policy call, each worker acting with its own candidate.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# policy(pixels (W, C, H, W'), candidate index per worker (W,), state) -> (env actions (W, ...), state)
PopulationPolicy = Callable[[torch.Tensor, torch.Tensor, object], tuple[torch.Tensor, object]]


def play_population(env, workers: int, candidates: int, rollouts: int, policy: PopulationPolicy, state,
                    reset_worker: Callable[[object, int], None]) -> tuple[torch.Tensor, int]:
    """(return of each candidate's episodes ``(P, R)``, agent steps taken). ``reset_worker(state, w)``
    clears worker ``w``'s part of the policy state when its episode ends."""
    jobs = [(p, r) for p in range(candidates) for r in range(rollouts)]
    returns = torch.zeros(candidates, rollouts)
    episode_return = torch.zeros(workers)
    queue = iter(range(len(jobs)))
    job = [next(queue, -1) for _ in range(workers)]
    steps = 0
    td = env.reset()
    while any(j >= 0 for j in job):
        active = torch.tensor([j >= 0 for j in job])
        candidate = torch.tensor([jobs[j][0] if j >= 0 else 0 for j in job])
        td["action"], state = policy(td["pixels"], candidate, state)
        out, td = env.step_and_maybe_reset(td)
        episode_return += out["next", "reward"].reshape(workers).float() * active
        steps += int(active.sum())
        done = out["next", "done"].reshape(workers)
        for w in torch.nonzero(done & active).flatten().tolist():
            returns[jobs[job[w]]] = episode_return[w]
            episode_return[w] = 0
            reset_worker(state, w)
            job[w] = next(queue, -1)
    return returns, steps
