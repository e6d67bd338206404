"""all-MiniLM-L6-v2 (a 6-layer BERT) in plain PyTorch, read from its sentence-transformers folder.

Why not sentence-transformers itself: importing it (and `transformers` under it) takes ~3 s, which was most
of the worker's cold start; this module needs only torch, safetensors and the `tokenizers` package and
computes the same vectors (tests/test_text_encoders.py compares it with `transformers`' BertModel).
BERT's layer is PyTorch's post-LayerNorm TransformerEncoderLayer with exact GELU; only the names differ.
"""
import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"{path}: cannot read this sentence-transformers file ({err})") from None


class MiniLM(nn.Module):
    """Token ids -> mean-pooled, L2-normalised sentence vectors, as the sentence-transformers pipeline
    (Transformer -> Pooling(mean) -> Normalize) computes them."""

    def __init__(self, config: dict):
        super().__init__()
        width, eps = config["hidden_size"], config["layer_norm_eps"]
        if config.get("hidden_act") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("MiniLM: only BERT with exact GELU and absolute positions is supported")
        self.word = nn.Embedding(config["vocab_size"], width)
        self.position = nn.Embedding(config["max_position_embeddings"], width)
        self.token_type = nn.Embedding(config["type_vocab_size"], width)
        self.norm = nn.LayerNorm(width, eps=eps)
        layer = nn.TransformerEncoderLayer(width, config["num_attention_heads"], config["intermediate_size"],
                                           dropout=0.0, activation="gelu", layer_norm_eps=eps, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, config["num_hidden_layers"], enable_nested_tensor=False)

    def load_bert_weights(self, bert: dict[str, torch.Tensor]) -> None:
        """Load a BertModel state_dict (Hugging Face names) into this module's layout."""
        state = {"word.weight": bert["embeddings.word_embeddings.weight"],
                 "position.weight": bert["embeddings.position_embeddings.weight"],
                 "token_type.weight": bert["embeddings.token_type_embeddings.weight"],
                 "norm.weight": bert["embeddings.LayerNorm.weight"], "norm.bias": bert["embeddings.LayerNorm.bias"]}
        for i in range(len(self.encoder.layers)):
            src, dst = f"encoder.layer.{i}.", f"encoder.layers.{i}."
            for kind in ("weight", "bias"):
                state[f"{dst}self_attn.in_proj_{kind}"] = torch.cat(
                    [bert[f"{src}attention.self.{part}.{kind}"] for part in ("query", "key", "value")])
                for ours, theirs in (("self_attn.out_proj", "attention.output.dense"),
                                     ("norm1", "attention.output.LayerNorm"), ("linear1", "intermediate.dense"),
                                     ("linear2", "output.dense"), ("norm2", "output.LayerNorm")):
                    state[f"{dst}{ours}.{kind}"] = bert[f"{src}{theirs}.{kind}"]
        self.load_state_dict(state)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """ids, attention_mask (B, n) int -> (B, width) unit vectors."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.word(ids) + self.position(positions) + self.token_type(torch.zeros_like(ids)))
        x = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        mask = attention_mask.unsqueeze(-1).to(x.dtype)
        return nn.functional.normalize((x * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)


def load_minilm(folder: str | Path) -> tuple[MiniLM, "tokenizers.Tokenizer"]:  # noqa: F821
    """(network in eval mode, tokenizer truncating and padding like sentence-transformers) of a
    sentence-transformers folder holding a BERT with mean pooling."""
    from tokenizers import Tokenizer
    folder = Path(folder)
    pooling = _read_json(folder / "1_Pooling" / "config.json")
    modes = {key for key, on in pooling.items() if key.startswith("pooling_mode_") and on}
    if modes != {"pooling_mode_mean_tokens"}:
        raise ValueError(f"{folder}: MiniLM supports mean pooling only, the folder asks for {pooling}")
    model = MiniLM(_read_json(folder / "config.json"))
    try:
        model.load_bert_weights(load_file(folder / "model.safetensors"))
    except (OSError, KeyError, RuntimeError) as err:
        raise FileNotFoundError(f"{folder / 'model.safetensors'}: not the BERT weights of this folder "
                                f"({err})") from None
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(_read_json(folder / "sentence_bert_config.json")["max_seq_length"])
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
    return model.eval(), tokenizer
