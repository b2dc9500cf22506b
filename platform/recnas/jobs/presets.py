"""Stage settings by scale: ``tiny`` for tests, ``demo`` for a laptop, ``paper``
for NASRec's own settings on a GPU cluster.

A job file names one preset; its own keys override the preset's.
"""

from __future__ import annotations

from typing import Any

ALL_BASELINES = [
    "lr",
    "fm",
    "dnn",
    "wide_deep",
    "deepfm",
    "xdeepfm",
    "dcn",
    "dcn_v2",
    "autoint_plus",
    "dlrm",
]

# Seconds: a few dozen steps everywhere, enough to exercise every stage.
TINY: dict[str, Any] = {
    "supernet": {
        "optimizer": "adam",
        "lr": 1e-3,
        "max_steps": 24,
        "batch_size": 256,
        "warmup_steps": 6,
        "checkpoint_every": 12,
    },
    "search": {
        "budget": 6,
        "population_size": 3,
        "sample_size": 2,
        "children": 2,
        "concurrency": 2,
        "finetune_steps": 5,
        "val_rows": 2048,
        "latency_batch": 64,
    },
    "retrain": {"top_k": 2, "epochs": 1, "max_steps": 16, "batch_size": 256},
    "baselines": {
        "models": ["dnn", "dlrm"],
        "epochs": 1,
        "max_steps": 16,
        "batch_size": 256,
    },
}

# Minutes on two CPU cores with the shipped MovieLens sample.
DEMO: dict[str, Any] = {
    # NASRec's Adagrad at lr 0.12 needs a long warm-up to settle; on a few
    # hundred steps of MovieLens it diverges, so the demo trains with Adam.
    "supernet": {
        "epochs": 2,
        "batch_size": 512,
        "optimizer": "adam",
        "lr": 1e-3,
        "warmup_steps": 0,
        "checkpoint_every": 100,
    },
    "search": {
        "budget": 32,
        "population_size": 8,
        "sample_size": 4,
        "children": 4,
        "concurrency": 2,
        "finetune_steps": 60,
        "val_rows": 8192,
        "latency_batch": 512,
    },
    "retrain": {"top_k": 2, "epochs": 2, "batch_size": 512, "patience": 1},
    "baselines": {
        "models": ["dnn", "dlrm", "deepfm", "dcn_v2"],
        "epochs": 2,
        "batch_size": 512,
        "patience": 1,
    },
}

# NASRec's settings: one supernet epoch, 2,048 candidates (P 128, S 64, C 8,
# 240 generations), 500 head fine-tuning steps, the top 15 retrained.
PAPER: dict[str, Any] = {
    "resources": {"workers": 8, "cpus_per_worker": 4, "use_gpu": True},
    "supernet": {
        "epochs": 1,
        "batch_size": 512,
        "lr": 0.12,
        "warmup_steps": 10000,
        "checkpoint_every": 2000,
    },
    "search": {
        "budget": 2048,
        "population_size": 128,
        "sample_size": 64,
        "children": 8,
        "concurrency": 16,
        "finetune_steps": 500,
        "finetune_lr": 0.04,
        "val_rows": 131072,
        "latency_batch": 512,
    },
    "retrain": {"top_k": 15, "epochs": 1, "batch_size": 512, "lr": 1e-3},
    "baselines": {"models": ALL_BASELINES, "epochs": 1, "batch_size": 512},
}

PRESETS: dict[str, dict[str, Any]] = {"tiny": TINY, "demo": DEMO, "paper": PAPER}
