"""Training speed: recnas against a plain torch loop, workers, FLOP/s.

Run with ``pytest -s -m benchmark tests/benchmarks/bench_train.py``; every test
prints its figures on lines starting with ``BENCH``. Figures depend on the
machine and on whatever else runs on it, so every comparison measures both
sides the same way, in short windows taken in turns, and prints the best
window of each side (the one least disturbed by other work) and, where there
are many, the median; the load average is printed with the figures. Each
ratio compares the same model, batch and torch threads on both sides.
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from recnas.data.features import Batch, FeatureSet
from recnas.models.baselines import build_baseline
from recnas.train.config import TrainConfig
from recnas.train.data import TensorSource
from recnas.train.launcher import Scaling
from recnas.train.loop import WorkerLoop
from recnas.train.session import LocalSession

from ..train.helpers import run_group

pytestmark = pytest.mark.benchmark

# Criteo-shaped: 13 dense features, 26 sparse ones (tables of 10 k rows).
CRITEO = FeatureSet.synthetic(13, [10_000] * 26)
DLRM = {"embed_dim": 16, "bottom": [512, 256], "top": [512, 256]}
BATCH = 512
MATMUL_N = 2048
FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "nasrec"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} (1 / 5 min) on {os.cpu_count()} CPUs"


@contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rows(features: FeatureSet, n: int, seed: int = 0) -> Batch:
    rows = Batch.random(features, n, torch.Generator().manual_seed(seed))
    rows.label = (rows.dense[:, 0] + 0.3 * rows.dense[:, 1] > 0.7).float()
    return rows


def _batches(steps: int, seed: int = 0) -> list[Batch]:
    rows = _rows(CRITEO, steps * BATCH, seed)
    return [rows.rows(i, i + BATCH) for i in range(0, steps * BATCH, BATCH)]


def _plain_step(model: torch.nn.Module, lr: float):
    """A hand-written training step: forward, BCE, backward, Adam (fused, the
    implementation recnas picks, so that the ratio measures the loop)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)

    def step(batch: Batch) -> None:
        loss = F.binary_cross_entropy_with_logits(model(batch), batch.label)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _plain_loop(model: torch.nn.Module, batches: list[Batch], lr: float) -> float:
    """Samples/s of the hand-written loop over ``batches``."""
    step = _plain_step(model, lr)
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    return len(batches) * len(batches[0]) / (time.perf_counter() - start)


def _recnas_loop(steps: int, threads: int) -> tuple[float, float]:
    """In-process samples/s of recnas's worker loop: (its own count, wall)."""
    source = TensorSource(CRITEO, {"train": _rows(CRITEO, steps * BATCH)}, BATCH)
    config = TrainConfig.baseline(
        "memory",
        "dlrm",
        params=DLRM,
        batch_size=BATCH,
        epochs=1,
        eval_split=None,
        test_split=None,
        early_stopping_patience=0,
        log_every=steps,
        threads=threads,
    )
    torch.manual_seed(0)
    loop = WorkerLoop(config, LocalSession(), source)
    start = time.perf_counter()
    final = loop.run()
    wall = steps * BATCH / (time.perf_counter() - start)
    return final["run_samples_per_s"], wall


def test_loop_against_plain_torch() -> None:
    """recnas's worker loop in this process (in-memory batches, Adam) against
    the hand-written loop, at 1 and 2 torch threads; 20 steps per window."""
    steps = 20
    batches = _batches(steps)
    for threads in (1, 2):
        plain, ours, wall = [], [], []
        with _threads(threads):
            for _ in range(3):  # in turns, best of three: other load
                torch.manual_seed(0)
                model = build_baseline("dlrm", CRITEO, **DLRM)
                plain.append(_plain_loop(model, batches, 1e-3))
                counted, whole = _recnas_loop(steps, threads)
                ours.append(counted)
                wall.append(whole)
        ratio = max(ours) / max(plain)
        print(
            f"\nBENCH loop dlrm batch {BATCH} threads {threads}: plain torch "
            f"{max(plain):,.0f} samples/s, recnas loop {max(ours):,.0f} samples/s "
            f"(wall incl. final checkpoint {max(wall):,.0f}), ratio {ratio:.2f} "
            f"(goal 0.9); {_load()}"
        )
        assert ratio > 0.5


