"""World Models (Ha & Schmidhuber 2018, "Recurrent World Models Facilitate Policy Evolution").

V (nets/vae.py) compresses each frame to z, M (nets/mdnrnn.py) predicts the next z, the reward
and the episode end, C (nets/controller.py) maps [z, h] to an action and is found by CMA-ES
(the ``cma`` package), either in the real environment or inside the dream (M as the environment).

One fit runs the stages in order, one Trainer step per stage step, and repeats them for
``iterations`` rounds (the paper's iterative training)::

    random rollouts (replay.prefill agent steps, before the first step)
    iteration 0:  vae (vae_updates)  ->  mdn (mdn_updates)  ->  controller (generations)
    iteration i:  collect (collect_steps with C + noise)  ->  vae  ->  mdn  ->  controller

V and M are ordinary gradient updates on the batches the dataloader yields for their stage
(``stage_batch``: frames for V, sequences for M); a controller step is one CMA-ES generation with
no backward pass. The stage, its step, the iteration and the pickled CMA-ES
state are in the checkpoint, so every stage resumes after a kill. ``updates`` counts stage steps.
"""

from __future__ import annotations

import pickle
import time
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lightning_dreamer.algos.base import RLModule
from lightning_dreamer.data import ReplayBatches
from lightning_dreamer.data.population import play_population
from lightning_dreamer.losses import total_loss
from lightning_dreamer.losses.world_models import mdn_nll, vae_loss
from lightning_dreamer.nets.controller import LinearController, dream_rollouts
from lightning_dreamer.nets.distributions import exploration_noise
from lightning_dreamer.nets.mdnrnn import MDNRNN
from lightning_dreamer.nets.vae import ConvVAE
from lightning_dreamer.registry import register_algo

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # cma warns that matplotlib (for its plots) is missing
    import cma

STAGES = ("collect", "vae", "mdn", "controller")


@dataclass
class WorldModelsConfig:
    """World Models' model config (Ha & Schmidhuber 2018): the keyword arguments of ``WorldModels(spec, **model)``."""

    # --- V: convolutional VAE (paper: z 32, conv depth 32, KL tolerance 0.5, Adam 1e-4, batches of 100 frames)
    z_dim: int = 32
    vae_depth: int = 32
    kl_tolerance: float = 0.5
    vae_lr: float = 1e-4
    # Frames per VAE update, drawn uniformly from replay. (M trains on replay.batch_size sequences
    # of replay.seq_len steps; as in the paper, V's mean and variance for every stored frame are
    # computed once when the M stage starts, and each update draws fresh z from them.)
    vae_batch: int = 100
    vae_updates: int = 1000
    # --- M: MDN-RNN (paper: 256 LSTM units, 5 Gaussians per latent dim, Adam 1e-3, gradient clip 1.0)
    rnn_hidden: int = 256
    mixtures: int = 5
    mdn_lr: float = 1e-3
    mdn_grad_clip: float = 1.0
    # Weights of the reward (squared error) and episode-end (cross-entropy) predictions in M's loss.
    reward_scale: float = 1.0
    done_scale: float = 1.0
    mdn_updates: int = 1000
    # --- C: linear controller by CMA-ES (paper: population 64, 16 rollouts per candidate)
    # Train C inside the dream (M as the environment) or in the real environment.
    dream: bool = True
    population: int = 64
    rollouts: int = 16
    sigma0: float = 0.1
    generations: int = 100
    # Start each iteration's controller search afresh (CMA-ES from zero at sigma0) instead of going on
    # with the distribution the last iteration's search left: each iteration's M is a new objective.
    restart_search: bool = False
    # Environments stepped together (worker processes) when C is trained in the real env.
    env_workers: int = 2
    # Sampling temperature of M in the dream (paper: 1.0 CarRacing, 1.15 Doom) and in videos.
    temperature: float = 1.0
    # Length of a dream rollout in agent steps (0: env.time_limit, or 1000 if that is 0 too).
    dream_horizon: int = 0
    # End dream rollouts when M predicts the episode ends.
    dream_done: bool = True
    # --- iterative training (the paper's extension): rounds of collect -> V -> M -> C
    iterations: int = 1
    # Agent steps collected with C plus exploration noise at the start of each later iteration.
    collect_steps: int = 10_000
    # Gaussian noise added to C's actions (continuous) or probability of a random action (discrete).
    expl_noise: float = 0.1
    # Agent steps collected per Trainer step in the collect stage (progress granularity).
    collect_chunk: int = 500

    LIMITS: ClassVar[dict] = {
        "z_dim": ">=1", "vae_depth": ">=1", "kl_tolerance": ">=0", "vae_lr": ">0", "vae_batch": ">=1", "vae_updates": ">=1",
        "rnn_hidden": ">=1", "mixtures": ">=1", "mdn_lr": ">0", "mdn_grad_clip": ">=0", "reward_scale": ">=0",
        "done_scale": ">=0", "mdn_updates": ">=1", "population": ">=2", "rollouts": ">=1", "sigma0": ">0",
        "generations": ">=1", "env_workers": ">=1", "temperature": ">0", "dream_horizon": ">=0", "iterations": ">=1",
        "collect_steps": ">=0", "expl_noise": ">=0", "collect_chunk": ">=1",
    }


