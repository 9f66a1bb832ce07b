"""Training jobs: MLM pre-training (:mod:`.pretrain`), GLUE fine-tuning (:mod:`.finetune`),
distillation from an ANN teacher (:mod:`.distill`), on the shared loop (:mod:`.loop`); the
config-to-model mapping is :func:`.build.build_model`. (Importing this package runs
``sj_spikelm/__init__``, which hides an unloadable torchvision before transformers is used.)"""