def _fixture_arch():
    from recnas.space.spec import load_space

    space = load_space("nasrec_small")
    path = FIXTURE / "criteo_nasrec_small_best.json"
    try:
        from recnas.space.nasrec_format import from_nasrec

        return from_nasrec(json.loads(path.read_text()), space), "fixture"
    except FileNotFoundError:
        from recnas.space.sampling import sample

        return sample(space, random.Random(0)), "sampled (seed 0)"


def _matmul_seconds(a: torch.Tensor, b: torch.Tensor) -> float:
    start = time.perf_counter()
    torch.mm(a, b)
    return time.perf_counter() - start


def _subnet_loop(arch, sparse: bool) -> WorkerLoop:
    """recnas's worker loop for the subnet, NASRec's recipe (Adagrad lr 0.12
    eps 1e-2, clip 5), with sparse or dense embedding gradients."""
    config = TrainConfig.retrain(
        "memory",
        arch.to_dict(),
        "nasrec_small",
        optimizer="adagrad",
        lr=0.12,
        eps=1e-2,
        clip_norm=5.0,
        batch_size=BATCH,
        epochs=1,
        eval_split=None,
        test_split=None,
        early_stopping_patience=0,
        sparse_gradients=sparse,
    )
    source = TensorSource(CRITEO, {"train": _rows(CRITEO, 2 * BATCH)}, BATCH)
    torch.manual_seed(0)
    return WorkerLoop(config, LocalSession(), source)


def _subnet_times(variants: tuple[str, ...], rounds: int, out: str) -> None:
    """Seconds of single training steps of each variant and of single 2048^3
    matmuls, in turns, at 1 and 2 threads; written to ``out`` as JSON."""
    arch, _ = _fixture_arch()
    loops = {v: _subnet_loop(arch, v == "sparse") for v in variants}
    batches = [_rows(CRITEO, BATCH, seed) for seed in range(4)]
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    times: dict[int, dict[str, list[float]]] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        torch.mm(a, b)
        for loop in loops.values():  # warm-up
            loop.train_step(batches[0])
        times[threads] = {name: [] for name in ("matmul", *variants)}
        for i in range(rounds):
            times[threads]["matmul"].append(_matmul_seconds(a, b))
            for name, loop in loops.items():
                start = time.perf_counter()
                loop.train_step(batches[i % len(batches)])
                times[threads][name].append(time.perf_counter() - start)
    Path(out).write_text(json.dumps(times))


