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
    rotary_dim: int = -1
    """Dimensions of each head that RoPE rotates (head_dim × partial_rotary_factor; for MLA the
    rope part of the head); -1 = the whole head_dim. Sizes vLLM's cos/sin cache."""
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


# Bounds of the config.json numbers the planner reads. They are wide (every released model
# fits well inside) and exist so that a malformed file is refused with the field's name
# instead of planning negative sizes as "fits" or looping over 10^30 layers.
_MAX_WIDTH = 2**20
MAX_CONTEXT = 2**24
"""Longest context the planner accepts, from a config or a flag: above every released model's
window (Llama 4 Scout: 10M tokens)."""
_LIMITS: dict[str, tuple[int, int]] = {
    "hidden_size": (1, 2**17), "num_hidden_layers": (1, 2048), "num_attention_heads": (1, 4096),
    "num_key_value_heads": (1, 4096), "head_dim": (1, 4096), "vocab_size": (1, 2**22),
    "max_position_embeddings": (1, MAX_CONTEXT), "intermediate_size": (0, _MAX_WIDTH),
    "intermediate_size_mlp": (0, _MAX_WIDTH), "moe_intermediate_size": (0, _MAX_WIDTH),
    "shared_expert_intermediate_size": (0, _MAX_WIDTH), "num_experts": (0, 4096),
    "num_experts_per_tok": (0, 4096), "n_shared_experts": (0, 256), "first_k_dense_replace": (0, 2048),
    "interleave_moe_layer_step": (0, 2048), "sliding_window": (1, MAX_CONTEXT),
    "attention_chunk_size": (1, MAX_CONTEXT), "no_rope_layer_interval": (1, 2048),
    "sliding_window_pattern": (1, 2048), "kv_lora_rank": (1, 2**14), "q_lora_rank": (0, 2**14),
    "qk_rope_head_dim": (1, 4096), "qk_nope_head_dim": (1, 4096), "v_head_dim": (1, 4096),
    "original_max_position_embeddings": (1, MAX_CONTEXT), "bits": (1, 32), "group_size": (-1, 2**16),
    "num_bits": (1, 32), "depth": (0, 2048), "out_hidden_size": (0, 2**17),
}
_ALIASES = {"n_embd": "hidden_size", "d_model": "hidden_size", "embed_dim": "hidden_size", "width": "hidden_size",
            "n_layer": "num_hidden_layers", "num_layers": "num_hidden_layers", "layers": "depth",
            "n_head": "num_attention_heads", "n_positions": "max_position_embeddings",
            "seq_length": "max_position_embeddings", "n_inner": "intermediate_size",
            "num_local_experts": "num_experts", "n_routed_experts": "num_experts",
            "experts_per_token": "num_experts_per_tok", "w_bit": "bits", "q_group_size": "group_size"}


class _Fields:
    """Typed, bounded reads from one object of a config.json; errors name the field and the file."""

    def __init__(self, data: Any, where: str, prefix: str = "", nested: Any = ()) -> None:
        self.data, self.where, self.prefix = data, where, prefix
        self.nested = nested
        """Keys that come from text_config when the top level and text_config are read as one."""

    def _bad(self, key: str, value: Any, what: str) -> RentstackError:
        try:
            shown = json.dumps(value)[:60]
        except (TypeError, ValueError):
            shown = repr(value)[:60]
        prefix = "text_config." if key in self.nested else self.prefix
        return RentstackError(f"{self.where}: field {prefix}{key} is {shown}, which is not {what}; correct it or "
                              "use the model's config.json from its hub page")

    def raw(self, *keys: str) -> tuple[str, Any]:
        """(key, value) of the first key that is set, or (first key, None)."""
        for k in keys:
            if self.data.get(k) is not None:
                return k, self.data[k]
        return keys[0], None

    def int(self, *keys: str, default: int = 0, need: bool = False) -> int:
        """The first of `keys` that is set, as a bounded whole number (_LIMITS). Optional fields
        read null, 0 and false as unset (configs write all three); required ones are refused."""
        key, value = self.raw(*keys)
        if value is None or (not need and value in (0, False)):
            if need:
                raise RentstackError(f"{self.where} has no {self.prefix}{keys[0]!r}; the planner needs it — "
                                     "use the model's config.json from the hub")
            return default
        lo, hi = _LIMITS.get(_ALIASES.get(key, key), (0, 2**31))
        whole = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
        if not whole or not lo <= value <= hi:
            raise self._bad(key, value, f"a whole number in [{lo}, {hi}]")
        return int(value)

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo < value <= hi:
            raise self._bad(key, value, f"a number in ({lo:g}, {hi:g}]")
        return float(value)

    def _typed(self, key: str, ok: Any, what: str) -> Any:
        value = self.data.get(key)
        if value is not None and not ok(value):
            raise self._bad(key, value, what)
        return value

    def text(self, key: str, default: str = "") -> str:
        return self._typed(key, lambda v: isinstance(v, str), "a string") or default

    def obj(self, key: str) -> dict | None:
        return self._typed(key, lambda v: isinstance(v, dict), "an object ({...})")

    def names(self, key: str) -> list[str] | None:
        return self._typed(key, lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                           "a list of strings")


