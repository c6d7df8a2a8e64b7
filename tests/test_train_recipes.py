"""Learning-rate schedules against PyTorch's schedulers, and every packaged recipe: it parses,
builds its model and mixer, and takes a training step (on the bundled images)."""

from __future__ import annotations

import math

import pytest
import torch

from mixkit.train import fit, get_args_parser, list_recipes, load_recipe, resolve
from mixkit.train.schedules import Schedule


def _torch_schedule(make, steps: int):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9, nesterov=True)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        opt.step()
        sched.step()
    return out


def test_onecycle_matches_torch():
    steps = 230
    ref = _torch_schedule(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.3, total_steps=steps, div_factor=100, final_div_factor=1e4, pct_start=0.3), steps)
    s = Schedule("onecycle", lr=0.3, total_steps=steps, steps_per_epoch=23, max_lr=0.3)
    for step, (lr, mom) in enumerate(ref):
        got_lr, got_mom = s.at(step)
        assert got_lr == pytest.approx(lr, rel=1e-9, abs=1e-15)
        assert got_mom == pytest.approx(mom, rel=1e-9)
    assert s.at(0)[0] == pytest.approx(0.003) and s.at(steps - 1)[0] == pytest.approx(0.003 / 1e4)


def test_multistep_matches_torch_per_epoch():
    spe, epochs = 7, 12
    ref = _torch_schedule(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [4, 9], 0.1), epochs)
    s = Schedule("multistep", lr=0.1, total_steps=spe * epochs, steps_per_epoch=spe, milestones=(4, 9))
    for epoch, (lr, _) in enumerate(ref):
        assert [s.at(epoch * spe + i)[0] for i in range(spe)] == pytest.approx([lr] * spe)


def test_cosine_and_warmup():
    s = Schedule("cosine", lr=0.2, total_steps=100, steps_per_epoch=10, min_lr=0.0)
    assert s.at(0)[0] == pytest.approx(0.2)
    assert s.at(50)[0] == pytest.approx(0.1)
    assert s.at(100)[0] == pytest.approx(0.0, abs=1e-12)
    w = Schedule("cosine", lr=0.2, total_steps=100, steps_per_epoch=10, warmup_epochs=2)
    assert [w.at(i)[0] for i in (0, 9, 19)] == pytest.approx([0.2 / 20, 0.2 / 2, 0.2])
    assert w.at(20)[0] == pytest.approx(0.2)
    assert w.at(60)[0] == pytest.approx(0.2 * (1 + math.cos(math.pi * 0.5)) / 2)
    with pytest.raises(ValueError, match="schedule"):
        Schedule("step", lr=0.1, total_steps=10, steps_per_epoch=1)


PAPER_RECIPES = [
    ("rmix-cifar100-preactresnet18", "rmix", "onecycle"),
    ("comixup-protocol-cifar100-preactresnet18", "none", "multistep"),
    ("comixup-protocol-cifar100-wrn16_8", "none", "multistep"),
    ("comixup-protocol-cifar100-resnext29_4_24", "none", "multistep"),
    ("guidedmixup-cifar100-preactresnet18-sr", "guided-sr", "multistep"),
    ("guidedmixup-cifar100-preactresnet18-ap", "guided-ap", "multistep"),
    ("guidedmixup-tinyimagenet-preactresnet18-ap", "guided-ap", "multistep"),
    ("kimage-cifar100-pyramidnet110_64-dcutmix", "dcutmix", "multistep"),
    ("kimage-cifar100-pyramidnet200_240-dcutmix", "dcutmix", "multistep"),
    ("resizemix-cifar100-wrn28_10", "resizemix", "cosine"),
]


@pytest.mark.parametrize("name,method,schedule", PAPER_RECIPES)
def test_paper_recipes_hold_the_papers_settings(name, method, schedule):
    config = resolve(get_args_parser().parse_args(["--config", name]))
    assert (config["method"], config["schedule"]) == (method, schedule)
    assert config["weight_decay"] in (1e-4, 5e-4) and config["momentum"] == 0.9


def test_rmix_recipe_is_the_supplements():
    c = resolve(get_args_parser().parse_args(["--config", "rmix-cifar100-preactresnet18"]))
    assert (c["epochs"], c["batch_size"], c["max_lr"], c["div_factor"], c["final_div_factor"],
            c["weight_decay"], c["crop_padding"], c["nesterov"]) == (300, 100, 0.3, 100, 1e4, 1e-4, 2, True)


@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_starts(tmp_path, name):
    """One training step of each recipe's model and mixer, on the bundled images (the recipes'
    datasets are not available offline; their loading has its own tests)."""
    recipe = load_recipe(name)
    assert recipe, name
    args = get_args_parser().parse_args([
        "--config", name, "--dataset", "demo", "--data-root", "", "--train-per-class", "1",
        "--batch-size", "5", "--eval-batch-size", "500", "--max-steps", "1", "--progress", "false",
        "--normalize", "auto", "--workers", "0", "--out", str(tmp_path / name)])
    config = resolve(args)
    history = fit(config)
    assert history == []  # stopped after one step, before the end of the first epoch
    assert (tmp_path / name / "checkpoint.pt").exists()
