"""What a run writes and prints: ``config.yaml``, ``metrics.jsonl`` (+ TensorBoard when installed),
a tqdm progress bar with loss, throughput and ETA, and one line per epoch. Only rank 0 writes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional


def plain(value: Any) -> Any:
    """``value`` with tuples as lists (YAML/JSON friendly), recursively."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class _Bar:
    """tqdm when enabled, else nothing."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", leave=False,
                            dynamic_ncols=True, file=sys.stderr)

    def update(self, loss: float, images_per_s: float, lr: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{images_per_s:.0f}", lr=f"{lr:.3g}",
                                 refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class RunLogger:
    """Writes the run directory ``out_dir`` (when ``enabled``) and prints progress."""

    def __init__(self, out_dir: Path, config: Dict[str, Any], enabled: bool = True) -> None:
        self.out_dir, self.config, self.enabled = Path(out_dir), config, enabled
        self.tb = None
        if not enabled:
            return
        import yaml

        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.out_dir / "config.yaml", yaml.safe_dump(plain(config), sort_keys=False))
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            SummaryWriter = None
        if SummaryWriter is not None:
            self.tb = SummaryWriter(str(self.out_dir / "tb"))

    def message(self, text: str) -> None:
        if self.enabled:
            print(text, flush=True)

    def progress(self, total: int, initial: int, epoch: int, epochs: int) -> _Bar:
        return _Bar(total, initial, f"epoch {epoch + 1}/{epochs}",
                    self.enabled and bool(self.config["progress"]))

    def start(self, t: Any) -> None:
        cfg = t.config
        params = sum(p.numel() for p in t.net.parameters())
        where = (f"resuming at epoch {t.epoch + 1}, step {t.step}" if t.global_step else "starting")
        self.message(f"{where}: {cfg['model']} ({params / 1e6:.2f}M params) on {cfg['dataset']} "
                     f"({t.data.num_classes} classes), method {cfg['method']}, "
                     f"{t.steps_per_epoch} steps/epoch × {cfg['epochs']} epochs, {t.device}"
                     f"{f' × {t.ctx.world_size} processes' if t.ctx.distributed else ''}; "
                     f"run directory {self.out_dir}")

    def epoch(self, row: Dict[str, Any], history: List[Dict[str, Any]]) -> None:
        if not self.enabled:
            return
        write_atomic(self.out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        if self.tb is not None:
            for key, value in row.items():
                if key not in ("epoch", "step") and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, row["epoch"])
            self.tb.flush()
        parts = [f"epoch {row['epoch']}/{self.config['epochs']}", f"loss {row['train_loss']:.4f}"]
        if "top1_err" in row:
            parts += [f"top-1 err {row['top1_err']:.2f}%", f"top-5 err {row['top5_err']:.2f}%"]
        parts += [f"{row['images_per_s']:.0f} img/s", f"{row['epoch_time_s']:.1f}s"]
        self.message(" | ".join(parts))

    def finish(self, history: List[Dict[str, Any]], extra: Optional[str] = None) -> None:
        if self.tb is not None:
            self.tb.close()
        if history:
            self.message(f"done: {len(history)} epochs; metrics in {self.out_dir / 'metrics.jsonl'}, "
                         f"checkpoint {self.out_dir / 'checkpoint.pt'}" + (f"; {extra}" if extra else ""))
