"""Training on several processes or machines, launched by torchrun: PyTorch's DistributedDataParallel for
the networks, and the memory kept bitwise identical on every rank by applying every rank's queries, in rank
order, on every rank.

The single-process loop never touches this module; `from_env` returns None unless torchrun started more
than one process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

DEFAULT_TIMEOUT_S = 300.0  # a rank that stops answering ends the others after this long instead of a hang
SUMMED_STATS = ("no_positive", "no_negative")  # counts add up over ranks; the other loss terms are averaged
SHARED_STATS = ("memory_hit_rate",)  # already computed over the gathered batch, the same on every rank
# DDP's gradient all-reduce reports a dead peer as a plain RuntimeError in the backend's words.
BACKEND_ERROR = re.compile(r"gloo|nccl|c10d|connection (reset|closed)", re.IGNORECASE)


class DistributedError(RuntimeError):
    """A launch environment that cannot be used, or a rank that lost the others; the message is one line."""


@dataclass(frozen=True)
class Group:
    """This process's place among the ranks of a torchrun launch."""

    rank: int
    local_rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes logs, samples and checkpoints."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """The device of this rank: its own GPU (by local rank) on CUDA, the CPU otherwise."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    def shard(self, batch: int) -> torch.Tensor:
        """Positions in a global batch of `batch` images that this rank trains on: a contiguous chunk.

        A batch that does not split evenly is padded by wrapping around to its start, as DistributedSampler
        pads an epoch, so every rank holds the same number of images and the gathers line up.
        """
        per_rank = -(-batch // self.world_size)
        positions = torch.arange(self.rank * per_rank, (self.rank + 1) * per_rank)  # (per_rank,)
        return positions % batch

    def seed(self, seed: int, step: int) -> None:
        """Seed the global generators (dropout) for one step of this rank, from the run seed alone.

        Derived from (seed, step, rank), so ranks draw different dropout masks and a resumed run draws what
        the interrupted one would have, whichever rank wrote the checkpoint.
        """
        torch.manual_seed(((seed * 1_000_003 + step) * 65_537 + self.rank) % 2**63)

    def wrap(self, module: nn.Module) -> nn.Module:
        """The module under DistributedDataParallel, which averages its gradients over the ranks."""
        parameter = next(module.parameters())
        device_ids = [parameter.device.index] if parameter.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's `tensor` (n, ...) concatenated in rank order: (world_size * n, ...)."""
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    def reduce_stats(self, stats: dict[str, float]) -> dict[str, float]:
        """The log line of the whole step: counts summed over ranks, loss terms averaged."""
        names = [name for name in stats if name not in SHARED_STATS]
        values = torch.tensor([float(stats[name]) for name in names], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            values = values.cuda()
        dist.all_reduce(values)
        out = dict(stats)
        for name, total in zip(names, values.tolist(), strict=True):
            out[name] = int(total) if name in SUMMED_STATS else total / self.world_size
        return out

    def lost_contact(self, error: Exception, step: int) -> DistributedError:
        """A one-line error for a collective that failed or timed out at `step`: a rank died or hangs."""
        return DistributedError(
            f"rank {self.rank} of {self.world_size}: lost contact with the other ranks at step {step} (one "
            f"stopped, hangs or the network failed; see its log): {_first_sentence(error)}"
        )

    def barrier(self) -> None:
        """Wait for every rank."""
        dist.barrier()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (filling the feature cache), then the other ranks (reading it)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()


def from_env(device: str | torch.device = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S) -> Group | None:
    """Join the process group torchrun describes in RANK, LOCAL_RANK and WORLD_SIZE; None for one process.

    gloo on the CPU, nccl on CUDA; MASTER_ADDR and MASTER_PORT (set by torchrun) locate rank 0.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size < 1:
        raise DistributedError(f"WORLD_SIZE={world_size} must be at least 1")
    if world_size == 1:
        return None
    rank, local_rank = _env_int("RANK", None), _env_int("LOCAL_RANK", None)
    if not 0 <= rank < world_size:
        raise DistributedError(f"RANK={rank} is outside [0, WORLD_SIZE={world_size})")
    if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or not timeout_s > 0:
        raise DistributedError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    device = torch.device(device)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"LOCAL_RANK={local_rank} but torch sees {torch.cuda.device_count()} CUDA devices; "
                "use --nproc_per_node <= the number of GPUs"
            )
        torch.cuda.set_device(local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except dist.DistError as error:
        address = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        raise DistributedError(
            f"rank {rank} of {world_size}: could not join the other ranks at {address} within "
            f"{timeout_s:g} s: {_first_sentence(error)}"
        ) from error
    return Group(rank, local_rank, world_size)


def cleanup(group: Group | None) -> None:
    """Leave the process group, if one was joined."""
    if group is not None and dist.is_initialized():
        dist.destroy_process_group()


def is_communication_error(error: Exception) -> bool:
    """Whether `error` comes from the communication backend rather than from the computation."""
    return isinstance(error, dist.DistError) or bool(BACKEND_ERROR.search(str(error)))


def _first_sentence(error: Exception) -> str:
    """The backend's message without its source location, first sentence only."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip().split("\n")[0])
    return text.split(". ")[0].rstrip(".") or type(error).__name__


def _env_int(name: str, default: int | None) -> int:
    """An integer environment variable set by torchrun."""
    text = os.environ.get(name)
    if text is None:
        if default is None:
            raise DistributedError(f"{name} is not set; launch several processes with torchrun")
        return default
    try:
        return int(text)
    except ValueError:
        raise DistributedError(f"{name}={text!r} is not an integer") from None
