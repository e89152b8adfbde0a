# Method hyperparameters per benchmark are YAML data; this file only lets setuptools install the folder as mmu_bench._hparams.
