"""λ-returns over imagined trajectories.

Index diagram (H = horizon; one column per imagined state)::

    # states:   s0 -a0-> s1 -a1-> s2 ... -a(H-1)-> sH
    # reward:             r[0]     r[1]     ...     r[H-1]    reward head at s1..sH
    # cont:               c[0]     c[1]     ...     c[H-1]    gamma * P(s_{t+1} not terminal)
    # next_value:         v[0]     v[1]     ...     v[H-1]    value at s1..sH  (v[H-1] = v(sH))
    # returns:  R[0]     R[1]     ...  R[H-1]                 one per state s0..s(H-1)
    #
    # R[t] = r[t] + c[t] * ((1 - lam) * v[t] + lam * R[t+1]),   R[H] := v(sH)

Each return belongs to the state the action was taken in and sums the rewards that action
earns, so the actor at s_t and the critic at s_t are both trained towards R[t].
(DreamerV2's code pairs r(s_t), the reward of *arriving* at s_t, with the action taken there;
we use the reward of the transition the action causes, as DreamerV3 does.)
"""

from __future__ import annotations

import torch


def lambda_return(reward: torch.Tensor, next_value: torch.Tensor, cont: torch.Tensor, lam: float) -> torch.Tensor:
    """λ-returns for tensors of shape ``(H, ...)`` laid out as in the module diagram."""
    if not (reward.shape == next_value.shape == cont.shape):
        raise ValueError(f"shapes differ: reward {tuple(reward.shape)}, next_value {tuple(next_value.shape)}, cont {tuple(cont.shape)}")
    returns = []
    last = next_value[-1]
    for t in reversed(range(reward.shape[0])):
        last = reward[t] + cont[t] * ((1 - lam) * next_value[t] + lam * last)
        returns.append(last)
    return torch.stack(returns[::-1], 0)


def trajectory_weights(cont: torch.Tensor, start_cont: torch.Tensor) -> torch.Tensor:
    """Weight of each imagined state s0..s(H-1): the (discounted) probability it is reached alive.

    ``w[0] = start_cont`` (0 when the real start state was terminal), ``w[t] = w[t-1] * cont[t-1]``.
    """
    return torch.cumprod(torch.cat([start_cont.unsqueeze(0), cont[:-1]], 0), 0)
