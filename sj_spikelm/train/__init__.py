"""Training jobs on ``transformers.Trainer``: GLUE fine-tuning (:mod:`.finetune`), MLM
pre-training (:mod:`.pretrain`), distillation from an ANN teacher (:mod:`.distill`), with
:class:`.trainer.SpikingTrainer`, the callbacks of :mod:`.callbacks` and the arguments of
:mod:`.arguments`; the arguments-to-model mapping is :func:`.build.build_model`."""
