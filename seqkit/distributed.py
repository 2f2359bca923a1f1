"""Training on several processes: ranks, batch shards, and reductions across ranks.

`torchrun --nproc-per-node N -m seqkit run RECIPE` starts N copies of seqkit
and gives each its rank through environment variables. Every rank computes the
same global batch order from the seed and trains on its own share of each
batch; DistributedDataParallel averages the gradients, so a step sees the same
examples as a single process with the same `train.batch_size`.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from seqkit.errors import RecipeError


@dataclass(frozen=True)
class Shard:
    """This process's place among the training processes.

    The rows of a global batch that rank r trains on are rows r, r + N,
    r + 2N, ... of it, for N processes: the split that torch's
    DistributedSampler makes of an index list. A single process is rank 0 of 1.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the one process that writes logs, checkpoints and metrics."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def rows(self, rows: Tensor) -> Tensor:
        """Return this rank's share of the row indices (B,) of a global batch.

        Like DistributedSampler, a batch whose size is not a multiple of N
        (the last of an epoch) is first padded with its own first rows, so
        every rank gets the same number of rows and none gets an empty batch.
        """
        short = -len(rows) % self.world_size
        if short and len(rows):
            repeats = rows[torch.arange(short) % len(rows)]
            rows = torch.cat([rows, repeats])
        return rows[self.rank :: self.world_size]

    def owns(self, number: int) -> bool:
        """True when evaluation batch `number` is this rank's to evaluate."""
        return number % self.world_size == self.rank


SINGLE = Shard()

# Set in the environment of the processes that `launch` starts.
LAUNCHED = "SEQKIT_LAUNCHED"


def shard_from_environment() -> Shard:
    """Read the rank that torchrun gave this process; rank 0 of 1 without it."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as error:
        raise RecipeError(
            f"cannot read the process rank from the environment ({error}); "
            "start several processes with `torchrun` or `seqkit run --nproc N`"
        ) from None
    return Shard(rank, world_size, local_rank)


def launched_by_seqkit() -> bool:
    """True in a training process that `seqkit run --nproc` started."""
    return os.environ.get(LAUNCHED) == "1"


def check_batch_size(batch_size: int, shard: Shard, file: str | None = None) -> None:
    """Refuse a global batch that the processes cannot share evenly.

    `file` is the recipe that set the batch size, named in the error.
    """
    if batch_size % shard.world_size:
        raise RecipeError(
            f"batch_size {batch_size} does not split evenly over "
            f"{shard.world_size} processes; use a multiple of {shard.world_size}",
            file,
            "train.batch_size",
        )


def start(shard: Shard, device: torch.device) -> None:
    """Join the process group, once per process: gloo on CPU, nccl on CUDA.

    The group stays until the process exits, so a second `train` in the
    same processes, such as a resume, reuses it: joining anew after leaving
    waits forever under torchrun.
    """
    if not shard.distributed or dist.is_initialized():
        return
    # NOTE: only gloo on CPU is tested; the nccl path has not run on GPUs.
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=shard.rank, world_size=shard.world_size)
    atexit.register(_leave)


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wait_for_all(shard: Shard) -> None:
    """Return once every rank has reached this point."""
    if shard.distributed and dist.is_initialized():
        dist.barrier()


def device_for(shard: Shard, device: torch.device) -> torch.device:
    """Give each rank its own GPU; CPU ranks share the CPU."""
    if device.type == "cuda" and shard.distributed:
        torch.cuda.set_device(shard.local_rank)
        return torch.device("cuda", shard.local_rank)
    return device


def sum_across(values: Sequence[float], shard: Shard) -> list[float]:
    """Return the sum of `values` over all ranks, elementwise."""
    if not shard.distributed:
        return list(values)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather(value: Any, shard: Shard) -> list[Any]:
    """Return `value` from every rank, in rank order."""
    if not shard.distributed:
        return [value]
    values: list[Any] = [None] * shard.world_size
    dist.all_gather_object(values, value)
    return values


def launch(nproc: int, arguments: Sequence[str]) -> int:
    """Run `seqkit` with `arguments` in `nproc` processes through torchrun.

    Returns torchrun's exit status, or 143 after a SIGTERM. The processes
    find each other on this machine only (`--standalone`). Ctrl-C and
    SIGTERM sent to this process alone are passed on to torchrun, which stops
    the training processes. This function waits for them, then raises
    KeyboardInterrupt after a Ctrl-C.
    """
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "seqkit",
        *arguments,
    ]
    environment = {**os.environ, LAUNCHED: "1"}
    process = subprocess.Popen(command, env=environment)

    terminated = []

    def forward(number: int, frame: object) -> None:
        terminated.append(number)
        process.send_signal(number)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        status = process.wait()
        return 128 + signal.SIGTERM if terminated else status
    except KeyboardInterrupt:
        # A Ctrl-C on a terminal reaches torchrun too; one sent to this
        # process alone does not, so pass it on either way.
        process.send_signal(signal.SIGINT)
        process.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
