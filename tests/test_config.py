"""Config loading and the one-line errors users see."""

import glob
import os

import pytest
from omegaconf import OmegaConf

from lightning_dreamer.__main__ import main
from lightning_dreamer.errors import ConfigError
from lightning_dreamer.loading import load_config

from conftest import ROOT

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))


# Size presets per algorithm (a preset's model keys belong to one algorithm's schema).
PRESETS = {"dreamer_v2": ["cpu", "tiny", "paper_dmc"], "dreamer_v1": ["v1_cpu", "v1_tiny"], "world_models": ["wm_cpu"]}


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_config_parses_alone_and_with_its_presets(path):
    algo = OmegaConf.load(path).algo
    assert algo in PRESETS
    for preset in [None, *PRESETS[algo]]:
        paths = [path] + ([os.path.join(ROOT, "configs", "presets", f"{preset}.yaml")] if preset else [])
        cfg = load_config(paths, [])
        assert cfg.algo == algo
        assert "${" not in OmegaConf.to_yaml(cfg, resolve=True)


def test_every_preset_is_tested():
    names = {os.path.basename(p)[:-5] for p in glob.glob(os.path.join(ROOT, "configs", "presets", "*.yaml"))}
    assert names == {p for presets in PRESETS.values() for p in presets}


def test_preset_of_another_algorithm_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown config key 'model.classes'"):
        load_config([os.path.join(ROOT, "configs", "v1_dmc_cartpole_swingup.yaml"), os.path.join(ROOT, "configs", "presets", "cpu.yaml")], [])


def test_presets_overlay_and_overrides(tmp_path):
    cfg = load_config([os.path.join(ROOT, "configs", "v2_dmc_cartpole_swingup.yaml"), os.path.join(ROOT, "configs", "presets", "cpu.yaml")],
                      ["model.deter=64", "run.dir=" + str(tmp_path)])
    assert cfg.model.cnn_depth == 16  # from the preset
    assert cfg.model.deter == 64  # the override wins
    assert cfg.model.kl_free == 1.0  # untouched by the preset
    assert "precision" not in cfg.trainer  # left to `auto`, which follows the hardware


def test_paper_preset_undoes_cpu_preset():
    base = load_config([os.path.join(ROOT, "configs", "v2_dmc_cartpole_swingup.yaml")], [])
    both = load_config([os.path.join(ROOT, "configs", "v2_dmc_cartpole_swingup.yaml"), os.path.join(ROOT, "configs", "presets", "cpu.yaml"),
                        os.path.join(ROOT, "configs", "presets", "paper_dmc.yaml")], [])
    assert both.model == base.model and both.replay.train_ratio == base.replay.train_ratio


def test_interpolation_works():
    cfg = load_config([os.path.join(ROOT, "configs", "v2_atari.yaml")], ["env.name=Breakout"])
    assert cfg.run.dir == "runs/v2_atari_Breakout"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["replay.batchsize=3"], "unknown config key 'replay.batchsize' in 'replay'. Did you mean 'batch_size'?"),
        (["replay.batch_size=abc"], "bad value for 'replay.batch_size'"),
        (["model.detr=3"], "Did you mean 'deter'?"),
        (["env.name=cartpole_swingpu"], "unknown dm_control task 'cartpole_swingpu'"),
        (["env.suite=atari", "env.name=Pongg"], "Did you mean 'Pong'"),
        (["env.suite=gym", "env.name=CarRacing-v9"], "unknown gymnasium env id 'CarRacing-v9'"),
        (["env.suite=mujoco"], "unknown env.suite 'mujoco'"),
        (["trainer.devicess=2"], "unknown trainer option 'trainer.devicess'. Did you mean 'devices'?"),
        (["algo=dreamer_v9"], "unknown algo 'dreamer_v9'"),
        (["run.dir=${nope}"], "bad interpolation"),
        (["run.keep_freed_memory=yes"], "bad value for 'run.keep_freed_memory'"),
    ],
)
def test_bad_config_gives_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config([], overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_errors_are_one_line_without_traceback(capsys, tmp_path):
    assert main(["fit", "--config", "nope.yaml"]) == 2
    assert capsys.readouterr().err.strip() == "error: config file not found: nope.yaml"
    assert main(["fit", "replay.batchsize=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key") and err.count("\n") == 1 and "Traceback" not in err
    assert main(["eval", "--ckpt", str(tmp_path / "missing.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"\x00not a checkpoint")
    assert main(["eval", "--ckpt", str(corrupt)]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert main(["fit", "--config", os.path.join(ROOT, "configs", "tiny_point.yaml"), f"run.dir={tmp_path}", "--ckpt_path", "last"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert main(["fit", "--trainer.devices"]) == 2
    assert "needs a value" in capsys.readouterr().err


def test_print_config(capsys):
    assert main(["fit", "--config", os.path.join(ROOT, "configs", "v2_atari.yaml"), "--print_config", "--trainer.precision", "bf16-mixed"]) == 0
    out = capsys.readouterr().out
    assert "sticky_actions: 0.25" in out and "precision: bf16-mixed" in out and "dir: runs/v2_atari_Pong" in out
