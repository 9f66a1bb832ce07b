"""Training jobs: MLM pre-training (:mod:`.pretrain`), GLUE fine-tuning (:mod:`.finetune`),
distillation from an ANN teacher (:mod:`.distill`), on the shared loop (:mod:`.loop`); the
config-to-model mapping is :func:`.build.build_model`."""
from ..import_guard import hide_unloadable_packages

hide_unloadable_packages()  # before anything imports transformers (idempotent)
