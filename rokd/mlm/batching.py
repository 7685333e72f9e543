"""Batches: length-grouped example indices with a resumable cursor, and the endless, checkpointable
:class:`BatchStream` (dataset + sampler + collator) the trainer reads."""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from transformers.trainer_pt_utils import get_length_grouped_indices


class LengthGroupedBatchSampler:
    """Endless batches of example indices of similar length, reshuffled each epoch.

    Each epoch's order is a pure function of ``(seed, epoch)``: indices are grouped by length with
    ``transformers``' ``get_length_grouped_indices`` (random mega-batches sorted by length), cut into
    batches, and the batch order is shuffled. The cursor ``(epoch, position)`` is the whole state.

    With several processes (``num_shards`` > 1), shard ``shard_index`` takes every ``num_shards``-th
    batch, and all shards get the same number of batches per epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        seed: int = 0,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        mega_batch_mult: int | None = None,
        num_shards: int = 1,
        shard_index: int = 0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"shard_index {shard_index} not in [0, {num_shards})")
        self.lengths = [int(x) for x in lengths]
        if not self.lengths:
            raise ValueError("cannot sample batches from an empty dataset")
        self.batch_size, self.seed, self.shuffle, self.drop_last = batch_size, seed, shuffle, drop_last
        self.mega_batch_mult, self.num_shards, self.shard_index = mega_batch_mult, num_shards, shard_index
        self.epoch, self.position = 0, 0
        self._cache: tuple[int, list[list[int]]] | None = None
        if self.batches_per_epoch() == 0:
            raise ValueError(
                f"{len(self.lengths)} examples give no batch of {batch_size} per shard ({num_shards} shards, "
                f"drop_last={drop_last})"
            )

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This shard's batches of ``epoch`` (deterministic)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        if self.shuffle:
            order = get_length_grouped_indices(self.lengths, self.batch_size, self.mega_batch_mult, generator=g)
        else:
            order = list(range(len(self.lengths)))
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        per_shard = len(batches) // self.num_shards
        batches = batches[self.shard_index :: self.num_shards][:per_shard]
        self._cache = (epoch, batches)
        return batches

    def batches_per_epoch(self) -> int:
        return len(self.epoch_batches(0))

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            batches = self.epoch_batches(self.epoch)
            if self.position >= len(batches):
                self.epoch, self.position = self.epoch + 1, 0
                continue
            batch = batches[self.position]
            self.position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("seed", "batch_size"):
            if key in state and int(state[key]) != getattr(self, key):
                raise ValueError(
                    f"sampler state was saved with {key}={int(state[key])}, this sampler has {getattr(self, key)}"
                )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class _NumberedBatches(torch.utils.data.Dataset):
    """DataLoader view of a stream: item ``(number, indices, cursor)`` -> ``(cursor, collated batch)``."""

    def __init__(self, dataset: Any, collate_fn: Callable):
        self.dataset, self.collate_fn = dataset, collate_fn

    def __len__(self) -> int:  # endless; DataLoader only needs the items the sampler names
        return 2**62

    def __getitem__(self, job):
        number, idx, cursor = job
        self.collate_fn.reseed_for(number)
        return cursor, self.collate_fn([self.dataset[i] for i in idx])


class BatchStream:
    """Endless iterator of collated batches: ``collate([dataset[i] for i in batch_indices])``.

    ``state_dict()`` holds the sampler cursor, the number of batches drawn and (in the default continuous
    mode) the collator's generator, so that a resumed run continues with exactly the batches -- and masks --
    an uninterrupted run would draw.

    ``num_workers`` > 0 collates and masks in that many ``torch.utils.data.DataLoader`` worker processes
    (prefetching ``prefetch`` batches each) -- what keeps a GPU fed. It needs a collator in per-batch mode
    (``per_batch_seed=True``: batch ``n`` is masked with a generator seeded from ``(seed, n)``, see
    :func:`batch_seed`), so no generator state has to travel between processes: the state is the cursor of
    the last batch handed out and the batch count, and a resumed run (with or without workers) draws the
    same batches. With ``num_workers=0`` and the default continuous collator, batches are produced in the
    training process exactly as before per-batch mode existed (the published runs' stream).
    """

    def __init__(
        self,
        dataset: Any,
        batch_sampler: Any,
        collate_fn: Callable[[list[Any]], dict[str, torch.Tensor]],
        *,
        num_workers: int = 0,
        prefetch: int = 2,
    ):
        self.dataset, self.batch_sampler, self.collate_fn = dataset, batch_sampler, collate_fn
        self.per_batch = bool(getattr(collate_fn, "per_batch_seed", False))
        if num_workers > 0 and not self.per_batch:
            raise ValueError(
                "DataLoader workers need a collator in per-batch mode (per_batch_seed=True): a continuous "
                "generator cannot be shared between processes"
            )
        self.num_workers, self.prefetch = num_workers, prefetch
        self.drawn = 0  # batches handed out so far (the next batch's number)
        self._cursor = batch_sampler.state_dict() if hasattr(batch_sampler, "state_dict") else None
        self._indices: Iterator[list[int]] | None = None
        self._loader: Iterator | None = None

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def _jobs(self) -> Iterator[tuple[int, list[int], Any]]:
        number = self.drawn
        for idx in self.batch_sampler:
            cursor = self.batch_sampler.state_dict() if hasattr(self.batch_sampler, "state_dict") else None
            yield number, idx, cursor
            number += 1

    def __next__(self) -> dict[str, torch.Tensor]:
        if self.num_workers > 0:
            if self._loader is None:
                loader = torch.utils.data.DataLoader(
                    _NumberedBatches(self.dataset, self.collate_fn),
                    sampler=self._jobs(),
                    batch_size=None,
                    num_workers=self.num_workers,
                    prefetch_factor=self.prefetch,
                    persistent_workers=False,
                    pin_memory=torch.cuda.is_available(),
                    # its own generator: a loader started on resume must not draw from the global RNG, which
                    # the checkpoint restored for dropout (the masks come from per-batch seeds, not from it)
                    generator=torch.Generator().manual_seed(0),
                    worker_init_fn=functools.partial(_leave_stop_signals_to_the_trainer, os.getpid()),
                )
                self._loader = iter(loader)
            cursor, batch = next(self._loader)
        else:
            if self._indices is None:
                self._indices = self._jobs()
            number, idx, cursor = next(self._indices)
            if self.per_batch:
                self.collate_fn.reseed_for(number)
            batch = self.collate_fn([self.dataset[i] for i in idx])
        self._cursor = cursor
        self.drawn += 1
        return batch

    def close(self) -> None:
        """Stop the DataLoader workers now (a later ``next`` starts them afresh). Without it the loader's
        iterator lives until garbage collection, and a DataLoader forked meanwhile copies it into its own
        workers, where its finaliser fails ("can only test a child process")."""
        loader, self._loader = self._loader, None
        shutdown = getattr(loader, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        if loader is not None and self._cursor is not None:  # the workers ran ahead: rewind to the batch handed out
            self.batch_sampler.load_state_dict(self._cursor)

    def state_dict(self) -> dict[str, Any]:
        cursor = self._cursor if self._cursor is not None else self.batch_sampler.state_dict()
        state: dict[str, Any] = {"sampler": cursor, "drawn": self.drawn}
        if hasattr(self.collate_fn, "state_dict") and not self.per_batch:
            state["collator"] = self.collate_fn.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batch_sampler.load_state_dict(state["sampler"])
        self._cursor = state["sampler"]
        self.drawn = int(state.get("drawn", 0))
        self._indices = self._loader = None  # restart from the restored cursor (workers are started afresh)
        if "collator" in state:
            if not hasattr(self.collate_fn, "load_state_dict"):
                raise ValueError("saved stream state has a collator state but this collate_fn cannot load one")
            self.collate_fn.load_state_dict(state["collator"])


def _leave_stop_signals_to_the_trainer(training_pid: int, worker_id: int) -> None:
    """Workers leave a stop to the training process, which finishes its step, checkpoints it and shuts them
    down (rokd.trainer): they ignore Ctrl-C (a terminal sends it to the whole process group), and ignore
    SIGTERM while the training process catches it -- Slurm, systemd or a machine's shutdown signal every
    process of the job at once, and a worker dying first would kill the step. Otherwise SIGTERM ends them as
    usual: Python's multiprocessing ends leftover workers with it at exit (ignoring it always hung pytest's
    exit)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, functools.partial(_on_sigterm, training_pid))


def _on_sigterm(training_pid: int, signum: int, frame: Any) -> None:
    if _process_catches(training_pid, signal.SIGTERM):
        return  # the trainer stops after its step and shuts the workers down
    os._exit(0)  # as torch's own worker handler does when its parent ends it: quietly


def _process_catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (Linux ``/proc``; False where it cannot tell)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            caught = next((line.split()[1] for line in status if line.startswith("SigCgt:")), "0")
    except OSError:
        return False
    return bool(int(caught, 16) >> (sig - 1) & 1)


def count_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Non-padding input tokens of a batch (``attention_mask`` sum, else ``input_ids`` size)."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())
