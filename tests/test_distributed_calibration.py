"""Under torch.distributed every rank ends up with the alpha of the global mean."""
import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from neuron_zoo import ElasticBiNode


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        node = ElasticBiNode(k=2.0, decay=0.0)
        # rank 0 sees |x| = 1 on 4 elements, rank 1 sees |x| = 3 on 4 elements
        x = torch.full((2, 4), 1.0 + 2.0 * rank)
        node(x)
        torch.save(node.alpha, os.path.join(out_dir, f"alpha{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_alpha_is_averaged_across_ranks():
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_worker, args=(2, os.path.join(d, "init"), d), nprocs=2, join=True)
        a0, a1 = (torch.load(os.path.join(d, f"alpha{r}.pt")) for r in range(2))
    torch.testing.assert_close(a0, torch.tensor([4.0, 4.0]))  # k * (1 + 3) / 2
    torch.testing.assert_close(a1, a0, rtol=0, atol=0)
