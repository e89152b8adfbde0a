"""Quantisation (Zhang et al. 2024, "catastrophic failure of LLM unlearning via quantization";
Open-MMunlearning's quantisation stress test): quantise the model's linear layers and re-score
the attacked task. Unlearning by small weight changes can vanish under rounding.

- ``int8_dynamic`` (the default on CPU): torch's dynamic int8 quantisation of every
  ``nn.Linear`` (weights int8 per tensor, activations quantised on the fly); runs on the CPU.
- ``nf4`` (the default on CUDA): 4-bit NF4 with double quantisation and bfloat16 compute, as
  the reference does, through bitsandbytes (``pip install -e ".[quant]"``).
- ``rtn``: round-to-nearest weight quantisation of every linear layer to ``bits`` bits
  (symmetric, one scale per group of ``group_size`` input columns), computed back in float:
  the RTN setting of Zhang et al. (their 4-bit RTN undoes unlearning where 8-bit does not); any
  device.

quant_recovery = (score_quantised - score_before) / (score_vanilla - score_before) (none where
the model is less than 0.1 below the vanilla model; ``mmu_bench.attack.recovery``).
"""

import tempfile
import warnings
from dataclasses import dataclass

import torch

from mmu_bench.api import Attack, AttackConfig, MMUBenchError, recovery

SCHEMES = ("auto", "int8_dynamic", "nf4", "rtn")


@dataclass
class QuantiseConfig(AttackConfig):
    scheme: str = "auto"  # auto: nf4 on CUDA, int8_dynamic otherwise
    bits: int = 4  # rtn only
    group_size: int = 128  # rtn only: input columns sharing one scale

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if not 2 <= self.bits <= 8 or self.group_size < 1:
            raise ValueError(f"bits must be in [2, 8] and group_size positive, got {self.bits}, {self.group_size}")


@torch.no_grad()
def round_to_nearest(weight: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    """``weight`` [out, in] rounded to ``bits``-bit symmetric integers, one scale (the group's
    largest magnitude over the largest integer) per row and group of ``group_size`` columns,
    and back to float."""
    top = 2 ** (bits - 1) - 1
    out = weight.clone()
    for start in range(0, weight.shape[1], group_size):
        group = weight[:, start : start + group_size].float()
        scale = group.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / top
        out[:, start : start + group_size] = (torch.clamp(torch.round(group / scale), -top - 1, top) * scale).to(weight.dtype)
    return out


@torch.no_grad()
def rtn(model, bits: int, group_size: int):
    """``model`` (a copy) with every linear layer's weight rounded to ``bits`` bits, in place."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight.copy_(round_to_nearest(module.weight, bits, group_size))
    return model


def int8_dynamic(model):
    """A CPU copy of ``model`` with every linear layer dynamically quantised to int8."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch marks its eager quantisation deprecated in favour of torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model.float().cpu(), {torch.nn.Linear}, dtype=torch.qint8)


def nf4(model, device):
    """``model`` reloaded in 4-bit NF4 (double quantisation, bfloat16 compute) on ``device``."""
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise MMUBenchError('the nf4 quantisation attack needs bitsandbytes: pip install -e ".[quant]" '
                            "(or --attack-arg quantise.scheme=int8_dynamic, which runs on the CPU)")
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.bfloat16)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return type(model).from_pretrained(tmp, quantization_config=config, device_map={"": str(device)})


class Quantise(Attack):
    name = "quantise"
    description = "quantise the linear layers (int8 on CPU, NF4 on CUDA, or RTN) and re-score"
    Config = QuantiseConfig
    columns = ("quant_recovery",)
    labels = {"quant_recovery": "quantised: recovery"}
    explain = "Quantised: recovery after quantising the linear layers."
    order = 4

    def scheme(self, device) -> str:
        if self.config.scheme != "auto":
            return self.config.scheme
        return "nf4" if torch.device(device).type == "cuda" else "int8_dynamic"

    def attacked_model(self, target):
        """A quantised copy of the target's model (a LoRA model's merged weights, as one deploys it)."""
        scheme = self.scheme(target.device)
        clone = target.copy_model()
        if hasattr(clone, "merge_and_unload"):
            clone = clone.merge_and_unload()
        if scheme == "int8_dynamic":
            return int8_dynamic(clone)
        if scheme == "rtn":
            return rtn(clone, self.config.bits, self.config.group_size)
        return nf4(clone, target.device)

    def run(self, target):
        scheme = self.scheme(target.device)
        model = self.attacked_model(target)
        after = target.score(target.evaluate(model))
        del model
        before, vanilla = target.score(target.records), target.score(target.vanilla_records)
        if scheme == "rtn":
            scheme = f"rtn{self.config.bits}"
        return {"quant_scheme": scheme, "quant_before": before, "quant_after": after, "quant_change": after - before,
                "quant_recovery": recovery(after, before, vanilla)}
