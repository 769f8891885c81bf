"""Language-model policies: the embedded value-aware decoder, any Hugging Face causal LM, SFT, decisions.

Importing this package registers the embedded model (``comllm_lm``) with
transformers' Auto classes and the ``llm`` policy with the policy registry.
"""

from comllm.lm.model import ComllmLMConfig, ComllmLMForCausalLM, ModelShape, build_model
from comllm.lm.scoring import CandidateTree, score_candidates
from comllm.lm.tokenizer import ComllmTokenizer
from comllm.lm.values import ValueCodec, value_features

__all__ = [
    "CandidateTree",
    "ComllmLMConfig",
    "ComllmLMForCausalLM",
    "ComllmTokenizer",
    "ModelShape",
    "ValueCodec",
    "build_model",
    "score_candidates",
    "value_features",
]
