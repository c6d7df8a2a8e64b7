"""Bundled data: a small real-image CIFAR-10 subset for demos, tests and benchmarks."""

from .demo import DEMO_FILE, DemoSplit, load_demo

__all__ = ["DEMO_FILE", "DemoSplit", "load_demo"]
