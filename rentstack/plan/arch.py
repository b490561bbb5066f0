"""Model architecture: the numbers of a Hugging Face config.json the memory math needs.

`load_arch` is the only function here that touches the filesystem (it reads one
config.json); everything downstream takes a `ModelArch` value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rentstack.errors import RentstackError

# Architectures whose weight and KV layout the planner models. Values are the family
# the weight/KV code switches on; anything else is refused unless a fallback is asked for.
KNOWN_ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "dense",
    "MistralForCausalLM": "dense",
    "Qwen2ForCausalLM": "dense",
    "Qwen3ForCausalLM": "dense",
    "GraniteForCausalLM": "dense",
    "Phi3ForCausalLM": "dense",
    "PhiForCausalLM": "dense",
    "GemmaForCausalLM": "dense",
    "Gemma2ForCausalLM": "dense",
    "Gemma3ForCausalLM": "dense",
    "Gemma3ForConditionalGeneration": "dense",
    "Qwen2VLForConditionalGeneration": "dense",
    "Qwen2_5_VLForConditionalGeneration": "dense",
    "Qwen3VLForConditionalGeneration": "dense",
    "LlavaForConditionalGeneration": "dense",
    "MixtralForCausalLM": "moe",
    "Qwen2MoeForCausalLM": "moe",
    "Qwen3MoeForCausalLM": "moe",
    "Qwen3VLMoeForConditionalGeneration": "moe",
    "GptOssForCausalLM": "moe",
    "Llama4ForConditionalGeneration": "moe",
    "Llama4ForCausalLM": "moe",
    "DeepseekV2ForCausalLM": "mla",
    "DeepseekV3ForCausalLM": "mla",
    "Glm4MoeForCausalLM": "moe",
    "Glm4ForCausalLM": "dense",
    "Mistral3ForConditionalGeneration": "dense",
    "Phi3VForCausalLM": "dense",
    "Starcoder2ForCausalLM": "dense",
    "OlmoForCausalLM": "dense",
    "Olmo2ForCausalLM": "dense",
    "InternLM2ForCausalLM": "dense",
    "MiniMaxM2ForCausalLM": "moe",
    "GraniteMoeForCausalLM": "moe",
    "KimiVLForConditionalGeneration": "mla",
}

# Architectures whose MLP is two matrices (up, down; GELU) rather than gate/up/down.
TWO_MATRIX_MLP = ("PhiForCausalLM", "Starcoder2ForCausalLM")

_DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2}


@dataclass(frozen=True)
class ModelArch:
    """Architecture numbers read from config.json (text model only; vision towers ignored)."""

    architecture: str
    """First entry of `architectures`, e.g. "LlamaForCausalLM"."""
    family: str
    """"dense", "moe", "mla" (DeepSeek latent attention) or "fallback" (unknown, estimated)."""
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    """Dense MLP width (for MoE models: the width of any dense layers)."""
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    torch_dtype: str = "bfloat16"
    # --- attention layout
    layer_types: tuple[str, ...] = ()
    """Per layer "full", "sliding" or "chunked"; empty means all full attention."""
    sliding_window: int | None = None
    """Window of the sliding (or chunk size of the chunked-local) layers, in tokens."""
    # --- mixture of experts
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    num_dense_layers: int = 0
    """Leading layers with a dense MLP in a MoE model (DeepSeek `first_k_dense_replace`)."""
    # --- MLA (DeepSeek V2/V3)
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    # --- checkpoint quantization (from quantization_config)
    quant_method: str | None = None
    quant_bits: int | None = None
    quant_group_size: int | None = None
    quant_sym: bool = True
    mlp_matrices: int = 3
    """Weight matrices per MLP/expert: 3 for gated (SwiGLU/GeGLU), 2 for plain GELU MLPs."""
    extra_params: int = 0
    """Parameters outside the text decoder (vision tower, projector), stored 16-bit;
    estimated from vision_config when the config has one."""
    name: str = ""

    @property
    def is_hybrid(self) -> bool:
        return any(t != "full" for t in self.layer_types)

    @property
    def dtype_bytes(self) -> int:
        return _DTYPE_BYTES.get(self.torch_dtype, 2)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _need(cfg: dict, key: str, where: str, *alts: str) -> Any:
    for k in (key, *alts):
        if cfg.get(k) is not None:
            return cfg[k]
    raise RentstackError(
        f"{where} has no {key!r}; the planner needs it — use the model's config.json from the hub"
    )


def _read_source(source: str | Path | dict) -> tuple[dict, str]:
    if isinstance(source, dict):
        return source, "config"
    path = Path(source)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise RentstackError(f"model config {str(path)!r} does not exist; pass a config.json file or a model directory")
    try:
        return json.loads(path.read_text()), str(path)
    except json.JSONDecodeError as exc:
        raise RentstackError(f"model config {str(path)!r} is not valid JSON (line {exc.lineno}): {exc.msg}") from None


def _layer_types(text: dict, arch: str, num_layers: int) -> tuple[tuple[str, ...], int | None]:
    """Which layers use full, sliding-window or chunked-local attention."""
    window = text.get("sliding_window")
    if isinstance(text.get("layer_types"), list):
        types = tuple("sliding" if "sliding" in t else ("chunked" if "chunk" in t else "full")
                      for t in text["layer_types"][:num_layers])
        return types, window if any(t == "sliding" for t in types) else None
    if arch.startswith("Llama4") and text.get("attention_chunk_size"):
        # Llama 4: every `no_rope_layer_interval`-th layer is global, the rest chunked-local.
        interval = int(text.get("no_rope_layer_interval") or 4)
        no_rope = text.get("no_rope_layers")
        if isinstance(no_rope, list) and len(no_rope) >= num_layers:
            types = tuple("chunked" if no_rope[i] else "full" for i in range(num_layers))
        else:
            types = tuple("full" if (i + 1) % interval == 0 else "chunked" for i in range(num_layers))
        return types, int(text["attention_chunk_size"])
    if arch == "Gemma2ForCausalLM" and window:
        return tuple("sliding" if i % 2 == 0 else "full" for i in range(num_layers)), window
    if arch.startswith("Gemma3") and window:
        pattern = int(text.get("sliding_window_pattern") or 6)
        return tuple("full" if (i + 1) % pattern == 0 else "sliding" for i in range(num_layers)), window
    if arch == "GptOssForCausalLM" and window:
        return tuple("sliding" if i % 2 == 0 else "full" for i in range(num_layers)), window
    # Mistral/Qwen2 configs carry sliding_window but vLLM serves them with full attention
    # unless use_sliding_window is set; model them as full.
    return (), None


def _quant(cfg: dict, text: dict) -> tuple[str | None, int | None, int | None, bool]:
    qc = cfg.get("quantization_config") or text.get("quantization_config")
    if not isinstance(qc, dict):
        return None, None, None, True
    method = str(qc.get("quant_method") or "").lower() or None
    bits = qc.get("bits") or qc.get("w_bit")
    group = qc.get("group_size") or qc.get("q_group_size")
    sym = bool(qc.get("sym", not qc.get("zero_point", False)))
    if method == "bitsandbytes":
        bits = 4 if qc.get("load_in_4bit") else 8
    if method == "fp8":
        bits = 8
    if method == "mxfp4":
        bits, group = 4, 32
    if method == "compressed-tensors":
        for grp in (qc.get("config_groups") or {}).values():
            w = (grp or {}).get("weights") or {}
            bits = w.get("num_bits", bits)
            group = w.get("group_size", group)
            sym = bool(w.get("symmetric", True))
            if w.get("type") == "float" and bits == 8:
                method = "compressed-tensors-fp8"
            break
    return method, (int(bits) if bits else None), (int(group) if group else None), sym


def _vision_params(cfg: dict) -> int:
    """A ViT's parameters from vision_config: per block 4·h² (attention) + m·h·i (MLP)."""
    vc = cfg.get("vision_config")
    if not isinstance(vc, dict):
        return 0
    h = int(vc.get("hidden_size") or vc.get("embed_dim") or vc.get("width") or 0)
    depth = int(vc.get("num_hidden_layers") or vc.get("depth") or vc.get("layers") or 0)
    inter = int(vc.get("intermediate_size") or (h * float(vc.get("mlp_ratio") or 4)))
    if not h or not depth:
        return 0
    gated = str(vc.get("hidden_act") or "").lower() == "silu"
    per_block = 4 * h * h + (3 if gated else 2) * h * inter
    text_hidden = int((cfg.get("text_config") or {}).get("hidden_size") or cfg.get("hidden_size") or h)
    out_hidden = int(vc.get("out_hidden_size") or text_hidden)
    projector = h * 4 * h + 4 * h * out_hidden  # patch merger / projector, roughly
    return depth * per_block + projector


