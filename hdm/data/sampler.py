"""Samplers of training data: a resumable epoch sampler, and samples seeded by their position, so a
run's crops and flips depend on nothing but (seed, epoch, index)."""
import torch
from torch.utils.data import Dataset, Sampler


class EpochSampler(Sampler):
    """Yields (index, epoch) keys: a fresh permutation per epoch from (seed, epoch), starting at
    `offset` (samples already used this epoch, counted over all processes). With `world` processes,
    process `rank` takes every world-th sample of each global batch of batch * world samples, and an
    epoch keeps only whole global batches, so every process runs the same number of steps. The data
    position is two integers, saved in checkpoints."""

    def __init__(self, size, seed, batch, rank=0, world=1):
        self.size, self.seed, self.batch, self.rank, self.world = size, seed, batch, rank, world
        self.epoch, self.offset = 0, 0

    def _usable(self):
        step = self.batch * self.world
        return (self.size - self.offset) // step * step

    def __iter__(self):
        perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        keys = perm[self.offset:self.offset + self._usable()][self.rank::self.world]
        return iter([(index, self.epoch) for index in keys.tolist()])

    def __len__(self):
        return self._usable() // self.world


class SeededSamples(Dataset):
    """dataset[(index, epoch)] with torch's RNG seeded by (seed, epoch, index) while the sample is made
    (and restored after): random crops and flips then depend on nothing else, not on the process,
    worker or history, so runs on any number of processes or workers, and resumed runs, see the same
    samples."""

    def __init__(self, dataset, seed):
        self.dataset, self.seed = dataset, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        index, epoch = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + index)
            return self.dataset[index]