@register_algo("world_models")
class WorldModels(RLModule):
    """World Models: ``WorldModels(spec, **model)`` with ``model`` the fields of ``WorldModelsConfig``."""

    config_class = WorldModelsConfig
    config: WorldModelsConfig
    controller_params: torch.Tensor  # a buffer: C's parameters, the CMA-ES mean after each generation
    single_process = True  # CMA-ES is one sequential search: no DDP

    # ------------------------------------------------------------------ networks
    def build(self) -> None:
        m = self.config
        if "pixels" not in self.obs_shapes:
            raise ValueError("World Models needs pixel observations: set env.obs=pixels")
        self.vae = ConvVAE(self.obs_shapes["pixels"][0], m.z_dim, m.vae_depth)
        self.mdnrnn = MDNRNN(m.z_dim, self.action_dim, m.rnn_hidden, m.mixtures)
        self.controller = LinearController(m.z_dim + m.rnn_hidden, self.action_dim, self.discrete)
        self.register_buffer("controller_params", torch.zeros(self.controller.num_params))
        # V's and M's loss terms and their scales (total_loss checks the terms match).
        self.vae_scales = {"vae_rec": 1.0, "vae_kl": 1.0}
        self.mdn_scales = {"mdn_nll": 1.0, "mdn_reward": m.reward_scale, "mdn_done": m.done_scale}
        self.horizon = m.dream_horizon or 1000  # 0: the run's env.time_limit when there is one (attach_run)
        self.es: cma.CMAEvolutionStrategy | None = None  # the search of the run (attach_run, checkpoints)
        self.iteration, self.stage, self.stage_step, self.generation = 0, "vae", 0, 0
        # Best fitness of this iteration's controller stage. CMA-ES's own best (es.result.fbest)
        # spans iterations, whose fitness came from other versions of M: in the dream they are
        # not comparable.
        self.stage_best = float("-inf")
        self.eval_requested = False
        self.batched_env = None
        self.latents: torch.Tensor | None = None  # (replay length, 2 z_dim): V's mean and log-variance per stored frame

    def attach_run(self, cfg) -> None:
        super().attach_run(cfg)
        m, run = self.config, self.run_config
        self.horizon = m.dream_horizon or run.env.time_limit or 1000
        self.es = self.new_search(0)

    def new_search(self, iteration: int) -> cma.CMAEvolutionStrategy:
        """A CMA-ES search from zero at ``sigma0``, seeded by the run's seed and the iteration."""
        m = self.config
        seed = self.run_config.run.seed + 1 + 100_003 * iteration
        return cma.CMAEvolutionStrategy(np.zeros(self.controller.num_params), m.sigma0,
                                        {"popsize": m.population, "seed": seed, "verbose": -9})

    def configure_optimizers(self):
        m = self.config
        return [torch.optim.Adam(self.vae.parameters(), lr=m.vae_lr), torch.optim.Adam(self.mdnrnn.parameters(), lr=m.mdn_lr)]

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.print(f"iteration {self.iteration}: stage {self.stage} (step {self.stage_step} of {self._stage_length()})")

    # ------------------------------------------------------------------ stages
    @property
    def finished(self) -> bool:
        return self.iteration >= self.config.iterations

    def _stage_length(self) -> int:
        m = self.config
        return {"collect": m.collect_steps, "vae": m.vae_updates, "mdn": m.mdn_updates, "controller": m.generations}[self.stage]

    def _next_stage(self) -> None:
        self.latents = None  # V or the replay changes in the stages to come
        if self.stage == "controller":
            self.iteration += 1
            self.eval_requested = True
            self.stage = "collect"
        else:
            self.stage = STAGES[STAGES.index(self.stage) + 1]
            if self.stage == "controller" and self.iteration > 0 and self.config.restart_search:
                self.es = self.new_search(self.iteration)
        self.stage_step = 0
        self.stage_best = float("-inf")
        if not self.finished:
            self.print(f"iteration {self.iteration}: stage {self.stage}")

    def _budget_left(self) -> int:
        """Agent steps this rank may still take within run.total_env_steps."""
        per_step = self.run_config.env.action_repeat * self.world_size
        return max(0, (self.run_config.run.total_env_steps - self.env_steps) // per_step)

    def on_train_batch_start(self, batch, batch_idx: int):
        if self.finished or (self.stage == "collect" and self._budget_left() == 0):
            self.trainer.should_stop = True
            return -1
        if self.stage == "collect":
            steps = min(self.config.collect_chunk, self._stage_length() - self.stage_step, self._budget_left())
            self.collect(steps)
            self.stage_step += steps
        self._step_started = time.perf_counter()
        return None

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs, is_first, state, explore: bool = True):
        """C on [z, h]; ``state`` is M's LSTM state (None at an episode start)."""
        batch = is_first.shape[0]
        if state is None:
            state = self.mdnrnn.initial(batch, self.device)
        keep = (~is_first).float().unsqueeze(-1)
        state = (state[0] * keep, state[1] * keep)
        mean, logvar = self.vae.encode(obs["pixels"])
        z = self.vae.sample(mean, logvar) if explore else mean
        action = self.controller.act(self.controller_params.unsqueeze(0), torch.cat([z, state[0]], -1).unsqueeze(0))[0]
        if explore:
            action = exploration_noise(action, self.config.expl_noise, self.discrete)
        return action, self.mdnrnn.step(z, action, state)

    # ------------------------------------------------------------------ learning
    def train_dataloader(self) -> DataLoader:
        return DataLoader(ReplayBatches(self.stage_batch), batch_size=None, num_workers=0)

    def stage_batch(self) -> dict:
        """What the current stage trains on, tagged ``stage``: frames drawn uniformly from replay for
        V; for M, ``(B, T)`` sequences with each step's storage ``index`` (``with_latents`` then looks
        up V's latents of those frames, in the table of the V that has just finished); the tag alone
        for the controller (a CMA-ES generation is asked and told within its step: the next one
        cannot be asked before this one is told) and for collection (on_train_batch_start).

        The Trainer fetches one batch ahead, so the batch of the first step after a stage change
        was drawn for the stage that ended; ``training_step`` then draws its own."""
        if self.stage == "vae":
            return {"stage": "vae", "pixels": self.replay.sample_steps(self.config.vae_batch, "pixels")}
        if self.stage == "mdn":
            batch = self.replay.sample(with_index=True)
            batch.pop("pixels")
            return {"stage": "mdn", **batch}
        return {"stage": self.stage}

    def vae_losses(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """V's ELBO terms on uint8 frames ``(N, C, H, W)``."""
        recon, mean, logvar = self.vae(frames)
        rec, kl = vae_loss(recon, frames.float() / 255.0, mean, logvar, self.config.kl_tolerance)
        return {"vae_rec": rec.mean(), "vae_kl": kl.mean()}

    @torch.no_grad()
    def latent_table(self, chunk: int = 1024) -> torch.Tensor:
        """V's mean and log-variance of every stored frame, by storage index, encoded once per
        M stage (after a resume too) rather than on every M update."""
        latents = self.latents
        if latents is None or len(latents) != len(self.replay):
            parts = []
            for start in range(0, len(self.replay), chunk):
                frames = self.replay.read("pixels", start, min(start + chunk, len(self.replay))).to(self.device)
                parts.append(torch.cat(self.vae.encode(frames), -1).float())
            latents = self.latents = torch.cat(parts)
        return latents

    def with_latents(self, batch: dict) -> dict[str, torch.Tensor]:
        """An M batch with V's ``latent`` (mean and log-variance) of each step, by its storage
        ``index``, from the table; its tensors on this module's device."""
        out = {k: v.to(self.device) for k, v in batch.items() if isinstance(v, torch.Tensor) and k != "index"}
        out["latent"] = self.latent_table()[batch["index"].to(self.device)]
        return out

    def mdn_batch(self, cached: bool = True) -> dict[str, torch.Tensor]:
        """A (B, T) replay batch for M on this module's device: V's ``latent`` of each frame from
        the table (what training uses), or the frames themselves (``cached=False``)."""
        batch = self.replay.sample(with_index=True)
        if cached:
            batch.pop("pixels")
            return self.with_latents(batch)
        batch.pop("index")
        return {k: v.to(self.device) for k, v in batch.items()}

    def mdn_losses(self, batch) -> dict[str, torch.Tensor]:
        """M on a (B, T) batch. Entry t holds x_t and the action that led to it, so M reads
        [z_t, a_{t+1}] and predicts z_{t+1}, the reward on arriving there and whether it is terminal.
        The batch carries V's ``latent`` (mean and log-variance) of each frame, or its ``pixels``::

            entries:    0      1      2    ...  T-1
            z:         [z0]   [z1]   [z2]  ...  z_T-1      inputs z[:, :-1]
            action:     a0    [a1]   [a2]  ... [a_T-1]     inputs action[:, 1:]  (a_t+1 leads z_t -> z_t+1)
            targets:          [z1]   [z2]  ... [z_T-1]     z[:, 1:], reward[:, 1:], is_terminal[:, 1:]
        """
        with torch.no_grad():
            if "latent" in batch:
                mean, logvar = batch["latent"].chunk(2, -1)
            else:
                mean, logvar = self.vae.encode(batch["pixels"])
            z = self.vae.sample(mean, logvar)
        (logpi, mu, logstd, reward, done_logit), _ = self.mdnrnn(z[:, :-1], batch["action"][:, 1:].float())
        return {
            "mdn_nll": mdn_nll(logpi, mu, logstd, z[:, 1:]).mean(),
            "mdn_reward": F.mse_loss(reward, batch["reward"][:, 1:].float()),
            "mdn_done": F.binary_cross_entropy_with_logits(done_logit, batch["is_terminal"][:, 1:].float()),
        }

    @torch.no_grad()
    def dream_fitness(self, params: torch.Tensor, seed: int, temperature: float | None = None,
                      pool: torch.Tensor | None = None) -> torch.Tensor:
        """Mean dream return of each candidate over ``rollouts`` start states and seeds shared by
        the whole population (common random numbers make candidates comparable). Start frames are
        first frames of replayed episodes, or drawn from ``pool`` (uint8 frames) when given;
        ``temperature`` defaults to ``model.temperature``."""
        m = self.config
        g = torch.Generator().manual_seed(seed)
        if pool is None:
            frames = self.replay.sample_first(m.rollouts, "pixels", g)
        else:
            frames = pool[torch.randint(len(pool), (m.rollouts,), generator=g)]
        mean, logvar = self.vae.encode(frames.to(self.device))
        z0 = self.vae.sample(mean, logvar, g).unsqueeze(0).expand(params.shape[0], -1, -1)
        seeds = (seed + torch.arange(m.rollouts)).unsqueeze(0).expand(params.shape[0], -1)
        returns = dream_rollouts(self.mdnrnn, self.controller, params.to(self.device), z0, seeds, self.horizon,
                                 m.temperature if temperature is None else temperature, m.dream_done)
        return returns.mean(1)

    @staticmethod
    def generation_seed(run_seed: int, generation: int) -> int:
        """The random numbers a controller-stage generation's dream rollouts share."""
        return run_seed * 1_000_003 + generation * 7919

    def real_fitness(self, params: torch.Tensor) -> torch.Tensor:
        """Mean return of each candidate over ``rollouts`` real episodes, played by ``env_workers``
        environments stepped together (data/population.py), V, M and C batched over the workers.
        The agent steps count towards the budget."""
        m = self.config
        if self.batched_env is None:
            from lightning_dreamer.envs import make_batched_env

            object.__setattr__(self, "batched_env", make_batched_env(self.run_config.env, m.env_workers,
                                                                     self.run_config.run.seed + 2_000_000))
        params = params.to(self.device)

        def policy(pixels, candidate, state):
            mean, _ = self.vae.encode(pixels.to(self.device))
            action = self.controller.act(params[candidate.to(self.device)], torch.cat([mean, state[0]], -1).unsqueeze(1))[:, 0]
            return self.collector.to_env(action.float().cpu()), self.mdnrnn.step(mean, action, state)

        def reset_worker(state, w):
            state[0][w] = 0
            state[1][w] = 0

        with torch.no_grad():
            returns, steps = play_population(self.batched_env, m.env_workers, params.shape[0], m.rollouts, policy,
                                             self.mdnrnn.initial(m.env_workers, self.device), reset_worker)
        self.policy_steps += steps
        return returns.mean(1)

    @property
    def search(self) -> cma.CMAEvolutionStrategy:
        """The run's CMA-ES search (made by attach_run, restored from checkpoints)."""
        if self.es is None:
            raise RuntimeError("World Models has no CMA-ES search before a run is attached (attach_run)")
        return self.es

    def controller_generation(self) -> dict[str, float]:
        m = self.config
        es = self.search
        candidates = es.ask()
        params = torch.tensor(np.stack(candidates), dtype=torch.float32)
        if m.dream:
            fitness = self.dream_fitness(params, seed=self.generation_seed(self.run_config.run.seed, self.generation))
        else:
            fitness = self.real_fitness(params)
        es.tell(candidates, (-fitness.double()).tolist())  # cma minimises
        self.controller_params.copy_(torch.as_tensor(es.result.xfavorite, dtype=torch.float32))
        self.generation += 1
        self.stage_best = max(self.stage_best, float(fitness.max()))
        return {"cma/fitness_mean": float(fitness.mean()), "cma/fitness_max": float(fitness.max()),
                "cma/best": self.stage_best, "cma/sigma": float(es.sigma),
                "cma/generation": float(self.generation)}

    def training_step(self, batch, batch_idx):
        m = self.config
        logs: dict[str, float | torch.Tensor] = {}
        if batch.get("stage") != self.stage:  # fetched ahead, for the stage that has just ended
            batch = self.stage_batch()
        if self.stage == "vae":
            opt = self.optimizers()[0]
            losses = self.vae_losses(batch["pixels"].to(self.device))
            self.optimise(opt, total_loss(losses, self.vae_scales), 0.0)
            logs = {f"loss/{k}": v.detach() for k, v in losses.items()}
        elif self.stage == "mdn":
            opt = self.optimizers()[1]
            losses = self.mdn_losses(self.with_latents(batch))
            self.optimise(opt, total_loss(losses, self.mdn_scales), m.mdn_grad_clip)
            logs = {f"loss/{k}": v.detach() for k, v in losses.items()}
        elif self.stage == "controller":
            logs = self.controller_generation()
        if self.stage != "collect":
            self.stage_step += 1
        # Each stage logs its own keys (Lightning's per-step results would repeat the last VAE
        # losses through the MDN and CMA-ES stages).
        self.log_update({**logs, "progress/stage": STAGES.index(self.stage), "progress/iteration": self.iteration})
        if self.stage_step >= self._stage_length():
            self._next_stage()
        return None

    def on_fit_end(self) -> None:
        if self.batched_env is not None:
            self.batched_env.close()
            object.__setattr__(self, "batched_env", None)

    # ------------------------------------------------------------------ videos
    @torch.no_grad()
    def openloop_video(self, batch, context: int = 5, count: int = 4) -> torch.Tensor:
        """Real frames | V's reconstructions | the dream: M fed the first ``context`` frames and then
        its own samples (temperature ``model.temperature``) under the recorded actions, decoded by V::

            step t:   M reads z_t (observed if t < context, else its own sample) and action[t+1]
                      -> samples z_t+1 -> frame t+1 of the dream (observed frames up to context)
        """
        b = {k: v[:count].to(self.device) for k, v in batch.items()}
        mean, _ = self.vae.encode(b["pixels"])
        recon = self.vae.decode(mean)
        steps = mean.shape[1]
        state = self.mdnrnn.initial(mean.shape[0], self.device)
        z, dream = mean[:, 0], [recon[:, 0]]
        for t in range(steps - 1):
            state = self.mdnrnn.step(mean[:, t] if t < context else z, b["action"][:, t + 1].float(), state)
            logpi, mu, logstd, _, _ = self.mdnrnn.heads(state[0])
            z = self.mdnrnn.sample(logpi, mu, logstd, self.config.temperature, torch.rand_like(mean[:, 0]), torch.randn_like(mean[:, 0]))
            dream.append(recon[:, t + 1] if t + 1 < context else self.vae.decode(z))
        truth = b["pixels"].float() / 255.0
        video = torch.cat([truth, recon, torch.stack(dream, 1)], -2)  # (N, T, C, 3H, W)
        video = video.permute(1, 2, 3, 0, 4).reshape(*video.shape[1:4], -1)
        video = (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        return video.expand(*video.shape[:3], 3) if video.shape[-1] == 1 else video

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["world_models"] = {"iteration": self.iteration, "stage": self.stage, "stage_step": self.stage_step,
                                      "generation": self.generation, "es": pickle.dumps(self.es),
                                      "stage_best": self.stage_best}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("world_models")
        if state is not None:
            self.iteration, self.stage, self.stage_step = state["iteration"], state["stage"], state["stage_step"]
            self.generation = state["generation"]
            self.stage_best = state.get("stage_best", float("-inf"))
            self.es = pickle.loads(state["es"])