def _read_source(source: str | Path | dict) -> tuple[Any, str]:
    if not isinstance(source, (str, Path)):
        return source, "config"
    path = Path(source)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise RentstackError(f"model config {str(path)!r} does not exist; pass a config.json file or a model directory")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RentstackError(f"model config {str(path)!r} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RentstackError(f"model config {str(path)!r} cannot be read ({exc}); pass the model's config.json") from None
    return data, str(path)


def _layer_types(t: _Fields, arch: str, num_layers: int) -> tuple[tuple[str, ...], int | None]:
    """Which layers use full, sliding-window or chunked-local attention."""
    window = t.int("sliding_window", default=0) or None
    names = t.names("layer_types")
    if names is not None:
        types = tuple("sliding" if "sliding" in n else ("chunked" if "chunk" in n else "full")
                      for n in names[:num_layers])
        return types, window if any(x == "sliding" for x in types) else None
    chunk = t.int("attention_chunk_size")
    if arch.startswith("Llama4") and chunk:
        # Llama 4: every `no_rope_layer_interval`-th layer is global, the rest chunked-local.
        interval = t.int("no_rope_layer_interval", default=4)
        no_rope = t.data.get("no_rope_layers")
        if isinstance(no_rope, list) and len(no_rope) >= num_layers:
            types = tuple("chunked" if no_rope[i] else "full" for i in range(num_layers))
        else:
            types = tuple("full" if (i + 1) % interval == 0 else "chunked" for i in range(num_layers))
        return types, chunk
    if arch == "Gemma2ForCausalLM" and window:
        return tuple("sliding" if i % 2 == 0 else "full" for i in range(num_layers)), window
    if arch.startswith("Gemma3") and window:
        pattern = t.int("sliding_window_pattern", default=6)
        return tuple("full" if (i + 1) % pattern == 0 else "sliding" for i in range(num_layers)), window
    if arch == "GptOssForCausalLM" and window:
        return tuple("sliding" if i % 2 == 0 else "full" for i in range(num_layers)), window
    # Mistral/Qwen2 configs carry sliding_window but vLLM serves them with full attention
    # unless use_sliding_window is set; model them as full.
    return (), None


def _quant(c: _Fields, t: _Fields) -> tuple[str | None, int | None, int | None, bool]:
    data = c.obj("quantization_config") or t.obj("quantization_config")
    if data is None:
        return None, None, None, True
    q = _Fields(data, c.where, "quantization_config.")
    method = q.text("quant_method").lower() or None
    bits = q.int("bits", "w_bit") or None
    group = q.int("group_size", "q_group_size") or None
    sym = bool(data.get("sym", not data.get("zero_point", False)))
    if method == "bitsandbytes":
        bits = 4 if data.get("load_in_4bit") else 8
    if method == "fp8":
        bits = 8
    if method == "mxfp4":
        bits, group = 4, 32
    if method == "compressed-tensors":
        groups = q.obj("config_groups") or {}
        for name, grp in groups.items():
            g = _Fields(grp if isinstance(grp, dict) else {}, c.where, f"quantization_config.config_groups.{name}.")
            w = _Fields(g.obj("weights") or {}, c.where, f"{g.prefix}weights.")
            bits = w.int("num_bits", default=bits or 0) or None
            group = w.int("group_size", default=group or 0) or None
            sym = bool(w.data.get("symmetric", True))
            if w.data.get("type") == "float" and bits == 8:
                method = "compressed-tensors-fp8"
            break
    return method, bits, group, sym


def _vision_params(c: _Fields, text_hidden: int) -> int:
    """A ViT's parameters from vision_config: per block 4·h² (attention) + m·h·i (MLP)."""
    data = c.obj("vision_config")
    if data is None:
        return 0
    v = _Fields(data, c.where, "vision_config.")
    h = v.int("hidden_size", "embed_dim", "width")
    depth = v.int("num_hidden_layers", "depth", "layers")
    if not h or not depth:
        return 0
    inter = v.int("intermediate_size") or int(h * v.number("mlp_ratio", 4.0, 0, 64))
    gated = str(data.get("hidden_act") or "").lower() == "silu"
    per_block = 4 * h * h + (3 if gated else 2) * h * inter
    out_hidden = v.int("out_hidden_size", default=text_hidden or h)
    projector = h * 4 * h + 4 * h * out_hidden  # patch merger / projector, roughly
    return depth * per_block + projector


def load_arch(source: str | Path | dict, *, allow_unknown: bool = False) -> ModelArch:
    """Parse a config.json (file, model directory or dict) into a ModelArch.

    Raises RentstackError naming the missing or malformed field (every number is bounded:
    _LIMITS), or the architecture when it is not modelled (unless `allow_unknown`, which
    gives a stated conservative dense estimate).
    """
    cfg, where = _read_source(source)
    if not isinstance(cfg, dict):
        kind = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(cfg), "value")
        raise RentstackError(f"{where} holds a JSON {kind}, not an object of fields; pass the model's config.json "
                             "from its hub page")
    c = _Fields(cfg, where)
    archs = c.names("architectures") or []
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
    sub = c.obj("text_config")
    t = _Fields({**{k: v for k, v in cfg.items() if k != "text_config"}, **sub} if sub else cfg, where,
                nested=set(sub or ()))

    hidden = t.int("hidden_size", "n_embd", "d_model", need=True)
    layers = t.int("num_hidden_layers", "n_layer", "num_layers", need=True)
    heads = t.int("num_attention_heads", "n_head", need=True)
    kv_heads = t.int("num_key_value_heads", default=heads)
    head_dim = t.int("head_dim", default=hidden // heads) or 1
    vocab = t.int("vocab_size", need=True)
    maxpos = t.int("max_position_embeddings", "n_positions", "seq_length", need=True)
    rope_data = t.obj("rope_scaling") or {}
    rope = _Fields(rope_data, where, ("text_config." if "rope_scaling" in t.nested else "") + "rope_scaling.")
    if rope_data.get("rope_type", rope_data.get("type")) == "yarn" and rope_data.get(
        "original_max_position_embeddings"
    ):
        # vLLM derives max_model_len from original_max_position_embeddings × factor for YaRN.
        scaled = rope.int("original_max_position_embeddings") * rope.number("factor", 1.0, 0, 1024)
        if scaled > MAX_CONTEXT:
            raise rope._bad("factor", rope_data.get("factor"), f"a factor that keeps the context ≤ {MAX_CONTEXT}")
        maxpos = max(maxpos, int(scaled))

    n_experts = t.int("num_local_experts", "num_experts", "n_routed_experts")
    if family == "moe" and n_experts == 0:
        t.int("num_experts", "num_local_experts", "n_routed_experts", need=True)
    moe_inter = t.int("moe_intermediate_size")
    inter = t.int("intermediate_size", "n_inner")
    if n_experts and not moe_inter:
        moe_inter = inter  # Mixtral, gpt-oss, Llama 4: intermediate_size is the expert width
    dense_inter = t.int("intermediate_size_mlp", default=inter)
    if family in ("dense", "fallback") and not inter:
        t.int("intermediate_size", "n_inner", need=True)
    shared = t.int("shared_expert_intermediate_size")
    if not shared and t.data.get("n_shared_experts"):
        shared = t.int("n_shared_experts") * moe_inter
    if arch.startswith("Llama4") and n_experts:
        shared = moe_inter  # Llama 4 MoE layers add one shared expert of the expert width
    num_dense = min(t.int("first_k_dense_replace"), layers)
    if arch.startswith("Llama4") and n_experts:
        step = t.int("interleave_moe_layer_step", default=1)
        num_dense = layers - layers // step if step > 1 else 0
    if arch == "Qwen2MoeForCausalLM" or arch.startswith("Qwen3Moe") or arch.startswith("Qwen3VLMoe"):
        dense_inter = 0 if not t.data.get("mlp_only_layers") else dense_inter

    # RoPE's cos/sin cache covers max_position_embeddings positions (× factor for YaRN, as
    # above) for the rotated part of each head; Phi-2 and GLM-4 rotate only a fraction of it.
    rotary = int(head_dim * t.number("partial_rotary_factor", 1.0, 0, 1))
    types, window = _layer_types(t, arch, layers)
    method, bits, group, sym = _quant(c, t)
    tie = bool(cfg.get("tie_word_embeddings", t.data.get("tie_word_embeddings", False)))
    dtype = t.text("torch_dtype") or t.text("dtype") or c.text("torch_dtype") or "bfloat16"

    mla = {}
    if family == "mla":
        mla = dict(
            kv_lora_rank=t.int("kv_lora_rank", need=True),
            q_lora_rank=t.int("q_lora_rank"),
            qk_rope_head_dim=t.int("qk_rope_head_dim", need=True),
            qk_nope_head_dim=t.int("qk_nope_head_dim", need=True),
            v_head_dim=t.int("v_head_dim", need=True),
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
        rotary_dim=mla.get("qk_rope_head_dim", rotary),
        tie_word_embeddings=tie,
        torch_dtype=dtype,
        layer_types=types,
        sliding_window=window,
        num_experts=n_experts,
        num_experts_per_tok=t.int("num_experts_per_tok", "experts_per_token"),
        moe_intermediate_size=moe_inter,
        shared_expert_intermediate_size=shared,
        num_dense_layers=num_dense,
        quant_method=method,
        quant_bits=bits,
        quant_group_size=group,
        quant_sym=sym,
        mlp_matrices=2 if arch in TWO_MATRIX_MLP else 3,
        extra_params=_vision_params(c, hidden),
        name=str(cfg.get("_name_or_path") or cfg.get("name") or ""),
        **mla,
    )
