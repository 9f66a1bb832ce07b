"""Training jobs on ``transformers.Trainer``: GLUE fine-tuning (:mod:`.finetune`), MLM
pre-training (:mod:`.pretrain`), causal LM (:mod:`.causal_lm`), distillation from an ANN teacher
(:mod:`.distill`; Spike-Aware Alignment Distillation on the same mechanism: :mod:`.spad`), with
:class:`.trainer.SpikingTrainer`, the callbacks of :mod:`.callbacks` and the arguments of
:mod:`.arguments`; the arguments-to-model mapping is :func:`.build.build_model`."""