def load_arch(source: str | Path | dict, *, allow_unknown: bool = False) -> ModelArch:
    """Parse a config.json (file, model directory or dict) into a ModelArch.

    Raises RentstackError naming the missing field, or the architecture when it is not
    modelled (unless `allow_unknown`, which gives a stated conservative dense estimate).
    """
    cfg, where = _read_source(source)
    archs = cfg.get("architectures") or []
    arch = archs[0] if archs else str(cfg.get("model_type") or "unknown")
    family = KNOWN_ARCHITECTURES.get(arch)
    if family is None:
        if not allow_unknown:
            raise RentstackError(
                f"architecture {arch!r} in {where} is not modelled by the planner; "
                "pass --assume-dense (allow_unknown=True) for a conservative dense estimate (+15% weights)"
            )
        family = "fallback"
    # Multimodal configs keep the language model under text_config.
    text = dict(cfg.get("text_config") or {}) if isinstance(cfg.get("text_config"), dict) else {}
    text = {**{k: v for k, v in cfg.items() if k != "text_config"}, **text} if text else cfg

    hidden = int(_need(text, "hidden_size", where, "n_embd", "d_model"))
    layers = int(_need(text, "num_hidden_layers", where, "n_layer", "num_layers"))
    heads = int(_need(text, "num_attention_heads", where, "n_head"))
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or hidden // heads)
    vocab = int(_need(text, "vocab_size", where))
    maxpos = int(_need(text, "max_position_embeddings", where, "n_positions", "seq_length"))
    rope = text.get("rope_scaling") or {}
    if isinstance(rope, dict) and rope.get("rope_type", rope.get("type")) == "yarn" and rope.get(
        "original_max_position_embeddings"
    ):
        # vLLM derives max_model_len from original_max_position_embeddings × factor for YaRN.
        maxpos = max(maxpos, int(rope["original_max_position_embeddings"] * float(rope.get("factor", 1))))

    n_experts = int(text.get("num_local_experts") or text.get("num_experts") or text.get("n_routed_experts") or 0)
    if family == "moe" and n_experts == 0:
        _need(text, "num_experts", where, "num_local_experts", "n_routed_experts")
    moe_inter = int(text.get("moe_intermediate_size") or 0)
    inter = int(text.get("intermediate_size") or text.get("n_inner") or 0)
    if n_experts and not moe_inter:
        moe_inter = inter  # Mixtral, gpt-oss, Llama 4: intermediate_size is the expert width
    dense_inter = int(text.get("intermediate_size_mlp") or inter)
    if family in ("dense", "fallback") and not inter:
        _need(text, "intermediate_size", where, "n_inner")
    shared = int(text.get("shared_expert_intermediate_size") or 0)
    if not shared and text.get("n_shared_experts"):
        shared = int(text["n_shared_experts"]) * moe_inter
    if arch.startswith("Llama4") and n_experts:
        shared = moe_inter  # Llama 4 MoE layers add one shared expert of the expert width
    num_dense = int(text.get("first_k_dense_replace") or 0)
    if arch.startswith("Llama4") and n_experts:
        step = int(text.get("interleave_moe_layer_step") or 1)
        num_dense = layers - layers // step if step > 1 else 0
    if arch == "Qwen2MoeForCausalLM" or arch.startswith("Qwen3Moe") or arch.startswith("Qwen3VLMoe"):
        dense_inter = 0 if not text.get("mlp_only_layers") else dense_inter

    types, window = _layer_types(text, arch, layers)
    method, bits, group, sym = _quant(cfg, text)
    tie = bool(cfg.get("tie_word_embeddings", text.get("tie_word_embeddings", False)))
    dtype = str(text.get("torch_dtype") or text.get("dtype") or cfg.get("torch_dtype") or "bfloat16")

    mla = {}
    if family == "mla":
        mla = dict(
            kv_lora_rank=int(_need(text, "kv_lora_rank", where)),
            q_lora_rank=int(text.get("q_lora_rank") or 0),
            qk_rope_head_dim=int(_need(text, "qk_rope_head_dim", where)),
            qk_nope_head_dim=int(_need(text, "qk_nope_head_dim", where)),
            v_head_dim=int(_need(text, "v_head_dim", where)),
        )
    return ModelArch(
        architecture=arch,
        family=family,
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=dense_inter,
        vocab_size=vocab,
        max_position_embeddings=maxpos,
        tie_word_embeddings=tie,
        torch_dtype=dtype,
        layer_types=types,
        sliding_window=window,
        num_experts=n_experts,
        num_experts_per_tok=int(text.get("num_experts_per_tok") or text.get("experts_per_token") or 0),
        moe_intermediate_size=moe_inter,
        shared_expert_intermediate_size=shared,
        num_dense_layers=num_dense,
        quant_method=method,
        quant_bits=bits,
        quant_group_size=group,
        quant_sym=sym,
        mlp_matrices=2 if arch in TWO_MATRIX_MLP else 3,
        extra_params=_vision_params(cfg),
        name=str(cfg.get("_name_or_path") or cfg.get("name") or ""),
        **mla,
    )
