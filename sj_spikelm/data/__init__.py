"""Data for the training jobs: GLUE tasks (:mod:`.glue`), MLM corpora (:mod:`.corpus`,
:mod:`.mlm`) and where local data lives (:mod:`.paths`)."""
from .corpus import load_token_blocks
from .glue import TASKS, GlueTask, glue_task, load_glue, read_glue_tsv
from .mlm import MaskedBlocks, example_generator, mask_tokens
from .paths import data_root

__all__ = ["TASKS", "GlueTask", "data_root", "glue_task", "load_glue", "load_token_blocks",
           "mask_tokens", "read_glue_tsv", "example_generator", "MaskedBlocks"]
