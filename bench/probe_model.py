"""Does a Dreamer world model know what a good trajectory pays? A diagnostic (prints, asserts nothing).

Plays one real episode with each of three policies (the checkpoint's own deterministic policy, a
reference agent that solves the task, uniform random actions) in the checkpoint's environment, feeds
each to the checkpoint's world model and prints what the model makes of it: the reward it predicts
on the posterior states against the real rewards, the value against the real discounted
return-to-go, the 15-step open-loop reward against the real one, and the model's own lambda-return
of the recorded actions against that of its actor from the same states. Then whether the model sees
the state at all: a linear probe of the true state from its features (fitted on those three episodes,
scored on three more of the next seed) and, for pixels, its reconstruction error against the mean
image's. The reference agent sees the state vector, so the episodes are played with
``env.obs=both``; a pixel model reads their frames.

``--more-updates N`` then trains the world model alone on the run's saved replay for N updates
(the checkpoint's model optimiser, optionally another reward loss scale) and repeats the reward
comparison every 100 updates: does the model learn to tell the trajectories apart with more training?

    python bench/probe_model.py runs/v1/checkpoints/last.ckpt --reference zoo:dreamer_v2/dmc_cartpole_swingup_state
    python bench/probe_model.py runs/v1/checkpoints/last.ckpt --reference REF --more-updates 400 --reward-scale 10
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def play(agent, config: dict, seed: int, hold: int = 1):
    """One episode (policy ``agent``, or for None uniform random actions, each held ``hold`` agent steps):
    obs of the probed model's key (T+1, ...), the previous action at each step (T+1, A; zero first) and
    rewards (T+1; zero first)."""
    from lightning_dreamer.algos.base import build_env
    from lightning_dreamer.loading import config_from_dict

    env = build_env(config_from_dict(dict(config, env=dict(config["env"], obs="both"))).env, seed=seed)
    torch.manual_seed(seed)
    td = env.reset()
    frames, actions, rewards, state, first = [td], [], [0.0], None, True
    while True:
        if agent is None:
            if len(actions) % hold == 0:
                action = torch.rand(env.action_spec.shape) * 2 - 1
        else:
            with torch.no_grad():
                action, state = agent.act({k: td[k].unsqueeze(0) for k in agent.obs_keys}, torch.tensor([first]), state,
                                          explore=False)
            action = action[0]
        first = False
        td["action"] = action
        nxt = env.step(td)["next"]
        frames.append(nxt)
        actions.append(action)
        rewards.append(float(nxt["reward"]))
        if bool(nxt["done"]):
            break
        td = nxt.exclude("reward")
    env.close()
    actions = [torch.zeros_like(actions[0])] + actions
    return frames, torch.stack(actions).float(), torch.tensor(rewards)


def posterior(agent, frames, actions):
    obs = {k: torch.stack([f[k] for f in frames])[None] for k in agent.obs_keys}
    first = torch.zeros(1, len(frames), dtype=torch.bool)
    first[0, 0] = True
    post, _ = agent.world_model.observe({**obs, "action": actions[None], "is_first": first})
    return post


def predicted_rewards(agent, episode) -> torch.Tensor:
    """The model's reward at each posterior state of ``episode`` (T+1,)."""
    return agent.world_model.reward(agent.rssm.feat(posterior(agent, *episode[:2]))[0]).squeeze(-1)