_OPENMP_SET = any(k in os.environ for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"))


def _worker_env(policy: str) -> dict[str, str]:
    """The OpenMP and malloc variables that recnas's workers get under the
    OpenMP wait policy ``policy``."""
    return Scaling(omp_wait_policy=policy).process_env()


def _in_fresh_process(env: dict[str, str], fn, *args) -> None:
    """Run ``fn(*args)`` in a new Python process started with ``env`` added
    (OpenMP and malloc read their settings when the process starts)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        process = mp.get_context("spawn").Process(target=fn, args=args)
        process.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value
    process.join()
    assert process.exitcode == 0


def test_subnet_step_flops_against_matmul_peak(tmp_path: Path) -> None:
    """FLOP/s of recnas's training step (``WorkerLoop.train_step``: forward,
    loss, backward, clip, Adagrad) on the NASRec-Small fixture subnet against
    the fp32 matmul peak, at 1 and 2 threads.

    The subnet is NASRec's published best NASRec-Small architecture for
    Criteo (the shared fixture; a seeded sample of the space where it is
    absent), on Criteo-shaped inputs (13 dense, 26 sparse features): the
    kind of model a search retrains. The batch is 512 examples, NASRec's
    batch and recnas's per-worker default. FLOPs are counted by torch's
    FlopCounterMode over one whole step and printed next to the cost
    model's 2 x 3 x multiply-adds, so the two can be compared.

    Single steps and single 2048^3 matmuls are timed in turns, 8 of each, in
    a fresh process that runs OpenMP and malloc as recnas's Ray workers do
    (brief spinning, memory kept between steps, see ``Scaling``) and, for
    comparison, in one with torch's default (long spinning) and in one whose
    threads sleep at once.
    The peak is the fastest matmul of either process; the figure in
    parentheses compares the median step with the median matmul instead.
    """
    from recnas.models.cost import macs_per_example

    arch, origin = _fixture_arch()
    loop = _subnet_loop(arch, True)
    batch = _rows(CRITEO, BATCH)
    loop.train_step(batch)
    with FlopCounterMode(display=False) as counter:
        loop.train_step(batch)
    flops = counter.get_total_flops()
    macs = macs_per_example(arch, CRITEO)
    print(
        f"\nBENCH subnet ({origin} arch {arch.arch_id}) batch {BATCH}, Adagrad "
        f"lr 0.12 eps 1e-2 clip 5: {macs / 1e6:.2f} M multiply-adds per example "
        f"(cost model); {flops / BATCH / 1e6:.2f} MFLOP per example per step "
        f"(torch FlopCounterMode: forward + backward matmul-class ops; "
        f"2 x multiply-adds x 3 = {6 * macs / 1e6:.2f})"
    )
    peak_flop = 2 * MATMUL_N**3
    runs = {"brief": ("sparse", "dense"), "passive": ("sparse",)}
    if not _OPENMP_SET:  # this process runs torch's default
        runs["default"] = ("sparse",)
    times = {}
    for policy, variants in runs.items():
        out = tmp_path / f"{policy}.json"
        env = _worker_env(policy) if policy != "default" else {}
        _in_fresh_process(env, _subnet_times, variants, 8, str(out))
        times[policy] = json.loads(out.read_text())
    for threads in ("1", "2"):
        # The peak: the fastest single matmul of either process.
        fastest = min(min(t[threads]["matmul"]) for t in times.values())
        peak = peak_flop / fastest
        for policy, variants in runs.items():
            mine = times[policy][threads]
            shares = []
            for name in variants:
                best, mid = min(mine[name]), statistics.median(mine[name])
                mid_peak = peak_flop / statistics.median(mine["matmul"])
                shares.append(
                    f"{name} embedding gradients {BATCH / best:,.0f} samples/s, "
                    f"{flops / best / 1e9:.1f} GFLOP/s = "
                    f"{100 * flops / best / peak:.0f} % of peak (medians: "
                    f"{100 * flops / mid / mid_peak:.0f} %)"
                )
            print(
                f"BENCH subnet step threads {threads}, OpenMP wait policy "
                f"{policy}: recnas {'; '.join(shares)}; fp32 matmul peak "
                f"{peak / 1e9:.1f} GFLOP/s (goal 25 %)"
            )
    print(f"BENCH subnet step: {_load()}")


def _supernet_worker(
    rank: int, out: str, grad_sync: str, sparse: bool, steps: int
) -> None:
    features = CRITEO
    source = TensorSource(
        features, {"train": _rows(features, 2 * steps * BATCH)}, BATCH
    )
    config = TrainConfig.nasrec_supernet(
        "memory",
        batch_size=BATCH,
        max_steps=steps,
        log_every=steps,
        eval_split=None,
        grad_sync=grad_sync,
        sparse_gradients=sparse,
    )
    loop = WorkerLoop(config, LocalSession(), source)
    final = loop.run()
    if rank == 0:
        Path(out).write_text(json.dumps(final))
    dist.barrier()


@pytest.mark.parametrize(
    ("grad_sync", "sparse"), [("allreduce", True), ("allreduce", False), ("ddp", False)]
)
def test_supernet_two_processes(tmp_path: Path, grad_sync: str, sparse: bool) -> None:
    """Two gloo processes of one thread: our gradient sync (sparse embedding
    rows gathered, or every row all-reduced) against torch DDP with
    find_unused_parameters, on NASRec-Small supernet steps."""
    out = tmp_path / "final.json"
    run_group(_supernet_worker, (str(out), grad_sync, sparse, 16), timeout_s=300)
    final = json.loads(out.read_text())
    print(
        f"\nBENCH supernet nasrec_small 2 procs x 1 thread, grad_sync={grad_sync}, "
        f"{'sparse' if sparse else 'dense'} embedding gradients: "
        f"{final['run_samples_per_s']:,.0f} samples/s (batch {BATCH} per worker); "
        f"{_load()}"
    )


def _write_dataset(folder: Path, rows_per_split: dict[str, int]) -> str:
    """A Criteo-shaped processed dataset of random rows (one Parquet file per
    split), readable by ``BatchLoader``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recnas.data.meta import DatasetMeta

    files = {}
    for i, (split, n) in enumerate(rows_per_split.items()):
        rows = _rows(CRITEO, n, seed=100 + i)
        columns = {"label": pa.array(rows.label.numpy())}
        for j, name in enumerate(CRITEO.dense):
            columns[name] = pa.array(rows.dense[:, j].numpy())
        for j, f in enumerate(CRITEO.single):
            columns[f.name] = pa.array(rows.sparse[:, j].numpy().astype("int32"))
        (folder / split).mkdir(parents=True)
        path = f"{split}/part-0.parquet"
        pq.write_table(pa.table(columns), folder / path, row_group_size=16_384)
        files[split] = [{"path": path, "md5": f"bench-{split}", "rows": n}]
    meta = DatasetMeta(
        dataset="criteo",
        features=CRITEO,
        protocol={"name": "random", "seed": 0},
        rows=dict(rows_per_split),
        files=files,
        synthetic=True,
    )
    meta.save(str(folder))
    return str(folder)


