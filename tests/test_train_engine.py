"""The training engine: a short run learns, resume equals uninterrupted (also after Ctrl-C), DDP
through torchrun, the configuration's precedence and the mixer the run builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mixkit.train import build_trainer, engine, fit, get_args_parser, resolve
from mixkit.train.build import build_mixer, mixer_seed
from mixkit.train.checkpoint import load

#: a run of seconds: 5 images per class of the bundled set, a width-4 PreActResNet-18
TINY = ["--config", "demo", "--train-per-class", "5", "--model-opt", "width=4", "--batch-size", "20",
        "--eval-batch-size", "250", "--progress", "false"]


def config(tmp_path: Path, *flags: str, name: str = "run") -> dict:
    return resolve(get_args_parser().parse_args([*TINY, "--out", str(tmp_path / name), *flags]))


def weights(path: Path) -> dict:
    return load(path / "checkpoint.pt")["model"]


def test_short_run_learns(tmp_path):
    history = fit(config(tmp_path, "--epochs", "8", "--crop-padding", "0", "--flip", "false",
                         "--lr", "0.05", "--eval-every", "100"))
    losses = [row["train_loss"] for row in history]
    assert len(history) == 8 and losses[-1] < 0.8 * losses[0]
    assert "top1_err" in history[-1] and "top1_err" not in history[0]  # evaluated after the last
    run = tmp_path / "run"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 9))
    saved = (run / "config.yaml").read_text()
    assert "method: none" in saved and "width: 4" in saved


@pytest.mark.parametrize("method", ["cutmix", "rmix"])
def test_resume_equals_uninterrupted(tmp_path, method):
    flags = ["--epochs", "2", "--method", method, "--mixer-opt", "prob=0.7"]
    fit(config(tmp_path, *flags, name="full"))
    stopped = fit(config(tmp_path, *flags, "--max-steps", "4", name="parts"))  # 3 steps/epoch → mid-epoch 2
    assert len(stopped) == 1
    state = load(tmp_path / "parts" / "checkpoint.pt")
    assert (state["epoch"], state["step"], state["global_step"]) == (1, 1, 4)
    resumed = fit(config(tmp_path, *flags, name="parts"))
    full, parts = weights(tmp_path / "full"), weights(tmp_path / "parts")
    assert all(torch.equal(full[k], parts[k]) for k in full)
    strip = [{k: v for k, v in row.items() if "time" not in k and "per_s" not in k} for row in resumed]
    expected = [{k: v for k, v in row.items() if "time" not in k and "per_s" not in k}
                for row in json.loads("[" + ",".join((tmp_path / "full" / "metrics.jsonl").read_text()
                                                     .splitlines()) + "]")]
    assert strip == expected


def test_ctrl_c_saves_and_resumes_exactly(tmp_path, monkeypatch):
    flags = ["--epochs", "2", "--method", "mixup"]
    fit(config(tmp_path, *flags, name="full"))
    real_step, calls = engine.train_step, {"n": 0}

    def interrupting_step(t, x, y):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_step(t, x, y)

    monkeypatch.setattr(engine, "train_step", interrupting_step)
    with pytest.raises(engine.Interrupted, match="checkpoint saved"):
        fit(config(tmp_path, *flags, name="cut"))
    assert load(tmp_path / "cut" / "checkpoint.pt")["global_step"] == 2
    monkeypatch.setattr(engine, "train_step", real_step)
    fit(config(tmp_path, *flags, name="cut"))
    full, cut = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert all(torch.equal(full[k], cut[k]) for k in full)


def test_resume_refuses_other_settings(tmp_path):
    fit(config(tmp_path, "--epochs", "1"))
    with pytest.raises(ValueError, match="lr: 0.1 → 0.2"):
        fit(config(tmp_path, "--epochs", "1", "--lr", "0.2"))
    history = fit(config(tmp_path, "--epochs", "1", "--lr", "0.2", "--resume", "false"))
    assert len(history) == 1


def test_finished_run_is_not_retrained(tmp_path):
    first = fit(config(tmp_path, "--epochs", "1"))
    again = fit(config(tmp_path, "--epochs", "1"))
    assert again == first


def test_clean_loss_reuse_reaches_the_step(tmp_path):
    """Guided-AP with clean_weight > 0 leaves clean-loss gradients that the step must keep: with
    the saliency pass in the same BatchNorm mode (same maps, same mix) the update differs from
    clean_weight = 0 only through them."""
    results = []
    for cw in ("0", "0.5"):
        t = build_trainer(config(tmp_path, "--method", "guided-ap", "--mixer-opt", f"clean_weight={cw}",
                                 "--mixer-opt", "bn_mode=eval", "--epochs", "1", name=f"cw{cw}"))
        x, y = t.data.train.batch(0)
        engine.train_step(t, x, y)
        results.append(t.net.fc.weight.detach().clone())
    assert not torch.equal(*results)


def test_precedence_and_method_switch(tmp_path):
    base = resolve(get_args_parser().parse_args(["--config", "kimage-cifar100-pyramidnet110_64-dcutmix"]))
    assert base["mixer"] == {"k": 5, "alpha": 0.2, "prob": 1.0} and base["lr"] == 0.25
    flagged = resolve(get_args_parser().parse_args(
        ["--config", "kimage-cifar100-pyramidnet110_64-dcutmix", "--lr", "0.1", "--mixer-opt", "k=3"]))
    assert flagged["mixer"]["k"] == 3 and flagged["lr"] == 0.1
    switched = resolve(get_args_parser().parse_args(
        ["--config", "kimage-cifar100-pyramidnet110_64-dcutmix", "--method", "cutmix"]))
    assert switched["mixer"] == {} and switched["method"] == "cutmix"


def test_bad_recipes_are_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="unknown option 'learning_rate'"):
        resolve(get_args_parser().parse_args(["--config", str(bad)]))
    bad.write_text("mixer:\n  alpha: 1.0\n")
    with pytest.raises(ValueError, match="nested"):
        resolve(get_args_parser().parse_args(["--config", str(bad)]))
    with pytest.raises(ValueError, match="no recipe file"):
        resolve(get_args_parser().parse_args(["--config", "nonexistent-recipe"]))


def test_build_mixer_fills_in_what_the_run_knows(tmp_path):
    t = build_trainer(config(tmp_path, "--method", "saliencymix", "--amp", "bf16"))
    assert t.mixer.mean == pytest.approx(t.data.mean) and t.mixer.std == pytest.approx(t.data.std)
    cfg = config(tmp_path, "--method", "guided-ap", "--amp", "bf16")
    g0 = build_mixer(cfg, t.net, t.data, rank=0)
    g1 = build_mixer(cfg, t.net, t.data, rank=1)
    assert g0.saliency_dtype == "bfloat16"
    assert mixer_seed(0, 0) != mixer_seed(0, 1)
    assert not torch.equal(g0.generator.get_state(), g1.generator.get_state())
    with pytest.raises(ValueError, match="mixer options"):
        build_mixer(config(tmp_path, "--mixer-opt", "alpha=1"), t.net, t.data)
    with pytest.raises(ValueError, match="use --amp bf16"):
        build_trainer(config(tmp_path, "--method", "guided-ap", "--mixer-opt", "clean_weight=1",
                             "--amp", "fp16"))
    with pytest.raises(ValueError, match="loss bce needs mixed targets that sum to 1"):
        build_trainer(config(tmp_path, "--method", "snapmix", "--loss", "bce"))


def test_unknown_mixer_option_names_valid_ones(tmp_path):
    with pytest.raises(TypeError, match="valid options"):
        build_trainer(config(tmp_path, "--method", "cutmix", "--mixer-opt", "alpah=1"))


def test_ddp_two_processes_gloo(tmp_path):
    """``torchrun --nproc-per-node 2`` runs the same command as one process (gloo on the CPU)."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(29500 + os.getpid() % 1000), "-m", "mixkit.cli", "train", *TINY, "--epochs", "2",
           "--method", "cutmix", "--batch-size", "10", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "× 2 processes" in proc.stdout
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    state = load(out / "checkpoint.pt")
    # 50 images, 10 per rank per step → 3 global steps per epoch (the last of 5 per rank)
    assert state["global_step"] == 2 * 3 and state["step"] == 0
    assert 0.0 <= rows[-1]["top1_err"] <= 100.0