def report(agent, name: str, episode, horizon: int = 15) -> None:
    from lightning_dreamer.losses.returns import lambda_return

    frames, actions, rewards = episode
    m, wm = agent.config, agent.world_model
    post = posterior(agent, frames, actions)
    feat = agent.rssm.feat(post)[0]
    reward = wm.reward(feat).squeeze(-1)
    value = agent.critic(feat).squeeze(-1)
    to_go, acc = torch.zeros(len(rewards)), 0.0
    for t in range(len(rewards) - 1, 0, -1):
        acc = float(rewards[t]) + m.discount * acc
        to_go[t - 1] = acc
    open_pred, open_real, recorded, actor = [], [], [], []
    for t0 in range(25, len(rewards) - horizon - 1, 25):
        start = {k: v[:, t0] for k, v in post.items()}
        f = agent.rssm.feat(agent.rssm.imagine_with_actions(start, actions[None, t0 + 1:t0 + 1 + horizon]))[0]
        r, cont = wm.predicted_reward_and_continuation(f, m.discount)
        open_pred.append(float(r.sum()))
        open_real.append(float(rewards[t0 + 1:t0 + 1 + horizon].sum()))
        feats = torch.cat([feat[t0:t0 + 1], f], 0)
        recorded.append(float(lambda_return(r, agent.target_value(feats).squeeze(-1)[1:], cont, m.lambda_)[0]))
        fa, _, _ = agent.imagine({k: v[:, t0].expand(20, *v.shape[2:]) for k, v in post.items()})
        ra, ca = wm.predicted_reward_and_continuation(fa[1:], m.discount)
        actor.append(float(lambda_return(ra, agent.target_value(fa).squeeze(-1)[1:], ca, m.lambda_)[0].mean()))
    corr = np.corrcoef(value[:-1].numpy(), to_go[:-1].numpy())[0, 1]
    print(f"{name}: real return {float(rewards.sum()):.1f} | predicted reward on the posterior {float(reward[1:].sum()):.1f} "
          f"(mean |error| per step {float((reward[1:] - rewards[1:]).abs().mean()):.3f}) | value mean {float(value.mean()):.2f} "
          f"vs real discounted return-to-go {float(to_go.mean()):.2f} (corr {corr:.2f}) | {horizon}-step open-loop reward "
          f"{np.mean(open_pred):.2f} vs real {np.mean(open_real):.2f} | model lambda-return: recorded actions "
          f"{np.mean(recorded):.2f}, its actor {np.mean(actor):.2f}", flush=True)


PENALTIES = (1e-2, 1.0, 1e2, 1e4)  # the linear probe's ridge penalties, one picked per state dimension


def with_intercept(x: np.ndarray) -> np.ndarray:
    return np.c_[x, np.ones(len(x))]


def ridge(gram: np.ndarray, xty: np.ndarray, penalty: float) -> np.ndarray:
    """Ridge regression weights from the normal equations (``gram`` = A^T A, ``xty`` = A^T y of
    ``with_intercept(x)``), the intercept (last row) unpenalised."""
    eye = np.eye(len(gram))
    eye[-1, -1] = 0.0
    return np.linalg.solve(gram + penalty * eye, xty)