def _fit(
    data: str, storage: Path, workers: int, cpus: float, steps: int, every: int
) -> list[dict]:
    """Rank 0's reports of a fit (one every ``every`` steps, then the final),
    each with the ``perf_counter`` time it reached the driver."""
    from recnas.train.launcher import fit

    config = TrainConfig.baseline(
        data,
        "dlrm",
        params=DLRM,
        batch_size=BATCH,
        epochs=1,
        max_steps=steps,
        eval_split=None,
        test_split=None,
        early_stopping_patience=0,
        log_every=every,
    )
    reports: list[dict] = []
    fit(
        config,
        Scaling(num_workers=workers, cpus_per_worker=cpus),
        storage=str(storage),
        name=f"w{workers}c{cpus}-{time.time_ns()}",
        progress=False,
        on_report=lambda m: reports.append({**m, "arrived": time.perf_counter()}),
    )
    return reports


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _plain_windows(
    batches: list[Batch], window: int
) -> tuple[list[float], float, float]:
    """Samples/s of each ``window``-step window of the hand-written loop on one
    fresh model, its samples per CPU second of this thread, and this
    process's minor page faults per step after the first window."""
    torch.manual_seed(0)
    step = _plain_step(build_baseline("dlrm", CRITEO, **DLRM), 1e-3)
    rates, cpu, faults = [], 0.0, 0
    for first in range(0, len(batches), window):
        part = batches[first : first + window]
        faults_start = _minor_faults()
        cpu_start, start = time.thread_time(), time.perf_counter()
        for batch in part:
            step(batch)
        rates.append(len(part) * BATCH / (time.perf_counter() - start))
        cpu += time.thread_time() - cpu_start
        if first:
            faults += _minor_faults() - faults_start
    steady = len(batches) - window
    return rates, len(batches) * BATCH / cpu, faults / steady


def _plain_all_threads(steps: int, window: int, out: str) -> None:
    """:func:`_plain_windows` at 1 and 2 threads, written to ``out`` as JSON
    (run in a fresh process)."""
    batches = _batches(steps)
    result = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        result[threads] = _plain_windows(batches, window)
    Path(out).write_text(json.dumps(result))


