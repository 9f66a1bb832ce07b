"""Under torch.distributed every rank ends up with the alpha of the global statistic (sum and
count all-reduced): the same alpha and calibrated flags on every rank, also when one rank's
batch is empty, and the same refusal on every rank when all are."""
import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from neuron_zoo import CalibrationError, ElasticBiNode


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        node = ElasticBiNode(k=2.0, decay=0.0)
        # rank 0 sees |x| = 1 on 4 elements, rank 1 sees |x| = 3 on 4 elements
        node(torch.full((2, 4), 1.0 + 2.0 * rank))
        uneven = ElasticBiNode(k=2.0, decay=0.0, T=2)
        uneven(torch.full((2, 4), 5.0) if rank == 0 else torch.empty(2, 0))  # rank 1: empty batch
        empty = ElasticBiNode(T=1)
        try:
            empty(torch.empty(1, 0, 3))
            refused = False
        except CalibrationError:
            refused = True
        channel = ElasticBiNode(k=2.0, decay=0.0, amplitude="channel", channels=2, T=1)
        # per channel: rank 0 sees |x| = (1, 10), rank 1 (3, 30), on 2 rows each
        channel(torch.tensor([[[1.0, 10.0], [-1.0, -10.0]]]) * (1 + 2 * rank))
        torch.save({"alpha": node.alpha, "calibrated": node.calibrated, "uneven": uneven.alpha,
                    "channel": channel.alpha,
                    "refused": refused, "empty_steps": empty.calibrated_steps},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_alpha_is_averaged_across_ranks():
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_worker, args=(2, os.path.join(d, "init"), d), nprocs=2, join=True)
        r0, r1 = (torch.load(os.path.join(d, f"rank{r}.pt")) for r in range(2))
    torch.testing.assert_close(r0["alpha"], torch.tensor([4.0, 4.0]))  # k * (1 + 3) / 2
    torch.testing.assert_close(r1["alpha"], r0["alpha"], rtol=0, atol=0)
    assert r0["calibrated"].tolist() == r1["calibrated"].tolist() == [True, True]
    torch.testing.assert_close(r0["uneven"], torch.tensor([10.0, 10.0]))  # count 4 + 0
    torch.testing.assert_close(r1["uneven"], r0["uneven"], rtol=0, atol=0)
    # per channel: k * (1 + 3) / 2, k * (10 + 30) / 2
    torch.testing.assert_close(r0["channel"], torch.tensor([[4.0, 40.0]]))
    torch.testing.assert_close(r1["channel"], r0["channel"], rtol=0, atol=0)
    assert r0["refused"] and r1["refused"] and r0["empty_steps"] == r1["empty_steps"] == 0