def linear_probe(xs: list, ys: list, x_test: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Predictions for ``x_test`` of a ridge probe fitted on the episodes ``xs``/``ys``, its penalty
    chosen per target dimension by leave-one-episode-out error (a model's features can outnumber the
    steps of a few episodes, where a fixed small penalty overfits); returns them and the penalties."""
    parts = [(a.T @ a, a.T @ y) for a, y in ((with_intercept(x), y) for x, y in zip(xs, ys))]  # per episode
    gram, xty = sum(p[0] for p in parts), sum(p[1] for p in parts)
    errors = np.zeros((len(PENALTIES), ys[0].shape[1]))
    for i, (x, y) in enumerate(zip(xs, ys)):  # each fold's normal equations: the whole minus its held-out episode
        fold = (gram - parts[i][0], xty - parts[i][1])
        for k, penalty in enumerate(PENALTIES):
            errors[k] += ((y - with_intercept(x) @ ridge(*fold, penalty)) ** 2).sum(0)
    best = errors.argmin(0)
    pred = np.zeros((len(x_test), ys[0].shape[1]))
    for k in sorted(set(best.tolist())):
        pred[:, best == k] = (with_intercept(x_test) @ ridge(gram, xty, PENALTIES[k]))[:, best == k]
    return pred, [PENALTIES[k] for k in best]


def sees(agent, fit: list, test: list) -> None:
    """Does the model see the state? A linear probe (ridge regression, its penalty picked per
    dimension on the ``fit`` episodes) from the posterior features to the true state vector, fitted on
    the ``fit`` episodes and scored (R² per dimension) on the ``test`` ones; for a pixel model also the
    reconstruction error against the error of the test frames' mean image (1.0: it draws the mean
    image, nothing of the cart or pole)."""
    def features(episodes):  # (T+1, F) posterior features of each episode
        return [agent.rssm.feat(posterior(agent, frames, actions))[0] for frames, actions, _ in episodes]

    def states(episodes):  # (T, S) true states of each episode, aligned with features[1:]
        return [torch.stack([f["state"] for f in frames])[1:].numpy() for frames, _, _ in episodes]

    test_feats = features(test)
    x_test, y_test = np.concatenate([f[1:].numpy() for f in test_feats]), np.concatenate(states(test))
    pred, penalties = linear_probe([f[1:].numpy() for f in features(fit)], states(fit), x_test)
    r2 = 1 - ((y_test - pred) ** 2).sum(0) / ((y_test - y_test.mean(0)) ** 2).sum(0)
    line = (f"linear probe of the true state from the features, R² per dimension on held-out episodes: "
            f"{np.round(r2, 2).tolist()} (ridge penalties {penalties})")
    if "pixels" in agent.obs_keys:
        errors, means = [], []
        for (frames, _, _), feat in zip(test, test_feats):
            target = torch.stack([f["pixels"] for f in frames]).float() / 255.0 - 0.5
            drawn = agent.world_model.image_decoder(feat)
            errors.append(float(((drawn - target) ** 2).mean()))
            means.append(float(((target - target.mean(0)) ** 2).mean()))
        line += f"; reconstruction error / the mean image's: {np.mean(errors) / np.mean(means):.3f}"
    print(line, flush=True)


def saved_replay(ckpt_path: str, config: dict, batch_size: int | None = None):
    """The replay a run saved beside its checkpoint (its latest generation), sampling ``batch_size``
    sequences (default: the run's) of the run's length."""
    from lightning_dreamer.data.replay import Replay

    r = config["replay"]
    saved = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(ckpt_path))), "replay", "saved-rank0")
    replay = Replay(r["capacity"], batch_size or r["batch_size"], r["seq_len"])
    replay.load(os.path.join(saved, sorted(os.listdir(saved))[-1]))
    return replay


def model_update(agent, optimiser, batch, autocast=contextlib.nullcontext) -> dict:
    """One update of the world model alone on ``batch`` (its gradient clipped as in training); its logs."""
    with autocast():
        _, loss, logs = agent.model_pass(batch)
    optimiser.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(agent.world_model.parameters(), agent.config.grad_clip)
    optimiser.step()
    return logs


def main() -> None:
    from lightning_dreamer.checkpoint import agent_from_checkpoint, load_agent, read_checkpoint, run_config_of

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", help="a Dreamer V1/V2 run's checkpoint (its replay beside it for --more-updates)")
    parser.add_argument("--reference", required=True,
                        help="an agent that solves the task from the state vector: its checkpoint, or zoo:NAME")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--more-updates", type=int, default=0)
    parser.add_argument("--reward-scale", type=float, help="the reward loss scale for --more-updates (default: the run's)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = read_checkpoint(args.ckpt)
    agent, config = agent_from_checkpoint(ckpt), run_config_of(ckpt)
    reference = load_agent(args.reference)[0]
    episodes = {name: play(policy, config, args.seed) for name, policy in
                (("its own policy", agent), ("reference agent", reference), ("random actions", None))}
    held_out = [play(policy, config, args.seed + 1) for policy in (agent, reference, None)]
    with torch.no_grad():
        for name, episode in episodes.items():
            report(agent, name, episode)
        sees(agent, list(episodes.values()), held_out)
    if not args.more_updates:
        return
    replay = saved_replay(args.ckpt, config)
    optimiser = agent.configure_optimizers()[0]
    optimiser.load_state_dict(ckpt["optimizer_states"][0])
    if args.reward_scale is not None:
        agent.loss_scales["reward"] = args.reward_scale
    print(f"training the world model alone on {len(replay):,} replay steps, loss scales {agent.loss_scales}", flush=True)
    agent.train()
    start = time.perf_counter()
    for i in range(1, args.more_updates + 1):
        model_update(agent, optimiser, replay.sample())
        if i % 100 == 0 or i == args.more_updates:
            with torch.no_grad():
                sums = [f"{name} {float(ep[2].sum()):.0f} -> {float(predicted_rewards(agent, ep)[1:].sum()):.0f}"
                        for name, ep in episodes.items()]
            print(f"after {i} updates ({(time.perf_counter() - start) / i:.2f} s each), real -> predicted reward sums: "
                  + "; ".join(sums), flush=True)


if __name__ == "__main__":
    main()