class _PlainReference:
    """The hand-written loop's windows at 1 and 2 threads, gathered in turns
    with the fits: in this process (torch's and glibc's default settings) and
    in a fresh process with the workers' OpenMP and malloc settings (as
    ``Scaling`` sets them). Every window of both counts, so the reference is
    the faster of the two set-ups. ``medians`` keeps each measurement's
    median apart, so that a fit can be compared with the measurements just
    before and just after it."""

    def __init__(self, folder: Path, steps: int, window: int) -> None:
        self.folder, self.steps, self.window = folder, steps, window
        self.batches = _batches(steps)
        self.rates: dict[int, list[float]] = {1: [], 2: []}
        self.medians: dict[int, list[float]] = {1: [], 2: []}
        self.cpu: list[float] = []
        # Page faults per step at each thread count: this process, fresh one.
        self.faults: dict[int, list[float]] = {1: [], 2: []}
        self.fresh_faults: dict[int, list[float]] = {1: [], 2: []}
        self.runs = 0

    def measure(self) -> None:
        now: dict[int, list[float]] = {1: [], 2: []}
        for threads in (1, 2):
            with _threads(threads):
                rates, cpu_rate, faults = _plain_windows(self.batches, self.window)
            now[threads] += rates
            self.faults[threads].append(faults)
            if threads == 1:
                self.cpu.append(cpu_rate)
        self.runs += 1
        out = self.folder / f"plain-{self.runs}.json"
        env = Scaling().process_env()
        _in_fresh_process(env, _plain_all_threads, self.steps, self.window, str(out))
        for threads, (rates, cpu_rate, faults) in json.loads(out.read_text()).items():
            now[int(threads)] += rates
            self.fresh_faults[int(threads)].append(faults)
            if threads == "1":
                self.cpu.append(cpu_rate)
        for threads, rates in now.items():
            self.rates[threads] += rates
            self.medians[threads].append(statistics.median(rates))

    def around(self, threads: int, measurement: int) -> float:
        """Mean of the medians of measurement ``measurement`` and the next."""
        pair = self.medians[threads][measurement : measurement + 2]
        return sum(pair) / len(pair)


def _worker_per_step(reports: list[dict], key: str) -> float:
    """Growth of rank 0's whole-process count ``key`` (CPU seconds of the
    loader thread, Ray's threads, reports and all; page faults) per step, from
    its first report to its last."""
    first, last = reports[0], reports[-1]
    return (last[key] - first[key]) / (last["step"] - first["step"])


def _counts(values: list[float]) -> str:
    return " / ".join(f"{v:,.0f}" for v in values)


