"""Dreamer V2 networks: shapes, resets, where gradients go."""

import pytest
import torch

from conftest import fake_batch
from conftest import make_agent as make_tiny


def make_agent(*overrides):
    return make_tiny("dreamer_v2", *overrides)


def test_rssm_shapes_and_is_first_reset():
    agent = make_agent()
    rssm = agent.rssm
    batch = fake_batch(agent)
    embed = agent.encode(batch)
    post, prior = rssm.observe(embed, batch["action"], batch["is_first"])
    assert post["stoch"].shape == (3, 6, 4, 4) and post["deter"].shape == (3, 6, 32)
    assert rssm.feat({k: v[:, 0] for k, v in post.items()}).shape == (3, rssm.feat_dim)
    # With is_first, the result does not depend on the previous state or action.
    state_a = {k: torch.randn_like(v) for k, v in rssm.initial(3).items()}
    action = torch.randn(3, agent.action_dim)
    first = torch.ones(3, dtype=torch.bool)
    out_a, _ = rssm.obs_step(state_a, action, embed[:, 0], first)
    out_b, _ = rssm.obs_step(rssm.initial(3), torch.zeros_like(action), embed[:, 0], first)
    torch.testing.assert_close(out_a["deter"], out_b["deter"])
    torch.testing.assert_close(out_a["logits"], out_b["logits"])


def test_dynamics_backprop_flows_through_imagined_dynamics():
    # With REINFORCE off and no entropy, the actor's only gradient path is through the
    # imagined states: freezing the dynamics' output must cut it.
    agent = make_agent("model.actor_reinforce=0.0", "model.actor_entropy=0.0")
    post, _, _ = agent.world_model_losses(fake_batch(agent))
    actor_loss = agent.behaviour_losses(post, torch.zeros(3, 6, dtype=torch.bool))[0]["actor"]
    grads = torch.autograd.grad(actor_loss, list(agent.actor.parameters()), allow_unused=True)
    assert sum(g.abs().sum() for g in grads if g is not None) > 0
    original = agent.rssm.img_step
    agent.rssm.img_step = lambda state, action: {k: v.detach() for k, v in original(state, action).items()}
    actor_loss = agent.behaviour_losses(post, torch.zeros(3, 6, dtype=torch.bool))[0]["actor"]
    assert not actor_loss.requires_grad or all(
        g is None or g.abs().sum() == 0 for g in torch.autograd.grad(actor_loss, list(agent.actor.parameters()), allow_unused=True))


def test_discrete_actor_acts_one_hot_and_continuous_in_bounds():
    agent = make_agent("env.name=lightning_dreamer/PointDiscrete-v0")
    assert agent.discrete and agent.reinforce == 1.0
    obs = {"pixels": torch.zeros(2, 3, 64, 64, dtype=torch.uint8), "state": torch.zeros(2, 3)}
    action, state = agent.act(obs, torch.tensor([True, True]), None)
    assert action.shape == (2, 3) and torch.equal(action.sum(-1), torch.ones(2))
    cont = make_agent()
    action, _ = cont.act(obs, torch.tensor([True, True]), None)
    assert action.shape == (2, 1) and (action.abs() < 1).all() and cont.reinforce == 0.0


def test_unknown_loss_scale_is_reported():
    with pytest.raises(ValueError, match="unknown terms \\['imgae'\\]"):
        make_agent("model.loss_scales.imgae=1")


def test_conv_decoder_and_encoder_compute_what_their_layers_define():
    # The decoder's first transposed convolution runs as a matrix product and both stacks run
    # channels-last on a CPU: outputs and gradients are those of the plain layers in NCHW.
    from lightning_dreamer.nets.blocks import ConvDecoder, ConvEncoder

    torch.manual_seed(0)
    dec, enc = ConvDecoder(20, 3, depth=8), ConvEncoder(3, depth=8)
    feat = torch.randn(2, 5, 20, requires_grad=True)
    frames = torch.randint(0, 256, (2, 5, 3, 64, 64), dtype=torch.uint8)

    def reference_decoder(f):
        x = dec.fc(f).reshape(-1, 32 * 8, 1, 1)
        for layer in dec.net:
            x = layer(x.contiguous())
        return x.reshape(2, 5, *x.shape[1:])

    def reference_encoder(image):
        x = image.reshape(-1, 3, 64, 64).float() / 255.0 - 0.5
        for layer in enc.net:
            x = layer(x.contiguous())
        return x.reshape(2, 5, -1)

    for module, run, ref, arg in ((dec, dec, reference_decoder, feat), (enc, enc, reference_encoder, frames)):
        out, expected = run(arg), ref(arg)
        assert out.shape == expected.shape
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        weights = [p for p in module.parameters()]
        got = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum(), weights)
        want = torch.autograd.grad((expected * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum(), weights)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-3, atol=1e-4)  # sums in another order
        for p, g in zip(weights, got):
            p.grad = g
        torch.optim.Adam(weights).step()
        assert all(p.is_contiguous() for p in weights)  # the weights keep the layout safetensors writes