def test_fit_throughput(ray_cluster, tmp_path: Path) -> None:
    """recnas as users run it, ``fit`` on Ray Train (Parquet through the batch
    loader, a report every ``log_every`` steps, its default), against the
    hand-written in-memory loop with the same threads; 2 workers against 1.

    The workers' steady-state rate is the samples/s of each interval between
    reports (the first interval, with the first steps' allocations, is left
    out); the plain loop is timed in windows of as many steps before and
    after every fit. Every set-up is fitted three times, in turns with the
    others: on this kind of shared machine the same loop runs 10-20 % slower
    for whole stretches of a minute or more, so the ratios are taken two ways.
    Pooled: the best and the median window of each side over the whole
    test. Paired: each run's median interval against the plain loop's
    median just before and just after it (the mean of the two), then the
    median over the runs; drifts of the machine's speed that outlast a run
    cancel out. The start-up of a run (``fit`` called to first report) and
    the page faults per step of every run and plain measurement (a sign of
    memory handed back to the kernel and taken again each step) are printed
    apart.
    """
    window, rounds = TrainConfig.log_every, 3
    steps = 6 * window
    setups = ((1, 1.0), (1, 2.0), (2, 1.0))
    data = _write_dataset(tmp_path / "data", {"train": 2 * steps * BATCH})
    plain = _PlainReference(tmp_path, 3 * window, window)
    runs: dict[tuple[int, float], list[list[dict]]] = {key: [] for key in setups}
    startup: dict[tuple[int, float], list[float]] = {key: [] for key in setups}
    # Which plain measurement came just before each run.
    before: dict[tuple[int, float], list[int]] = {key: [] for key in setups}
    for _ in range(rounds):
        for workers, cpus in setups:
            plain.measure()
            before[workers, cpus].append(plain.runs - 1)
            started = time.perf_counter()
            reports = _fit(data, tmp_path, workers, cpus, steps, window)
            runs[workers, cpus].append(reports)
            first = reports[0]
            training = first["step"] * BATCH * workers / first["samples_per_s"]
            startup[workers, cpus].append(first["arrived"] - started - training)
    plain.measure()

    def rates(reports: list[dict]) -> list[float]:
        return [r["samples_per_s"] for r in reports[1:] if r.get("samples_per_s")]

    def intervals(key: tuple[int, float]) -> list[float]:
        return [rate for reports in runs[key] for rate in rates(reports)]

    def per_run(key: tuple[int, float]) -> str:
        return _counts([med(rates(reports)) for reports in runs[key]])

    med = statistics.median
    niceness = {
        r["niceness"] for each in runs.values() for reports in each for r in reports
    }
    whole = {
        key: max(reports[-1]["run_samples_per_s"] for reports in each)
        for key, each in runs.items()
    }
    for threads, key in ((1, (1, 1.0)), (2, (1, 2.0))):
        ours, ref = intervals(key), plain.rates[threads]
        paired = [
            med(rates(reports)) / plain.around(threads, measurement)
            for reports, measurement in zip(runs[key], before[key], strict=True)
        ]
        print(
            f"\nBENCH fit dlrm batch {BATCH}, {threads} thread(s): plain torch best "
            f"/ median {window}-step window {max(ref):,.0f} / {med(ref):,.0f} "
            f"samples/s; recnas fit 1 worker x {threads} CPU best / median "
            f"interval {max(ours):,.0f} / {med(ours):,.0f} (medians of its "
            f"{rounds} runs {per_run(key)}; best whole run {whole[key]:,.0f}); "
            f"pooled ratio best {max(ours) / max(ref):.2f}, median "
            f"{med(ours) / med(ref):.2f}; paired ratio of each run "
            f"{' / '.join(f'{r:.2f}' for r in paired)}, median {med(paired):.2f} "
            f"(goal 0.9); worker niceness {niceness}; start-up "
            f"{min(startup[key]):.1f} s; {_load()}"
        )
        fit_faults = [
            _worker_per_step(reports, "minor_faults") for reports in runs[key]
        ]
        print(
            f"BENCH fit dlrm page faults per step, {threads} thread(s): plain in "
            f"this process (glibc's settings) {_counts(plain.faults[threads])}; "
            f"plain with the workers' settings "
            f"{_counts(plain.fresh_faults[threads])}; recnas worker process "
            f"{_counts(fit_faults)}"
        )
    cpu_rate = BATCH / min(
        _worker_per_step(reports, "process_cpu_s") for reports in runs[1, 1.0]
    )
    two = intervals((2, 1.0))
    print(
        f"BENCH fit dlrm CPU cost, 1 thread: plain {max(plain.cpu):,.0f} samples "
        f"per CPU-s of its thread, recnas {cpu_rate:,.0f} per CPU-s of the whole "
        f"worker process, ratio {cpu_rate / max(plain.cpu):.2f}"
    )
    print(
        f"BENCH fit dlrm batch {BATCH} per worker, 2 workers x 1 CPU against 1 "
        f"worker x 1 CPU: best / median interval {max(two):,.0f} / "
        f"{med(two):,.0f} samples/s (x{max(two) / max(intervals((1, 1.0))):.2f} "
        f"/ x{med(two) / med(intervals((1, 1.0))):.2f}), best whole run "
        f"{whole[2, 1.0]:,.0f} (x{whole[2, 1.0] / whole[1, 1.0]:.2f}); "
        f"start-up {min(startup[2, 1.0]):.1f} s; {_load()}"
    )
    assert min(whole.values()) > 0
